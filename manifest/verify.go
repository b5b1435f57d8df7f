package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// Policy is what a verifier trusts and remembers.
type Policy struct {
	// Keys are the trusted manifest-signing keys and their threshold.
	Keys *KeySet
	// Now is the verification time; zero means time.Now().
	Now time.Time
	// LastSequence is the sequence of the last manifest accepted; 0 if none.
	// A manifest must carry a higher one.
	LastSequence uint64
}

// Verify parses data and checks, in order: the signatures against the
// policy's keys and threshold (ErrSignature, ErrThreshold), the expiry
// (ErrExpired: refuses a frozen, stale feed) and the sequence (ErrReplay,
// ErrRollback). It returns the manifest only if every check passes.
func Verify(data []byte, p Policy) (*Manifest, error) {
	if p.Keys == nil || len(p.Keys.Keys) == 0 {
		return nil, fmt.Errorf("%w: no trusted keys", ErrSignature)
	}
	d, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	if err := p.Keys.check(d.signed, d.signatures); err != nil {
		return nil, err
	}
	m, err := d.manifest()
	if err != nil {
		return nil, err
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !now.Before(m.Expires) {
		return nil, fmt.Errorf("%w at %s (now %s)", ErrExpired, m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	switch {
	case m.Sequence == p.LastSequence:
		return nil, fmt.Errorf("%w: sequence %d", ErrReplay, m.Sequence)
	case m.Sequence < p.LastSequence:
		return nil, fmt.Errorf("%w: sequence %d after %d", ErrRollback, m.Sequence, p.LastSequence)
	}
	return m, nil
}

// Device describes an installed device, as in device.json.
type Device struct {
	HardwareRevision  string `json:"hardwareRevision"`
	BootloaderVersion string `json:"bootloaderVersion"`
	CurrentVersion    string `json:"currentVersion"`
}

// Offer is what a compatible device should download.
type Offer struct {
	Delta       bool   // a patch from BaseVersion rather than a full image
	BaseVersion string // for Delta
	File        string
	Size        int64
	Hash        string
	// Content is the hash of the image or patch inside the package, to
	// check after unpacking ("" when the file is not a package).
	Content string
}

// FullVersion returns the release's version with its build number.
func (m *Manifest) FullVersion() (version.Version, error) {
	v, err := parseCore(m.Version)
	v.Build = m.Build
	return v, err
}

// Check decides whether the release fits d and what d should download:
// the hardware revision must be listed (ErrHardware), the bootloader at
// least the minimum (ErrBootloader), the release newer than the device
// (ErrDowngrade), and the device either at or above the required base
// version for a full image, or on a version the release has a delta from
// (ErrBase). A delta is preferred when there is one.
func (m *Manifest) Check(d Device) (Offer, error) {
	c := m.Compatibility
	if len(c.HardwareRevision) > 0 && !slices.Contains(c.HardwareRevision, d.HardwareRevision) {
		return Offer{}, fmt.Errorf("%w: device is %q, release supports %s", ErrHardware, d.HardwareRevision, strings.Join(c.HardwareRevision, ", "))
	}
	if c.MinBootloaderVersion != "" {
		min, err := version.Parse(c.MinBootloaderVersion)
		if err != nil {
			return Offer{}, fmt.Errorf("%w: minBootloaderVersion: %v", ErrSchema, err)
		}
		bl, err := version.Parse(d.BootloaderVersion)
		if err != nil {
			return Offer{}, fmt.Errorf("%w: device bootloader version %q unknown or invalid", ErrBootloader, d.BootloaderVersion)
		}
		if bl.Compare(min) < 0 {
			return Offer{}, fmt.Errorf("%w: device has %s, release needs %s", ErrBootloader, bl, min)
		}
	}
	rel, err := m.FullVersion()
	if err != nil {
		return Offer{}, err
	}
	cur, err := version.Parse(d.CurrentVersion)
	if err != nil {
		return Offer{}, fmt.Errorf("%w: device version: %v", ErrSchema, err)
	}
	if rel.Compare(cur) <= 0 {
		return Offer{}, fmt.Errorf("%w: device runs %s, release is %s", ErrDowngrade, cur, rel)
	}
	if m.Delta.Available {
		if df, ok := m.Delta.Files[cur.Core()]; ok {
			return Offer{Delta: true, BaseVersion: cur.Core(), File: df.File, Size: df.Size, Hash: df.Hash, Content: df.PatchHash}, nil
		}
	}
	if len(m.Images) > 0 {
		base := c.RequiredBaseVersion
		if base == "" {
			im := m.Images[0]
			return Offer{File: im.File, Size: im.Size, Hash: im.Hash, Content: im.ImageHash}, nil
		}
		bv, err := version.Parse(base)
		if err != nil {
			return Offer{}, fmt.Errorf("%w: requiredBaseVersion: %v", ErrSchema, err)
		}
		if cur.CompareCore(bv) >= 0 {
			im := m.Images[0]
			return Offer{File: im.File, Size: im.Size, Hash: im.Hash, Content: im.ImageHash}, nil
		}
		return Offer{}, fmt.Errorf("%w: device runs %s, release requires %s or a delta (have %s)", ErrBase, cur, bv, strings.Join(m.Delta.BaseVersions, ", "))
	}
	return Offer{}, fmt.Errorf("%w: device runs %s, release has only deltas from %s", ErrBase, cur, strings.Join(m.Delta.BaseVersions, ", "))
}

// CheckFiles checks every file the manifest references, resolved relative
// to dir: it must exist (ErrFileMissing), have the listed size (ErrFileSize)
// and hash (ErrFileHash), and belong to this release (ErrMixed): a signed
// MCUboot image must carry the manifest's version in its header, and an
// update package must name the manifest's version, for a delta the base
// version it is listed under, and hold the listed imageHash or patchHash.
func (m *Manifest) CheckFiles(dir string) error {
	rel, err := m.FullVersion()
	if err != nil {
		return err
	}
	// target is what a patch must produce: the image inside the first
	// image's package, or the first image itself.
	var target string
	for i, im := range m.Images {
		kind, err := checkFile(dir, im.File, im.Size, im.Hash, im.ImageHash, rel, nil, "")
		if err != nil {
			return fmt.Errorf("images[%d]: %w", i, err)
		}
		if i == 0 {
			target = im.ImageHash
			if kind == kindMCUboot {
				target = im.Hash
			}
		}
	}
	for _, base := range sortedKeys(m.Delta.Files) {
		df := m.Delta.Files[base]
		bv, err := parseCore(base)
		if err != nil {
			return err
		}
		if _, err := checkFile(dir, df.File, df.Size, df.Hash, df.PatchHash, rel, &bv, target); err != nil {
			return fmt.Errorf("delta.files[%q]: %w", base, err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// File kinds recognised by their magic.
const (
	kindOther = iota
	kindMCUboot
	kindPackage
	kindPatch
)

// headLen covers the longest header checkRelease reads (a native delta
// patch with two 255-byte version strings).
const headLen = 90 + 2*255

// checkFile hashes one referenced file and checks what its header says
// about the release it belongs to. base is nil for a full image; target is
// the hash a patch must produce ("" if unknown).
func checkFile(dir, name string, size int64, hash, content string, rel version.Version, base *version.Version, target string) (int, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%w: %s", ErrFileMissing, name)
		}
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() != size {
		return 0, fmt.Errorf("%w: %s is %d bytes, manifest says %d", ErrFileSize, name, st.Size(), size)
	}
	head := make([]byte, headLen)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return 0, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != hash {
		return 0, fmt.Errorf("%w: %s has %s, manifest says %s", ErrFileHash, name, got, hash)
	}
	return checkRelease(name, head, content, rel, base, target)
}

// MCUboot image header fields read for the mixed-release check.
const (
	mcubootMagic      = 0x96f3b83d
	mcubootVersionOff = 20
)

// checkRelease checks that the file whose first bytes are head belongs to
// release rel (and, for a patch, base).
func checkRelease(name string, head []byte, content string, rel version.Version, base *version.Version, target string) (int, error) {
	switch {
	case len(head) >= 32 && binary.LittleEndian.Uint32(head) == mcubootMagic:
		if base != nil {
			return kindMCUboot, fmt.Errorf("%w: %s is a full MCUboot image listed as a delta", ErrMixed, name)
		}
		if v := version.Decode(head[mcubootVersionOff:]); v != rel {
			return kindMCUboot, fmt.Errorf("%w: %s is an image of version %s, manifest is %s", ErrMixed, name, v, rel)
		}
		return kindMCUboot, nil
	case len(head) >= 4 && bytes.Equal(head[:4], []byte(patchMagic)):
		return kindPatch, checkPatch(name, head, rel, base, target)
	case len(head) >= 4 && bytes.Equal(head[:4], update.Magic[:]):
		return kindPackage, checkPackage(name, head, content, rel, base)
	}
	return kindOther, nil
}

// checkPackage checks an update package header against the manifest.
func checkPackage(name string, head []byte, content string, rel version.Version, base *version.Version) error {
	var h update.Header
	if err := h.UnmarshalBinary(head); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if h.Version != rel {
		return fmt.Errorf("%w: %s is a package of version %s, manifest is %s", ErrMixed, name, h.Version, rel)
	}
	if got := "sha256:" + hex.EncodeToString(h.SHA256[:]); content != "" && got != content {
		return fmt.Errorf("%w: %s holds content %s, manifest says %s", ErrMixed, name, got, content)
	}
	if base == nil && h.Type != update.TypeFull {
		return fmt.Errorf("%w: %s is a %s package listed as a full image", ErrMixed, name, h.Type)
	}
	if base != nil {
		if h.Type != update.TypeDelta {
			return fmt.Errorf("%w: %s is a %s package listed as a delta", ErrMixed, name, h.Type)
		}
		if h.BaseVersion.CompareCore(*base) != 0 {
			return fmt.Errorf("%w: %s patches from %s, manifest lists it for %s", ErrMixed, name, h.BaseVersion, base.Core())
		}
	}
	return nil
}

// Native delta patch header fields (docs/delta-format.md) read for the
// mixed-release check.
const (
	patchMagic        = "OTAD"
	patchTargetSHAOff = 48
	patchVersionsOff  = 88
)

// checkPatch checks a raw native patch: listed as a delta, producing the
// manifest's image, and (when its header names versions) from the base it
// is listed under to this release.
func checkPatch(name string, head []byte, rel version.Version, base *version.Version, target string) error {
	if base == nil {
		return fmt.Errorf("%w: %s is a delta patch listed as a full image", ErrMixed, name)
	}
	if len(head) < patchVersionsOff+2 {
		return fmt.Errorf("%w: %s: truncated patch header", ErrMixed, name)
	}
	if got := "sha256:" + hex.EncodeToString(head[patchTargetSHAOff:patchTargetSHAOff+32]); target != "" && got != target {
		return fmt.Errorf("%w: %s produces %s, the release image is %s", ErrMixed, name, got, target)
	}
	n := int(head[patchVersionsOff])
	if len(head) < patchVersionsOff+1+n+1 {
		return fmt.Errorf("%w: %s: truncated patch header", ErrMixed, name)
	}
	src := string(head[patchVersionsOff+1 : patchVersionsOff+1+n])
	m := int(head[patchVersionsOff+1+n])
	if len(head) < patchVersionsOff+2+n+m {
		return fmt.Errorf("%w: %s: truncated patch header", ErrMixed, name)
	}
	dst := string(head[patchVersionsOff+2+n : patchVersionsOff+2+n+m])
	if v, err := version.Parse(src); err == nil && v.CompareCore(*base) != 0 {
		return fmt.Errorf("%w: %s patches from %s, manifest lists it for %s", ErrMixed, name, src, base.Core())
	}
	if v, err := version.Parse(dst); err == nil && v != rel {
		return fmt.Errorf("%w: %s patches to %s, manifest is %s", ErrMixed, name, dst, rel)
	}
	return nil
}

// parseCore parses a manifest version "MAJOR.MINOR.REVISION" (no build).
func parseCore(s string) (version.Version, error) {
	v, err := version.Parse(s)
	if err != nil {
		return v, err
	}
	if v.Build != 0 || strings.Contains(s, "+") {
		return v, fmt.Errorf("version %q: the build number goes in the build field", s)
	}
	return v, nil
}

// checkRef validates a file reference before any file is opened: the path
// must stay inside the manifest's directory, and hash must be
// "sha256:" followed by 64 lowercase hex digits.
func checkRef(file string, size int64, hash string) error {
	if file == "" || !filepath.IsLocal(filepath.FromSlash(file)) || strings.Contains(file, "\\") {
		return fmt.Errorf("file %q is not a relative path inside the release", file)
	}
	if size < 0 {
		return fmt.Errorf("file %q has negative size", file)
	}
	if err := checkHash(hash, false); err != nil {
		return fmt.Errorf("file %q: %v", file, err)
	}
	return nil
}

// checkHash checks the "sha256:<64 lowercase hex>" form; optional allows "".
func checkHash(hash string, optional bool) error {
	if optional && hash == "" {
		return nil
	}
	h, ok := strings.CutPrefix(hash, "sha256:")
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
		return fmt.Errorf("hash %q is not sha256:<64 lowercase hex digits>", hash)
	}
	return nil
}

// FileRef hashes the file at path and returns its size and "sha256:..." hash.
func FileRef(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
