package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/release"
	"github.com/otakit/otakit/update"
)

// releaseFirmware returns a deterministic 64 KiB firmware-like binary;
// edits > 0 changes a few regions, as a new build does.
func releaseFirmware(edits int) []byte {
	rng := rand.New(rand.NewPCG(4, 2))
	b := make([]byte, 64<<10)
	for i := range b {
		if i%64 < 48 {
			b[i] = byte(i >> 6)
		} else {
			b[i] = byte(rng.UintN(256))
		}
	}
	for e := 0; e < edits; e++ {
		copy(b[(e*12289+777)%(len(b)-200):], bytes.Repeat([]byte{0xc3, byte(e)}, 100))
	}
	return b
}

// TestReleaseEndToEnd is the acceptance test, through the CLI: two
// firmware versions become two releases; the 1.1.0 → 1.2.0 delta rebuilds
// the exact signed 1.2.0 image; the packages decrypt and their digests
// check; the manifest verifies; tampering with any byte of a package, the
// manifest or the patch is detected.
func TestReleaseEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := func(parts ...string) string { return filepath.Join(append([]string{dir}, parts...)...) }
	key, pub := writeTestKey(t, dir, "signing", keys.ECDSAP256)
	os.WriteFile(p("aes.key"), []byte("000102030405060708090a0b0c0d0e0f\n"), 0o600)
	os.WriteFile(p("v1.bin"), releaseFirmware(0), 0o644)
	os.WriteFile(p("v2.bin"), releaseFirmware(5), 0o644)

	common := []string{"--key", key, "--encrypt-key", p("aes.key"), "--releases", p("rel"), "--hardware", "rev-a", "--min-bootloader", "1.0.0"}
	runOTAExpect(t, 0, append([]string{"release", "--firmware", p("v1.bin"), "--version", "1.1.0+7"}, common...)...)
	out := runOTAExpect(t, 0, append([]string{"release", "--firmware", p("v2.bin"), "--version", "1.2.0+456", "--deltas-from", "3"}, common...)...)
	if !strings.Contains(out, "[1/6] sign MCUboot image 1.2.0+456") || !strings.Contains(out, "delta: ") {
		t.Errorf("release output:\n%s", out)
	}
	r2 := p("rel", "1.2.0+456")
	sum, err := release.ReadSummary(r2)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.DeltaPatches) != 1 || sum.DeltaPatches[0].FromVersion != "1.1.0+7" || sum.DeltaPatches[0].Savings < 50 {
		t.Fatalf("delta patches: %+v", sum.DeltaPatches)
	}
	var raw map[string]any
	b, _ := os.ReadFile(filepath.Join(r2, "release.json"))
	json.Unmarshal(b, &raw)
	for _, k := range []string{"updateImage", "deltaPatches", "manifest", "deployment", "artifacts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("release.json lacks %q", k)
		}
	}
	d := sum.DeltaPatches[0]
	signed1 := p("rel", "1.1.0+7", "app-1.1.0+7.signed.bin")
	signed2 := filepath.Join(r2, sum.UpdateImage.SignedImage)

	// The signed image verifies as MCUboot's imgtool would.
	runOTAExpect(t, 0, "verify", "-k", pub, signed2)
	// Packages decrypt, digests check, contents are the signed image and the patch.
	runOTAExpect(t, 0, "package", "unpack", filepath.Join(r2, sum.UpdateImage.File), p("full.bin"), "--key-file", p("aes.key"))
	runOTAExpect(t, 0, "package", "unpack", filepath.Join(r2, d.File), p("patch.bin"), "--key-file", p("aes.key"))
	mustEqualFiles(t, p("full.bin"), signed2)
	mustEqualFiles(t, p("patch.bin"), filepath.Join(r2, d.PatchFile))
	// The patch rebuilds the exact signed 1.2.0 image from the signed 1.1.0 one.
	old, _ := os.ReadFile(signed1)
	want, _ := os.ReadFile(signed2)
	patch, _ := os.ReadFile(p("patch.bin"))
	if got, err := applyPatch(old, patch); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("delta does not rebuild the signed 1.2.0 image: %v", err)
	}
	runOTAExpect(t, 0, "delta", "apply", signed1, p("patch.bin"), p("rebuilt.bin"))
	mustEqualFiles(t, p("rebuilt.bin"), signed2)
	// The manifest verifies, with its files, for a device on 1.1.0 (offered the delta).
	os.WriteFile(p("device.json"), []byte(`{"hardwareRevision":"rev-a","bootloaderVersion":"1.0.0","currentVersion":"1.1.0+7"}`), 0o644)
	out = runOTAExpect(t, 0, "manifest", "verify", "--key", pub, filepath.Join(r2, "manifest.json"), "--device", p("device.json"), "--last-sequence", "1")
	if !strings.Contains(out, "delta from 1.1.0") || !strings.Contains(out, "sequence 2") {
		t.Errorf("manifest verify:\n%s", out)
	}
	// Re-running is a no-op.
	before := dirDigest(t, p("rel"))
	out = runOTAExpect(t, 0, append([]string{"release", "--firmware", p("v2.bin"), "--version", "1.2.0+456"}, common...)...)
	if !strings.Contains(out, "up to date") || dirDigest(t, p("rel")) != before {
		t.Errorf("re-run changed the release:\n%s", out)
	}

	// Tampering. Manifest: every byte.
	m, _ := os.ReadFile(filepath.Join(r2, "manifest.json"))
	ks, _ := manifest.NewKeySet(1, mustLoadPublic(t, pub))
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x20
		if _, err := manifest.Verify(bad, manifest.Policy{Keys: ks}); err == nil {
			t.Fatalf("manifest byte %d flipped unnoticed: %q -> %q", i, m[max(0, i-40):i+20], bad[max(0, i-40):i+20])
		}
	}
	// Packages: the manifest's SHA-256 of the file catches any change (one
	// checked through the CLI below); the package's own checks catch every
	// header byte and a spread of payload bytes without the manifest.
	aes, _ := update.LoadKey(p("aes.key"))
	for _, name := range []string{sum.UpdateImage.File, d.File} {
		pkg, _ := os.ReadFile(filepath.Join(r2, name))
		var positions []int
		for i := 0; i < update.HeaderSize; i++ {
			positions = append(positions, i)
		}
		for i := update.HeaderSize; i < len(pkg); i += max(1, (len(pkg)-update.HeaderSize)/100) {
			positions = append(positions, i)
		}
		positions = append(positions, len(pkg)-1)
		for _, i := range positions {
			bad := bytes.Clone(pkg)
			bad[i] ^= 0x01
			r, err := update.NewReader(bytes.NewReader(bad), aes)
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err == nil {
				t.Fatalf("%s: byte %d flipped unnoticed", name, i)
			}
		}
	}
	pkgPath := filepath.Join(r2, d.File)
	good, _ := os.ReadFile(pkgPath)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x01
	os.WriteFile(pkgPath, bad, 0o644)
	if out := runOTAExpect(t, 1, "manifest", "verify", "--key", pub, filepath.Join(r2, "manifest.json")); !strings.Contains(out, "hash mismatch") {
		t.Errorf("tampered package: %s", out)
	}
	os.WriteFile(pkgPath, good, 0o644)
	// Patch: every byte changes its SHA-256, which the signed manifest
	// records (delta.files[].patchHash) and the device checks after
	// unpacking; and the patch format's own checks (target SHA-256, block
	// CRCs) refuse a sample of flips in the instruction stream.
	mf, err := manifest.Verify(m, manifest.Policy{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	signedPatchHash := mf.Delta.Files["1.1.0"].PatchHash
	if signedPatchHash != "sha256:"+d.PatchSHA256 {
		t.Fatalf("manifest patchHash %s, release.json %s", signedPatchHash, d.PatchSHA256)
	}
	for i := range patch {
		bad := bytes.Clone(patch)
		bad[i] ^= 0x01
		if "sha256:"+sha256Hex(bad) == signedPatchHash {
			t.Fatalf("patch byte %d flipped unnoticed", i)
		}
	}
	// Flip bytes of the blocks' coded streams, skipping their first 13
	// bytes: with an lzma codec those are its own header (properties,
	// dictionary size, length), where a flip may legitimately change
	// nothing.
	pt, err := delta.Parse(patch)
	if err != nil {
		t.Fatal(err)
	}
	bodyStart := len(patch)
	for _, b := range pt.Blocks {
		bodyStart -= int(b.PackedSize)
	}
	hdrLen := bodyStart + 13
	for i := hdrLen; i < len(patch); i += max(1, (len(patch)-hdrLen)/40) {
		bad := bytes.Clone(patch)
		bad[i] ^= 0x01
		if got, err := applyPatch(old, bad); err == nil && bytes.Equal(got, want) {
			t.Fatalf("patch byte %d flipped: applied cleanly to the right image", i)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func applyPatch(old, patch []byte) ([]byte, error) {
	pt, err := delta.Parse(patch)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := pt.Apply(old, &out); err != nil {
		return nil, err
	}
	if out.Len() == 0 && len(old) > 0 {
		return nil, errors.New("empty output")
	}
	return out.Bytes(), nil
}

func mustEqualFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%v, %v)", a, b, err1, err2)
	}
}

func mustLoadPublic(t *testing.T, path string) any {
	t.Helper()
	k, err := keys.LoadPublic(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func dirDigest(t *testing.T, dir string) string {
	var sb strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		sb.WriteString(p)
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			sb.Write(b)
		}
		return nil
	})
	return sb.String()
}
