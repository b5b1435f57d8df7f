package delta

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand"
	"runtime"
	"runtime/debug"
	"testing"
	"testing/iotest"

	"github.com/otakit/otakit/codec"
)

// chunkReader returns reads of random sizes (1..max bytes), as a network
// or radio link does.
type chunkReader struct {
	r   io.Reader
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if n := 1 + c.rng.Intn(c.max); len(p) > n {
		p = p[:n]
	}
	return c.r.Read(p)
}

// applyStream applies patch through the streaming API and returns the
// target and the applier's peak block buffer.
func applyStream(old []byte, patch io.Reader) ([]byte, int, error) {
	a, err := NewApplier(bytes.NewReader(old), int64(len(old)), patch)
	if err != nil {
		return nil, 0, err
	}
	var out bytes.Buffer
	_, err = a.WriteTo(&out)
	return out.Bytes(), a.maxBuf, err
}

func streamLayouts(t *testing.T) []*Options {
	get := func(n string) codec.Codec {
		c, err := codec.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return []*Options{
		{Layout: LayoutStream, Codec: get("none")},
		{Layout: LayoutStream, Codec: get("heatshrink")},
		{Layout: LayoutSplit, Codec: get("zstd")},
		{Layout: LayoutModel, Codec: get("lzma")},
		{Layout: LayoutModel, Codec: get("none")}, // literals modelled: the default
	}
}

func TestStreamRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	pairs := append(corpusPairs(t), edgeCases()...)
	for _, opt := range streamLayouts(t) {
		for i, p := range pairs {
			patch, err := Create(p.old, p.new, opt)
			if err != nil {
				t.Fatalf("%s: Create: %v", p.name, err)
			}
			var r io.Reader = &chunkReader{bytes.NewReader(patch), rng, 10000}
			if i == 0 {
				r = iotest.OneByteReader(bytes.NewReader(patch))
			}
			got, peak, err := applyStream(p.old, r)
			if err != nil {
				t.Fatalf("%s (%v %s): %v", p.name, opt.Layout, opt.Codec.Name(), err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("%s (%v %s): round trip differs", p.name, opt.Layout, opt.Codec.Name())
			}
			pt, _ := Parse(patch)
			if bound := (maxDecodedPerTarget+1)*pt.Header.BlockSize + 33; peak > 2*bound {
				t.Errorf("%s: block buffers peaked at %d bytes, bound %d", p.name, peak, bound)
			}
		}
	}
}

func TestStreamBadInput(t *testing.T) {
	p := edgeCases()[6]
	for _, opt := range streamLayouts(t) {
		opt.BlockSize = 16384
		patch, err := Create(p.old, p.new, opt)
		if err != nil {
			t.Fatal(err)
		}
		wrong := append([]byte(nil), p.old...)
		wrong[100] ^= 1
		if _, _, err := applyStream(wrong, bytes.NewReader(patch)); !errors.Is(err, ErrSourceMismatch) {
			t.Errorf("wrong source: got %v, want ErrSourceMismatch", err)
		}
		if _, _, err := applyStream(p.old[1:], bytes.NewReader(patch)); !errors.Is(err, ErrSourceMismatch) {
			t.Errorf("short source: got %v, want ErrSourceMismatch", err)
		}
		for n := 0; n < len(patch); n += 1 + n/5 {
			if _, _, err := applyStream(p.old, bytes.NewReader(patch[:n])); err == nil {
				t.Fatalf("%v: truncated to %d bytes: no error", opt.Layout, n)
			}
		}
		if _, _, err := applyStream(p.old, bytes.NewReader(append(patch, 0))); !errors.Is(err, ErrFormat) {
			t.Errorf("trailing byte: got %v, want ErrFormat", err)
		}
		rng := rand.New(rand.NewSource(3))
		for i := 0; i < 200; i++ {
			bad := append([]byte(nil), patch...)
			bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
			if got, _, err := applyStream(p.old, bytes.NewReader(bad)); err == nil && !bytes.Equal(got, p.new) {
				t.Fatal("corrupt patch applied without error to a wrong result")
			}
		}
	}
}

// TestStreamHostile runs the crafted hostile blocks of TestHostilePatches
// and a header declaring huge sizes through the streaming applier.
func TestStreamHostile(t *testing.T) {
	old := []byte("0123456789abcdef")
	new := []byte("0123456789")
	for _, body := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{10<<2 | 3},
		{11 << 2, 0},
		{10 << 2, 14},
		{10<<2 | 2, '0'},
	} {
		if _, _, err := applyStream(old, bytes.NewReader(craft(old, new, LayoutStream, 0, body))); !errors.Is(err, ErrFormat) {
			t.Errorf("body % x: got %v, want ErrFormat", body, err)
		}
	}
	// 4 Gi target bytes in 1-byte blocks and a 256 MiB block: the table and
	// buffers only grow as patch bytes arrive.
	patch := craft(old, new, LayoutStream, 0, []byte{10 << 2, 0})
	huge := append([]byte(nil), patch[:90]...)
	copy(huge[12:], []byte{0xff, 0xff, 0xff, 0xff})
	copy(huge[80:], []byte{1, 0, 0, 0})
	if _, _, err := applyStream(old, bytes.NewReader(huge)); !errors.Is(err, ErrFormat) {
		t.Errorf("huge table: got %v, want ErrFormat", err)
	}
	big := append([]byte(nil), patch...)
	copy(big[12:], []byte{0, 0, 0, 0x10})
	copy(big[80:], []byte{0, 0, 0, 0x10})
	copy(big[90:], []byte{0xff, 0xff, 0xff, 0x7f})
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if _, _, err := applyStream(old, bytes.NewReader(big)); !errors.Is(err, ErrFormat) {
		t.Errorf("huge block: got %v, want ErrFormat", err)
	}
	runtime.ReadMemStats(&ms1)
	if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 1<<20 {
		t.Errorf("huge block: allocated %d bytes", grew)
	}
}

// heapWriter hashes what it is given and records the peak heap.
// heapWriter hashes the target and samples the live heap while the
// applier works. It collects garbage before every 8th sample, so the peak
// is what the applier keeps, not how far the collector lags behind on a
// busy machine.
type heapWriter struct {
	h      hash.Hash
	peak   uint64
	writes int
}

func (w *heapWriter) Write(p []byte) (int, error) {
	if w.writes%8 == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.peak = max(w.peak, ms.HeapAlloc)
	}
	w.writes++
	return w.h.Write(p)
}

// TestStreamMemory applies a 16 MiB pair and checks the heap grows by far
// less than the target: the streaming applier holds one block.
func TestStreamMemory(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	rng := rand.New(rand.NewSource(16))
	old := make([]byte, 16<<20)
	rng.Read(old)
	new := append([]byte(nil), old...)
	for i := 0; i < 1000; i++ {
		new[rng.Intn(len(new))] ^= 0x40
	}
	for _, opt := range streamLayouts(t) {
		if opt.Layout == LayoutModel {
			continue // slow to create at this size; covered by the corpus
		}
		patch, err := Create(old, new, opt)
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewApplier(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch))
		if err != nil {
			t.Fatal(err)
		}
		var ms0 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		w := &heapWriter{h: sha256.New()}
		if _, err := a.WriteTo(w); err != nil {
			t.Fatal(err)
		}
		if [32]byte(w.h.Sum(nil)) != sha256.Sum256(new) {
			t.Fatal("wrong target")
		}
		t.Logf("%v: heap +%d, block buffers %d", opt.Layout, int64(w.peak)-int64(ms0.HeapAlloc), a.maxBuf)
		if grew := int64(w.peak) - int64(ms0.HeapAlloc); grew > int64(len(new)/2) {
			t.Errorf("%v: heap grew by %d bytes applying a 16 MiB target", opt.Layout, grew)
		}
		bound := (maxDecodedPerTarget+1)*a.Header.BlockSize + 33
		if opt.Layout == LayoutStream {
			bound = 0 // run as it decodes
		}
		if a.maxBuf > bound {
			t.Errorf("%v: block buffers peaked at %d bytes, bound %d", opt.Layout, a.maxBuf, bound)
		}
	}
}

// FuzzApplyStream checks the streaming applier against the slice one: both
// accept the same patches and produce the same target.
func FuzzApplyStream(f *testing.F) {
	addNativeSeeds(f)
	f.Fuzz(func(t *testing.T, patch []byte) {
		got, _, serr := applyStream(fuzzOld, bytes.NewReader(patch))
		if len(patch) < 4 || string(patch[:4]) != Magic {
			if serr == nil {
				t.Fatal("non-native patch applied")
			}
			return
		}
		var want bytes.Buffer
		err := ApplyAny(fuzzOld, patch, &want)
		if (serr == nil) != (err == nil) {
			t.Fatalf("stream: %v, slice: %v", serr, err)
		}
		if serr == nil && !bytes.Equal(got, want.Bytes()) {
			t.Fatal("stream and slice targets differ")
		}
	})
}

// failAt is a source that fails once reads reach off.
type failAt struct {
	b   []byte
	off int64
}

var errDisk = errors.New("disk error")

func (f failAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errDisk
	}
	return copy(p, f.b[off:]), nil
}

func TestStreamSourceErrors(t *testing.T) {
	p := edgeCases()[6]
	patch, err := Create(p.old, p.new, &Options{BlockSize: 16384})
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyStream(failAt{p.old, 1000}, int64(len(p.old)), bytes.NewReader(patch), io.Discard); !errors.Is(err, errDisk) {
		t.Errorf("failing source: got %v, want the read error", err)
	}
	// A source that fails after the source check, while blocks run.
	for _, layout := range []Layout{LayoutStream, LayoutSplit} {
		patch, err := Create(p.old, p.new, &Options{Layout: layout, BlockSize: 16384})
		if err != nil {
			t.Fatal(err)
		}
		src := &failLater{b: p.old, ok: 8}
		if err := ApplyStream(src, int64(len(p.old)), bytes.NewReader(patch), io.Discard); !errors.Is(err, errDisk) {
			t.Errorf("%v: source failing mid-apply: got %v, want the read error", layout, err)
		}
	}
	// A source shorter than it claims fails the source check.
	if err := ApplyStream(bytes.NewReader(p.old[:1000]), int64(len(p.old)), bytes.NewReader(patch), io.Discard); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("short source: got %v, want ErrSourceMismatch", err)
	}
	// A failing writer's error comes back.
	if err := ApplyStream(bytes.NewReader(p.old), int64(len(p.old)), bytes.NewReader(patch), failWriter{}); !errors.Is(err, errDisk) {
		t.Errorf("failing writer: got %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errDisk }

// failLater is a source whose reads fail after the first ok ones.
type failLater struct {
	b  []byte
	ok int
}

func (f *failLater) ReadAt(p []byte, off int64) (int, error) {
	if f.ok--; f.ok < 0 {
		return 0, errDisk
	}
	return bytes.NewReader(f.b).ReadAt(p, off)
}
