package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusPair is one old/new firmware pair of shared/corpus/pairs.
type CorpusPair struct {
	Name     string
	Old, New string // file paths
}

// CorpusPairs lists the pairs of shared/corpus/pairs, failing the test if
// there are none: the corpus is ground truth for the delta tests.
func CorpusPairs(t testing.TB) []CorpusPair {
	t.Helper()
	root := filepath.Join(SharedDir(t), "corpus", "pairs")
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []CorpusPair
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(root, e.Name())
		pairs = append(pairs, CorpusPair{Name: e.Name(), Old: filepath.Join(d, "old.bin"), New: filepath.Join(d, "new.bin")})
	}
	if len(pairs) == 0 {
		t.Fatalf("testutil: no corpus pairs in %s", root)
	}
	return pairs
}
