package manifest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func edKey() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }

func makeRoot(t *testing.T, ver uint64, k int, pubsOf []crypto.Signer, signers ...crypto.Signer) []byte {
	t.Helper()
	var pubs []crypto.PublicKey
	for _, s := range pubsOf {
		pubs = append(pubs, s.Public())
	}
	r, err := NewRoot(ver, k, time.Now().Add(365*24*time.Hour), pubs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(signers...); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRootChain(t *testing.T) {
	a, b, c, d := edKey(), edKey(), genKeys(t)[AlgECDSAP256], edKey()
	v1 := makeRoot(t, 1, 1, []crypto.Signer{a}, a)
	v2r, err := Rotate(v1, []crypto.Signer{a}, []crypto.Signer{b}, 1, time.Now().Add(time.Hour*24*365))
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := v2r.Marshal()
	v3r, err := Rotate(v2, []crypto.Signer{b}, []crypto.Signer{c, d}, 2, time.Now().Add(time.Hour*24*365))
	if err != nil {
		t.Fatal(err)
	}
	v3, _ := v3r.Marshal()

	// A device that holds only v1 accepts a manifest signed by the v3 keys
	// through the chain.
	final, err := VerifyRootChain(v1, [][]byte{v2, v3}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if final.Version != 3 || final.Threshold != 2 {
		t.Fatalf("final root %+v", final)
	}
	ks, err := final.KeySet()
	if err != nil {
		t.Fatal(err)
	}
	_, o := release(t)
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	if _, err := Verify(signed(t, o, c, d), Policy{Keys: ks, Now: now}); err != nil {
		t.Fatalf("manifest by the new keys: %v", err)
	}
	if _, err := Verify(signed(t, o, a), Policy{Keys: ks, Now: now}); !errors.Is(err, ErrSignature) {
		t.Errorf("manifest by the retired key after rotation: %v", err)
	}
	if _, err := Verify(signed(t, o, c), Policy{Keys: ks, Now: now}); !errors.Is(err, ErrThreshold) {
		t.Errorf("manifest by one of two required new keys: %v", err)
	}
	// Without the chain, v1 alone does not trust the new keys.
	v1only, _ := VerifyRootChain(v1, nil, time.Time{})
	ks1, _ := v1only.KeySet()
	if _, err := Verify(signed(t, o, c, d), Policy{Keys: ks1, Now: now}); !errors.Is(err, ErrSignature) {
		t.Errorf("new keys against the old root alone: %v", err)
	}

	tests := []struct {
		name    string
		trusted []byte
		chain   [][]byte
		want    error
	}{
		{"new root not signed by old keys", v1, [][]byte{makeRoot(t, 2, 1, []crypto.Signer{b}, b)}, ErrRoot},
		{"new root not signed by its own keys", v1, [][]byte{makeRoot(t, 2, 1, []crypto.Signer{b}, a)}, ErrRoot},
		{"attacker key signs itself in", v1, [][]byte{makeRoot(t, 2, 1, []crypto.Signer{d}, d)}, ErrRoot},
		{"skipped version", v1, [][]byte{v3}, ErrRootVersion},
		{"same version again", v1, [][]byte{v1}, ErrRootVersion},
		{"out of order", v1, [][]byte{v3, v2}, ErrRootVersion},
		{"v3 needs 2 new signatures", v1, [][]byte{v2, makeRoot(t, 3, 2, []crypto.Signer{c, d}, b, c)}, ErrRoot},
		{"trusted root not self-signed", makeRoot(t, 1, 1, []crypto.Signer{a}, b), nil, ErrRoot},
		{"expired final root", v1, [][]byte{v2, func() []byte {
			r, _ := NewRoot(3, 1, time.Now().Add(-time.Hour), c.Public())
			r.Sign(b, c)
			x, _ := r.Marshal()
			return x
		}()}, ErrExpired},
	}
	for _, tt := range tests {
		if _, err := VerifyRootChain(tt.trusted, tt.chain, time.Time{}); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}

	// Tampering with a signed root (swapping in an attacker key) is caught.
	r2, _ := ParseRoot(v2)
	r2.Keys = makeRootKeys(t, d)
	tampered, _ := r2.Marshal()
	if _, err := VerifyRootChain(v1, [][]byte{tampered}, time.Time{}); !errors.Is(err, ErrRoot) {
		t.Errorf("tampered root: %v", err)
	}
	// Rotate refuses old signers that do not meet the old threshold.
	if _, err := Rotate(v2, []crypto.Signer{a}, []crypto.Signer{c}, 1, time.Now().Add(time.Hour)); !errors.Is(err, ErrRoot) {
		t.Errorf("rotate with the wrong old key: %v", err)
	}
}

func makeRootKeys(t *testing.T, s crypto.Signer) []RootKey {
	r, err := NewRoot(1, 1, time.Now(), s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return r.Keys
}
