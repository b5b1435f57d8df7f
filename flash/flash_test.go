package flash

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mustNew(t *testing.T, g Geometry) *Device {
	t.Helper()
	d, err := New(g)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGeometryValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Geometry
		ok   bool
	}{
		{"uniform", Geometry{Uniform(4, 4096), 8, 0xFF}, true},
		{"mixed", Geometry{[]uint32{16384, 16384, 65536, 131072}, 4, 0x00}, true},
		{"align3", Geometry{Uniform(1, 96), 3, 0xFF}, false},
		{"align64", Geometry{Uniform(1, 128), 64, 0xFF}, false},
		{"erased", Geometry{Uniform(1, 128), 1, 0x55}, false},
		{"empty", Geometry{nil, 1, 0xFF}, false},
		{"oddsector", Geometry{[]uint32{100}, 8, 0xFF}, false},
	} {
		err := tc.g.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrGeometry) {
			t.Errorf("%s: error %v is not ErrGeometry", tc.name, err)
		}
	}
}

func TestWriteRules(t *testing.T) {
	for _, erased := range []byte{0xFF, 0x00} {
		for _, align := range []int{1, 2, 4, 8, 16, 32} {
			d := mustNew(t, Geometry{[]uint32{1024, 2048, 1024}, align, erased})
			buf := bytes.Repeat([]byte{0x5A}, align)
			if err := d.Write(align, buf); err != nil {
				t.Fatalf("align %d: %v", align, err)
			}
			if err := d.Write(align, buf); !errors.Is(err, ErrNotErased) {
				t.Errorf("align %d erased %#x: rewrite: %v, want ErrNotErased", align, erased, err)
			}
			if align > 1 {
				if err := d.Write(1, buf); !errors.Is(err, ErrAlignment) {
					t.Errorf("align %d: offset 1: %v, want ErrAlignment", align, err)
				}
				if err := d.Write(0, buf[:align-1]); !errors.Is(err, ErrAlignment) {
					t.Errorf("align %d: short: %v, want ErrAlignment", align, err)
				}
			}
			if err := d.Write(d.Size(), buf); !errors.Is(err, ErrRange) {
				t.Errorf("beyond end: %v, want ErrRange", err)
			}
			if err := d.Erase(0, 1024); err != nil {
				t.Fatal(err)
			}
			if err := d.Write(align, buf); err != nil {
				t.Errorf("write after erase: %v", err)
			}
			if err := d.Erase(0, 1000); !errors.Is(err, ErrAlignment) {
				t.Errorf("partial sector erase: %v, want ErrAlignment", err)
			}
			if err := d.Erase(1024, 2048); err != nil {
				t.Errorf("erase mixed-size sector: %v", err)
			}
			if ok, _ := d.IsErased(1024, 2048); !ok {
				t.Error("sector not erased")
			}
		}
	}
}

func TestSectorAt(t *testing.T) {
	d := mustNew(t, Geometry{[]uint32{16384, 16384, 65536, 131072}, 4, 0xFF})
	for _, tc := range []struct{ off, idx, start, size int }{
		{0, 0, 0, 16384}, {16383, 0, 0, 16384}, {16384, 1, 16384, 16384},
		{32768, 2, 32768, 65536}, {98304, 3, 98304, 131072}, {229375, 3, 98304, 131072},
	} {
		i, s, n, err := d.SectorAt(tc.off)
		if err != nil || i != tc.idx || s != tc.start || n != tc.size {
			t.Errorf("SectorAt(%d) = %d,%d,%d,%v", tc.off, i, s, n, err)
		}
	}
	if _, _, _, err := d.SectorAt(229376); !errors.Is(err, ErrRange) {
		t.Errorf("SectorAt(end) = %v", err)
	}
}

// TestPowerCut checks that the cut strikes exactly operation N, leaves a torn
// write (programmed prefix, erased suffix) or a torn erase (erased suffix,
// old prefix), is deterministic, and fails everything until PowerOn.
func TestPowerCut(t *testing.T) {
	for _, erased := range []byte{0xFF, 0x00} {
		g := Geometry{Uniform(4, 256), 4, erased}
		run := func(seed uint64) []byte {
			d := mustNew(t, g)
			d.CutPowerAt(2, seed)
			if err := d.Write(0, bytes.Repeat([]byte{0xA5}, 256)); err != nil {
				t.Fatal(err)
			}
			err := d.Write(256, bytes.Repeat([]byte{0x3C}, 256))
			if !errors.Is(err, ErrPowerCut) || !d.PoweredOff() || d.Ops() != 2 {
				t.Fatalf("cut write: %v ops=%d", err, d.Ops())
			}
			if err := d.Write(512, []byte{1, 2, 3, 4}); !errors.Is(err, ErrPowerCut) {
				t.Fatalf("write while off: %v", err)
			}
			if err := d.Read(0, make([]byte, 1)); !errors.Is(err, ErrPowerCut) {
				t.Fatalf("read while off: %v", err)
			}
			d.PowerOn()
			img := d.Snapshot()
			// Torn write: a prefix of 0x3C, at most one mixed byte, then erased.
			s := img[256:512]
			i := 0
			for i < len(s) && s[i] == 0x3C {
				i++
			}
			if i < len(s) {
				i++ // the torn byte
			}
			for ; i < len(s); i++ {
				if s[i] != erased {
					t.Fatalf("erased %#x: torn write has %#x at %d", erased, s[i], i)
				}
			}
			// Torn erase of sector 0: old prefix, erased suffix.
			d.CutPowerAt(d.Ops()+1, seed)
			if err := d.Erase(0, 256); !errors.Is(err, ErrPowerCut) {
				t.Fatalf("cut erase: %v", err)
			}
			d.PowerOn()
			s = d.Snapshot()[:256]
			if s[255] != erased {
				t.Fatalf("torn erase left the sector end unerased")
			}
			return append(img[:512:512], s...)
		}
		a, b := run(7), run(7)
		if !bytes.Equal(a, b) {
			t.Error("torn contents differ for the same seed")
		}
		if c := run(8); bytes.Equal(a, c) {
			t.Log("seeds 7 and 8 tore identically (possible but unlikely)")
		}
	}
}

func TestEraseBackwardsCountsOps(t *testing.T) {
	d := mustNew(t, Geometry{Uniform(4, 64), 1, 0xFF})
	for i := 0; i < 4; i++ {
		if err := d.Write(i*64, bytes.Repeat([]byte{byte(i)}, 64)); err != nil {
			t.Fatal(err)
		}
	}
	d.ResetOps()
	d.CutPowerAt(2, 1) // the second sector erased is sector 2
	if err := d.Erase(0, 256); !errors.Is(err, ErrPowerCut) {
		t.Fatal(err)
	}
	d.PowerOn()
	s := d.Snapshot()
	if ok, _ := d.IsErased(192, 64); !ok {
		t.Error("last sector not erased first")
	}
	if s[0] != 0 || s[64] != 1 {
		t.Error("sectors before the cut were touched")
	}
	if c := d.EraseCounts(); c[3] != 1 || c[0] != 0 {
		t.Errorf("erase counts %v", c)
	}
}

func TestFileBacking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.img")
	g := Geometry{[]uint32{4096, 4096, 8192}, 8, 0x00}
	d, err := Create(path, g)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(4096, []byte("persist!")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	d2.Read(4096, got)
	if string(got) != "persist!" || d2.Erased() != 0 || d2.Align() != 8 || d2.Size() != 16384 {
		t.Fatalf("reopened: %q erased=%#x align=%d size=%d", got, d2.Erased(), d2.Align(), d2.Size())
	}
	// A torn write is persisted too.
	d2.CutPowerAt(d2.Ops()+1, 3)
	d2.Write(0, bytes.Repeat([]byte{0xEE}, 4096))
	d2.Close()
	d3, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d3.Close()

	raw, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", raw[:10], ErrTruncated},
		{"short sectors", raw[:22], ErrTruncated},
		{"short contents", raw[:len(raw)-1], ErrTruncated},
		{"bad magic", append([]byte("NOTFLASH"), raw[8:]...), ErrFileFormat},
		{"bad crc", flip(raw, 21), ErrFileFormat},
	} {
		p := filepath.Join(t.TempDir(), tc.name)
		os.WriteFile(p, tc.data, 0o644)
		_, err := Open(p)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func FuzzDecode(f *testing.F) {
	d, _ := New(Geometry{Uniform(2, 64), 4, 0xFF})
	var buf bytes.Buffer
	d.Encode(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("OTAFLASH"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := d.Encode(&out); err != nil || !bytes.Equal(out.Bytes(), data[:out.Len()]) {
			t.Fatal("re-encode differs")
		}
	})
}

// TestTearBits: with TearBits, a torn erase only moves bits towards the
// erased value, anywhere in the sector.
func TestTearBits(t *testing.T) {
	for _, erased := range []byte{0xFF, 0x00} {
		d := mustNew(t, Geometry{Uniform(2, 4096), 1, erased})
		d.TearBits(true)
		old := make([]byte, 4096)
		for i := range old {
			old[i] = byte(i * 7)
			if old[i] == erased {
				old[i] ^= 0x5A
			}
		}
		d.Write(0, old)
		d.CutPowerAt(d.Ops()+1, 42)
		if err := d.Erase(0, 4096); !errors.Is(err, ErrPowerCut) {
			t.Fatal(err)
		}
		d.PowerOn()
		got := d.Snapshot()[:4096]
		changed, first, last := 0, -1, -1
		for i := range got {
			// Every bit equals either the old bit or the erased bit.
			if (got[i]^old[i])&(got[i]^erased) != 0 {
				t.Fatalf("byte %d: %#x from %#x moved away from erased %#x", i, got[i], old[i], erased)
			}
			if got[i] != old[i] {
				changed++
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		if changed > 0 && (first > 2048 || last < 2048) {
			t.Errorf("erased %#x: torn bits only in [%d, %d]", erased, first, last)
		}
	}
}
