package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand"
	"testing"

	"github.com/otakit/otakit/codec"
)

func edgeCases() []pair {
	rng := rand.New(rand.NewSource(7))
	rnd := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	base := rnd(200000)
	mod := append([]byte(nil), base...)
	for i := 0; i < 300; i++ {
		mod[rng.Intn(len(mod))] ^= byte(1 + rng.Intn(255))
	}
	mod = append(mod[:50000], append(rnd(3000), mod[50000:]...)...)
	ff := bytes.Repeat([]byte{0xff}, 300000)
	copy(ff, base[:40000])
	ff2 := bytes.Repeat([]byte{0xff}, 310000)
	copy(ff2, mod[:60000])
	return []pair{
		{"both empty", nil, nil},
		{"identical", base, base},
		{"old empty", nil, base[:1000]},
		{"new empty", base[:1000], nil},
		{"one byte", []byte{1}, []byte{2}},
		{"one byte same", []byte{1}, []byte{1}},
		{"modified", base, mod},
		{"0xff padded", ff, ff2},
		{"repetitive", bytes.Repeat([]byte("abcd"), 50000), bytes.Repeat([]byte("abce"), 50001)},
	}
}

func roundTrip(t *testing.T, p pair, opt *Options) []byte {
	t.Helper()
	patch, err := Create(p.old, p.new, opt)
	if err != nil {
		t.Fatalf("%s: Create: %v", p.name, err)
	}
	pt, err := Parse(patch)
	if err != nil {
		t.Fatalf("%s: Parse: %v", p.name, err)
	}
	var out bytes.Buffer
	if err := pt.Apply(p.old, &out); err != nil {
		t.Fatalf("%s: Apply: %v", p.name, err)
	}
	if !bytes.Equal(out.Bytes(), p.new) {
		t.Fatalf("%s: round trip differs", p.name)
	}
	return patch
}

func TestRoundTripEdgeCases(t *testing.T) {
	for _, layout := range []Layout{LayoutSplit, LayoutStream} {
		for _, cn := range []string{"none", "zstd", "lzma"} {
			c, err := codec.Lookup(cn)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range edgeCases() {
				roundTrip(t, p, &Options{Layout: layout, Codec: c, BlockSize: 4096 * (1 + int(layout))})
			}
		}
	}
}

func TestRoundTripCorpus(t *testing.T) {
	zstd, _ := codec.Lookup("zstd")
	none, _ := codec.Lookup("none")
	for _, p := range corpusPairs(t) {
		roundTrip(t, p, &Options{Layout: LayoutSplit, Codec: zstd})
		roundTrip(t, p, &Options{Layout: LayoutStream, Codec: none})
	}
}

func TestResume(t *testing.T) {
	p := edgeCases()[6]
	patch := roundTrip(t, p, &Options{Layout: LayoutStream, BlockSize: 8192})
	pt, _ := Parse(patch)
	// An interrupted apply wrote 5 blocks and a half, the last one corrupt.
	partial := append([]byte(nil), p.new[:5*8192+100]...)
	partial[4*8192+7] ^= 1
	from := pt.ResumePoint(partial)
	if from != 4 {
		t.Fatalf("ResumePoint = %d, want 4", from)
	}
	var out bytes.Buffer
	out.Write(partial[:from*8192])
	if err := pt.ApplyFrom(p.old, from, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), p.new) {
		t.Fatal("resumed apply differs")
	}
	if got := pt.ResumePoint(p.new); got != len(pt.Blocks) {
		t.Fatalf("ResumePoint(complete) = %d, want %d", got, len(pt.Blocks))
	}
}

func TestBadInput(t *testing.T) {
	p := edgeCases()[6]
	patch := roundTrip(t, p, &Options{Layout: LayoutSplit, BlockSize: 65536})
	pt, _ := Parse(patch)
	wrong := append([]byte(nil), p.old...)
	wrong[100] ^= 1
	if err := pt.Apply(wrong, &bytes.Buffer{}); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("wrong source: got %v, want ErrSourceMismatch", err)
	}
	if err := pt.Apply(p.old[1:], &bytes.Buffer{}); !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("short source: got %v, want ErrSourceMismatch", err)
	}
	for n := 0; n < len(patch); n += 1 + n/3 {
		if pt, err := Parse(patch[:n]); err == nil {
			if err := pt.Apply(p.old, &bytes.Buffer{}); err == nil {
				t.Fatalf("truncated to %d bytes: no error", n)
			}
		}
	}
	// Huge declared target size must fail without allocating it.
	huge := append([]byte(nil), patch...)
	copy(huge[12:], []byte{0xff, 0xff, 0xff, 0xff})
	copy(huge[80:], []byte{1, 0, 0, 0})
	if _, err := Parse(huge); !errors.Is(err, ErrFormat) {
		t.Errorf("huge target: got %v, want ErrFormat", err)
	}
	// Flipped bytes anywhere give an error, never a panic or a wrong result.
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 300; i++ {
		bad := append([]byte(nil), patch...)
		bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
		pt, err := Parse(bad)
		if err != nil {
			continue
		}
		var out bytes.Buffer
		if err := pt.Apply(p.old, &out); err == nil && !bytes.Equal(out.Bytes(), p.new) {
			t.Fatal("corrupt patch applied without error to a wrong result")
		}
	}
}

// craft builds a one-block, codec-none native patch around hand-written
// instruction bytes, for hostile-input tests.
func craft(old, new []byte, layout Layout, sp uint32, body []byte) []byte {
	h := Header{Layout: layout, SourceSize: int64(len(old)), TargetSize: int64(len(new)),
		SourceSHA256: sha256.Sum256(old), TargetSHA256: sha256.Sum256(new), BlockSize: 1 << 20}
	var table []Block
	if len(new) > 0 {
		table = []Block{{PackedSize: uint32(len(body)), SourcePos: sp, CRC32: crc32.ChecksumIEEE(new)}}
	}
	return append(h.appendTo(nil, table), body...)
}

func TestHostilePatches(t *testing.T) {
	old := []byte("0123456789abcdef")
	new := []byte("0123456789")
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	head := func(n int, k opKind) []byte { return uv(uint64(n)<<2 | uint64(k)) }
	sv := func(v int64) []byte { return binary.AppendVarint(nil, v) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	good := cat(head(10, opCopy), sv(0))
	if err := ApplyAny(old, craft(old, new, LayoutStream, 0, good), &bytes.Buffer{}); err != nil {
		t.Fatalf("well-formed crafted patch: %v", err)
	}
	cases := []struct {
		name string
		sp   uint32
		body []byte
	}{
		{"offset before 0", 0, cat(head(10, opCopy), sv(-1))},
		{"source past end", 0, cat(head(10, opCopy), sv(7))},
		{"length past block", 0, cat(head(11, opCopy), sv(0))},
		{"zero length", 0, cat(head(0, opInsert), head(10, opCopy), sv(0))},
		{"reserved op", 0, cat(uv(10<<2 | 3))},
		{"insert past data", 0, cat(head(10, opInsert), []byte("0123"))},
		{"add past data", 0, cat(head(10, opAdd), sv(0), []byte{0, 0})},
		{"trailing data", 0, cat(good, []byte{0})},
		{"short block", 0, cat(head(5, opCopy), sv(0))},
		{"overlong varint", 0, bytes.Repeat([]byte{0xff}, 12)},
		{"block source pos past end", 99, good},
		{"huge svarint", 0, cat(head(10, opCopy), sv(1<<40))},
	}
	for _, c := range cases {
		err := ApplyAny(old, craft(old, new, LayoutStream, c.sp, c.body), &bytes.Buffer{})
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", c.name, err)
		}
	}
	// Split layout: section lengths beyond the block.
	split := cat(uv(1000), uv(0), good)
	if err := ApplyAny(old, craft(old, new, LayoutSplit, 0, split), &bytes.Buffer{}); !errors.Is(err, ErrFormat) {
		t.Errorf("split section lengths: got %v", err)
	}
	// bsdiff: negative lengths and a huge declared size.
	bs := make([]byte, 32)
	copy(bs, BSDIFF40Magic)
	putOfft(bs[8:], -5)
	if _, err := ApplyBSDIFF(old, bs); !errors.Is(err, ErrFormat) {
		t.Errorf("bsdiff negative length: got %v", err)
	}
	putOfft(bs[8:], 0)
	putOfft(bs[24:], 1<<60)
	if _, err := ApplyBSDIFF(old, bs); !errors.Is(err, ErrFormat) {
		t.Errorf("bsdiff huge size: got %v", err)
	}
	// VCDIFF: a window claiming a huge target and a copy from the future.
	if _, err := ApplyVCDIFF(old, []byte(VCDIFFMagic+"\x00\x00\x08\xff\xff\xff\xff\x7f\x00\x00\x00")); !errors.Is(err, ErrFormat) {
		t.Errorf("vcdiff huge window: got %v", err)
	}
	if _, err := ApplyVCDIFF(old, []byte(VCDIFFMagic+"\x00\x00\x07\x04\x00\x00\x02\x01\x13\x04\x05")); !errors.Is(err, ErrFormat) {
		t.Errorf("vcdiff copy from the future: got %v", err)
	}
}

func TestRandom16MiB(t *testing.T) {
	rng := rand.New(rand.NewSource(16))
	old := make([]byte, 16<<20)
	rng.Read(old)
	new := append([]byte(nil), old...)
	for i := 0; i < 1000; i++ {
		new[rng.Intn(len(new))] ^= 0x40
	}
	new = append(new[:5<<20], append(bytes.Repeat([]byte{0xff}, 70000), new[5<<20:]...)...)
	none, _ := codec.Lookup("none")
	patch := roundTrip(t, pair{"random 16 MiB", old, new}, &Options{Layout: LayoutStream, Codec: none})
	if len(patch) > 1<<20 {
		t.Errorf("patch of %d bytes for 1000 byte edits", len(patch))
	}
}
