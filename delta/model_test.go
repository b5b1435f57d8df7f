package delta

import (
	"os"
	"testing"

	"github.com/otakit/otakit/codec"
)

func TestDiffModelRoundTrip(t *testing.T) {
	var diff, src []byte
	for _, p := range corpusPairs(t)[:3] {
		tt := 0
		for _, o := range diffOps(p.old, p.new, defaultTuning) {
			if o.kind == opAdd {
				for i := 0; i < o.n; i++ {
					diff = append(diff, p.new[tt+i]-p.old[o.src+i])
					src = append(src, p.old[o.src+i])
				}
			}
			tt += o.n
		}
	}
	e := newDiffEncoder()
	for i := range diff {
		e.encode(diff[i], src[i])
	}
	z := e.finish()
	d := newDiffDecoder(z)
	for i := range diff {
		if got := d.decode(src[i]); got != diff[i] {
			t.Fatalf("byte %d: got %d want %d", i, got, diff[i])
		}
	}
	if os.Getenv("DELTA_TUNE") != "" {
		c, _ := compressBlock(nil0(), diff)
		t.Logf("%d diff bytes: model %d, lzma %d", len(diff), len(z), len(c))
	}
}

func nil0() codec.Codec { c, _ := codec.Lookup("lzma"); return c }

func TestLayoutModelRoundTrip(t *testing.T) {
	for _, p := range append(edgeCases(), corpusPairs(t)[:4]...) {
		roundTrip(t, p, &Options{Layout: LayoutModel, BlockSize: 1 << 16})
		roundTrip(t, p, &Options{Layout: LayoutModel})
	}
}
