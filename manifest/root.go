package manifest

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// RootType is the "type" of a root document.
const RootType = "otakit-root"

// Root errors.
var (
	ErrRootVersion = errors.New("manifest: root versions do not chain")
	ErrRoot        = errors.New("manifest: root not signed as the chain requires")
)

// Root is a TUF-style root of trust: the manifest-signing keys and their
// threshold, numbered by version. A device holds one root it trusts (from
// the factory) and accepts a newer one only through a chain of roots in
// which each is signed by a threshold of the previous root's keys and by a
// threshold of its own keys. That is how keys are rotated without
// reflashing: `ota keys rotate`.
type Root struct {
	Type       string      `json:"type"`
	Version    uint64      `json:"version"`
	Expires    time.Time   `json:"expires"`
	Threshold  int         `json:"threshold"`
	Keys       []RootKey   `json:"keys"`
	Signatures []Signature `json:"signatures,omitempty"`
}

// RootKey is a public key listed in a root.
type RootKey struct {
	KeyID     string `json:"keyid"`
	Algorithm string `json:"algorithm"`
	Public    string `json:"public"` // base64 of the PKIX DER
}

// NewRoot returns an unsigned root of the given version listing pubs with
// threshold k, valid until expires.
func NewRoot(ver uint64, k int, expires time.Time, pubs ...crypto.PublicKey) (*Root, error) {
	r := &Root{Type: RootType, Version: ver, Expires: expires.UTC().Truncate(time.Second), Threshold: k}
	for _, p := range pubs {
		alg, err := Algorithm(p)
		if err != nil {
			return nil, err
		}
		id, _ := KeyID(p)
		der, _ := x509.MarshalPKIXPublicKey(p)
		if slices.ContainsFunc(r.Keys, func(k RootKey) bool { return k.KeyID == id }) {
			continue
		}
		r.Keys = append(r.Keys, RootKey{KeyID: id, Algorithm: alg, Public: base64.StdEncoding.EncodeToString(der)})
	}
	slices.SortFunc(r.Keys, func(a, b RootKey) int { return compareStrings(a.KeyID, b.KeyID) })
	if _, err := r.KeySet(); err != nil {
		return nil, err
	}
	return r, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// KeySet returns the root's keys and threshold for verifying manifests.
func (r *Root) KeySet() (*KeySet, error) {
	if r.Type != RootType {
		return nil, fmt.Errorf("%w: type %q, want %q", ErrSchema, r.Type, RootType)
	}
	if r.Version == 0 || r.Threshold < 1 || len(r.Keys) == 0 {
		return nil, fmt.Errorf("%w: root needs version ≥ 1, threshold ≥ 1 and keys", ErrSchema)
	}
	var pubs []crypto.PublicKey
	for _, k := range r.Keys {
		der, err := base64.StdEncoding.Strict().DecodeString(k.Public)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %v", ErrSchema, k.KeyID, err)
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %v", ErrSchema, k.KeyID, err)
		}
		if id, _ := KeyID(pub); id != k.KeyID {
			return nil, fmt.Errorf("%w: key id %s does not match its key (%s)", ErrSchema, k.KeyID, id)
		}
		if alg, err := Algorithm(pub); err != nil || alg != k.Algorithm {
			return nil, fmt.Errorf("%w: key %s: algorithm %q does not fit the key", ErrSchema, k.KeyID, k.Algorithm)
		}
		pubs = append(pubs, pub)
	}
	return NewKeySet(r.Threshold, pubs...)
}

// Sign replaces r's signatures with one by each signer.
func (r *Root) Sign(signers ...crypto.Signer) error {
	c := *r
	c.Signatures = nil
	msg, err := canonicalStruct(&c)
	if err != nil {
		return err
	}
	r.Signatures = nil
	for _, s := range signers {
		sig, err := signBytes(s, msg)
		if err != nil {
			return err
		}
		r.Signatures = append(r.Signatures, sig)
	}
	return nil
}

// Marshal encodes r as indented JSON.
func (r *Root) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// signedRoot is a parsed root with the bytes its signatures cover.
type signedRoot struct {
	root *Root
	doc  *document
	keys *KeySet
}

func parseRoot(data []byte) (*signedRoot, error) {
	d, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	r := new(Root)
	if err := decodeStrict(d.tree, r); err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	ks, err := r.KeySet()
	if err != nil {
		return nil, err
	}
	return &signedRoot{root: r, doc: d, keys: ks}, nil
}

// ParseRoot parses a root without verifying its signatures.
func ParseRoot(data []byte) (*Root, error) {
	sr, err := parseRoot(data)
	if err != nil {
		return nil, err
	}
	return sr.root, nil
}

// VerifyRootChain starts from trusted, the root a device already trusts
// (it must be signed by a threshold of its own keys), and walks chain in
// order: each root must have the next version number (ErrRootVersion) and be
// signed by a threshold of the previous root's keys and by a threshold of its
// own (ErrRoot). The last root must not have expired at now (ErrExpired). It
// returns that last root, whose keys then verify manifests.
func VerifyRootChain(trusted []byte, chain [][]byte, now time.Time) (*Root, error) {
	cur, err := parseRoot(trusted)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if err := cur.keys.check(cur.doc.signed, cur.doc.signatures); err != nil {
		return nil, fmt.Errorf("%w: trusted root v%d is not signed by its own keys: %w", ErrRoot, cur.root.Version, err)
	}
	for i, data := range chain {
		next, err := parseRoot(data)
		if err != nil {
			return nil, fmt.Errorf("chain[%d]: %w", i, err)
		}
		if next.root.Version != cur.root.Version+1 {
			return nil, fmt.Errorf("%w: root v%d follows v%d", ErrRootVersion, next.root.Version, cur.root.Version)
		}
		if err := cur.keys.check(next.doc.signed, next.doc.signatures); err != nil {
			return nil, fmt.Errorf("%w: root v%d by the keys of v%d: %w", ErrRoot, next.root.Version, cur.root.Version, err)
		}
		if err := next.keys.check(next.doc.signed, next.doc.signatures); err != nil {
			return nil, fmt.Errorf("%w: root v%d by its own keys: %w", ErrRoot, next.root.Version, err)
		}
		cur = next
	}
	if now.IsZero() {
		now = time.Now()
	}
	if !now.Before(cur.root.Expires) {
		return nil, fmt.Errorf("%w: root v%d expired at %s", ErrExpired, cur.root.Version, cur.root.Expires.Format(time.RFC3339))
	}
	return cur.root, nil
}

// Rotate makes the root that follows old: version old.Version+1, listing
// the public keys of newSigners with threshold k, signed by oldSigners (who
// must meet old's threshold) and by newSigners (who must meet k). It checks
// the result verifies as a chain step before returning it.
func Rotate(oldData []byte, oldSigners, newSigners []crypto.Signer, k int, expires time.Time) (*Root, error) {
	old, err := parseRoot(oldData)
	if err != nil {
		return nil, err
	}
	var pubs []crypto.PublicKey
	for _, s := range newSigners {
		pubs = append(pubs, s.Public())
	}
	next, err := NewRoot(old.root.Version+1, k, expires, pubs...)
	if err != nil {
		return nil, err
	}
	if err := next.Sign(append(slices.Clone(oldSigners), newSigners...)...); err != nil {
		return nil, err
	}
	b, err := next.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := VerifyRootChain(oldData, [][]byte{b}, time.Time{}); err != nil {
		return nil, err
	}
	return next, nil
}
