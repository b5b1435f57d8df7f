//go:build cgo

package main

import (
	"crypto/elliptic"
	"encoding/json"
	"github.com/otakit/otakit/internal/testutil"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/keys"
)

// TestKeyinfoPKCS11 makes a key inside a SoftHSM2 token and reads its
// fingerprints through `ota keyinfo -k pkcs11:…`.
func TestKeyinfoPKCS11(t *testing.T) {
	module := testutil.SoftHSMToken(t, "cli", "4321")
	dir := t.TempDir()
	ctx, err := keys.ConfigurePKCS11(&keys.PKCS11URI{Token: "cli", ModulePath: module}, []byte("4321"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ctx.GenerateECDSAKeyPairWithLabel([]byte("k1"), []byte("release"), elliptic.P384())
	if err != nil {
		t.Fatal(err)
	}
	want, err := keys.Describe(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	ctx.Close()

	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte("4321\n"), 0o600)
	t.Setenv(keys.ModuleEnv, module)
	code, out, stderr := runKeysCLI(t, "keyinfo", "-k", "pkcs11:token=cli;object=release?pin-source="+pin, "--json")
	var got keys.Info
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	if got.Type != keys.ECDSAP384 || !got.Private || got.KeyHash != want.KeyHash || got.SPKISHA256 != want.SPKISHA256 {
		t.Errorf("keyinfo = %+v, want hashes of %+v", got, want)
	}
	// The PIN may also come from OTA_KEY_PASSWORD.
	t.Setenv("OTA_KEY_PASSWORD", "4321")
	if code, _, stderr := runKeysCLI(t, "keyinfo", "-k", "pkcs11:token=cli;object=release"); code != 0 {
		t.Errorf("PIN from the environment: exit %d: %s", code, stderr)
	}
}
