// Package release is the release pipeline: it turns a firmware build into
// everything a fleet needs, in one folder:
//
//	sign (MCUboot) → deltas from earlier releases → packages → signed manifest → release.json
//
// A release folder holds the signed image (kept as the base for later
// deltas), the full update package, one patch and one delta package per
// earlier release, manifest.json and release.json (the spec's Output
// Schema). Releases live side by side in a releases directory, one folder
// per version; the pipeline finds earlier releases there.
//
// A run builds the release in a temporary folder and renames it into place,
// so a failure leaves nothing half-written, and a re-run with the same
// inputs finds the finished release and leaves it as it is.
package release

import (
	"crypto"
	"errors"
	"time"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// Errors.
var (
	// ErrExists is returned when the release folder exists but was made
	// from other inputs; releases are never overwritten.
	ErrExists = errors.New("release: a different release with this version exists")
	// ErrOptions is returned for missing or inconsistent options.
	ErrOptions = errors.New("release: invalid options")
)

// File names inside a release folder.
const (
	SummaryFile  = "release.json"
	ManifestFile = "manifest.json"
)

// Options describe one run of the pipeline.
type Options struct {
	// Firmware is the unsigned application binary.
	Firmware string
	// Version of the new release.
	Version version.Version
	// ImageSigner signs the MCUboot image (file key or PKCS#11).
	ImageSigner crypto.Signer
	// ManifestSigners sign the manifest; empty means ImageSigner.
	ManifestSigners []crypto.Signer

	// HeaderSize is the MCUboot header area (imgtool -H); 0 means 0x200.
	// The firmware is prefixed with it (--pad-header).
	HeaderSize int
	// SlotSize, when set, is checked: the image must fit the slot.
	SlotSize int64

	// Compression for packages; nil means zstd.
	Compression codec.Codec
	// EncryptKey, when set, encrypts packages with AES-CTR: a 16-byte key
	// gives aes-128-ctr, a 32-byte key aes-256-ctr.
	EncryptKey []byte

	// Releases is the directory of earlier releases, one folder each.
	Releases string
	// DeltasFrom is how many of the most recent earlier releases get a
	// delta; 0 means 3, negative means none.
	DeltasFrom int
	// Out is the folder to create for this release; "" means
	// Releases/VERSION.
	Out string

	// Manifest fields.
	HardwareRevisions    []string
	MinBootloaderVersion string
	RequiredBaseVersion  string
	ReleaseNotes         string
	Validity             time.Duration // 0: manifest.DefaultValidity
	Now                  time.Time     // 0: time.Now()

	// Progress, if set, is called as each step starts.
	Progress func(Step)
}

// Step reports progress: Index counts from 1 to Total.
type Step struct {
	Index, Total int
	Name         string
}

func (o *Options) encryption() (update.Encryption, error) {
	switch len(o.EncryptKey) {
	case 0:
		return update.EncryptNone, nil
	case 16:
		return update.EncryptAES128CTR, nil
	case 32:
		return update.EncryptAES256CTR, nil
	}
	return 0, errors.New("release: the encryption key must be 16 or 32 bytes")
}
