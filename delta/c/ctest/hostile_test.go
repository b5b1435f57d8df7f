package ctest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/internal/testutil"
)

// Return codes of otadelta.h the tests expect.
const (
	eMagic       = -1
	eVersion     = -2
	eUnsupported = -3
	eNoMem       = -4
	eHeader      = -5
	eCodec       = -6
	eInstr       = -7
	eRange       = -8
	eBlock       = -9
	eCRC         = -10
	eTargetHash  = -11
	eSourceHash  = -12
	eSourceSize  = -13
	eTrailing    = -14
	eTruncated   = -15
)

var errLine = regexp.MustCompile(`^error (-?\d+):`)

func errCode(t *testing.T, r result) int {
	t.Helper()
	if r.ok {
		return 0
	}
	m := errLine.FindStringSubmatch(r.msg)
	if m == nil {
		t.Fatalf("no error code in harness output %q", r.msg)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// crafted builds a patch from decoded block bytes so tests can state exact
// instructions; fix edits the header and table before the blocks are added.
type crafted struct {
	old, new  []byte
	blockSize int
	codec     codec.ID
	blocks    [][]byte // decoded bytes per block
	sp        []uint32 // source_pos per block (default 0)
	fix       func(hdr, table []byte)
	packed    func(i int, b []byte) []byte // replaces a block's packed bytes
}

func (c crafted) bytes() []byte {
	le := binary.LittleEndian
	hdr := make([]byte, 90)
	copy(hdr, "OTAD")
	hdr[4], hdr[6] = 1, byte(c.codec)
	le.PutUint32(hdr[8:], uint32(len(c.old)))
	le.PutUint32(hdr[12:], uint32(len(c.new)))
	so, ta := sha256.Sum256(c.old), sha256.Sum256(c.new)
	copy(hdr[16:], so[:])
	copy(hdr[48:], ta[:])
	bs := c.blockSize
	if bs == 0 {
		bs = 65536
	}
	le.PutUint32(hdr[80:], uint32(bs))
	var table, body []byte
	for i, raw := range c.blocks {
		p := raw
		if c.codec == codec.Heatshrink {
			var z bytes.Buffer
			w, _ := codec.NewHeatshrinkWriter(&z, 11, 4)
			w.Write(raw)
			w.Close()
			p = z.Bytes()
		}
		if c.packed != nil {
			p = c.packed(i, p)
		}
		start, end := i*bs, min((i+1)*bs, len(c.new))
		var crc uint32
		if start <= end {
			crc = crc32.ChecksumIEEE(c.new[start:end])
		}
		var sp uint32
		if i < len(c.sp) {
			sp = c.sp[i]
		}
		table = le.AppendUint32(table, uint32(len(p)))
		table = le.AppendUint32(table, sp)
		table = le.AppendUint32(table, crc)
		body = append(body, p...)
	}
	if c.fix != nil {
		c.fix(hdr, table)
	}
	return append(append(hdr, table...), body...)
}

func ins(data []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(data))<<2|2), data...)
}

func cp(n int, d int64) []byte {
	return binary.AppendVarint(binary.AppendUvarint(nil, uint64(n)<<2), d) // op 0: COPY
}

func add(n int, d int64, diff []byte) []byte {
	return append(binary.AppendVarint(binary.AppendUvarint(nil, uint64(n)<<2|1), d), diff...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestHostilePatches(t *testing.T) {
	plain, san := harnesses(t)
	old := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	new := []byte("abcdefXXXX0123")
	good := [][]byte{cat(cp(6, 10), ins([]byte("XXXX")), add(4, -16, make([]byte, 4)))}
	le := binary.LittleEndian
	huge := bytes.Repeat([]byte{0x80}, 5)
	cases := []struct {
		name string
		p    crafted
		want int
		args []string
	}{
		{"valid", crafted{old: old, new: new, blocks: good}, 0, nil},
		{"valid heatshrink", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink}, 0, nil},
		{"bad magic", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[0] = 'X' }}, eMagic, nil},
		{"version 2", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[4] = 2 }}, eVersion, nil},
		{"split layout", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[5] = 1 }}, eUnsupported, nil},
		{"zstd codec", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[6] = 4 }}, eUnsupported, nil},
		{"flags", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[7] = 1 }}, eUnsupported, nil},
		{"block size 0", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { le.PutUint32(h[80:], 0) }}, eHeader, nil},
		{"huge target, tiny blocks", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) {
			le.PutUint32(h[12:], 0xffffffff)
			le.PutUint32(h[80:], 1)
		}}, eNoMem, nil},
		{"huge target", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { le.PutUint32(h[12:], 0xffffffff) }}, eNoMem, nil},
		{"applier_ram over work buffer", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { le.PutUint32(h[84:], workBytes+1) }}, eNoMem, nil},
		{"source size differs", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { le.PutUint32(h[8:], 35) }}, eSourceSize, nil},
		{"wrong source hash", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[16] ^= 1 }}, eSourceHash, []string{"verify-source"}},
		{"wrong target hash", crafted{old: old, new: new, blocks: good, fix: func(h, _ []byte) { h[48] ^= 1 }}, eTargetHash, nil},
		{"wrong crc", crafted{old: old, new: new, blocks: good, fix: func(_, tb []byte) { tb[8] ^= 1 }}, eCRC, nil},
		{"source_pos past end", crafted{old: old, new: new, blocks: good, sp: []uint32{37}}, eHeader, nil},
		{"packed size 0", crafted{old: old, new: new, blocks: good, fix: func(_, tb []byte) { le.PutUint32(tb, 0) }}, eHeader, nil},
		{"packed size huge", crafted{old: old, new: new, blocks: good, fix: func(_, tb []byte) { le.PutUint32(tb, 0xfffffff0) }}, eHeader, nil},
		{"packed size short", crafted{old: old, new: new, blocks: good, fix: func(_, tb []byte) { le.PutUint32(tb, le.Uint32(tb)-1) }}, eBlock, nil},
		{"packed size long", crafted{old: old, new: new, blocks: good, fix: func(_, tb []byte) { le.PutUint32(tb, le.Uint32(tb)+1) }}, eTruncated, nil},
		{"offset before 0", crafted{old: old, new: new, blocks: [][]byte{cat(cp(6, -1), ins([]byte("XXXX0123")))}}, eRange, nil},
		{"length past source", crafted{old: old, new: new, blocks: [][]byte{cat(cp(6, 31), ins([]byte("XXXX0123")))}}, eRange, nil},
		{"add past source", crafted{old: old, new: new, blocks: [][]byte{cat(add(14, 30, make([]byte, 14)))}}, eRange, nil},
		{"offset int32 min", crafted{old: old, new: new, blocks: [][]byte{cat(cp(6, -1<<31), ins([]byte("XXXX0123")))}}, eRange, nil},
		{"len past block", crafted{old: old, new: new, blocks: [][]byte{cat(ins([]byte("abcdefXXXX0123")), ins([]byte("z")))}}, eBlock, nil},
		{"len over target", crafted{old: old, new: new, blocks: [][]byte{cp(15, 0)}}, eBlock, nil},
		{"len 0", crafted{old: old, new: new, blocks: [][]byte{cat([]byte{2}, good[0])}}, eInstr, nil},
		{"reserved op", crafted{old: old, new: new, blocks: [][]byte{cat([]byte{4<<2 | 3}, good[0])}}, eInstr, nil},
		{"varint overflow", crafted{old: old, new: new, blocks: [][]byte{cat(huge, []byte{1})}}, eInstr, nil},
		{"block ends early", crafted{old: old, new: new, blocks: [][]byte{cp(6, 10)}}, eBlock, nil},
		{"block ends mid-instruction", crafted{old: old, new: new, blocks: [][]byte{cat(cp(6, 10), []byte{14<<2 | 2, 'X'})}}, eBlock, nil},
		{"heatshrink bytes after end", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink,
			packed: func(_ int, b []byte) []byte { return append(b, 0) }}, eBlock, nil},
		{"heatshrink no end", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink,
			packed: func(_ int, b []byte) []byte { return b[:len(b)-2] }}, eBlock, nil},
		{"heatshrink bad header", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink,
			packed: func(_ int, b []byte) []byte { b[0] = 0x79; return b }}, eCodec, nil},
		{"heatshrink window too big for work", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink,
			packed: func(_ int, b []byte) []byte { b[0] = 0xf4; return b }}, eNoMem, nil},
		{"heatshrink ref before start", crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink,
			packed: func(_ int, b []byte) []byte { return []byte{0xb4, 0x00, 0x20, 0x00, 0x00, 0x00} }}, eCodec, nil},
		{"empty target", crafted{old: old, new: nil}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patch := tc.p.bytes()
			bins := []string{san}
			if tc.want == 0 {
				bins = append(bins, plain)
			}
			for _, bin := range bins {
				r := runHarness(t, bin, tc.p.old, patch, 3, tc.args...)
				if got := errCode(t, r); got != tc.want {
					t.Fatalf("got code %d (%s), want %d", got, r.msg, tc.want)
				}
				if r.ok && !bytes.Equal(r.output, tc.p.new) {
					t.Fatal("accepted patch produced the wrong target")
				}
			}
		})
	}
	// Trailing bytes after the last block, and the wrong source image.
	patch := crafted{old: old, new: new, blocks: good}.bytes()
	if got := errCode(t, runHarness(t, san, old, append(bytes.Clone(patch), 0), 1)); got != eTrailing {
		t.Errorf("trailing byte: got %d, want %d", got, eTrailing)
	}
	wrong := bytes.Clone(old)
	wrong[12] ^= 0x40
	if got := errCode(t, runHarness(t, san, wrong, patch, 1, "verify-source")); got != eSourceHash {
		t.Errorf("wrong source, verified: got %d, want %d", got, eSourceHash)
	}
	if got := errCode(t, runHarness(t, san, wrong, patch, 1)); got != eCRC {
		t.Errorf("wrong source, unverified: got %d, want %d", got, eCRC)
	}
	// Too small a work buffer is refused before anything is written.
	hs := crafted{old: old, new: new, blocks: good, codec: codec.Heatshrink}.bytes()
	if got := errCode(t, runHarness(t, san, old, hs, 1, "work=2000")); got != eNoMem {
		t.Errorf("small work buffer: got %d, want %d", got, eNoMem)
	}
}

// TestTruncated applies every proper prefix of patches of both codecs (two
// blocks, version strings) in the sanitized harness: all must be refused.
func TestTruncated(t *testing.T) {
	_, san := harnesses(t)
	rnd := rand.New(rand.NewSource(4))
	old := make([]byte, 3000)
	rnd.Read(old)
	new := bytes.Clone(old[500:])
	new = append(new, []byte("new tail of the image")...)
	dir := t.TempDir()
	for _, id := range codecs {
		patch := refPatch{blockSize: 2000, codec: id, rnd: rnd, maxInstLen: 300, srcVer: "a", tgtVer: "b"}.make(old, new)
		oldPath, patchPath := filepath.Join(dir, "old"), filepath.Join(dir, codecName(id))
		os.WriteFile(oldPath, old, 0o644)
		os.WriteFile(patchPath, patch, 0o644)
		if r := runHarness(t, san, old, patch, 1); !r.ok || !bytes.Equal(r.output, new) {
			t.Fatalf("%s: whole patch refused: %s", codecName(id), r.msg)
		}
		out := runRaw(t, san, "truncate", oldPath, patchPath, "5")
		if !strings.Contains(out, "prefixes refused") {
			t.Fatalf("%s: %s", codecName(id), out)
		}
	}
}

// TestMutations runs the sanitized harness's in-process mutation loop
// (bit flips, overwrites, truncation, cut and duplicated spans, random work
// buffer sizes) over patches of both codecs, including the seeds under
// testdata/ and any Go fuzz corpus of the delta package.
func TestMutations(t *testing.T) {
	_, san := harnesses(t)
	rnd := rand.New(rand.NewSource(11))
	old := make([]byte, 20_000)
	rnd.Read(old)
	new := bytes.Clone(old)
	for i := 0; i < 200; i++ {
		new[rnd.Intn(len(new))] = byte(rnd.Intn(256))
	}
	new = append(new[:15_000], append([]byte("inserted text inserted text"), new[15_000:]...)...)
	var seeds []struct {
		name     string
		old, pat []byte
	}
	for _, id := range codecs {
		for _, bs := range []int{4096, 65536} {
			p := refPatch{blockSize: bs, codec: id, rnd: rnd, maxInstLen: 500, srcVer: "v1"}.make(old, new)
			seeds = append(seeds, struct {
				name     string
				old, pat []byte
			}{fmt.Sprintf("%s/bs%d", codecName(id), bs), old, p})
		}
	}
	// Real diff output: the smallest corpus pair through delta.Create.
	for _, p := range testutil.CorpusPairs(t) {
		if !strings.HasPrefix(p.Name, "nrf52840") {
			continue
		}
		pold, pnew := readPair(t, p)
		for _, name := range []string{"none", "heatshrink"} {
			c, err := codec.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := delta.Create(pold, pnew, &delta.Options{Layout: delta.LayoutStream, Codec: c, BlockSize: 8192})
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, struct {
				name     string
				old, pat []byte
			}{"create/" + p.Name + "/" + name, pold, pt})
		}
	}
	seeds = append(seeds, fuzzSeeds(t, old)...)
	dir := t.TempDir()
	for i, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			oldPath, patchPath := filepath.Join(dir, fmt.Sprint(i, "old")), filepath.Join(dir, fmt.Sprint(i, "patch"))
			os.WriteFile(oldPath, s.old, 0o644)
			os.WriteFile(patchPath, s.pat, 0o644)
			out := runRaw(t, san, "mutate", oldPath, patchPath, "400", fmt.Sprint(i+1))
			t.Log(strings.TrimSpace(out))
			if !strings.Contains(out, "refused") {
				t.Fatalf("unexpected output %q", out)
			}
		})
	}
}

// runRaw runs a harness mode that must exit 0 and returns its stdout.
func runRaw(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = sanitizerEnv()
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("harness %v: %v\n%s\n%s", args, err, out, stderr)
	}
	return string(out)
}

// fuzzSeeds loads the Go fuzz corpora of the delta package
// (delta/testdata/fuzz/Fuzz*/*), so the C applier sees the same seeds as
// the Go readers. A file's last []byte value is taken as the patch and a
// preceding one, if any, as the source.
func fuzzSeeds(t *testing.T, defaultOld []byte) []struct {
	name     string
	old, pat []byte
} {
	var seeds []struct {
		name     string
		old, pat []byte
	}
	files, _ := filepath.Glob("../../testdata/fuzz/Fuzz*/*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vals [][]byte
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "[]byte(") || !strings.HasSuffix(line, ")") {
				continue
			}
			s, err := strconv.Unquote(line[len("[]byte(") : len(line)-1])
			if err != nil {
				continue
			}
			vals = append(vals, []byte(s))
		}
		if len(vals) == 0 {
			continue
		}
		old := defaultOld
		if len(vals) > 1 {
			old = vals[len(vals)-2]
		}
		seeds = append(seeds, struct {
			name     string
			old, pat []byte
		}{"gofuzz/" + filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f), old, vals[len(vals)-1]})
	}
	return seeds
}
