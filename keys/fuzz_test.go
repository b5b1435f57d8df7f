package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParsePrivate(f *testing.F) {
	dir := vectorKeys(f)
	for _, typ := range Types() {
		for _, suffix := range []string{".pem", ".pub.pem"} {
			data, err := os.ReadFile(filepath.Join(dir, string(typ)+suffix))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	k, _ := LoadPrivate(filepath.Join(dir, "ed25519.pem"), nil)
	enc, err := MarshalPrivatePEM(k, []byte("pw"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		priv, err := ParsePrivate(data, []byte("pw"))
		if err == nil {
			if _, err := TypeOf(priv); err != nil {
				t.Fatalf("parsed an unsupported key: %v", err)
			}
			pub, err := PublicOf(priv)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WritePublic(&b, pub, LangC); err != nil {
				t.Fatal(err)
			}
		}
		if pub, err := ParsePublic(data); err == nil {
			if _, err := PublicBytes(pub); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=ota;object=fw?pin-value=1234",
		"pkcs11:token=The%20Token;id=%01%02;type=private?pin-source=file:/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so",
		"pkcs11:serial=abc;slot-id=3;object=k;x-vendor=1",
		"pkcs11:object=a;object=b",
		"pkcs11:token=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePKCS11URI(s)
		if err == nil && u.Object == "" && len(u.ID) == 0 {
			t.Fatal("accepted a URI naming no key")
		}
		if err != nil && !errors.Is(err, ErrPKCS11URI) {
			t.Fatalf("error not wrapping ErrPKCS11URI: %v", err)
		}
	})
}

func TestParsePKCS11URI(t *testing.T) {
	u, err := ParsePKCS11URI("pkcs11:token=The%20Token;id=%01%ff;type=private?pin-source=file:/run/pin&module-path=/m.so")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "The Token" || !bytes.Equal(u.ID, []byte{1, 0xff}) || u.PinSource != "file:/run/pin" || u.ModulePath != "/m.so" {
		t.Errorf("parsed %+v", u)
	}
	u, err = ParsePKCS11URI("PKCS11:slot-id=2;object=k")
	if err != nil || u.SlotID == nil || *u.SlotID != 2 {
		t.Errorf("slot-id: %+v, %v", u, err)
	}
	for _, bad := range []string{
		"pkcs11:", "pkcs11:token=a", "file:/x", "pkcs11:object=a;object=b", "pkcs11:object=a;colour=red",
		"pkcs11:object=a?pin-value=1&pin-source=/p", "pkcs11:object=a;type=public", "pkcs11:object=a;slot-id=x",
		"pkcs11:object=%zz", "pkcs11:object", "pkcs11:object=a?foo=1",
	} {
		if _, err := ParsePKCS11URI(bad); !errors.Is(err, ErrPKCS11URI) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestOpenSignerFile(t *testing.T) {
	dir := vectorKeys(t)
	s, err := OpenSigner(filepath.Join(dir, "ecdsa-p384.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := TypeOf(s); typ != ECDSAP384 {
		t.Errorf("type %v", typ)
	}
	if err := CloseSigner(s); err != nil {
		t.Error(err)
	}
	if _, err := OpenSigner(filepath.Join(dir, "x25519.pem"), nil); !errors.Is(err, ErrNotSigner) {
		t.Errorf("x25519: err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.pem"), nil); err == nil {
		t.Error("missing file: no error")
	}
}
