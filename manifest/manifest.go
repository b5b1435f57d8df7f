// Package manifest builds, signs and verifies release manifests: the signed
// JSON document a device reads before it downloads anything, saying what the
// release is (version, images, delta patches), whom it fits (hardware
// revisions, bootloader, base version) and whether it is fresh (sequence,
// expiry).
//
// Signatures cover the RFC 8785 (JCS) canonical JSON of the whole document
// except its "signatures" member, so any field, including ones added by
// later versions, is signed. Trust is k-of-n over a set of keys, which may be
// rotated TUF-style through a chain of signed roots (see Root).
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors, one per reason a manifest is refused. They are wrapped with
// details; test with errors.Is.
var (
	ErrSignature   = errors.New("manifest: no valid signature from a trusted key")
	ErrThreshold   = errors.New("manifest: too few valid signatures from trusted keys")
	ErrExpired     = errors.New("manifest: expired")
	ErrReplay      = errors.New("manifest: replayed (sequence equal to the last one accepted)")
	ErrRollback    = errors.New("manifest: rollback (sequence lower than the last one accepted)")
	ErrHardware    = errors.New("manifest: hardware revision not supported")
	ErrBootloader  = errors.New("manifest: bootloader too old")
	ErrBase        = errors.New("manifest: device version is neither the required base nor has a delta")
	ErrDowngrade   = errors.New("manifest: release is not newer than the device's version")
	ErrFileSize    = errors.New("manifest: file size mismatch")
	ErrFileHash    = errors.New("manifest: file hash mismatch")
	ErrFileMissing = errors.New("manifest: referenced file missing")
	ErrMixed       = errors.New("manifest: file belongs to another release")
	ErrSchema      = errors.New("manifest: invalid manifest")
	ErrKey         = errors.New("manifest: unsupported key")
)

// Manifest is the release description a device verifies. Field names and
// shapes follow the project spec; Sequence, Expires and Signatures are the
// freshness and authenticity additions.
type Manifest struct {
	Version       string        `json:"version"` // MAJOR.MINOR.REVISION
	Build         uint32        `json:"build"`
	Timestamp     time.Time     `json:"timestamp"`
	Sequence      uint64        `json:"sequence"` // monotonic per product, from 1
	Expires       time.Time     `json:"expires"`
	Images        []Image       `json:"images"`
	Compatibility Compatibility `json:"compatibility"`
	Delta         Delta         `json:"delta"`
	ReleaseNotes  string        `json:"releaseNotes"`
	Signatures    []Signature   `json:"signatures,omitempty"`
}

// Image is one full image of the release, for one slot.
type Image struct {
	Slot int    `json:"slot"`
	Type string `json:"type"` // "application", ...
	File string `json:"file"` // relative to the manifest's directory
	Size int64  `json:"size"`
	Hash string `json:"hash"` // "sha256:" + hex of the file
	// ImageHash, when the file is an update package, is "sha256:" of the
	// image inside it: the device checks what it unpacked against the
	// signed manifest, not only against the package header.
	ImageHash string `json:"imageHash,omitempty"`
	// Signature is the image's own signature as embedded by MCUboot
	// (algorithm name, colon, base64 of the TLV value), informational: the
	// bootloader checks it, the manifest signature covers it.
	Signature string `json:"signature,omitempty"`
}

// Compatibility says which devices may install the release.
type Compatibility struct {
	MinBootloaderVersion string   `json:"minBootloaderVersion,omitempty"`
	HardwareRevision     []string `json:"hardwareRevision"`
	// RequiredBaseVersion, when set, is the lowest version a device must run
	// to install the full image (older devices need a delta or an
	// intermediate release).
	RequiredBaseVersion string `json:"requiredBaseVersion,omitempty"`
}

// Delta lists the patches that lead to this release.
type Delta struct {
	Available    bool     `json:"available"`
	BaseVersions []string `json:"baseVersions"`
	// Files maps a base version to the patch from it.
	Files map[string]DeltaFile `json:"files"`
}

// DeltaFile is a patch from one base version to this release.
type DeltaFile struct {
	File string `json:"file"`
	Size int64  `json:"size"`
	Hash string `json:"hash"`
	// PatchHash, when the file is an update package, is "sha256:" of the
	// patch inside it.
	PatchHash string `json:"patchHash,omitempty"`
	// BaseHash is the hash of the base image the patch applies to, so a
	// device can check its slot before applying.
	BaseHash string `json:"baseHash,omitempty"`
}

// Signature is one signature over the manifest's canonical form.
type Signature struct {
	KeyID     string `json:"keyid"`     // hex SHA-256 of the public key's PKIX DER
	Algorithm string `json:"algorithm"` // ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha256
	Value     string `json:"value"`     // base64
}

// document is a parsed, not yet verified signed JSON document: the
// canonical bytes its signatures cover and the signatures themselves.
type document struct {
	signed     []byte
	signatures []Signature
	tree       object
}

// parseDocument parses signed JSON with the package's limits and splits
// off the "signatures" member.
func parseDocument(data []byte) (*document, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(object)
	if !ok {
		return nil, fmt.Errorf("%w: top level is not an object", ErrSchema)
	}
	d := &document{tree: obj}
	rest := make(object, len(obj))
	for k, v := range obj {
		if k != "signatures" {
			rest[k] = v
		}
	}
	if d.signed, err = canonical(rest); err != nil {
		return nil, err
	}
	if sigs, ok := obj["signatures"]; ok {
		if err := decodeStrict(sigs, &d.signatures); err != nil {
			return nil, fmt.Errorf("signatures: %w", err)
		}
	}
	return d, nil
}

// decodeStrict decodes the parsed value tree into v and insists that v
// encodes back to the same canonical JSON. encoding/json matches member
// names case-insensitively and skips unknown ones; this refuses both, so
// what the program acts on is exactly what was signed.
func decodeStrict(tree value, v any) error {
	raw, err := canonical(tree)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrSchema, err)
	}
	back, err := canonicalStruct(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(raw, back) {
		return fmt.Errorf("%w: unknown, misspelled, missing or non-canonical members (read %.80s…, expected the form %.80s…)", ErrSchema, raw, back)
	}
	return nil
}

// Parse parses a manifest without verifying it; use Verify for that. It
// enforces the size, depth and duplicate-key limits.
func Parse(data []byte) (*Manifest, error) {
	d, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	return d.manifest()
}

func (d *document) manifest() (*Manifest, error) {
	m := new(Manifest)
	if err := decodeStrict(d.tree, m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manifest) validate() error {
	if _, err := parseCore(m.Version); err != nil {
		return fmt.Errorf("%w: version: %v", ErrSchema, err)
	}
	if m.Sequence == 0 {
		return fmt.Errorf("%w: sequence must be at least 1", ErrSchema)
	}
	if m.Expires.IsZero() {
		return fmt.Errorf("%w: no expiry", ErrSchema)
	}
	if len(m.Images) == 0 && len(m.Delta.Files) == 0 {
		return fmt.Errorf("%w: no images and no delta files", ErrSchema)
	}
	for i, im := range m.Images {
		if err := checkRef(im.File, im.Size, im.Hash); err != nil {
			return fmt.Errorf("%w: images[%d]: %v", ErrSchema, i, err)
		}
		if err := checkHash(im.ImageHash, true); err != nil {
			return fmt.Errorf("%w: images[%d].imageHash: %v", ErrSchema, i, err)
		}
	}
	for base, df := range m.Delta.Files {
		if _, err := parseCore(base); err != nil {
			return fmt.Errorf("%w: delta.files[%q]: %v", ErrSchema, base, err)
		}
		if err := checkRef(df.File, df.Size, df.Hash); err != nil {
			return fmt.Errorf("%w: delta.files[%q]: %v", ErrSchema, base, err)
		}
		for _, h := range []string{df.PatchHash, df.BaseHash} {
			if err := checkHash(h, true); err != nil {
				return fmt.Errorf("%w: delta.files[%q]: %v", ErrSchema, base, err)
			}
		}
	}
	return nil
}

// Marshal encodes m as indented JSON, the form written to manifest.json.
// Readers canonicalize before verifying, so the layout does not matter.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// signedBytes returns the canonical form of m without its signatures.
func (m *Manifest) signedBytes() ([]byte, error) {
	c := *m
	c.Signatures = nil
	return canonicalStruct(&c)
}

// canonicalStruct canonicalizes a Go value via encoding/json.
func canonicalStruct(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}
