package boot

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
)

var modes = []layout.Mode{layout.SwapScratch, layout.SwapMove, layout.OverwriteOnly}

func TestUpdateAndRevert(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	for _, mode := range modes {
		r := newRig(t, mode, 8, 0xFF, key)
		var c uint32
		out, err := r.drive(r.factory.Clone(), "update", false, &c)
		if err != nil || out.final != "new" || !out.confirmed || out.counter != 2 {
			t.Errorf("%s update: %+v %v", mode, out, err)
		}
		c = 0
		dev := r.factory.Clone()
		out, err = r.drive(dev, "revert", false, &c)
		want := "old"
		if mode == layout.OverwriteOnly {
			want = "new"
		}
		if err != nil || out.final != want {
			t.Errorf("%s revert: %+v %v", mode, out, err)
		}
		if mode != layout.OverwriteOnly {
			if got := r.checkSlots(dev); got[Primary] != "old" || got[Secondary] != "new" {
				t.Errorf("%s after revert: slots %v", mode, got)
			}
			if out.counter != 1 {
				t.Errorf("%s: counter %d after revert, want 1", mode, out.counter)
			}
		}
	}
}

// TestRejections: bad signature, downgrade below the security counter,
// garbage in the secondary slot.
func TestRejections(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	other := loadKey(t, "ecdsa-p256.pem")
	for _, mode := range modes {
		r := newRig(t, mode, 8, 0xFF, key)
		var c uint32
		dev := r.factory.Clone()
		if _, err := r.drive(dev, "update", false, &c); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			img  []byte
			want error
		}{
			{"bad signature", signImage(t, other, "1.3.0", 3, 3000, 3), ErrInvalid},
			{"downgrade", signImage(t, key, "1.0.0", 1, 3000, 4), ErrRollback},
			{"corrupt", func() []byte { b := signImage(t, key, "1.3.0", 3, 3000, 5); b[1000] ^= 1; return b }(), ErrInvalid},
		} {
			d := r.open(dev)
			if err := d.Loader.WriteSecondary(bytes.NewReader(tc.img)); err != nil {
				t.Fatal(err)
			}
			if err := d.Loader.SetPending(false); err != nil {
				t.Fatal(err)
			}
			res, err := d.Loader.Boot()
			if err != nil {
				t.Fatalf("%s %s: %v", mode, tc.name, err)
			}
			if res.SwapType != SwapFail || !errors.Is(res.Rejected, tc.want) || r.which(res.Image) != "new" {
				t.Errorf("%s %s: swap %v, rejected %v, running %s", mode, tc.name, res.SwapType, res.Rejected, r.which(res.Image))
			}
			if ok, _ := d.Loader.sec.isErased(0, d.Loader.sec.size); !ok {
				t.Errorf("%s %s: rejected image not erased", mode, tc.name)
			}
		}
	}
}

func TestTrailerLayoutMatchesImgtool(t *testing.T) {
	// imgtool --pad --confirm at align 8 and max-align 32: image_ok and
	// magic land where the trailer geometry says.
	for _, tc := range []struct {
		file     string
		maxAlign int
		imageOK  bool
	}{
		{"hash-only-small-align8-pad-confirm.bin", 8, true},
		{"hash-only-pad-test.bin", 8, false},
		{"hash-only-max-align-32.bin", 32, false},
	} {
		b, err := os.ReadFile(sharedOutput(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		tr := NewTrailer(len(b), tc.maxAlign, 128, 0)
		st, err := tr.ParseState(b[len(b)-tr.InfoSize():], 0xFF)
		if err != nil {
			t.Fatal(err)
		}
		if st.Magic != MagicGood || (st.ImageOK == FlagSet) != tc.imageOK || st.CopyDone != FlagUnset {
			t.Errorf("%s: %+v", tc.file, st)
		}
	}
}

func TestDecideSwapTable(t *testing.T) {
	g, u, b := MagicGood, MagicUnset, MagicBad
	for _, tc := range []struct {
		p, s State
		want SwapType
	}{
		{State{Magic: g, ImageOK: FlagSet}, State{Magic: g, ImageOK: FlagUnset}, SwapTest},
		{State{Magic: u}, State{Magic: g, ImageOK: FlagSet}, SwapPerm},
		{State{Magic: g, ImageOK: FlagUnset, CopyDone: FlagSet}, State{Magic: u}, SwapRevert},
		{State{Magic: g, ImageOK: FlagSet, CopyDone: FlagSet}, State{Magic: u}, SwapNone},
		{State{Magic: g, ImageOK: FlagUnset, CopyDone: FlagUnset}, State{Magic: u}, SwapNone},
		{State{Magic: g, ImageOK: FlagUnset, CopyDone: FlagSet}, State{Magic: b}, SwapNone},
		{State{Magic: u}, State{Magic: b, ImageOK: FlagSet}, SwapNone},
	} {
		if got := DecideSwap(tc.p, tc.s); got != tc.want {
			t.Errorf("%+v / %+v: %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func FuzzParseState(f *testing.F) {
	tr := NewTrailer(4096, 8, 128, 0)
	f.Add(bytes.Repeat([]byte{0xff}, tr.InfoSize()), 8)
	m := MagicBytes(32)
	f.Add(append(bytes.Repeat([]byte{0x01}, 160), m[:]...), 32)
	f.Fuzz(func(t *testing.T, tail []byte, align int) {
		if align != 1 && align != 2 && align != 4 && align != 8 && align != 16 && align != 32 {
			return
		}
		tr := NewTrailer(1<<16, align, 128, 0)
		st, err := tr.ParseState(tail, 0xFF)
		if err != nil {
			return
		}
		_ = DecideSwap(st, st)
		_ = st.Magic.String() + st.ImageOK.String() + st.SwapType.String()
	})
}

// TestPowerLossMatrix cuts power at every flash operation of an update
// (write slot B, mark for test, boot and swap, confirm, boot) and of a
// revert (the same without confirm, then boots until the old image runs),
// reboots and lets the device carry on. Every boot must run a valid image,
// old or new as MCUboot decides; no slot may hold an image that validates
// but is neither; the security counter never goes down; and the run must
// end where MCUboot ends it. OTA_LONG=1 runs the full matrix: every mode ×
// alignment {1, 4, 8, 32} × erased {0xFF, 0x00}.
func TestPowerLossMatrix(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	type cfg struct {
		align  int
		erased byte
		small  bool // a new image that stays clear of the trailer's sectors
		aged   bool // the device was updated before: used trailers, an image in slot B
		bits   bool // torn erases flip random bits anywhere in the sector
	}
	cfgs := []cfg{{1, 0xFF, false, false, false}, {32, 0x00, false, false, false}, {8, 0xFF, true, false, false}, {4, 0xFF, false, true, false}, {8, 0xFF, false, false, true}}
	if os.Getenv("OTA_LONG") != "" {
		cfgs = nil
		for _, a := range []int{1, 4, 8, 32} {
			for _, e := range []byte{0xFF, 0x00} {
				cfgs = append(cfgs, cfg{a, e, false, false, false}, cfg{a, e, true, false, false}, cfg{a, e, false, false, true})
			}
			cfgs = append(cfgs, cfg{a, 0xFF, false, true, false})
		}
	}
	total, lostReverts := 0, 0
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, c := range cfgs {
				if c.small && mode != layout.SwapScratch {
					continue // only swap-scratch takes another path for small images
				}
				t.Run(fmt.Sprintf("align%d/erased%#02x/small=%v/aged=%v/bits=%v", c.align, c.erased, c.small, c.aged, c.bits), func(t *testing.T) {
					r := newRig(t, mode, c.align, c.erased, key, c.small)
					if c.aged {
						r.age()
					}
					r.factory.TearBits(c.bits)
					goals := []string{"update", "revert"}
					if c.aged || os.Getenv("OTA_LONG") != "" {
						goals = append(goals, "perm")
					}
					for _, goal := range goals {
						// Reference run: how many operations the scenario takes.
						dev := r.factory.Clone()
						var cnt uint32
						if _, err := r.drive(dev, goal, false, &cnt); err != nil {
							t.Fatal(err)
						}
						ops := dev.Ops()
						for cut := 1; cut <= ops; cut++ {
							total++
							dev := r.factory.Clone()
							dev.CutPowerAt(cut, uint64(cut)*7919)
							var counter uint32
							_, err := r.drive(dev, goal, false, &counter)
							if !errors.Is(err, flash.ErrPowerCut) {
								t.Fatalf("%s %s cut %d/%d: drive ended with %v", r.name(), goal, cut, ops, err)
							}
							dev.PowerOn()
							out, err := r.drive(dev, goal, true, &counter)
							if err != nil {
								t.Fatalf("%s %s cut %d: after reboot: %v", r.name(), goal, cut, err)
							}
							slots := r.checkSlots(dev)
							switch {
							case goal == "update" || goal == "perm":
								if out.final != "new" || !out.confirmed || out.counter != 2 {
									t.Fatalf("%s update cut %d: ended %+v", r.name(), cut, out)
								}
								if mode != layout.OverwriteOnly && slots[Secondary] != "old" {
									t.Fatalf("%s update cut %d: secondary holds %q, want the old image", r.name(), cut, slots[Secondary])
								}
							case mode == layout.OverwriteOnly:
								if out.final != "new" && out.final != "old" {
									t.Fatalf("%s revert cut %d: ended %+v", r.name(), cut, out)
								}
							case out.final == "new":
								// MCUboot keeps the test image when the cut tore
								// copy_done or image_ok so that no revert is due.
								st, _ := r.open(dev).Loader.Status()
								if p := st[Primary].State; p.CopyDone != FlagBad && p.ImageOK != FlagBad && p.Magic == MagicGood {
									t.Fatalf("%s revert cut %d: test image kept with trailer %+v", r.name(), cut, p)
								}
								lostReverts++
							default:
								if out.counter != 1 {
									t.Fatalf("%s revert cut %d: counter %d", r.name(), cut, out.counter)
								}
							}
						}
					}
				})
			}
		})
	}
	t.Logf("boot power-loss matrix: %d cut points covered (%d reverts MCUboot could not do after a torn flag write)", total, lostReverts)
	fmt.Printf("boot power-loss summary: %d cut points covered, %d lost reverts\n", total, lostReverts)
}

// TestRandomResetChains: chains of five power cuts at random operations
// of an update or a revert, including cuts during the recovery of earlier
// cuts; then the device must end where MCUboot ends it.
func TestRandomResetChains(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	chains := 8
	if os.Getenv("OTA_LONG") != "" {
		chains = 60
	}
	rng := rand.New(rand.NewPCG(5, 5))
	n, runs := 0, 0
	for _, mode := range modes {
		for _, align := range []int{1, 8, 32} {
			r := newRig(t, mode, align, []byte{0xFF, 0x00}[align%3%2], key)
			for _, goal := range []string{"update", "revert"} {
				for c := 0; c < chains; c++ {
					runs++
					dev := r.factory.Clone()
					var counter uint32
					for reset := 0; reset < 5; reset++ {
						dev.CutPowerAt(dev.Ops()+1+rng.IntN(40), rng.Uint64())
						if _, err := r.drive(dev, goal, reset > 0, &counter); err == nil {
							break
						}
						dev.PowerOn()
						n++
					}
					dev.PowerOn()
					out, err := r.drive(dev, goal, true, &counter)
					if err != nil {
						t.Fatalf("%s %s chain %d: %v", r.name(), goal, c, err)
					}
					switch {
					case goal == "update" && (out.final != "new" || !out.confirmed || out.counter != 2):
						t.Fatalf("%s update chain %d: %+v", r.name(), c, out)
					case goal == "revert" && mode != layout.OverwriteOnly && out.final == "old" && out.counter != 1:
						t.Fatalf("%s revert chain %d: counter %d", r.name(), c, out.counter)
					}
				}
			}
		}
	}
	t.Logf("random reset chains: %d chains, %d resets", runs, n)
	fmt.Printf("boot reset chains summary: %d chains of up to 5 resets, %d resets\n", runs, n)
}

// TestMixedSectorsScratch runs the update and revert power-loss scenarios
// with swap-scratch on slots of mixed sector sizes (2 KiB then 1 KiB, as
// on parts with large and small sectors): chunks of different sizes go
// through a 2 KiB scratch.
func TestMixedSectorsScratch(t *testing.T) {
	key := loadKey(t, "ed25519.pem")
	slot := []uint32{2048, 2048, 2048, 1024, 1024, 1024, 1024}
	var secs []uint32
	secs = append(secs, slot...)
	secs = append(secs, slot...)
	secs = append(secs, 2048, 1024, 1024, 1024, 1024)
	m := &layout.Map{Flash: flash.Geometry{Sectors: secs, Align: 8, Erased: 0xFF}, Partitions: []layout.Partition{
		{Name: layout.SlotA, Offset: 0, Size: 10240}, {Name: layout.SlotB, Offset: 10240, Size: 10240},
		{Name: layout.Scratch, Offset: 20480, Size: 2048}, {Name: layout.Config, Offset: 22528, Size: 4096},
	}}
	cuts := 0
	for _, newEnd := range []int{4000, 9400} {
		r := &rig{t: t, mode: layout.SwapScratch, m: m, key: key,
			cfg: Config{Mode: layout.SwapScratch, MaxImgSectors: maxSectors, Keys: []crypto.PublicKey{key.pub}}}
		if tr := NewTrailer(10240, 8, maxSectors, 0); newEnd > tr.StatusOff() {
			t.Fatalf("image end %d beyond the trailer at %d", newEnd, tr.StatusOff())
		}
		r.finish(newEnd)
		for _, goal := range []string{"update", "revert"} {
			dev := r.factory.Clone()
			var c uint32
			if _, err := r.drive(dev, goal, false, &c); err != nil {
				t.Fatal(err)
			}
			for cut := 1; cut <= dev.Ops(); cut++ {
				cuts++
				d := r.factory.Clone()
				d.CutPowerAt(cut, uint64(cut))
				var counter uint32
				if _, err := r.drive(d, goal, false, &counter); !errors.Is(err, flash.ErrPowerCut) {
					t.Fatalf("cut %d: %v", cut, err)
				}
				d.PowerOn()
				out, err := r.drive(d, goal, true, &counter)
				if err != nil {
					t.Fatal(err)
				}
				if goal == "update" && (out.final != "new" || r.checkSlots(d)[Secondary] != "old") {
					t.Fatalf("update cut %d: %+v, slots %v", cut, out, r.checkSlots(d))
				}
			}
		}
	}
	t.Logf("mixed sectors, swap-scratch: %d cut points covered", cuts)
}
