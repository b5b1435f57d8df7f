package boot

import (
	"bytes"
	"crypto"
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
