package ctest

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/internal/testutil"
)

// transcode rewrites a layout-0 native patch made with codec none into the
// same patch with every block compressed by heatshrink, so each corpus pair
// needs one diff for both codecs.
func transcode(t *testing.T, patch []byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	if len(patch) < 90 || string(patch[:4]) != "OTAD" || patch[5] != 0 || patch[6] != 0 {
		t.Fatal("transcode: not a layout-0 patch with codec none")
	}
	hl := 89 + int(patch[88])
	hl += 1 + int(patch[hl])
	target, bs := int(le.Uint32(patch[12:])), int(le.Uint32(patch[80:]))
	nblocks := (target + bs - 1) / bs
	hdr := bytes.Clone(patch[:hl])
	hdr[6] = byte(codec.Heatshrink)
	table := bytes.Clone(patch[hl : hl+12*nblocks])
	le.PutUint32(hdr[84:], uint32(12*nblocks+1<<codec.HeatshrinkDefaultWindow))
	off := hl + 12*nblocks
	var body bytes.Buffer
	for i := 0; i < nblocks; i++ {
		n := int(le.Uint32(table[12*i:]))
		w, err := codec.NewHeatshrinkWriter(&body, codec.HeatshrinkDefaultWindow, codec.HeatshrinkDefaultLookahead)
		if err != nil {
			t.Fatal(err)
		}
		before := body.Len()
		w.Write(patch[off : off+n])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		le.PutUint32(table[12*i:], uint32(body.Len()-before))
		off += n
	}
	if off != len(patch) {
		t.Fatalf("transcode: %d trailing bytes", len(patch)-off)
	}
	return append(append(hdr, table...), body.Bytes()...)
}

// TestNativeCorpus applies patches from delta.Create (stream layout) for
// every corpus pair with both codecs, in the plain and sanitized builds.
func TestNativeCorpus(t *testing.T) {
	plain, san := harnesses(t)
	none, err := codec.Lookup("none")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		total [2]int
	)
	t.Cleanup(func() { t.Logf("total: none %d B, heatshrink %d B", total[0], total[1]) })
	for i, p := range testutil.CorpusPairs(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel() // the diff dominates; use both cores
			old, new := readPair(t, p)
			patch, err := delta.Create(old, new, &delta.Options{Layout: delta.LayoutStream, Codec: none,
				SourceVersion: "old", TargetVersion: "new"})
			if err != nil {
				t.Fatal(err)
			}
			hs := transcode(t, patch)
			mu.Lock()
			total[0] += len(patch)
			total[1] += len(hs)
			mu.Unlock()
			t.Logf("new %d B, patch none %d B, heatshrink %d B", len(new), len(patch), len(hs))
			for j, pt := range [][]byte{patch, hs} {
				goApply(t, old, new, pt)
				mustApply(t, plain, old, new, pt, int64(10*i+j), "verify-source")
				mustApply(t, san, old, new, pt, int64(10*i+j+5))
			}
		})
	}
}

// goApply checks that the Go applier agrees with the C one.
func goApply(t *testing.T, old, new, patch []byte) {
	t.Helper()
	pt, err := delta.Parse(patch)
	if err != nil {
		t.Fatalf("delta.Parse: %v", err)
	}
	var out bytes.Buffer
	if err := pt.Apply(old, &out); err != nil {
		t.Fatalf("Go apply: %v", err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatal("Go apply: output differs from the target")
	}
}

// TestNativeHeatshrinkDirect checks delta.Create's own heatshrink output
// (not transcoded) on the two smallest corpus pairs.
func TestNativeHeatshrinkDirect(t *testing.T) {
	_, san := harnesses(t)
	hs, err := codec.Lookup("heatshrink")
	if err != nil {
		t.Fatal(err)
	}
	pairs := testutil.CorpusPairs(t)
	done := 0
	for _, p := range pairs {
		if !(bytes.Contains([]byte(p.Name), []byte("nrf52840")) || bytes.Contains([]byte(p.Name), []byte("ath9k"))) {
			continue
		}
		old, new := readPair(t, p)
		patch, err := delta.Create(old, new, &delta.Options{Layout: delta.LayoutStream, Codec: hs})
		if err != nil {
			t.Fatal(err)
		}
		goApply(t, old, new, patch)
		mustApply(t, san, old, new, patch, 77)
		done++
	}
	if done != 2 {
		t.Fatalf("expected 2 small corpus pairs, found %d", done)
	}
}

// TestTinyChunks feeds a real heatshrink patch one byte (and up to three
// bytes) at a time, as a slow radio link would.
func TestTinyChunks(t *testing.T) {
	_, san := harnesses(t)
	hs, err := codec.Lookup("heatshrink")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range testutil.CorpusPairs(t) {
		if !bytes.HasPrefix([]byte(p.Name), []byte("pybricks-movehub")) {
			continue
		}
		old, new := readPair(t, p)
		patch, err := delta.Create(old, new, &delta.Options{Layout: delta.LayoutStream, Codec: hs, BlockSize: 16384})
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, san, old, new, patch, 1, "chunk=1")
		mustApply(t, san, old, new, patch, 2, "chunk=3")
		return
	}
	t.Fatal("corpus pair pybricks-movehub not found")
}
