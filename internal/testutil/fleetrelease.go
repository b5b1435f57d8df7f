package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FleetRelease describes a release folder to write with WriteFleetRelease:
// a stand-in for `ota release` output (release.json in the spec's Output
// Schema, manifest.json, the image and delta patches) for fleet tests.
type FleetRelease struct {
	Version string
	Image   []byte            // the full (signed) image
	Deltas  map[string][]byte // fromVersion -> patch bytes
	// Compatibility is copied into manifest.json when set.
	HardwareRevision     []string
	MinBootloaderVersion string
	Extra                map[string][]byte // more files, listed in artifacts[]
}

// WriteFleetRelease writes r into a new folder under t.TempDir and
// returns its path.
func WriteFleetRelease(t testing.TB, r FleetRelease) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteFleetReleaseDir(dir, r); err != nil {
		t.Fatal(err)
	}
	return dir
}

// WriteFleetReleaseDir writes the release folder r into dir.
func WriteFleetReleaseDir(dir string, r FleetRelease) error {
	var werr error
	write := func(name string, b []byte) map[string]any {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			werr = err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			werr = err
		}
		sum := sha256.Sum256(b)
		return map[string]any{"name": name, "size": len(b), "sha256": hex.EncodeToString(sum[:])}
	}
	imgName := fmt.Sprintf("firmware-%s.signed.bin", r.Version)
	img := write(imgName, r.Image)
	artifacts := []map[string]any{img}
	var patches []map[string]any
	var bases []string
	files := map[string]any{}
	froms := make([]string, 0, len(r.Deltas))
	for from := range r.Deltas {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	for _, from := range froms {
		name := fmt.Sprintf("patches/%s-to-%s.delta", from, r.Version)
		a := write(name, r.Deltas[from])
		artifacts = append(artifacts, a)
		patches = append(patches, map[string]any{"fromVersion": from, "file": name, "size": a["size"],
			"savings": 100 - 100*len(r.Deltas[from])/max(len(r.Image), 1)})
		bases = append(bases, from)
		files[from] = map[string]any{"file": name, "size": a["size"], "hash": "sha256:" + a["sha256"].(string)}
	}
	for name, b := range r.Extra {
		artifacts = append(artifacts, write(name, b))
	}
	compat := map[string]any{}
	if len(r.HardwareRevision) > 0 {
		compat["hardwareRevision"] = r.HardwareRevision
	}
	if r.MinBootloaderVersion != "" {
		compat["minBootloaderVersion"] = r.MinBootloaderVersion
	}
	manifest := map[string]any{
		"version": r.Version, "build": 1, "timestamp": "2026-11-24T00:00:00Z", "sequence": 7,
		"expires": "2027-11-24T00:00:00Z",
		"images": []map[string]any{{"slot": 1, "type": "application", "file": imgName, "size": len(r.Image),
			"hash": "sha256:" + img["sha256"].(string), "signature": "MEUCIQ-test-signature"}},
		"compatibility": compat,
		"delta":         map[string]any{"available": len(files) > 0, "baseVersions": bases, "files": files},
		"releaseNotes":  "test release " + r.Version,
		"signatures":    []map[string]any{{"keyId": "test", "sig": "AAAA"}},
	}
	mb, _ := json.MarshalIndent(manifest, "", "  ")
	artifacts = append(artifacts, write("manifest.json", mb))
	summary := map[string]any{
		"updateImage":  map[string]any{"file": imgName, "size": len(r.Image), "hash": img["sha256"], "version": r.Version},
		"deltaPatches": patches,
		"version":      r.Version,
		"manifest":     map[string]any{"file": "manifest.json", "sequence": 7},
		"deployment":   map[string]any{},
		"artifacts":    artifacts,
	}
	sb, _ := json.MarshalIndent(summary, "", "  ")
	write("release.json", sb)
	return werr
}
