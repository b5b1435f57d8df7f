package delta

import (
	"bytes"
	"compress/bzip2"
	"io"
	"math/rand"
	"testing"
)

func TestBzip2Compress(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	rnd := make([]byte, 2_000_000)
	rng.Read(rnd)
	for _, in := range [][]byte{nil, {0}, []byte("aaaa"), bytes.Repeat([]byte{7}, 1000), bytes.Repeat([]byte("ab"), 5000),
		[]byte("hello hello hello world"), rnd, bytes.Repeat([]byte{0}, 3_000_000)} {
		z := bzip2Compress(in)
		got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(z)))
		if err != nil {
			t.Fatalf("len %d: %v", len(in), err)
		}
		if !bytes.Equal(got, in) {
			t.Fatalf("len %d: round trip differs", len(in))
		}
	}
}
