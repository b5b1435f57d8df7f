package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"testing"
	"testing/iotest"

	"github.com/otakit/otakit/internal/testutil"
)

func hsCompress(t testing.TB, data []byte, window, lookahead int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewHeatshrinkWriter(&buf, window, lookahead)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes exercise the block boundary logic.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 7919)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hsDecompress(src []byte, oneByte bool) ([]byte, error) {
	var r io.Reader = bytes.NewReader(src)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	zr, err := NewHeatshrinkReader(r)
	if err != nil {
		return nil, err
	}
	var rd io.Reader = zr
	if oneByte {
		rd = iotest.OneByteReader(zr)
	}
	return io.ReadAll(rd)
}

func TestHeatshrinkParams(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	mixed := make([]byte, 0, 300_000)
	for len(mixed) < 290_000 {
		switch rnd.Intn(3) {
		case 0:
			mixed = append(mixed, bytes.Repeat([]byte{0xff}, rnd.Intn(5000))...)
		case 1:
			b := make([]byte, rnd.Intn(3000))
			rnd.Read(b)
			mixed = append(mixed, b...)
		default:
			if len(mixed) > 100 {
				off := rnd.Intn(len(mixed) - 50)
				mixed = append(mixed, mixed[off:off+rnd.Intn(50)]...)
			}
		}
	}
	for _, wl := range [][2]int{{8, 3}, {9, 4}, {10, 4}, {11, 4}, {11, 5}, {12, 5}, {12, 6}, {13, 6}, {14, 8}, {15, 8}} {
		t.Run(fmt.Sprintf("W%dL%d", wl[0], wl[1]), func(t *testing.T) {
			z := hsCompress(t, mixed, wl[0], wl[1])
			got, err := hsDecompress(z, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, mixed) {
				t.Fatalf("round trip mismatch: %d bytes, want %d", len(got), len(mixed))
			}
		})
	}
}

func TestHeatshrinkBadParams(t *testing.T) {
	for _, wl := range [][2]int{{7, 3}, {16, 4}, {11, 2}, {11, 9}, {8, 8}} {
		if _, err := NewHeatshrinkWriter(io.Discard, wl[0], wl[1]); err == nil {
			t.Errorf("NewHeatshrinkWriter(W=%d, L=%d) succeeded", wl[0], wl[1])
		}
	}
}

func TestHeatshrinkEdgeCases(t *testing.T) {
	inputs := map[string][]byte{
		"empty":       {},
		"one":         {7},
		"two":         {7, 7},
		"zeros":       make([]byte, 2*hsBlock+5),
		"period3":     bytes.Repeat([]byte{1, 2, 3}, 100_000),
		"blockbound":  bytes.Repeat([]byte("0123456789abcdef"), (hsBlock+4096)/16),
		"lorem":       bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit. "), 2000),
		"alternating": bytes.Repeat([]byte{0x00, 0xff}, 50_000),
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			z := hsCompress(t, data, HeatshrinkDefaultWindow, HeatshrinkDefaultLookahead)
			for _, oneByte := range []bool{false, true} {
				if oneByte && len(data) > 200_000 {
					continue // slow, and the small inputs cover the paths
				}
				got, err := hsDecompress(z, oneByte)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("oneByte=%v: round trip mismatch: %d bytes, want %d", oneByte, len(got), len(data))
				}
			}
		})
	}
}

// TestHeatshrinkCorpus round-trips every corpus firmware image and checks the
// codec actually compresses them.
func TestHeatshrinkCorpus(t *testing.T) {
	for _, p := range testutil.CorpusPairs(t) {
		t.Run(p.Name, func(t *testing.T) {
			data, err := os.ReadFile(p.New)
			if err != nil {
				t.Fatal(err)
			}
			z := hsCompress(t, data, HeatshrinkDefaultWindow, HeatshrinkDefaultLookahead)
			got, err := hsDecompress(z, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("round trip mismatch")
			}
			if len(z) >= len(data) {
				t.Errorf("compressed %d bytes to %d", len(data), len(z))
			}
		})
	}
}

// hsStream builds a raw stream from items for the corrupt-input tests.
type hsBits struct {
	out   []byte
	acc   uint64
	nbits uint
}

func (b *hsBits) put(v uint32, n uint) {
	b.acc = b.acc<<n | uint64(v)
	b.nbits += n
	for b.nbits >= 8 {
		b.nbits -= 8
		b.out = append(b.out, byte(b.acc>>b.nbits))
	}
	b.acc &= 1<<b.nbits - 1
}

func (b *hsBits) bytes() []byte {
	if b.nbits > 0 {
		b.put(0, 8-b.nbits)
	}
	return b.out
}

func TestHeatshrinkCorrupt(t *testing.T) {
	const W, L = 11, 4
	lit := func(b *hsBits, c byte) { b.put(1<<8|uint32(c), 9) }
	ref := func(b *hsBits, d, c uint32) { b.put(0, 1); b.put(d, W); b.put(c, L) }
	end := func(b *hsBits) { ref(b, 0, 0) }
	stream := func(f func(b *hsBits)) []byte {
		b := &hsBits{out: []byte{W<<4 | L}}
		f(b)
		return b.bytes()
	}
	good := stream(func(b *hsBits) { lit(b, 'a'); lit(b, 'b'); ref(b, 2, 1); end(b) }) // count 1 = length minMatch+1 = 3
	if got, err := hsDecompress(good, false); err != nil || string(got) != "ababa" {
		t.Fatalf("hand-made stream: got %q, %v; want \"ababa\"", got, err)
	}
	cases := map[string][]byte{
		"no header":         {},
		"window too big":    {0xf0 | 9},
		"window too small":  {0x74},
		"lookahead too big": {0xb9},
		"no end marker":     stream(func(b *hsBits) { lit(b, 'a') }),
		"ref before start":  stream(func(b *hsBits) { lit(b, 'a'); ref(b, 2, 0); end(b) }),
		"ref at start":      stream(func(b *hsBits) { ref(b, 1, 0); end(b) }),
		"end with count":    stream(func(b *hsBits) { lit(b, 'a'); ref(b, 0, 1) }),
		"nonzero padding": func() []byte {
			s := stream(func(b *hsBits) { lit(b, 'a'); end(b) })
			s[len(s)-1] |= 1
			return s
		}(),
	}
	for i := 1; i < len(good); i++ {
		cases[fmt.Sprintf("truncated to %d", i)] = good[:i]
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := hsDecompress(src, false)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v is neither ErrCorrupt nor ErrUnexpectedEOF", err)
			}
		})
	}
}

func FuzzHeatshrinkDecode(f *testing.F) {
	rnd := rand.New(rand.NewSource(3))
	random := make([]byte, 3000)
	rnd.Read(random)
	for _, data := range [][]byte{{}, []byte("a"), []byte("abababababababab"), bytes.Repeat([]byte{0xff}, 5000), random,
		bytes.Repeat([]byte("firmware "), 300)} {
		for _, wl := range [][2]int{{8, 3}, {11, 4}, {12, 6}} {
			f.Add(hsCompress(f, data, wl[0], wl[1]))
		}
	}
	f.Add([]byte{0xb4, 0x00, 0x00})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, src []byte) {
		zr, err := NewHeatshrinkReader(bytes.NewReader(src))
		if err != nil {
			return
		}
		// The output of a valid stream is bounded by its bits: cap the read
		// so a fuzzer cannot make the test slow.
		got, err := io.ReadAll(io.LimitReader(zr, 1<<20))
		if err != nil {
			return
		}
		// What decodes must re-encode and decode to the same bytes.
		z := hsCompress(t, got, HeatshrinkDefaultWindow, HeatshrinkDefaultLookahead)
		again, err := hsDecompress(z, false)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("re-encode round trip failed: %v", err)
		}
	})
}
