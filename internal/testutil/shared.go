// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the project's shared directory (the one holding
// testdata/ with the reference vectors). It walks up from the working
// directory looking for a "shared/testdata" directory: in /work the repo is
// /work/main and the vectors are in /work/shared; a CI clone has shared/
// beside it. It fails the test loudly when there is none, because the
// vectors are ground truth that must not be skipped.
func SharedDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testutil.SharedDir: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared")
		if fi, err := os.Stat(filepath.Join(cand, "testdata")); err == nil && fi.IsDir() {
			return cand
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Fatalf("testutil.SharedDir: no shared/testdata directory above %s; the reference vectors are required (clone the shared directory beside the repository)", wd)
	return ""
}

// SharedTestdata returns SharedDir's testdata directory, where the reference
// vectors are.
func SharedTestdata(t testing.TB) string {
	t.Helper()
	return filepath.Join(SharedDir(t), "testdata")
}

// DevicesShared is SharedDir under its earlier name.
//
// Deprecated: use SharedDir.
func DevicesShared(t testing.TB) string {
	t.Helper()
	return SharedDir(t)
}
