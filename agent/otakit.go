package agent

import (
	"crypto"
	"fmt"
	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/mcuboot"
	"io"
	"strings"

	"github.com/otakit/otakit/manifest"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// ManifestKeys verifies otakit's signed manifests (package manifest): the
// signatures against a trusted key set, expiry, sequence, and
// compatibility with the device. It is the agent's ManifestVerifier.
type ManifestKeys struct {
	Keys *manifest.KeySet
	// Clock tells expiry time; nil means the system clock.
	Clock Clock
}

// VerifyManifest checks raw and lists the artifacts dev may install: the
// delta from its version when the release has one, and the full image
// when the release allows it.
func (k ManifestKeys) VerifyManifest(raw []byte, dev Device, lastSequence uint64) (*Release, error) {
	p := manifest.Policy{Keys: k.Keys}
	if k.Clock != nil {
		p.Now = k.Clock.Now()
	}
	// The same manifest is accepted again (resuming after a reboot, or
	// checking in while up to date); an older one is not.
	if lastSequence > 0 {
		p.LastSequence = lastSequence - 1
	}
	m, err := manifest.Verify(raw, p)
	if err != nil {
		return nil, err
	}
	full, err := m.FullVersion()
	if err != nil {
		return nil, err
	}
	rel := &Release{Version: full.String(), Sequence: m.Sequence}
	if sameVersion(rel.Version, dev.Version) {
		return rel, nil // up to date: nothing to install
	}
	offer, err := m.Check(manifest.Device{HardwareRevision: dev.HardwareRevision,
		BootloaderVersion: dev.BootloaderVersion, CurrentVersion: dev.Version})
	if err != nil {
		return nil, err
	}
	add := func(typ, base, file string, size int64, hash string) error {
		sum, err := manifest.ParseHash(hash)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", manifest.ErrSchema, file, err)
		}
		rel.Artifacts = append(rel.Artifacts, Artifact{Name: file, URL: file, Type: typ, Base: base, Size: size, SHA256: sum})
		return nil
	}
	if offer.Delta {
		if err := add(TypeDelta, offer.BaseVersion, offer.File, offer.Size, offer.Hash); err != nil {
			return nil, err
		}
		// The full image too, when the release lets this device take it,
		// for agents that cannot patch.
		if len(m.Images) > 0 && baseAllows(m.Compatibility.RequiredBaseVersion, dev.Version) {
			im := m.Images[0]
			if err := add(TypeFull, "", im.File, im.Size, im.Hash); err != nil {
				return nil, err
			}
		}
		return rel, nil
	}
	if err := add(TypeFull, "", offer.File, offer.Size, offer.Hash); err != nil {
		return nil, err
	}
	return rel, nil
}

func baseAllows(required, current string) bool {
	if required == "" {
		return true
	}
	r, err1 := version.Parse(required)
	c, err2 := version.Parse(current)
	return err1 == nil && err2 == nil && c.CompareCore(r) >= 0
}

// Packages opens otakit update packages (package update); Key decrypts
// encrypted ones. It is the agent's Unpacker. Files that do not start with
// the package magic are passed through as raw images or patches.
type Packages struct {
	Key []byte
}

// Unpack checks the package header and streams the plaintext payload. The
// payload's digests are checked as it is read: the stream ends with an
// error instead of io.EOF when they do not match.
func (p Packages) Unpack(pkg io.ReaderAt, size int64) (io.ReadCloser, Payload, error) {
	var magic [4]byte
	if n, _ := pkg.ReadAt(magic[:], 0); n < 4 || magic != update.Magic {
		return nil, Payload{}, ErrNotPackage
	}
	r, err := update.NewReader(io.NewSectionReader(pkg, 0, size), p.Key)
	if err != nil {
		return nil, Payload{}, err
	}
	h := r.Header()
	typ := TypeFull
	if h.Type == update.TypeDelta {
		typ = TypeDelta
	}
	return io.NopCloser(r), Payload{Type: typ, Size: h.Size}, nil
}

// versionOrZero parses v, giving the zero version for garbage.
func versionOrZero(v string) (version.Version, bool) {
	x, err := version.Parse(strings.TrimPrefix(strings.TrimSpace(v), "v"))
	return x, err == nil
}

// MCUbootImages verifies MCUboot images (package mcuboot): structure, hash
// and a signature by one of Keys. It is the agent's ImageVerifier. An image
// without a SEC_CNT TLV has security counter 0.
type MCUbootImages struct {
	// Keys are the trusted image-signing keys; at least one is required.
	Keys []crypto.PublicKey
	// DecryptKey, when set, lets encrypted images be verified.
	DecryptKey any
}

// VerifyImage parses the image at the start of r (a file or a whole slot,
// limit bytes) and checks its hash and signature.
func (m MCUbootImages) VerifyImage(r io.ReaderAt, limit int64) (ImageInfo, error) {
	if len(m.Keys) == 0 {
		return ImageInfo{}, fmt.Errorf("%w: no trusted image keys", mcuboot.ErrNoSignature)
	}
	img, err := mcuboot.Parse(r, limit)
	if err != nil {
		return ImageInfo{}, err
	}
	res, err := img.Verify(&mcuboot.VerifyOptions{Keys: m.Keys, DecryptKey: m.DecryptKey})
	if err != nil {
		return ImageInfo{}, err
	}
	if !res.Signed {
		return ImageInfo{}, fmt.Errorf("%w: image is hash-only", mcuboot.ErrNoSignature)
	}
	sc, _ := img.SecurityCounter()
	v := img.Header.Version
	// Versions are reported as manifests and the fleet spell them: "+0"
	// omitted.
	ver := version.Version{Major: v.Major, Minor: v.Minor, Revision: v.Revision, Build: v.Build}
	return ImageInfo{Version: ver.String(), SecurityCounter: sc, Size: img.End()}, nil
}

// DeltaPatches applies otakit's native delta patches (package delta): it
// checks the source (the running image, by size and SHA-256) before
// writing anything and the target's SHA-256 at the end. It is the agent's
// Patcher.
type DeltaPatches struct{}

// Patch streams the patch once and reads the source image at random, so
// memory is one decoded block (delta.Applier), not the images.
func (DeltaPatches) Patch(dst io.Writer, src io.ReaderAt, srcSize int64, patch io.Reader) error {
	return delta.ApplyStream(src, srcSize, patch, dst)
}
