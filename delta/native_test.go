package delta

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"github.com/otakit/otakit/codec"
)

func edgeCases() []pair {
	rng := rand.New(rand.NewSource(7))
	rnd := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	base := rnd(200000)
	mod := append([]byte(nil), base...)
	for i := 0; i < 300; i++ {
		mod[rng.Intn(len(mod))] ^= byte(1 + rng.Intn(255))
	}
	mod = append(mod[:50000], append(rnd(3000), mod[50000:]...)...)
	ff := bytes.Repeat([]byte{0xff}, 300000)
	copy(ff, base[:40000])
	ff2 := bytes.Repeat([]byte{0xff}, 310000)
	copy(ff2, mod[:60000])
	return []pair{
		{"both empty", nil, nil},
		{"identical", base, base},
		{"old empty", nil, base[:1000]},
		{"new empty", base[:1000], nil},
		{"one byte", []byte{1}, []byte{2}},
		{"one byte same", []byte{1}, []byte{1}},
		{"modified", base, mod},
		{"0xff padded", ff, ff2},
		{"repetitive", bytes.Repeat([]byte("abcd"), 50000), bytes.Repeat([]byte("abce"), 50001)},
	}
}

func roundTrip(t *testing.T, p pair, opt *Options) []byte {
	t.Helper()
	patch, err := Create(p.old, p.new, opt)
	if err != nil {
		t.Fatalf("%s: Create: %v", p.name, err)
	}
	pt, err := Parse(patch)
	if err != nil {
		t.Fatalf("%s: Parse: %v", p.name, err)
	}
	var out bytes.Buffer
	if err := pt.Apply(p.old, &out); err != nil {
		t.Fatalf("%s: Apply: %v", p.name, err)
	}
	if !bytes.Equal(out.Bytes(), p.new) {
		t.Fatalf("%s: round trip differs", p.name)
	}
	return patch
}

func TestRoundTripEdgeCases(t *testing.T) {
	for _, layout := range []Layout{LayoutSplit, LayoutStream} {
		for _, cn := range []string{"none", "zstd", "lzma"} {
			c, err := codec.Lookup(cn)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range edgeCases() {
				roundTrip(t, p, &Options{Layout: layout, Codec: c, BlockSize: 4096 * (1 + int(layout))})
			}
		}
	}
}

func TestRoundTripCorpus(t *testing.T) {
	zstd, _ := codec.Lookup("zstd")
	none, _ := codec.Lookup("none")
	for _, p := range corpusPairs(t) {
		roundTrip(t, p, &Options{Layout: LayoutSplit, Codec: zstd})
		roundTrip(t, p, &Options{Layout: LayoutStream, Codec: none})
	}
}

func TestResume(t *testing.T) {
	p := edgeCases()[6]
	patch := roundTrip(t, p, &Options{Layout: LayoutStream, BlockSize: 8192})
	pt, _ := Parse(patch)
	// An interrupted apply wrote 5 blocks and a half, the last one corrupt.
	partial := append([]byte(nil), p.new[:5*8192+100]...)
	partial[4*8192+7] ^= 1
	from := pt.ResumePoint(partial)
	if from != 4 {
		t.Fatalf("ResumePoint = %d, want 4", from)
	}
	var out bytes.Buffer
	out.Write(partial[:from*8192])
	if err := pt.ApplyFrom(p.old, from, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), p.new) {
		t.Fatal("resumed apply differs")
	}
	if got := pt.ResumePoint(p.new); got != len(pt.Blocks) {
		t.Fatalf("ResumePoint(complete) = %d, want %d", got, len(pt.Blocks))
	}
}

func TestBadInput(t *testing.T) {
	p := edgeCases()[6]
	patch := roundTrip(t, p, &Options{Layout: LayoutSplit, BlockSize: 65536})
	pt, _ := Parse(patch)
	wrong := append([]byte(nil), p.old...)
	wrong[100] ^= 1
	if err := pt.Apply(wrong, &bytes.Buffer{}); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("wrong source: got %v, want ErrSourceMismatch", err)
	}
	if err := pt.Apply(p.old[1:], &bytes.Buffer{}); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("short source: got %v, want ErrSourceMismatch", err)
	}
	for n := 0; n < len(patch); n += 1 + n/3 {
		if pt, err := Parse(patch[:n]); err == nil {
			if err := pt.Apply(p.old, &bytes.Buffer{}); err == nil {
				t.Fatalf("truncated to %d bytes: no error", n)
			}
		}
	}
	// Huge declared target size must fail without allocating it.
	huge := append([]byte(nil), patch...)
	copy(huge[12:], []byte{0xff, 0xff, 0xff, 0xff})
	copy(huge[80:], []byte{1, 0, 0, 0})
	if _, err := Parse(huge); !errors.Is(err, ErrFormat) {
		t.Errorf("huge target: got %v, want ErrFormat", err)
	}
	// Flipped bytes anywhere give an error, never a panic or a wrong result.
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 300; i++ {
		bad := append([]byte(nil), patch...)
		bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
		pt, err := Parse(bad)
		if err != nil {
			continue
		}
		var out bytes.Buffer
		if err := pt.Apply(p.old, &out); err == nil && !bytes.Equal(out.Bytes(), p.new) {
			t.Fatal("corrupt patch applied without error to a wrong result")
		}
	}
}
