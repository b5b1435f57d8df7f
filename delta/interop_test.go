package delta

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (run scripts/test-deps.sh): %v", name, err)
	}
	return p
}

func writeTemp(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// interopPairs are a few corpus pairs plus edge cases, small enough for
// peer tools to run quickly.
func interopPairs(t *testing.T) []pair {
	var ps []pair
	for _, p := range corpusPairs(t) {
		if len(p.new) < 120000 {
			ps = append(ps, p)
		}
	}
	for _, p := range edgeCases() {
		switch p.name {
		case "identical", "old empty", "one byte", "modified", "0xff padded":
			ps = append(ps, p)
		}
	}
	return ps
}

func TestBSDIFF40ThroughBspatch(t *testing.T) {
	bspatch := tool(t, "bspatch")
	dir := t.TempDir()
	for _, p := range interopPairs(t) {
		patch := CreateBSDIFF40(p.old, p.new)
		got, err := ApplyBSDIFF(p.old, patch)
		if err != nil || !bytes.Equal(got, p.new) {
			t.Fatalf("%s: own applier: %v", p.name, err)
		}
		o := writeTemp(t, dir, "old", p.old)
		pp := writeTemp(t, dir, "patch", patch)
		out := filepath.Join(dir, "new")
		if b, err := exec.Command(bspatch, o, out, pp).CombinedOutput(); err != nil {
			t.Fatalf("%s: bspatch: %v\n%s", p.name, err, b)
		}
		if b, _ := os.ReadFile(out); !bytes.Equal(b, p.new) {
			t.Fatalf("%s: bspatch result differs", p.name)
		}
	}
}

func TestBsdiffOutputThroughApplier(t *testing.T) {
	bsdiff := tool(t, "bsdiff")
	dir := t.TempDir()
	for _, p := range interopPairs(t) {
		if len(p.old) == 0 {
			continue // Debian's bsdiff cannot diff against an empty file
		}
		o := writeTemp(t, dir, "old", p.old)
		n := writeTemp(t, dir, "new", p.new)
		pp := filepath.Join(dir, "patch")
		if b, err := exec.Command(bsdiff, o, n, pp).CombinedOutput(); err != nil {
			t.Fatalf("%s: bsdiff: %v\n%s", p.name, err, b)
		}
		patch, _ := os.ReadFile(pp)
		got, err := ApplyBSDIFF(p.old, patch)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if !bytes.Equal(got, p.new) {
			t.Fatalf("%s: result differs", p.name)
		}
	}
}

func TestVCDIFFThroughXdelta3(t *testing.T) {
	xdelta3 := tool(t, "xdelta3")
	dir := t.TempDir()
	for _, p := range interopPairs(t) {
		patch := CreateVCDIFF(p.old, p.new)
		got, err := ApplyVCDIFF(p.old, patch)
		if err != nil || !bytes.Equal(got, p.new) {
			t.Fatalf("%s: own applier: %v", p.name, err)
		}
		o := writeTemp(t, dir, "old", p.old)
		pp := writeTemp(t, dir, "patch", patch)
		out := filepath.Join(dir, "new")
		if b, err := exec.Command(xdelta3, "-d", "-f", "-s", o, pp, out).CombinedOutput(); err != nil {
			t.Fatalf("%s: xdelta3 -d: %v\n%s", p.name, err, b)
		}
		if b, _ := os.ReadFile(out); !bytes.Equal(b, p.new) {
			t.Fatalf("%s: xdelta3 result differs", p.name)
		}
	}
}

func TestXdelta3OutputThroughApplier(t *testing.T) {
	xdelta3 := tool(t, "xdelta3")
	dir := t.TempDir()
	for _, p := range interopPairs(t) {
		o := writeTemp(t, dir, "old", p.old)
		n := writeTemp(t, dir, "new", p.new)
		runs := [][]string{{"-e", "-9", "-S", "none"}}
		if len(p.new) < 50000 || len(p.old) == 0 {
			runs = append(runs, []string{"-e", "-0", "-S", "none", "-n"}) // no Adler-32
		}
		for _, flags := range runs {
			pp := filepath.Join(dir, "patch")
			args := append(append([]string{}, flags...), "-f", "-s", o, n, pp)
			if b, err := exec.Command(xdelta3, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s: xdelta3 %v: %v\n%s", p.name, flags, err, b)
			}
			patch, _ := os.ReadFile(pp)
			got, err := ApplyVCDIFF(p.old, patch)
			if err != nil {
				t.Fatalf("%s %v: %v", p.name, flags, err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("%s %v: result differs", p.name, flags)
			}
		}
	}
}
