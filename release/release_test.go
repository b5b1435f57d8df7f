package release

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/mcuboot"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// firmware returns a deterministic firmware-like binary; variant changes a
// few regions, as a new build of the same application does.
func firmware(size int, variant int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := range b {
		if i%32 < 20 {
			b[i] = byte(i >> 5)
		} else {
			b[i] = byte(rng.UintN(256))
		}
	}
	for v := 0; v < variant; v++ {
		off := (v*7919 + 1000) % (size - 600)
		copy(b[off:], bytes.Repeat([]byte{byte(0xa0 + v)}, 300))
	}
	return b
}

func testKey(t testing.TB) crypto.Signer {
	_, k, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFirmware(t testing.TB, dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFirstRelease(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	aes := bytes.Repeat([]byte{7}, 32)
	o := Options{Firmware: writeFirmware(t, dir, "fw.bin", firmware(40_000, 0)), Version: version.MustParse("1.0.0+1"),
		ImageSigner: key, EncryptKey: aes, Releases: filepath.Join(dir, "rel"), HardwareRevisions: []string{"rev-a"}}
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || res.Sequence != 1 || len(res.Bases) != 0 || res.Dir != filepath.Join(dir, "rel", "1.0.0+1") {
		t.Fatalf("result %+v", res)
	}
	s := res.Summary
	if s.UpdateImage.Encryption != "aes-256-ctr" || s.Deployment == nil || len(s.Artifacts) != 3 {
		t.Fatalf("summary %+v", s)
	}
	// The signed image verifies with MCUboot's rules.
	signed := filepath.Join(res.Dir, s.UpdateImage.SignedImage)
	f, _ := os.Open(signed)
	st, _ := f.Stat()
	img, err := mcuboot.Parse(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.Verify(&mcuboot.VerifyOptions{Keys: []crypto.PublicKey{key.Public()}}); err != nil {
		t.Fatalf("signed image: %v", err)
	}
	f.Close()
	// The package decrypts to the signed image.
	out := filepath.Join(dir, "unpacked.bin")
	if _, err := update.UnpackFile(out, filepath.Join(res.Dir, s.UpdateImage.File), aes); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(signed)
	if !bytes.Equal(a, b) {
		t.Fatal("package does not hold the signed image")
	}
	// The manifest verifies, files included, and records the image signature.
	ks, _ := manifest.NewKeySet(1, key.Public())
	data, _ := os.ReadFile(filepath.Join(res.Dir, ManifestFile))
	m, err := manifest.Verify(data, manifest.Policy{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFiles(res.Dir); err != nil {
		t.Fatal(err)
	}
	if m.Version != "1.0.0" || m.Build != 1 || !strings.HasPrefix(m.Images[0].Signature, "ed25519:") {
		t.Fatalf("manifest %+v", m)
	}
}

func TestIdempotentAndNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	fw := writeFirmware(t, dir, "fw.bin", firmware(20_000, 0))
	o := Options{Firmware: fw, Version: version.MustParse("1.0.0"), ImageSigner: key, Releases: filepath.Join(dir, "rel")}
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, o.Releases)
	res, err := Build(context.Background(), o)
	if err != nil || !res.UpToDate {
		t.Fatalf("re-run: %+v, %v", res, err)
	}
	if after := snapshot(t, o.Releases); after != before {
		t.Fatal("re-run changed the release")
	}
	o.Firmware = writeFirmware(t, dir, "fw2.bin", firmware(20_000, 1))
	if _, err := Build(context.Background(), o); !errors.Is(err, ErrExists) {
		t.Fatalf("other firmware, same version: %v", err)
	}
	if after := snapshot(t, o.Releases); after != before {
		t.Fatal("refused run changed the release")
	}
}

// TestFailureLeavesNothing makes the run fail late (the image does not fit
// the slot) and early (missing firmware): no release folder and no
// temporary folder may remain.
func TestFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "rel")
	os.MkdirAll(rel, 0o755)
	o := Options{Firmware: writeFirmware(t, dir, "fw.bin", firmware(20_000, 0)), Version: version.MustParse("1.0.0"),
		ImageSigner: testKey(t), Releases: rel, SlotSize: 4096}
	if _, err := Build(context.Background(), o); err == nil {
		t.Fatal("oversized image accepted")
	}
	o.SlotSize, o.Firmware = 0, filepath.Join(dir, "missing.bin")
	if _, err := Build(context.Background(), o); err == nil {
		t.Fatal("missing firmware accepted")
	}
	if entries, _ := os.ReadDir(rel); len(entries) != 0 {
		t.Fatalf("failed runs left %v", entries)
	}
}

func TestSequenceAcrossReleases(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	rel := filepath.Join(dir, "rel")
	for i, v := range []string{"1.0.0", "1.0.1", "1.1.0"} {
		res, err := Build(context.Background(), Options{Firmware: writeFirmware(t, dir, v+".bin", firmware(10_000, i)), Version: version.MustParse(v),
			ImageSigner: key, Releases: rel, DeltasFrom: -1, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sequence != uint64(i+1) {
			t.Fatalf("%s: sequence %d", v, res.Sequence)
		}
	}
}

// snapshot lists every file under dir with its contents' length and bytes.
func snapshot(t *testing.T, dir string) string {
	var sb strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		sb.WriteString(p)
		if !info.IsDir() {
			b, _ := os.ReadFile(p)
			sb.Write(b)
		}
		return nil
	})
	return sb.String()
}

func TestCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "rel")
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Firmware: writeFirmware(t, dir, "fw.bin", firmware(20_000, 0)), Version: version.MustParse("1.0.0"),
		ImageSigner: testKey(t), Releases: rel,
		Progress: func(s Step) {
			if s.Index == 2 {
				cancel()
			}
		}}
	if _, err := Build(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if entries, _ := os.ReadDir(rel); len(entries) != 0 {
		t.Fatalf("cancelled run left %v", entries)
	}
}

// TestDeltasFrom builds four releases; the last gets deltas from the two
// most recent earlier ones only, each rebuilding the new signed image.
func TestDeltasFrom(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	rel := filepath.Join(dir, "rel")
	vs := []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0"}
	var res *Result
	for i, v := range vs {
		var err error
		res, err = Build(context.Background(), Options{Firmware: writeFirmware(t, dir, v+".bin", firmware(30_000, i)),
			Version: version.MustParse(v), ImageSigner: key, Releases: rel, DeltasFrom: 2})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := res.Summary
	if len(s.DeltaPatches) != 2 || s.DeltaPatches[0].FromVersion != "1.2.0" || s.DeltaPatches[1].FromVersion != "1.1.0" {
		t.Fatalf("deltas %+v", s.DeltaPatches)
	}
	newImg, _ := os.ReadFile(filepath.Join(res.Dir, s.UpdateImage.SignedImage))
	for _, d := range s.DeltaPatches {
		if d.Savings <= 50 || d.SavingsBytes != d.FullSize-d.Size {
			t.Errorf("%s: savings %.2f%% (%d bytes)", d.FromVersion, d.Savings, d.SavingsBytes)
		}
		old, _ := os.ReadFile(filepath.Join(rel, d.FromVersion, "app-"+d.FromVersion+".signed.bin"))
		patch, _ := os.ReadFile(filepath.Join(res.Dir, d.PatchFile))
		pt, err := delta.Parse(patch)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := pt.Apply(old, &got); err != nil || !bytes.Equal(got.Bytes(), newImg) {
			t.Fatalf("%s: patch does not rebuild the new image: %v", d.FromVersion, err)
		}
	}
	// A damaged base release is refused rather than diffed against.
	base := filepath.Join(rel, "1.2.0", "app-1.2.0.signed.bin")
	b, _ := os.ReadFile(base)
	b[100] ^= 1
	os.WriteFile(base, b, 0o644)
	if _, err := Build(context.Background(), Options{Firmware: writeFirmware(t, dir, "3.bin", firmware(30_000, 9)),
		Version: version.MustParse("3.0.0"), ImageSigner: key, Releases: rel}); err == nil || !strings.Contains(err.Error(), "damaged base") {
		t.Fatalf("damaged base: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rel, "3.0.0")); !os.IsNotExist(err) {
		t.Fatal("failed run left a release")
	}
}
