package delta

import (
	"bytes"
	"io"
	"testing"

	"github.com/otakit/otakit/codec"
)

// benchPatch is the largest corpus pair as a codec-none stream patch, the
// case bench/delta times.
func benchPatch(b *testing.B) (pair, []byte) {
	var p pair
	for _, q := range corpusPairs(b) {
		if len(q.new) > len(p.new) {
			p = q
		}
	}
	none, _ := codec.Lookup("none")
	patch, err := Create(p.old, p.new, &Options{Layout: LayoutStream, Codec: none})
	if err != nil {
		b.Fatal(err)
	}
	return p, patch
}

func BenchmarkApplySlice(b *testing.B) {
	p, patch := benchPatch(b)
	b.SetBytes(int64(len(p.new)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pt, err := Parse(patch)
		if err != nil {
			b.Fatal(err)
		}
		if err := pt.Apply(p.old, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyStream(b *testing.B) {
	p, patch := benchPatch(b)
	b.SetBytes(int64(len(p.new)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ApplyStream(bytes.NewReader(p.old), int64(len(p.old)), bytes.NewReader(patch), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
