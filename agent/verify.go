package agent

import (
	"errors"
	"io"
)

// Errors the agent reports when an update is refused.
var (
	ErrManifest   = errors.New("agent: manifest refused")
	ErrImage      = errors.New("agent: image refused")
	ErrDowngrade  = errors.New("agent: image security counter below the device's")
	ErrDigest     = errors.New("agent: artifact digest mismatch")
	ErrNoArtifact = errors.New("agent: manifest offers no artifact for this device")
)

// Device describes the device to the server and to manifest checks.
type Device struct {
	ID                string            `json:"id,omitempty"`
	Version           string            `json:"currentVersion"`
	HardwareRevision  string            `json:"hardwareRevision,omitempty"`
	BootloaderVersion string            `json:"bootloaderVersion,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// Release is what a verified manifest says about an update.
type Release struct {
	Version  string
	Sequence uint64
	// Artifacts are the files the manifest covers: the full image and any
	// deltas, each with its size and digest.
	Artifacts []Artifact
}

// Artifact is one downloadable file of a release.
type Artifact struct {
	// Name is the file name as listed in the manifest.
	Name string `json:"name"`
	// URL is where to download it; relative URLs are resolved against the
	// manifest's URL.
	URL string `json:"url,omitempty"`
	// Type is "full" or "delta".
	Type string `json:"type"`
	// Base is the version a delta applies to.
	Base   string `json:"base,omitempty"`
	Size   int64  `json:"size"`
	SHA256 []byte `json:"sha256"`
}

// Artifact types.
const (
	TypeFull  = "full"
	TypeDelta = "delta"
)

// ManifestVerifier checks a signed manifest (signature, expiry, sequence,
// compatibility with dev) and returns the release it describes.
// lastSequence is the highest sequence the device accepted before: a
// manifest at or below it that is not the same release is a replay.
type ManifestVerifier interface {
	VerifyManifest(raw []byte, dev Device, lastSequence uint64) (*Release, error)
}

// ImageInfo is what an image verifier learns from a signed image.
type ImageInfo struct {
	Version         string
	SecurityCounter uint32
	// Size is the image's length in bytes (header, payload and TLVs), the
	// exact source length for a delta.
	Size int64
}

// ImageVerifier checks a firmware image read from r (at most limit bytes:
// a slot may be larger than its image): hash and signature against the
// trusted keys. It returns the image's version and security counter.
type ImageVerifier interface {
	VerifyImage(r io.ReaderAt, limit int64) (ImageInfo, error)
}

// Payload is the content of an artifact after unpacking.
type Payload struct {
	// Type is TypeFull or TypeDelta.
	Type string
	// Size is the payload's length when known, or -1.
	Size int64
}

// Unpacker opens an update package (the container that may compress and
// encrypt an image or a patch) and streams its payload.
type Unpacker interface {
	Unpack(pkg io.ReaderAt, size int64) (io.ReadCloser, Payload, error)
}

// Patcher applies a delta patch: it reads the source at random (the
// primary slot, srcSize bytes) and writes the target sequentially to dst.
type Patcher interface {
	Patch(dst io.Writer, src io.ReaderAt, srcSize int64, patch io.Reader) error
}
