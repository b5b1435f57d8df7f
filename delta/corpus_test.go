package delta

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/codec"
)

// corpusDir finds ../shared/corpus by walking up from the package directory.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		for _, c := range []string{filepath.Join(dir, "shared", "corpus"), filepath.Join(dir, "..", "shared", "corpus")} {
			if fi, err := os.Stat(filepath.Join(c, "pairs")); err == nil && fi.IsDir() {
				return c
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("shared/corpus not found above the package directory")
		}
		dir = parent
	}
}

type pair struct {
	name     string
	old, new []byte
}

func corpusPairs(t testing.TB) []pair {
	dir := filepath.Join(corpusDir(t), "pairs")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ps []pair
	for _, e := range ents {
		o, err := os.ReadFile(filepath.Join(dir, e.Name(), "old.bin"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := os.ReadFile(filepath.Join(dir, e.Name(), "new.bin"))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, pair{e.Name(), o, n})
	}
	return ps
}

func TestCorpusSizes(t *testing.T) {
	if os.Getenv("DELTA_SIZES") == "" {
		t.Skip("set DELTA_SIZES=1 to print patch sizes")
	}
	for _, cn := range []string{"none", "lzma", "zstd"} {
		c, _ := codec.Lookup(cn)
		total := 0
		for _, p := range corpusPairs(t) {
			patch, err := Create(p.old, p.new, &Options{Layout: LayoutModel, Codec: c})
			if err != nil {
				t.Fatal(err)
			}
			total += len(patch)
			t.Logf("%s %-45s %d", cn, p.name, len(patch))
		}
		t.Logf("%s total %d", cn, total)
	}
}
