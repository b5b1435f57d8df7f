package delta

import (
	"bytes"
	"testing"

	"github.com/otakit/otakit/codec"
)

// fuzzOld is the source every fuzz target applies patches to.
var fuzzOld = bytes.Repeat([]byte("firmware v1 \x00\x01\x02\xff"), 64)

func fuzzNew() []byte {
	n := append([]byte(nil), fuzzOld...)
	n[10] = 'X'
	n = append(n[:300], append([]byte("inserted bytes"), n[300:]...)...)
	return n
}

func FuzzNative(f *testing.F) {
	addNativeSeeds(f)
	f.Fuzz(func(t *testing.T, patch []byte) {
		pt, err := Parse(patch)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := pt.ApplyFrom(fuzzOld, 0, &out); err == nil && int64(out.Len()) != pt.Header.TargetSize {
			t.Fatalf("applied %d bytes, header says %d", out.Len(), pt.Header.TargetSize)
		}
		pt.ResumePoint(out.Bytes())
	})
}

func FuzzBSDIFF(f *testing.F) {
	f.Add(CreateBSDIFF40(fuzzOld, fuzzNew()))
	f.Add(bsdiff43(fuzzOld, fuzzNew()))
	f.Add([]byte(BSDIFF40Magic))
	f.Fuzz(func(t *testing.T, patch []byte) {
		ApplyBSDIFF(fuzzOld, patch)
	})
}

func FuzzVCDIFF(f *testing.F) {
	f.Add(CreateVCDIFF(fuzzOld, fuzzNew()))
	f.Add(CreateVCDIFF(nil, fuzzNew()))
	f.Add([]byte(VCDIFFMagic + "\x04\x01x\x05"))
	f.Fuzz(func(t *testing.T, patch []byte) {
		ApplyVCDIFF(fuzzOld, patch)
	})
}

func FuzzDescribe(f *testing.F) {
	f.Add(CreateBSDIFF40(fuzzOld, fuzzNew()))
	p, _ := Create(fuzzOld, fuzzNew(), nil)
	f.Add(p)
	f.Fuzz(func(t *testing.T, patch []byte) {
		Describe(patch)
	})
}

// bsdiff43 writes an ENDSLEY/BSDIFF43 patch: one bzip2 stream of control
// triples each followed by its diff and extra bytes.
func bsdiff43(old, new []byte) []byte {
	ts, diff, extra := bsdiffTriples(old, new, diffOps(old, new, defaultTuning))
	var body []byte
	var c [24]byte
	for _, tr := range ts {
		putOfft(c[:], tr.add)
		putOfft(c[8:], tr.extra)
		putOfft(c[16:], tr.seek)
		body = append(body, c[:]...)
		body = append(body, diff[:tr.add]...)
		diff = diff[tr.add:]
		body = append(body, extra[:tr.extra]...)
		extra = extra[tr.extra:]
	}
	out := []byte(BSDIFF43Magic)
	var n [8]byte
	putOfft(n[:], int64(len(new)))
	out = append(out, n[:]...)
	return append(out, bzip2Compress(body)...)
}

func TestBSDIFF43(t *testing.T) {
	for _, p := range append(edgeCases(), pair{"fuzz", fuzzOld, fuzzNew()}) {
		got, err := ApplyBSDIFF(p.old, bsdiff43(p.old, p.new))
		if err != nil || !bytes.Equal(got, p.new) {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
}

// addNativeSeeds seeds f with a small native patch in every layout and
// codec the MCU and Linux appliers read, plus a bare magic.
func addNativeSeeds(f *testing.F) {
	for _, cn := range []string{"none", "heatshrink", "zstd", "lzma"} {
		c, err := codec.Lookup(cn)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range []Layout{LayoutStream, LayoutSplit, LayoutModel} {
			p, err := Create(fuzzOld, fuzzNew(), &Options{Layout: l, Codec: c, BlockSize: 256, SourceVersion: "1"})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(p)
		}
	}
	f.Add([]byte("OTAD"))
}

// FuzzCreate checks that every pair round-trips through Create and the
// applier: the suffix array, the parser and the context models see
// arbitrary inputs here, not only firmware.
func FuzzCreate(f *testing.F) {
	f.Add(fuzzOld, fuzzNew())
	f.Add([]byte{}, []byte("new"))
	f.Add([]byte("old"), []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 300), append(bytes.Repeat([]byte{0xff}, 200), 1, 2, 3))
	f.Add(bytes.Repeat([]byte("ab"), 100), bytes.Repeat([]byte("abc"), 70))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		patch, err := Create(old, new, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := ApplyAny(old, patch, &out); err != nil {
			t.Fatalf("applying its own patch: %v", err)
		}
		if !bytes.Equal(out.Bytes(), new) {
			t.Fatal("round trip differs")
		}
	})
}
