package delta

import (
	"bytes"
	"os"
	"slices"
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

// TestCtrlModelRoundTrip codes instructions with extreme lengths and
// alignments, recent and new, and reads them back.
func TestCtrlModelRoundTrip(t *testing.T) {
	type ins struct {
		kind  opKind
		n     int
		align int64
	}
	want := []ins{
		{opCopy, 1, 0}, {opInsert, 7, 0}, {opAdd, 1 << 30, 5}, {opAdd, 3, 0},
		{opCopy, 12, -1 << 32}, {opAdd, 2, 1 << 32}, {opCopy, 9, -1 << 32},
		{opInsert, 1, 0}, {opAdd, 100, 5}, {opCopy, 1<<31 - 1, 123456789},
	}
	e := binCoder{x2: 0xffffffff}
	var ce ctrlModel
	ce.reset(0)
	for _, w := range want {
		ce.op(&e, w.kind, w.n, w.align)
	}
	enc := &modelEncoder{binCoder: e}
	d := newModelDecoder(enc.finish(), 1<<20, 0, false, nil)
	for i, w := range want {
		kind, n, align, err := d.decodeOp()
		if err != nil {
			t.Fatalf("instruction %d: %v", i, err)
		}
		if kind != w.kind || n != w.n || (kind != opInsert && align != w.align) {
			t.Fatalf("instruction %d: got %v %d %d, want %v %d %d", i, kind, n, align, w.kind, w.n, w.align)
		}
	}
}

// TestCtrlModelHostile feeds the instruction decoder streams that code
// absurd numbers: it must stop with an error, not loop or overflow.
func TestCtrlModelHostile(t *testing.T) {
	for _, fill := range []byte{0x00, 0xff, 0x80, 0x7f} {
		d := newModelDecoder(bytes.Repeat([]byte{fill}, 64), 1<<20, 0, false, nil)
		for i := 0; i < 1000; i++ {
			if _, _, _, err := d.decodeOp(); err != nil {
				break
			}
		}
	}
}

func TestDropShortAlignments(t *testing.T) {
	tests := []struct {
		name string
		in   []op
		want []op
	}{
		{"short new alignment becomes literal",
			[]op{{opAdd, 20, 100}, {opCopy, 5, 5000}, {opAdd, 20, 125}},
			[]op{{opAdd, 20, 100}, {opInsert, 5, 0}, {opAdd, 20, 125}}},
		{"short recent alignment stays",
			[]op{{opAdd, 20, 100}, {opInsert, 3, 0}, {opCopy, 4, 123}},
			[]op{{opAdd, 20, 100}, {opInsert, 3, 0}, {opCopy, 4, 123}}},
		{"long new alignment stays",
			[]op{{opInsert, 2, 0}, {opCopy, 10, 7000}},
			[]op{{opInsert, 2, 0}, {opCopy, 10, 7000}}},
		{"neighbouring inserts merge",
			[]op{{opInsert, 2, 0}, {opCopy, 4, 7000}, {opInsert, 3, 0}},
			[]op{{opInsert, 9, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dropShortAlignments(tt.in, minNewAlignment); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLayoutModelEveryByteMatters flips bits in every byte of a layout-2
// block, including the arithmetic coder's final bytes, which many values
// decode alike: each flip must fail the apply, not yield the target.
func TestLayoutModelEveryByteMatters(t *testing.T) {
	old, new := fuzzOld, fuzzNew()
	patch, err := Create(old, new, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := Parse(patch)
	if err != nil {
		t.Fatal(err)
	}
	body := len(patch)
	for _, b := range pt.Blocks {
		body -= int(b.PackedSize)
	}
	for i := body; i < len(patch); i++ {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(patch)
			bad[i] ^= bit
			var out bytes.Buffer
			if ApplyStream(bytes.NewReader(old), int64(len(old)), bytes.NewReader(bad), &out) == nil {
				t.Fatalf("flipping bit %#x of byte %d (of %d) went unnoticed", bit, i, len(patch))
			}
		}
	}
}

// TestModelDecoderStopsPastEnd decodes a long add and long literals from a
// 3-byte stream: past the end the decoder reads zeros, which the models
// soon predict almost for free, so it must stop once it has read 8 of them
// rather than decode garbage for the instruction's whole length.
func TestModelDecoderStopsPastEnd(t *testing.T) {
	stream := []byte{0x12, 0x34, 0x56}
	old := make([]byte, 1<<20)
	d := newModelDecoder(stream, len(old), 0, true, nil)
	d.decodeAdd(make([]byte, len(old)), srcBytes{b: old}, 0, 0)
	// One byte's decisions may read a few bytes more after the 9th.
	if !d.overrun() || d.p > len(stream)+9+8 {
		t.Fatalf("add: read %d bytes of a %d-byte stream, want to stop soon after %d", d.p, len(stream), len(stream)+9)
	}

	d = newModelDecoder(stream, len(old), 0, true, nil)
	var out []byte
	for len(out) < len(old) && !d.overrun() {
		out = append(out, d.decodeLiteral(out, len(out)))
	}
	if len(out) == len(old) {
		t.Fatalf("literals: decoded %d bytes from a %d-byte stream without noticing its end", len(out), len(stream))
	}
}
