package nvs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/otakit/otakit/flash"
)

type op struct {
	kind  string // put, del, inc
	key   string
	value []byte
}

func script(n int) []op {
	var ops []op
	keys := []string{"state", "version", "download.offset"}
	for i := 0; i < n; i++ {
		switch {
		case i%4 == 3:
			ops = append(ops, op{kind: "inc", key: "sec_cnt"})
		case i%7 == 6:
			ops = append(ops, op{kind: "del", key: "version"})
		default:
			ops = append(ops, op{kind: "put", key: keys[i%3], value: []byte(fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte{'x'}, i%9)))})
		}
	}
	return ops
}

type model struct {
	kv  map[string]string
	cnt uint64
}

func (m *model) apply(o op) {
	switch o.kind {
	case "put":
		m.kv[o.key] = string(o.value)
	case "del":
		delete(m.kv, o.key)
	case "inc":
		m.cnt++
	}
}

func (m *model) clone() *model {
	c := &model{kv: map[string]string{}, cnt: m.cnt}
	for k, v := range m.kv {
		c.kv[k] = v
	}
	return c
}

func do(s *Store, o op) error {
	switch o.kind {
	case "put":
		return s.Put(o.key, o.value)
	case "del":
		return s.Delete(o.key)
	default:
		_, err := s.Increment(o.key)
		return err
	}
}

// matches reports whether the store holds exactly m's contents.
func matches(s *Store, m *model) error {
	for k, v := range m.kv {
		got, err := s.Get(k)
		if err != nil || string(got) != v {
			return fmt.Errorf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
	n := 0
	for _, k := range s.Keys() {
		if k != "sec_cnt" {
			n++
		}
	}
	if n != len(m.kv) {
		return fmt.Errorf("keys %v, want %d", s.Keys(), len(m.kv))
	}
	if c, err := s.Counter("sec_cnt"); err != nil || c != m.cnt {
		return fmt.Errorf("counter %d, %v; want %d", c, err, m.cnt)
	}
	return nil
}

func newDev(t testing.TB, align int, erased byte) *flash.Device {
	d, err := flash.New(flash.Geometry{Sectors: flash.Uniform(4, 1024), Align: align, Erased: erased})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBasic(t *testing.T) {
	d := newDev(t, 8, 0xFF)
	s, err := Mount(d, 0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	s.Put("x", []byte("1"))
	s.Put("y", []byte("2"))
	s.Delete("x")
	s.SetCounter("c", 5)
	if err := s.SetCounter("c", 4); !errors.Is(err, ErrBackwards) {
		t.Fatalf("backwards: %v", err)
	}
	if err := s.Put("", nil); !errors.Is(err, ErrKey) {
		t.Fatal(err)
	}
	if err := s.Put("big", make([]byte, 1100)); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	s2, err := Mount(d, 0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s2.Get("y"); string(v) != "2" {
		t.Fatal("y lost")
	}
	if _, err := s2.Get("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal("x resurrected")
	}
	if c, _ := s2.Counter("c"); c != 5 {
		t.Fatal("counter lost")
	}
	if _, err := Mount(d, 0, 1000); !errors.Is(err, ErrGeometry) {
		t.Fatalf("partial sector: %v", err)
	}
	if _, err := Mount(d, 0, 1024); !errors.Is(err, ErrGeometry) {
		t.Fatalf("two sectors: %v", err)
	}
}

// TestWearLevelling writes far more than the partition holds and checks
// that every sector has been erased about equally often.
func TestWearLevelling(t *testing.T) {
	d := newDev(t, 4, 0xFF)
	s, err := Mount(d, 0, d.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := s.Put(fmt.Sprintf("k%d", i%5), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c := d.EraseCounts()
	lo, hi := c[0], c[0]
	for _, n := range c {
		lo, hi = min(lo, n), max(hi, n)
	}
	if lo == 0 || hi-lo > 1 {
		t.Fatalf("erase counts %v are not level", c)
	}
	t.Logf("erase counts after 2000 puts: %v", c)
}

// TestPowerLoss cuts power at every flash operation of a script of puts,
// deletes and counter increments, remounts and checks that every
// acknowledged write is there (the interrupted one may or may not be), that
// the counter never goes backwards, and that the store keeps working.
func TestPowerLoss(t *testing.T) {
	n := 250
	if os.Getenv("OTA_LONG") != "" {
		n = 500
	}
	ops := script(n)
	cuts := 0
	type cfg struct {
		align  int
		erased byte
		bits   bool // torn erases flip bits anywhere
	}
	var cfgs []cfg
	for _, align := range []int{1, 8, 32} {
		for _, erased := range []byte{0xFF, 0x00} {
			cfgs = append(cfgs, cfg{align, erased, false})
		}
	}
	cfgs = append(cfgs, cfg{8, 0xFF, true}, cfg{1, 0x00, true})
	for _, c := range cfgs {
		align, erased := c.align, c.erased
		{
			// Reference run: how many flash operations the script takes.
			d := newDev(t, align, erased)
			s, err := Mount(d, 0, d.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range ops {
				if err := do(s, o); err != nil {
					t.Fatal(err)
				}
			}
			total := d.Ops()
			for cut := 1; cut <= total; cut++ {
				cuts++
				d := newDev(t, align, erased)
				d.TearBits(c.bits)
				d.CutPowerAt(cut, uint64(cut))
				acked := &model{kv: map[string]string{}}
				next := 0
				if s, err := Mount(d, 0, d.Size()); err == nil {
					for ; next < len(ops); next++ {
						if err := do(s, ops[next]); err != nil {
							if !errors.Is(err, flash.ErrPowerCut) {
								t.Fatalf("align %d cut %d: %v", align, cut, err)
							}
							break
						}
						acked.apply(ops[next])
					}
				}
				d.PowerOn()
				s, err := Mount(d, 0, d.Size())
				if err != nil {
					t.Fatalf("align %d erased %#x cut %d: remount: %v", align, erased, cut, err)
				}
				after := acked.clone()
				if next < len(ops) {
					after.apply(ops[next])
				}
				if e1, e2 := matches(s, acked), matches(s, after); e1 != nil && e2 != nil {
					t.Fatalf("align %d erased %#x cut %d (op %d %v): neither old (%v) nor new (%v)", align, erased, cut, next, ops[next], e1, e2)
				}
				// Finish the script and check everything persisted.
				for i := next; i < len(ops); i++ {
					if err := do(s, ops[i]); err != nil {
						t.Fatalf("cut %d: continue: %v", cut, err)
					}
					acked.apply(ops[i])
				}
				if next < len(ops) && ops[next].kind == "inc" {
					// The interrupted increment may have landed too.
					if c, _ := s.Counter("sec_cnt"); c == acked.cnt+1 {
						acked.cnt++
					}
				}
				s, err = Mount(d, 0, d.Size())
				if err != nil {
					t.Fatal(err)
				}
				if err := matches(s, acked); err != nil {
					t.Fatalf("align %d cut %d: after finishing: %v", align, cut, err)
				}
			}
		}
	}
	t.Logf("nvs power-loss: %d cut points covered", cuts)
	fmt.Printf("nvs power-loss summary: %d cut points covered\n", cuts)
}

// TestRandomResets runs chains of five power cuts at random points,
// including cuts during Mount's own recovery.
func TestRandomResets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := script(400)
	chains := 40
	if os.Getenv("OTA_LONG") != "" {
		chains = 400
	}
	for c := 0; c < chains; c++ {
		d := newDev(t, []int{1, 8, 32}[c%3], []byte{0xFF, 0x00}[c%2])
		acked := &model{kv: map[string]string{}}
		next := 0
		for reset := 0; reset < 5; reset++ {
			d.CutPowerAt(d.Ops()+1+rng.IntN(40), rng.Uint64())
			for {
				s, err := Mount(d, 0, d.Size())
				if err != nil {
					if !errors.Is(err, flash.ErrPowerCut) {
						t.Fatal(err)
					}
					break
				}
				if e := matches(s, acked); e != nil {
					after := acked.clone()
					after.apply(ops[next])
					if e2 := matches(s, after); e2 != nil {
						t.Fatalf("chain %d reset %d: %v / %v", c, reset, e, e2)
					}
					acked = after
					next++
				}
				for ; next < len(ops); next++ {
					if err := do(s, ops[next]); err != nil {
						break
					}
					acked.apply(ops[next])
				}
				break
			}
			d.PowerOn()
		}
		s, err := Mount(d, 0, d.Size())
		if err != nil {
			t.Fatal(err)
		}
		if e := matches(s, acked); e != nil {
			after := acked.clone()
			after.apply(ops[next])
			if e2 := matches(s, after); e2 != nil {
				t.Fatalf("chain %d final: %v", c, e)
			}
		}
	}
}

func FuzzMount(f *testing.F) {
	d := newDev(f, 4, 0xFF)
	s, _ := Mount(d, 0, d.Size())
	for i := 0; i < 30; i++ {
		s.Put(fmt.Sprintf("k%d", i%4), []byte(fmt.Sprint(i)))
	}
	f.Add(d.Snapshot())
	f.Fuzz(func(t *testing.T, img []byte) {
		d := newDev(t, 4, 0xFF)
		// Program arbitrary contents: the store must mount or fail cleanly.
		b := make([]byte, d.Size())
		for i := range b {
			b[i] = 0xFF
		}
		copy(b, img)
		if err := d.Write(0, b); err != nil {
			t.Fatal(err)
		}
		s, err := Mount(d, 0, d.Size())
		if err != nil {
			return
		}
		if err := s.Put("after", []byte("fuzz")); err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("put after mount: %v", err)
		}
	})
}
