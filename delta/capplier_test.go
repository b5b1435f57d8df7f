package delta

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/codec"
)

// TestCApplierAppliesEnginePatches applies patches made by this package's
// engine (stream layout, heatshrink and none) with the C99 applier of
// delta/c, fed in random chunks by its harness, for every corpus pair.
func TestCApplierAppliesEnginePatches(t *testing.T) {
	gcc := tool(t, "gcc")
	dir := t.TempDir()
	harness := filepath.Join(dir, "harness")
	if b, err := exec.Command(gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Ic",
		"-o", harness, "c/harness.c", "c/otadelta.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	hs, _ := codec.Lookup("heatshrink")
	none, _ := codec.Lookup("none")
	for i, p := range append(corpusPairs(t), edgeCases()...) {
		ops := diffOps(p.old, p.new, defaultTuning)
		for _, v := range []struct {
			c       codec.Codec
			minCopy int
		}{{hs, 64}, {none, 10}} {
			cn := v.c.Name()
			patch, err := encodeNative(p.old, p.new, splitAdds(p.old, p.new, ops, v.minCopy), LayoutStream, v.c, DefaultBlockSize, "", "")
			if err != nil {
				t.Fatal(err)
			}
			o := writeTemp(t, dir, "old", p.old)
			pp := writeTemp(t, dir, "patch", patch)
			out := filepath.Join(dir, "out")
			seed := string(rune('1' + i%9))
			if b, err := exec.Command(harness, "apply", o, pp, out, seed, "8192").CombinedOutput(); err != nil {
				t.Fatalf("%s/%s: C applier: %v\n%s", p.name, cn, err, b)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, p.new) {
				t.Fatalf("%s/%s: C applier result differs", p.name, cn)
			}
		}
	}
}
