package manifest

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// Options describe a release for New.
type Options struct {
	// Dir is where the manifest will be written; file references are made
	// relative to it, and every file must lie inside it.
	Dir string
	// Image is the full image: a signed MCUboot image or a full update
	// package. Its header gives the release version.
	Image string
	// Patches maps a base version ("1.1.0") to the patch or delta package
	// that leads from it to this release.
	Patches map[string]string
	// BaseHashes optionally maps a base version to "sha256:..." of the base
	// image, recorded as delta.files[].baseHash.
	BaseHashes map[string]string
	// Version overrides the version read from the image (required when the
	// image header carries none).
	Version *version.Version
	// ImageSignature overrides images[0].signature; set it when Image is
	// a package, whose header does not expose the MCUboot signature (see
	// ImageSignature).
	ImageSignature string

	HardwareRevisions    []string
	MinBootloaderVersion string
	RequiredBaseVersion  string
	ReleaseNotes         string

	Sequence uint64        // must be ≥ 1
	Now      time.Time     // zero: time.Now()
	Validity time.Duration // expiry after Now; zero: 30 days
}

// DefaultValidity is how long a manifest stays valid unless told otherwise.
const DefaultValidity = 30 * 24 * time.Hour

// New builds an unsigned manifest from o; call Sign next.
func New(o Options) (*Manifest, error) {
	if o.Sequence == 0 || o.Sequence > 1<<53 {
		return nil, fmt.Errorf("%w: sequence %d must be between 1 and 2^53", ErrSchema, o.Sequence)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	validity := o.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < 0 {
		return nil, fmt.Errorf("%w: negative validity", ErrSchema)
	}
	m := &Manifest{
		Timestamp:    now,
		Sequence:     o.Sequence,
		Expires:      now.Add(validity),
		ReleaseNotes: o.ReleaseNotes,
		Compatibility: Compatibility{
			HardwareRevision:     append([]string{}, o.HardwareRevisions...),
			MinBootloaderVersion: o.MinBootloaderVersion,
			RequiredBaseVersion:  o.RequiredBaseVersion,
		},
		Delta: Delta{BaseVersions: []string{}, Files: map[string]DeltaFile{}},
	}
	for _, s := range []string{o.MinBootloaderVersion, o.RequiredBaseVersion} {
		if s != "" {
			if _, err := version.Parse(s); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSchema, err)
			}
		}
	}
	var rel version.Version
	if o.Image != "" {
		info, err := readImageInfo(o.Image)
		if err != nil {
			return nil, err
		}
		rel = info.version
		if o.Version != nil {
			if !info.version.IsZero() && *o.Version != info.version {
				return nil, fmt.Errorf("%w: image %s is version %s, not %s", ErrMixed, o.Image, info.version, o.Version)
			}
			rel = *o.Version
		}
		im := Image{Slot: 0, Type: "application", Signature: info.signature, ImageHash: info.content}
		if o.ImageSignature != "" {
			im.Signature = o.ImageSignature
		}
		if im.File, im.Size, im.Hash, err = ref(o.Dir, o.Image); err != nil {
			return nil, err
		}
		m.Images = append(m.Images, im)
	} else if o.Version != nil {
		rel = *o.Version
	} else {
		return nil, fmt.Errorf("%w: no image and no version", ErrSchema)
	}
	if rel.IsZero() {
		return nil, fmt.Errorf("%w: the image carries no version; give one", ErrSchema)
	}
	m.Version, m.Build = rel.Core(), rel.Build
	for _, base := range sortedKeys(o.Patches) {
		bv, err := parseCore(base)
		if err != nil {
			return nil, fmt.Errorf("%w: patch base: %v", ErrSchema, err)
		}
		if bv.Compare(rel) >= 0 {
			return nil, fmt.Errorf("%w: patch from %s is not older than the release %s", ErrSchema, bv, rel)
		}
		var df DeltaFile
		if df.File, df.Size, df.Hash, err = ref(o.Dir, o.Patches[base]); err != nil {
			return nil, err
		}
		df.BaseHash = o.BaseHashes[base]
		if df.PatchHash, err = packageContent(o.Patches[base]); err != nil {
			return nil, err
		}
		m.Delta.Files[bv.Core()] = df
		m.Delta.BaseVersions = append(m.Delta.BaseVersions, bv.Core())
	}
	// Newest base first, the order devices are most likely to need.
	slices.SortFunc(m.Delta.BaseVersions, func(a, b string) int {
		return version.MustParse(b).Compare(version.MustParse(a))
	})
	m.Delta.Available = len(m.Delta.Files) > 0
	if err := m.validate(); err != nil {
		return nil, err
	}
	// Refuse to sign a mixed release.
	if err := m.CheckFiles(o.Dir); err != nil {
		return nil, err
	}
	return m, nil
}

// ref returns path relative to dir (slash-separated), its size and hash.
func ref(dir, path string) (string, int64, string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", 0, "", err
	}
	absPath, err := filepath.Abs(path)
	if err != nil {
		return "", 0, "", err
	}
	rel, err := filepath.Rel(absDir, absPath)
	if err != nil || !filepath.IsLocal(rel) {
		return "", 0, "", fmt.Errorf("%w: %s is not inside the manifest's directory %s", ErrSchema, path, dir)
	}
	size, hash, err := FileRef(path)
	if err != nil {
		return "", 0, "", err
	}
	return filepath.ToSlash(rel), size, hash, nil
}

type imageInfo struct {
	version   version.Version
	signature string
	content   string // for a package: hash of the image inside
}

// readImageInfo reads the version (and, for an MCUboot image, the image
// signature) from a signed image or full update package.
func readImageInfo(path string) (imageInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return imageInfo{}, err
	}
	defer f.Close()
	head := make([]byte, update.HeaderSize)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case len(head) >= 32 && binary.LittleEndian.Uint32(head) == mcubootMagic:
		info := imageInfo{version: version.Decode(head[mcubootVersionOff:])}
		info.signature, _ = mcubootSignature(f, head)
		return info, nil
	case len(head) >= 4 && bytes.Equal(head[:4], update.Magic[:]):
		var h update.Header
		if err := h.UnmarshalBinary(head); err != nil {
			return imageInfo{}, fmt.Errorf("%s: %w", path, err)
		}
		if h.Type != update.TypeFull {
			return imageInfo{}, fmt.Errorf("%w: %s is a delta package, not a full image", ErrSchema, path)
		}
		return imageInfo{version: h.Version, content: "sha256:" + hex.EncodeToString(h.SHA256[:])}, nil
	}
	return imageInfo{}, nil
}

// ImageSignature returns the signature of the signed MCUboot image at path
// in the manifest's images[].signature form: TLV name, colon, base64.
func ImageSignature(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 32)
	if _, err := io.ReadFull(f, head); err != nil || binary.LittleEndian.Uint32(head) != mcubootMagic {
		return "", fmt.Errorf("%s: not an MCUboot image", path)
	}
	s, err := mcubootSignature(f, head)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// packageContent returns "sha256:" of the payload inside the update package
// at path, or "" when path is not a package.
func packageContent(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, update.HeaderSize)
	if n, _ := io.ReadFull(f, head); n < update.HeaderSize || !bytes.Equal(head[:4], update.Magic[:]) {
		return "", nil
	}
	var h update.Header
	if err := h.UnmarshalBinary(head); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.SHA256[:]), nil
}

// MCUboot TLV types that carry the image signature, and their names.
var mcubootSigTLVs = map[uint16]string{
	0x20: "rsa-2048-pss",
	0x22: "ecdsa",
	0x23: "rsa-3072-pss",
	0x24: "ed25519",
}

// mcubootSignature walks the TLV areas after the image payload and returns
// "name:base64" of the first signature TLV. The full format is the mcuboot
// package's business; this reads only what the manifest records.
func mcubootSignature(f io.ReaderAt, head []byte) (string, error) {
	hdrSize := int64(binary.LittleEndian.Uint16(head[8:]))
	protSize := int64(binary.LittleEndian.Uint16(head[10:]))
	imgSize := int64(binary.LittleEndian.Uint32(head[12:]))
	off := hdrSize + imgSize + protSize
	var info [4]byte
	if _, err := f.ReadAt(info[:], off); err != nil {
		return "", err
	}
	if binary.LittleEndian.Uint16(info[:]) != 0x6907 {
		return "", errors.New("no TLV area")
	}
	end := off + int64(binary.LittleEndian.Uint16(info[2:]))
	for p := off + 4; p+4 <= end; {
		var tl [4]byte
		if _, err := f.ReadAt(tl[:], p); err != nil {
			return "", err
		}
		typ, n := binary.LittleEndian.Uint16(tl[:]), int64(binary.LittleEndian.Uint16(tl[2:]))
		if name, ok := mcubootSigTLVs[typ]; ok && p+4+n <= end {
			v := make([]byte, n)
			if _, err := f.ReadAt(v, p+4); err != nil {
				return "", err
			}
			return name + ":" + base64.StdEncoding.EncodeToString(v), nil
		}
		p += 4 + n
	}
	return "", errors.New("no signature TLV")
}

// ReadSequence reads the last used sequence number from path; a missing
// file means 0.
func ReadSequence(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: sequence file does not hold a number: %w", path, err)
	}
	return n, nil
}

// WriteSequence records n as the last used sequence number, atomically.
func WriteSequence(path string, n uint64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteFile signs m with signers and writes it to path atomically.
func (m *Manifest) WriteFile(path string, signers ...crypto.Signer) error {
	if err := m.Sign(signers...); err != nil {
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	os.Chmod(tmp.Name(), 0o644)
	return os.Rename(tmp.Name(), path)
}
