package delta

import (
	"os"
	"testing"
)

// TestDiffModelRoundTrip codes the corpus's add differences and decodes
// them with a source view that holds only each add's bytes and 3 either
// side, the most a streaming applier is required to supply.
func TestDiffModelRoundTrip(t *testing.T) {
	for _, p := range corpusPairs(t)[:3] {
		type add struct{ src, t, n int }
		var adds []add
		tt := 0
		for _, o := range diffOps(p.old, p.new, defaultTuning) {
			if o.kind == opAdd {
				adds = append(adds, add{o.src, tt, o.n})
			}
			tt += o.n
		}
		e := newModelEncoder(len(p.new), 0, false, nil)
		full := srcBytes{b: p.old}
		ndiff := 0
		for _, a := range adds {
			d := make([]byte, a.n)
			for i := range d {
				d[i] = p.new[a.t+i] - p.old[a.src+i]
			}
			e.encodeAdd(d, full, a.src, a.t)
			ndiff += a.n
		}
		z := e.finish()
		d := newModelDecoder(z, len(p.new), 0, false, nil)
		for _, a := range adds {
			lo, hi := max(a.src-3, 0), min(a.src+a.n+3, len(p.old))
			view := srcBytes{b: append([]byte(nil), p.old[lo:hi]...), off: lo}
			got := make([]byte, a.n)
			d.decodeAdd(got, view, a.src, a.t)
			for i := range got {
				if want := p.new[a.t+i] - p.old[a.src+i]; got[i] != want {
					t.Fatalf("%s: add at %d byte %d: got %d want %d", p.name, a.t, i, got[i], want)
				}
			}
		}
		if os.Getenv("DELTA_TUNE") != "" {
			t.Logf("%s: %d diff bytes: model %d", p.name, ndiff, len(z))
		}
	}
}

func TestLayoutModelRoundTrip(t *testing.T) {
	for _, p := range append(edgeCases(), corpusPairs(t)[:4]...) {
		roundTrip(t, p, &Options{Layout: LayoutModel, BlockSize: 1 << 16})
		roundTrip(t, p, &Options{Layout: LayoutModel})
	}
}
