//go:build cgo

package main

import (
	"crypto"
	"crypto/elliptic"
	"github.com/otakit/otakit/internal/testutil"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/keys"
)

// TestSignPKCS11 signs images with ECDSA P-256 and RSA-2048 keys that live
// in a SoftHSM2 token (ota sign -k pkcs11:…) and verifies them with the
// exported public keys.
func TestSignPKCS11(t *testing.T) {
	module := testutil.SoftHSMToken(t, "fw", "4321")
	dir := t.TempDir()
	ctx, err := keys.ConfigurePKCS11(&keys.PKCS11URI{Token: "fw", ModulePath: module}, []byte("4321"))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ctx.GenerateECDSAKeyPairWithLabel([]byte("e1"), []byte("ec"), elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := ctx.GenerateRSAKeyPairWithLabel([]byte("r1"), []byte("rsa"), 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubs := map[string]crypto.PublicKey{"ec": ec.Public(), "rsa": rsaKey.Public()}
	ctx.Close()

	shared, _ := loadVectors(t)
	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte("4321\n"), 0o600)
	t.Setenv(keys.ModuleEnv, module)
	for label, pub := range pubs {
		t.Run(label, func(t *testing.T) {
			pubPEM, err := keys.PublicPEM(pub)
			if err != nil {
				t.Fatal(err)
			}
			pubFile := filepath.Join(dir, label+".pub.pem")
			os.WriteFile(pubFile, pubPEM, 0o644)
			img := filepath.Join(dir, label+".bin")
			code, _, stderr := runOTA(t, "sign", "-k", "pkcs11:token=fw;object="+label+"?pin-source="+pin,
				"-v", "1.0.0", "-H", "0x200", "--pad-header", "-S", "0x60000", "--confirm",
				filepath.Join(shared, "inputs", "app.bin"), img)
			if code != 0 {
				t.Fatalf("sign with token key: exit %d: %s", code, stderr)
			}
			if code, stdout, stderr := runOTA(t, "verify", "-k", pubFile, img); code != 0 {
				t.Fatalf("verify: exit %d: %s%s", code, stdout, stderr)
			}
		})
	}
}
