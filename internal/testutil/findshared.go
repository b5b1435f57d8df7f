// Package testutil holds helpers shared by otakit's tests.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// FindShared returns the shared/ directory (test vectors and the delta corpus)
// by walking up from the test's working directory, so tests work both in
// /work/main (shared/ beside the repo) and in CI (repo cloned beside shared/).
// It fails the test if there is none.
func FindShared(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "shared")
		if st, err := os.Stat(filepath.Join(cand, "corpus")); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testutil: no shared/corpus directory above the working directory")
		}
		dir = parent
	}
}

// CorpusPair is one old/new firmware pair of shared/corpus/pairs.
type CorpusPair struct {
	Name     string
	Old, New string // file paths
}

// CorpusPairs lists the pairs of shared/corpus/pairs, failing the test if
// there are none.
func CorpusPairs(t testing.TB) []CorpusPair {
	t.Helper()
	root := filepath.Join(FindShared(t), "corpus", "pairs")
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
