package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// DevicesShared is the devices tests' copy of SharedDir: it walks up from
// the working directory to the first "shared/testdata" and returns the
// "shared" directory, failing the test when there is none.
func DevicesShared(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared")
		if fi, err := os.Stat(filepath.Join(cand, "testdata")); err == nil && fi.IsDir() {
			return cand
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no shared/testdata directory above %s", wd)
		}
	}
}
