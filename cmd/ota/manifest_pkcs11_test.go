//go:build cgo

package main

import (
	"crypto/elliptic"
	"github.com/otakit/otakit/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/keys"
)

// manifestSoftHSM initialises a SoftHSM2 token "ota-manifest" (PIN 1234)
// holding a P-256 key "manifest-key" generated inside the token, and
// returns its pkcs11: URI and the public key's PEM file.
func manifestSoftHSM(t *testing.T) (string, string) {
	t.Helper()
	module := testutil.SoftHSMToken(t, "ota-manifest", "1234")
	dir := t.TempDir()
	ctx, err := keys.ConfigurePKCS11(&keys.PKCS11URI{Token: "ota-manifest", ModulePath: module}, []byte("1234"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ctx.GenerateECDSAKeyPairWithLabel([]byte{0x07}, []byte("manifest-key"), elliptic.P256())
	if err != nil {
		ctx.Close()
		t.Fatal(err)
	}
	pem, err := keys.PublicPEM(k.Public())
	ctx.Close()
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "manifest-key.pub.pem")
	os.WriteFile(pub, pem, 0o644)
	return "pkcs11:token=ota-manifest;object=manifest-key?pin-value=1234&module-path=" + module, pub
}

// TestManifestPKCS11 signs a manifest and a root with a key that lives in
// SoftHSM2 and verifies them with its public half.
func TestManifestPKCS11(t *testing.T) {
	uri, pub := manifestSoftHSM(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("app.bin"), testMCUbootImage("3.1.0+9", []byte("firmware")), 0o644)
	runOTAExpect(t, 0, "manifest", "generate", "--image", p("app.bin"), "--sequence", "1", "--key", uri, "--output", p("manifest.json"))
	out := runOTAExpect(t, 0, "manifest", "verify", "--key", pub, p("manifest.json"))
	if !strings.Contains(out, "signature ok") {
		t.Fatal(out)
	}
	m, _ := os.ReadFile(p("manifest.json"))
	if !strings.Contains(string(m), `"ecdsa-p256-sha256"`) {
		t.Fatalf("algorithm not recorded:\n%s", m)
	}
	runOTAExpect(t, 0, "keys", "rotate", "--new-key", uri, "--output", p("root.json"))
	runOTAExpect(t, 0, "manifest", "verify", "--root", p("root.json"), p("manifest.json"))
}

// TestReleasePKCS11 runs the release pipeline with the image and manifest
// signed inside SoftHSM2.
func TestReleasePKCS11(t *testing.T) {
	uri, pub := manifestSoftHSM(t)
	dir := t.TempDir()
	p := func(n ...string) string { return filepath.Join(append([]string{dir}, n...)...) }
	os.WriteFile(p("fw.bin"), releaseFirmware(1), 0o644)
	runOTAExpect(t, 0, "release", "--firmware", p("fw.bin"), "--version", "2.0.0+1", "--key", uri, "--releases", p("rel"))
	runOTAExpect(t, 0, "verify", "-k", pub, p("rel", "2.0.0+1", "app-2.0.0+1.signed.bin"))
	runOTAExpect(t, 0, "manifest", "verify", "--key", pub, p("rel", "2.0.0+1", "manifest.json"))
}
