package boot

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/mcuboot"
)

// TestPaddedImages: an image signed with --pad --test is swapped for a
// test (reverted unless confirmed); with --pad --confirm it is swapped
// permanently, as under MCUboot.
func TestPaddedImages(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	for _, mode := range []layout.Mode{layout.SwapScratch, layout.SwapMove} {
		for _, confirm := range []bool{false, true} {
			r := newRig(t, mode, 8, 0xFF, key)
			sc := uint32(2)
			var buf bytes.Buffer
			payload := bytes.Repeat([]byte("padded"), 500)
			if _, err := mcuboot.Sign(&buf, bytes.NewReader(payload), int64(len(payload)), &mcuboot.SignOptions{
				Version: mcuboot.Version{Major: 1, Minor: 2}, HeaderSize: 0x200, PadHeader: true, Signer: key.signer,
				SecurityCounter: &sc, SlotSize: slotSecs * secSize, Align: 8, MaxSectors: maxSectors,
				Pad: true, Test: !confirm, Confirm: confirm,
			}); err != nil {
				t.Fatal(err)
			}
			dev := r.factory.Clone()
			d := r.open(dev)
			if err := d.Loader.WriteSecondary(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			res, err := d.Loader.Boot()
			want := SwapTest
			if confirm {
				want = SwapPerm
			}
			if err != nil || res.SwapType != want || res.Image.Version.Minor != 2 || res.Confirmed != confirm {
				t.Fatalf("%s confirm=%v: %+v %v", mode, confirm, res, err)
			}
			res, err = d.Loader.Boot()
			wantMinor := uint8(1) // reverted
			if confirm {
				wantMinor = 2
			}
			if err != nil || res.Image.Version.Minor != wantMinor {
				t.Fatalf("%s confirm=%v: second boot %+v %v", mode, confirm, res, err)
			}
		}
	}
}

// FuzzBoot boots a device whose trailers hold arbitrary bytes: the loader
// must boot, refuse or report an error, never panic.
func FuzzBoot(f *testing.F) {
	key := loadKey(f, "ed25519.pem")
	r := newRig(f, layout.SwapScratch, 8, 0xFF, key)
	tr := NewTrailer(slotSecs*secSize, 8, maxSectors, 0)
	m := MagicBytes(8)
	f.Add(bytes.Repeat([]byte{0xff}, 64), append(bytes.Repeat([]byte{0xff}, 48), m[:]...))
	f.Add(append([]byte{1, 1, 1}, bytes.Repeat([]byte{0xff}, 61)...), append(bytes.Repeat([]byte{0x01}, 48), m[:]...))
	f.Fuzz(func(t *testing.T, priTail, secTail []byte) {
		if len(priTail) > tr.TrailerSize() || len(secTail) > tr.TrailerSize() {
			return
		}
		dev, _ := flash.New(r.m.Flash)
		d, err := OpenDevice(dev, r.m, Config{Mode: layout.SwapScratch, MaxImgSectors: maxSectors, Keys: []crypto.PublicKey{key.pub}})
		if err != nil {
			t.Fatal(err)
		}
		slot := func(img, tail []byte) []byte {
			b := bytes.Repeat([]byte{0xff}, slotSecs*secSize)
			copy(b, img)
			copy(b[len(b)-len(tail):], tail)
			return b
		}
		if err := d.Loader.WritePrimary(slot(r.old, priTail)); err != nil {
			t.Fatal(err)
		}
		if err := d.Loader.WriteSecondary(bytes.NewReader(slot(r.new, secTail))); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := d.Loader.Boot(); err != nil {
				return
			}
		}
	})
}

// TestTrailerSizeAgrees: boot's trailer geometry, layout's check and
// imgtool's formula (package mcuboot) agree on the trailer size.
func TestTrailerSizeAgrees(t *testing.T) {
	for _, align := range []int{1, 2, 4, 8, 16, 32} {
		for _, sectors := range []int{16, 128, 512} {
			b := NewTrailer(1<<20, align, sectors, 0).TrailerSize()
			l := layout.TrailerSize(align, sectors)
			m, err := mcuboot.TrailerLayout{Align: align, MaxSectors: sectors}.Size()
			if err != nil || b != l || b != m {
				t.Errorf("align %d sectors %d: boot %d, layout %d, imgtool %d (%v)", align, sectors, b, l, m, err)
			}
		}
	}
}

// TestCorruptTrailers: a damaged trailer gives a clear error or, where
// MCUboot ignores it, no swap; it never makes the loader boot garbage.
func TestCorruptTrailers(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	r := newRig(t, layout.SwapMove, 8, 0xFF, key)

	// A secondary trailer whose magic is garbage: nothing is swapped.
	dev := r.factory.Clone()
	d := r.open(dev)
	img := append([]byte(nil), r.new...)
	slot := bytes.Repeat([]byte{0xff}, slotSecs*secSize)
	copy(slot, img)
	copy(slot[len(slot)-16:], "not-an-mcuboot-m")
	if err := d.Loader.WriteSecondary(bytes.NewReader(slot)); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Loader.Status(); st[Secondary].State.Magic != MagicBad {
		t.Fatalf("magic %v", st[Secondary].State.Magic)
	}
	if res, err := d.Loader.Boot(); err != nil || res.SwapType != SwapNone || r.which(res.Image) != "old" {
		t.Fatalf("bad secondary magic: %+v %v", res, err)
	}
	if err := d.Loader.SetPending(false); !errors.Is(err, ErrTrailer) {
		t.Fatalf("SetPending on a corrupt trailer: %v", err)
	}

	// A status area with a gap (entry 2 written, entry 1 erased) while a
	// swap is recorded: the loader refuses to guess.
	dev = r.factory.Clone()
	d = r.open(dev)
	tr := d.Loader.tPri
	if err := d.Loader.eraseTrailer(d.Loader.pri, tr); err != nil {
		t.Fatal(err)
	}
	bs := &status{swapType: SwapTest, swapSize: 3000}
	if err := d.Loader.initTrailer(d.Loader.pri, tr, bs); err != nil {
		t.Fatal(err)
	}
	d.Loader.writeTrailer(d.Loader.pri, tr, tr.StatusOff(), []byte{1})
	d.Loader.writeTrailer(d.Loader.pri, tr, tr.StatusOff()+2*tr.Align, []byte{1})
	if _, err := d.Loader.Boot(); !errors.Is(err, ErrBadStatus) {
		t.Fatalf("status gap: %v", err)
	}

	// Confirming with a corrupt primary magic is refused.
	dev = r.factory.Clone()
	d = r.open(dev)
	if err := d.Loader.eraseTrailer(d.Loader.pri, tr); err != nil {
		t.Fatal(err)
	}
	d.Loader.writeTrailer(d.Loader.pri, tr, tr.MagicBlockOff(), bytes.Repeat([]byte{0x42}, 8))
	if err := d.Loader.Confirm(); !errors.Is(err, ErrTrailer) {
		t.Fatalf("confirm with bad magic: %v", err)
	}
}

// TestScratchEraseTornKeepsMagic: the scratch erase that ends the swap of
// the trailer's chunk is cut so that the scratch magic survives but its
// data does not (possible when erase tears bits anywhere). The primary
// slot has already recorded the step, so the boot must carry on from the
// primary's status and not copy the damaged scratch again.
func TestScratchEraseTornKeepsMagic(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	r := newRig(t, layout.SwapScratch, 8, 0xFF, key)
	found := false
	dev := r.factory.Clone()
	var c uint32
	if _, err := r.drive(dev, "update", false, &c); err != nil {
		t.Fatal(err)
	}
	for cut := 1; cut <= dev.Ops() && !found; cut++ {
		d := r.factory.Clone()
		d.CutPowerAt(cut, 1)
		var counter uint32
		r.drive(d, "update", false, &counter)
		d.PowerOn()
		l := r.open(d).Loader
		ss, _ := l.readState(l.scr, l.tScr)
		ps, _ := l.readState(l.pri, l.tPri)
		np, _ := l.lastEntry(l.pri, l.tPri, 0, l.tPri.MaxSectors*StateCount)
		ns, _ := l.lastEntry(l.scr, l.tScr, 0, l.tScr.MaxSectors*StateCount)
		if ss.Magic != MagicGood || ps.Magic != MagicGood || np != 2 || ns != 1 {
			continue
		}
		// The state right before the scratch erase: damage the scratch
		// data as a torn erase may, keeping its trailer.
		found = true
		img := d.Snapshot()
		off := l.scr.off
		for i := 0; i < l.tScr.StatusOff(); i++ {
			img[off+i] |= 0x10
		}
		d2, _ := flash.New(r.m.Flash)
		if err := d2.Write(0, img); err != nil {
			t.Fatal(err)
		}
		out, err := r.drive(d2, "update", true, &counter)
		if err != nil || out.final != "new" || r.checkSlots(d2)[Secondary] != "old" {
			t.Fatalf("cut %d: %+v %v", cut, out, err)
		}
	}
	if !found {
		t.Fatal("no cut point left the primary done and the scratch trailer intact")
	}
}
