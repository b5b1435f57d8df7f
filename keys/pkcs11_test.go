//go:build cgo

package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"github.com/otakit/otakit/internal/testutil"
	"os"
	"path/filepath"
	"testing"

	"github.com/ThalesGroup/crypto11"
)

// softHSM initialises a SoftHSM2 token "ota-test" (user PIN 1234) in a
// temporary directory and returns the module path.
func softHSM(t *testing.T) string {
	t.Helper()
	return testutil.SoftHSMToken(t, "ota-test", "1234")
}

func TestPKCS11SoftHSM(t *testing.T) {
	module := softHSM(t)
	ctx, err := ConfigurePKCS11(&PKCS11URI{Token: "ota-test", ModulePath: module}, []byte("1234"))
	if err != nil {
		t.Fatal(err)
	}
	open := true // crypto11's Close must run exactly once
	defer func() {
		if open {
			ctx.Close()
		}
	}()
	ecKey, err := ctx.GenerateECDSAKeyPairWithLabel([]byte{0x01}, []byte("fw-ec"), elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := ctx.GenerateRSAKeyPairWithLabel([]byte{0x02}, []byte("fw-rsa"), 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The private keys are sensitive and cannot be exported.
	for _, k := range []crypto11.Signer{ecKey, rsaKey} {
		ext, err := ctx.GetAttribute(k, crypto11.CkaExtractable)
		if err != nil {
			t.Fatal(err)
		}
		sens, err := ctx.GetAttribute(k, crypto11.CkaSensitive)
		if err != nil {
			t.Fatal(err)
		}
		if len(ext.Value) != 1 || ext.Value[0] != 0 || len(sens.Value) != 1 || sens.Value[0] != 1 {
			t.Errorf("key attributes: extractable=%x sensitive=%x", ext.Value, sens.Value)
		}
		attr := crypto11.CkaValue
		if _, ok := k.Public().(*rsa.PublicKey); ok {
			attr = crypto11.CkaPrivateExponent
		}
		if a, err := ctx.GetAttribute(k, attr); err == nil && len(a.Value) > 0 {
			t.Errorf("private key material readable from the token: %d bytes", len(a.Value))
		}
	}

	digest := sha256.Sum256([]byte("firmware image"))
	t.Setenv(ModuleEnv, module)
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)

	for _, tc := range []struct {
		uri  string
		pw   []byte
		opts crypto.SignerOpts
	}{
		{"pkcs11:token=ota-test;object=fw-ec?pin-value=1234&module-path=" + module, nil, crypto.SHA256},
		{"pkcs11:token=ota-test;id=%01", []byte("1234"), crypto.SHA256}, // module from the environment, PIN as password
		{"pkcs11:token=ota-test;object=fw-rsa;type=private?pin-source=" + pinFile, nil,
			&rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}},
	} {
		s, err := OpenSigner(tc.uri, tc.pw)
		if err != nil {
			t.Fatalf("%s: %v", tc.uri, err)
		}
		sig, err := s.Sign(rand.Reader, digest[:], tc.opts)
		if err != nil {
			t.Fatalf("%s: sign: %v", tc.uri, err)
		}
		switch pub := s.Public().(type) {
		case *ecdsa.PublicKey:
			if !ecdsa.VerifyASN1(pub, digest[:], sig) {
				t.Errorf("%s: ECDSA signature does not verify", tc.uri)
			}
		case *rsa.PublicKey:
			if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, tc.opts.(*rsa.PSSOptions)); err != nil {
				t.Errorf("%s: RSA-PSS: %v", tc.uri, err)
			}
		default:
			t.Errorf("%s: public key %T", tc.uri, pub)
		}
		if typ, err := TypeOf(s); err != nil || (typ != ECDSAP256 && typ != RSA2048) {
			t.Errorf("TypeOf(token key) = %v, %v", typ, err)
		}
		if err := CloseSigner(s); err != nil {
			t.Errorf("close: %v", err)
		}
	}

	// A logged-in context would let a wrong PIN through (PKCS#11 login
	// state is per process), so close it before the failure cases.
	open = false
	if err := ctx.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ uri, why string }{
		{"pkcs11:token=ota-test;object=nope?pin-value=1234", "missing key"},
		{"pkcs11:token=ota-test;object=fw-ec?pin-value=0000", "wrong PIN"},
		{"pkcs11:token=other;object=fw-ec?pin-value=1234", "missing token"},
		{"pkcs11:token=ota-test;object=fw-ec", "no PIN"},
	} {
		if s, err := OpenSigner(tc.uri, nil); err == nil {
			CloseSigner(s)
			t.Errorf("%s (%s): no error", tc.uri, tc.why)
		} else if tc.why == "missing key" && !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("%s: err = %v, want ErrKeyNotFound", tc.uri, err)
		}
	}
	t.Setenv(ModuleEnv, "")
	if _, err := OpenSigner("pkcs11:token=ota-test;object=fw-ec?pin-value=1234", nil); err == nil {
		t.Error("no module: no error")
	}
}
