package codec

import (
	"bytes"
	"io"
	"math/rand"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 100_000)
	rnd.Read(random)
	inputs := map[string][]byte{
		"empty":  {},
		"one":    {0x42},
		"text":   bytes.Repeat([]byte("firmware image "), 5000),
		"random": random,
		"erased": bytes.Repeat([]byte{0xff}, 70_000),
	}
	for _, name := range Names() {
		c, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for in, data := range inputs {
			t.Run(name+"/"+in, func(t *testing.T) {
				var buf bytes.Buffer
				w, err := c.NewWriter(&buf)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				r, err := c.NewReader(&buf)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				if !bytes.Equal(got, data) {
					t.Fatalf("round trip mismatch: got %d bytes, want %d", len(got), len(data))
				}
			})
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	if _, err := Lookup("brotli"); err == nil {
		t.Fatal("Lookup(brotli) succeeded")
	}
	if _, err := ByID(200); err == nil {
		t.Fatal("ByID(200) succeeded")
	}
}

func TestCorruptStreams(t *testing.T) {
	garbage := []byte("this is not a compressed stream at all, not even close")
	for _, name := range []string{"lz4", "zlib", "lzma", "zstd"} {
		c, _ := Lookup(name)
		r, err := c.NewReader(bytes.NewReader(garbage))
		if err != nil {
			continue // rejected at open: fine
		}
		if _, err := io.ReadAll(r); err == nil {
			t.Errorf("%s: garbage decoded without error", name)
		}
	}
}
