package manifest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
)

// Signature algorithm names, as they appear in signatures[].algorithm.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256-sha256"
	AlgECDSAP384 = "ecdsa-p384-sha384"
	AlgRSAPSS    = "rsa-pss-sha256"
)

// KeyID returns the identifier of a public key: the lowercase hex SHA-256
// of its PKIX (SubjectPublicKeyInfo) DER encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKey, err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Algorithm returns the signature algorithm used with pub.
func Algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return AlgECDSAP256, nil
		case elliptic.P384():
			return AlgECDSAP384, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s", ErrKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("%w: RSA key of %d bits (need 2048 or more)", ErrKey, k.N.BitLen())
		}
		return AlgRSAPSS, nil
	}
	return "", fmt.Errorf("%w: %T cannot sign manifests", ErrKey, pub)
}

// signBytes signs msg with s using the algorithm for s's public key. s may
// be a file key or a PKCS#11 key (keys.OpenSigner).
func signBytes(s crypto.Signer, msg []byte) (Signature, error) {
	pub := s.Public()
	alg, err := Algorithm(pub)
	if err != nil {
		return Signature{}, err
	}
	id, err := KeyID(pub)
	if err != nil {
		return Signature{}, err
	}
	var sig []byte
	switch alg {
	case AlgEd25519:
		sig, err = s.Sign(rand.Reader, msg, crypto.Hash(0))
	case AlgECDSAP256:
		d := sha256.Sum256(msg)
		sig, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	case AlgECDSAP384:
		d := sha512.Sum384(msg)
		sig, err = s.Sign(rand.Reader, d[:], crypto.SHA384)
	case AlgRSAPSS:
		d := sha256.Sum256(msg)
		sig, err = s.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	}
	if err != nil {
		return Signature{}, fmt.Errorf("manifest: signing with key %s: %w", id[:16], err)
	}
	return Signature{KeyID: id, Algorithm: alg, Value: base64.StdEncoding.EncodeToString(sig)}, nil
}

// verifyBytes reports whether sig is a valid signature over msg by pub.
func verifyBytes(pub crypto.PublicKey, msg []byte, sig Signature) bool {
	alg, err := Algorithm(pub)
	if err != nil || alg != sig.Algorithm {
		return false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig.Value)
	if err != nil {
		return false
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, raw)
	case *ecdsa.PublicKey:
		if alg == AlgECDSAP384 {
			d := sha512.Sum384(msg)
			return ecdsa.VerifyASN1(k, d[:], raw)
		}
		d := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, d[:], raw)
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		return rsa.VerifyPSS(k, crypto.SHA256, d[:], raw, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return false
}

// KeySet is a set of trusted public keys with a threshold: a document is
// authentic when at least Threshold distinct keys of the set signed it.
type KeySet struct {
	Keys      map[string]crypto.PublicKey // by KeyID
	Threshold int
}

// NewKeySet returns a KeySet of pubs with threshold k (k < 1 means 1).
func NewKeySet(k int, pubs ...crypto.PublicKey) (*KeySet, error) {
	ks := &KeySet{Keys: map[string]crypto.PublicKey{}, Threshold: max(k, 1)}
	for _, p := range pubs {
		if _, err := Algorithm(p); err != nil {
			return nil, err
		}
		id, err := KeyID(p)
		if err != nil {
			return nil, err
		}
		ks.Keys[id] = p
	}
	if ks.Threshold > len(ks.Keys) {
		return nil, fmt.Errorf("%w: threshold %d exceeds the %d distinct keys", ErrThreshold, ks.Threshold, len(ks.Keys))
	}
	return ks, nil
}

// check counts the distinct trusted keys with a valid signature over msg.
// It returns ErrSignature when none is valid and ErrThreshold when some but
// fewer than the threshold are.
func (ks *KeySet) check(msg []byte, sigs []Signature) error {
	valid := map[string]bool{}
	for _, s := range sigs {
		pub, ok := ks.Keys[s.KeyID]
		if !ok || valid[s.KeyID] {
			continue
		}
		if verifyBytes(pub, msg, s) {
			valid[s.KeyID] = true
		}
	}
	switch n := len(valid); {
	case n == 0:
		return fmt.Errorf("%w (%d signatures, %d trusted keys)", ErrSignature, len(sigs), len(ks.Keys))
	case n < ks.Threshold:
		return fmt.Errorf("%w: %d of the required %d", ErrThreshold, n, ks.Threshold)
	}
	return nil
}

// Sign replaces m's signatures with one by each signer, over the canonical
// form of m without signatures. Signers may be file keys or PKCS#11 keys.
func (m *Manifest) Sign(signers ...crypto.Signer) error {
	if len(signers) == 0 {
		return fmt.Errorf("%w: no signing key", ErrKey)
	}
	if err := m.validate(); err != nil {
		return err
	}
	msg, err := m.signedBytes()
	if err != nil {
		return err
	}
	m.Signatures = nil
	for _, s := range signers {
		sig, err := signBytes(s, msg)
		if err != nil {
			return err
		}
		m.Signatures = append(m.Signatures, sig)
	}
	return nil
}

// SignedBy returns the ids of the keys in ks that made a valid signature
// over the signed document data (a manifest or root), sorted.
func SignedBy(data []byte, ks *KeySet) ([]string, error) {
	d, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range d.signatures {
		if pub, ok := ks.Keys[s.KeyID]; ok && !slices.Contains(ids, s.KeyID) && verifyBytes(pub, d.signed, s) {
			ids = append(ids, s.KeyID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
