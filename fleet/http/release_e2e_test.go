package http_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/release"
	"github.com/otakit/otakit/version"
)

// TestPublishRealReleaseFolders publishes the folders `ota release` makes
// (release.Build: 1.0.0, then 1.1.0 with a delta from 1.0.0) and checks
// delta selection, and that the manifest a device gets is the file, byte
// for byte, and verifies with the release key.
func TestPublishRealReleaseFolders(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	fw := func(name string, variant byte) string {
		b := make([]byte, 30000)
		for i := range b {
			b[i] = byte(i>>4) ^ byte(i*13)
		}
		copy(b[5000:], bytes.Repeat([]byte{variant}, 200))
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	rels := filepath.Join(dir, "releases")
	var built []*release.Result
	for i, v := range []string{"1.0.0", "1.1.0"} {
		res, err := release.Build(context.Background(), release.Options{Firmware: fw("fw"+v, byte(0x50+i)), Version: version.MustParse(v),
			ImageSigner: key, Releases: rels, HardwareRevisions: []string{"rev-b"}})
		if err != nil {
			t.Fatal(err)
		}
		built = append(built, res)
	}
	e := newEnv(t)
	ctx := context.Background()
	for _, res := range built {
		if _, err := e.admin.Publish(ctx, res.Dir); err != nil {
			t.Fatalf("publish %s: %v", res.Dir, err)
		}
	}
	rel, err := e.store.Release(ctx, "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	delta, ok := rel.BestArtifact("1.0.0")
	if !ok || delta.Kind != fleet.KindDelta || delta.Name != built[1].Summary.DeltaPatches[0].File {
		t.Fatalf("delta artifact = %+v; release %+v", delta, rel.Artifacts)
	}
	full, _ := rel.FullImage()
	if full.Name != built[1].Summary.UpdateImage.File {
		t.Fatalf("full artifact = %+v", full)
	}
	devs := e.devices(2, "real", "", func(i int, d *fleethttp.NewDevice) { d.CurrentVersion = []string{"1.0.0", "0.9.0"}[i] })
	devs[0].version, devs[1].version = "1.0.0", "0.9.0"
	if _, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.1.0", Target: fleet.Target{Group: "real"}}); err != nil {
		t.Fatal(err)
	}
	ks, _ := manifest.NewKeySet(1, key.Public())
	for i, want := range []fleet.Artifact{delta, full} {
		off := devs[i].checkIn(t)
		if !off.Update || off.Artifact.Name != want.Name {
			t.Fatalf("device on %s: offer %+v, want %s", devs[i].version, off.Artifact, want.Name)
		}
		req, _ := http.NewRequest("GET", e.url+off.ManifestURL, nil)
		req.Header.Set("Authorization", "Bearer "+devs[i].c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		onDisk, _ := os.ReadFile(filepath.Join(built[1].Dir, release.ManifestFile))
		if !bytes.Equal(got, onDisk) {
			t.Fatal("served manifest differs from the published file")
		}
		if _, err := manifest.Verify(got, manifest.Policy{Keys: ks}); err != nil {
			t.Fatalf("served manifest does not verify: %v", err)
		}
		var buf bytes.Buffer
		if _, _, err := devs[i].c.Download(ctx, off.Artifact.URL, 0, "", &buf); err != nil {
			t.Fatal(err)
		}
		onDisk, _ = os.ReadFile(filepath.Join(built[1].Dir, want.Name))
		if !bytes.Equal(buf.Bytes(), onDisk) {
			t.Fatalf("%s differs from the release folder", want.Name)
		}
	}
}
