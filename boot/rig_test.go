package boot

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/internal/testutil"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/mcuboot"
)

// The test flash: two 12-sector slots of 1 KiB, a 2-sector scratch and a
// 4-sector config partition; BOOT_MAX_IMG_SECTORS 16 keeps the trailer
// within two sectors even at 32-byte alignment.
const (
	secSize    = 1024
	slotSecs   = 12
	maxSectors = 16
)

func testMap(align int, erased byte) *layout.Map {
	s := uint32(secSize)
	return &layout.Map{
		Base:  0,
		Flash: flash.Geometry{Sectors: flash.Uniform(2*slotSecs+2+4, s), Align: align, Erased: erased},
		Partitions: []layout.Partition{
			{Name: layout.SlotA, Offset: 0, Size: slotSecs * s},
			{Name: layout.SlotB, Offset: slotSecs * s, Size: slotSecs * s},
			{Name: layout.Scratch, Offset: 2 * slotSecs * s, Size: 2 * s},
			{Name: layout.Config, Offset: (2*slotSecs + 2) * s, Size: 4 * s},
		},
	}
}

type testKey struct {
	signer crypto.Signer
	pub    crypto.PublicKey
}

func loadKey(t testing.TB, name string) testKey {
	t.Helper()
	priv, err := keys.LoadPrivate(filepath.Join(testutil.DevicesShared(t), "testdata/imgtool/keys", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.PublicOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv.(crypto.Signer), pub}
}

// signImage makes an MCUboot image whose header, payload and TLVs take
// about end bytes (exactly, when adjust is set), with SEC_CNT secCnt.
func signImage(t testing.TB, k testKey, ver string, secCnt uint32, end int, seed byte) []byte {
	t.Helper()
	v, err := mcuboot.ParseVersion(ver)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(n int) []byte {
		p := make([]byte, n)
		r := rand.New(rand.NewPCG(uint64(seed), uint64(n)))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		sc := secCnt
		var buf bytes.Buffer
		if _, err := mcuboot.Sign(&buf, bytes.NewReader(p), int64(n), &mcuboot.SignOptions{
			Version: v, HeaderSize: 0x200, PadHeader: true, Signer: k.signer, SecurityCounter: &sc,
		}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	img := mk(end - 0x200 - 200)
	return mk(end - 0x200 - 200 + end - len(img))
}

func digest(img []byte) string { s := sha256.Sum256(img); return string(s[:]) }

// rig holds one configuration of the matrix: mode, alignment, erased
// value, the old and new images and the factory-fresh device.
type rig struct {
	t        testing.TB
	mode     layout.Mode
	m        *layout.Map
	key      testKey
	old, new []byte
	older    []byte // aged rigs: the image before old, left in slot B
	factory  *flash.Device
	cfg      Config
}

// newRig builds a configuration. The new image is as large as the mode
// allows (in swap-scratch it reaches the trailer's sector) unless small.
func newRig(t testing.TB, mode layout.Mode, align int, erased byte, key testKey, small ...bool) *rig {
	r := &rig{t: t, mode: mode, m: testMap(align, erased), key: key}
	r.cfg = Config{Mode: mode, MaxImgSectors: maxSectors, Keys: []crypto.PublicKey{key.pub}}
	tr := NewTrailer(slotSecs*secSize, align, maxSectors, 0)
	newEnd := tr.StatusOff() - 64
	switch mode {
	case layout.SwapScratch:
		// Reach into the trailer's first sector: the chunk holding the
		// trailer goes through the scratch trailer.
		newEnd = (tr.StatusOff()/secSize)*secSize + 64
		if newEnd > tr.StatusOff() {
			newEnd = tr.StatusOff()
		}
	case layout.SwapMove:
		trailerSecs := (tr.TrailerSize() + secSize - 1) / secSize
		newEnd = (slotSecs-trailerSecs-1)*secSize - 40
	}
	if len(small) > 0 && small[0] {
		newEnd = 5000
	}
	return r.finish(newEnd)
}

// finish signs the images (the new one newEnd bytes long) and programs the
// factory state: the old image confirmed in the primary slot.
func (r *rig) finish(newEnd int) *rig {
	t, key := r.t, r.key
	r.old = signImage(t, key, "1.1.0", 1, 3000, 1)
	r.new = signImage(t, key, "1.2.0", 2, newEnd, 2)
	dev, err := flash.New(r.m.Flash)
	if err != nil {
		t.Fatal(err)
	}
	d := r.open(dev)
	if err := d.Loader.WritePrimary(r.old); err != nil {
		t.Fatal(err)
	}
	if err := d.Loader.MarkPrimaryConfirmed(); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Loader.Boot(); err != nil || r.which(res.Image) != "old" {
		t.Fatalf("factory boot: %v", err)
	}
	dev.ResetOps()
	r.factory = dev
	return r
}

// age turns the factory state into that of a device that has already
// been updated once: 1.0.0 was programmed and confirmed, then 1.1.0 was
// swapped in, tested and confirmed. The primary trailer holds the status
// of that swap and slot B holds 1.0.0.
func (r *rig) age() *rig {
	t := r.t
	r.older = signImage(t, r.key, "1.0.0", 1, 2500, 3)
	dev, err := flash.New(r.m.Flash)
	if err != nil {
		t.Fatal(err)
	}
	d := r.open(dev)
	if err := d.Loader.WritePrimary(r.older); err != nil {
		t.Fatal(err)
	}
	if err := d.Loader.MarkPrimaryConfirmed(); err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := d.Loader.Boot(); return err },
		func() error { return d.Loader.WriteSecondary(bytes.NewReader(r.old)) },
		func() error { return d.Loader.SetPending(false) },
		func() error { _, err := d.Loader.Boot(); return err },
		d.Loader.Confirm,
	}
	for _, f := range steps {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := d.Loader.Boot(); err != nil || r.which(res.Image) != "old" || !res.Confirmed {
		t.Fatalf("aging: %+v %v", res, err)
	}
	dev.ResetOps()
	r.factory = dev
	return r
}

func (r *rig) open(dev *flash.Device) *Device {
	d, err := OpenDevice(dev, r.m, r.cfg)
	if err != nil {
		if errors.Is(err, flash.ErrPowerCut) {
			return nil
		}
		r.t.Fatalf("open: %v", err)
	}
	return d
}

// which names the image a boot result runs: "old", "new" or "" (neither).
func (r *rig) which(img *Image) string {
	switch string(img.SHA256) {
	case digest(r.old):
		return "old"
	case digest(r.new):
		return "new"
	}
	if r.older != nil && string(img.SHA256) == digest(r.older) {
		return "older"
	}
	return ""
}

// outcome records what a drive observed.
type outcome struct {
	final     string // image running at the end
	confirmed bool
	counter   uint32
}

// drive plays the update agent and the user until the goal is reached:
// "update": install the new image, mark it for test, reboot, confirm,
// reboot; "revert": the same without confirming, rebooting until the old
// image runs again (installed tells whether the install already began).
// Every boot must run a valid image, old or new, and the security counter
// must never go down. It returns the first flash error (a power cut).
func (r *rig) drive(dev *flash.Device, goal string, installed bool, lastCounter *uint32) (outcome, error) {
	d := r.open(dev)
	if d == nil {
		return outcome{}, flash.ErrPowerCut
	}
	var trace []string
	for i := 0; i < 12; i++ {
		res, err := d.Loader.Boot()
		if err != nil {
			if errors.Is(err, flash.ErrPowerCut) {
				return outcome{}, err
			}
			r.t.Fatalf("boot failed: %v", err)
		}
		w := r.which(res.Image)
		if w == "" {
			r.t.Fatalf("booted an image that is neither old nor new: %v", res.Image.Version)
		}
		c, err := d.Loader.cfg.Counter.SecurityCounter()
		if err != nil {
			r.t.Fatal(err)
		}
		if c < *lastCounter {
			r.t.Fatalf("security counter went backwards: %d after %d", c, *lastCounter)
		}
		*lastCounter = c
		out := outcome{final: w, confirmed: res.Confirmed, counter: c}
		st, _ := d.Loader.Status()
		trace = append(trace, fmt.Sprintf("boot %v->%s confirmed=%v resumed=%v pri=%+v sec=%+v", res.SwapType, w, res.Confirmed, res.Resumed, st[0].State, st[1].State))
		upd := goal != "revert" // update, or perm: a permanent swap
		switch {
		case upd && w == "new" && !res.Confirmed:
			// For perm this happens when the cut fell between the magic
			// and image_ok of boot_set_pending: MCUboot then tests.
			err = d.Loader.Confirm()
		case upd && w == "new" && res.SwapType == SwapNone:
			return out, nil
		case w == "old" && !installed:
			installed = true
			if err = d.Loader.WriteSecondary(bytes.NewReader(r.new)); err == nil {
				err = d.Loader.SetPending(goal == "perm")
			}
		case upd && w == "old":
			installed = false // the update did not take: start over
		case goal == "revert" && w == "old" && res.SwapType == SwapNone:
			return out, nil
		case goal == "revert" && w == "new" && res.SwapType == SwapNone && !res.Resumed:
			// Overwrite-only has nothing to revert to; in the swap modes
			// a torn copy_done or image_ok leaves a trailer for which
			// MCUboot's table orders no revert.
			return out, nil
		}
		if err != nil {
			return outcome{}, err
		}
	}
	r.t.Fatalf("%s %s did not settle:\n%s", r.name(), goal, strings.Join(trace, "\n"))
	return outcome{}, nil
}

// checkSlots asserts that no slot holds a silently corrupted image: a
// slot whose image validates holds exactly the old or the new image.
func (r *rig) checkSlots(dev *flash.Device) map[Slot]string {
	d := r.open(dev)
	out := map[Slot]string{}
	for _, s := range []Slot{Primary, Secondary} {
		a, t := d.Loader.slot(s)
		if img, err := d.Loader.check(a, t, false); err == nil {
			w := r.which(img)
			if w == "" {
				r.t.Fatalf("%v slot validates but holds neither image", s)
			}
			out[s] = w
		}
	}
	return out
}

func (r *rig) name() string {
	return fmt.Sprintf("%s/align%d/erased%#02x", r.mode, r.m.Flash.Align, r.m.Flash.Erased)
}

func sharedOutput(t testing.TB, name string) string {
	return filepath.Join(testutil.DevicesShared(t), "testdata/imgtool/outputs", name)
}
