// Package menderartifact reads and validates Mender Artifacts, format
// version 3, as written by Mender's mender-artifact tool: an outer tar
// holding, in this order, version, manifest, optional manifest.sig and
// manifest-augment, header.tar[.gz|.xz|.zst], optional header-augment, and
// one data/NNNN.tar[.gz|.xz|.zst] per payload.
//
// Read streams the whole artifact once and checks every file against the
// manifest's SHA-256 list, so a server can refuse a corrupt or tampered
// upload before offering it to devices. It does not verify manifest.sig:
// that needs the device's verification key, which the server does not hold.
package menderartifact

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Errors returned by Read, wrapped with context.
var (
	ErrFormat   = errors.New("menderartifact: malformed artifact")
	ErrOrder    = errors.New("menderartifact: files out of order")
	ErrChecksum = errors.New("menderartifact: checksum mismatch")
	ErrVersion  = errors.New("menderartifact: unsupported format version")
	ErrHeader   = errors.New("menderartifact: invalid header")
)

// Limits on the small documents, which are held in memory.
const (
	MaxDocument = 1 << 20 // version, manifest, signature, header-info, type-info…
	MaxPayloads = 64
	maxFiles    = 4096
)

// Artifact is what Read learned from a valid artifact.
type Artifact struct {
	// FormatVersion is the version file's "version" (always 3).
	FormatVersion int
	// Name is header-info's artifact_provides.artifact_name.
	Name string
	// Group is artifact_provides.artifact_group, if any.
	Group string
	// DeviceTypes lists artifact_depends.device_type: the device types
	// that may install the artifact.
	DeviceTypes []string
	// Payloads describes each data/NNNN payload in order.
	Payloads []Payload
	// Signed reports whether a manifest.sig is present (not verified).
	Signed bool
	// Scripts names the state scripts in the header.
	Scripts []string
}

// Payload is one update payload.
type Payload struct {
	Type  string // the update module, e.g. "single-file", "rootfs-image"
	Files []File
}

// File is one file of a payload, as listed in the manifest.
type File struct {
	Name   string
	Size   int64
	SHA256 string
}

// Compatible reports whether deviceType is among the artifact's device types.
func (a *Artifact) Compatible(deviceType string) bool {
	for _, t := range a.DeviceTypes {
		if t == deviceType {
			return true
		}
	}
	return false
}

// dataName and headerPayload compile on first use, not at every start of
// the ota binary.
var dataName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^data/([0-9]{4})\.tar(\.gz|\.xz|\.zst)?$`)
})

// Read parses and validates the artifact in r, reading it to the end.
func Read(r io.Reader) (*Artifact, error) {
	return read(r, true)
}

// ReadHeader parses the artifact's version, manifest and header and stops
// before the payloads: enough to learn the name and device types of an
// artifact that Read already validated.
func ReadHeader(r io.Reader) (*Artifact, error) {
	return read(r, false)
}

type reader struct {
	tr       *tar.Reader
	manifest map[string]string // name → hex sha256
	seen     map[string]bool
	a        *Artifact
}

func read(r io.Reader, full bool) (*Artifact, error) {
	rd := &reader{tr: tar.NewReader(r), seen: map[string]bool{}, a: &Artifact{}}
	a := rd.a
	// version
	h, err := rd.next("version")
	if err != nil {
		return nil, err
	}
	if h.Name != "version" {
		return nil, fmt.Errorf("%w: first file is %q, want \"version\"", ErrOrder, h.Name)
	}
	verDoc, err := rd.document(h)
	if err != nil {
		return nil, err
	}
	var ver struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(verDoc, &ver); err != nil {
		return nil, fmt.Errorf("%w: version: %v", ErrFormat, err)
	}
	if ver.Format != "mender" {
		return nil, fmt.Errorf("%w: version: format %q, want \"mender\"", ErrFormat, ver.Format)
	}
	if ver.Version != 3 {
		return nil, fmt.Errorf("%w: %d (only version 3 is read)", ErrVersion, ver.Version)
	}
	a.FormatVersion = ver.Version
	// manifest
	if h, err = rd.next("manifest"); err != nil {
		return nil, err
	}
	if h.Name != "manifest" {
		return nil, fmt.Errorf("%w: second file is %q, want \"manifest\"", ErrOrder, h.Name)
	}
	man, err := rd.document(h)
	if err != nil {
		return nil, err
	}
	if rd.manifest, err = parseManifest(man); err != nil {
		return nil, err
	}
	if err := rd.check("version", verDoc); err != nil {
		return nil, err
	}
	// optional manifest.sig and manifest-augment, then the header
	for {
		if h, err = rd.next("header"); err != nil {
			return nil, err
		}
		switch h.Name {
		case "manifest.sig":
			if a.Signed {
				return nil, fmt.Errorf("%w: manifest.sig twice", ErrOrder)
			}
			if _, err := rd.document(h); err != nil {
				return nil, err
			}
			a.Signed = true
			continue
		case "manifest-augment":
			return nil, fmt.Errorf("%w: augmented artifacts (manifest-augment) are not supported", ErrFormat)
		}
		break
	}
	comp, ok := strings.CutPrefix(h.Name, "header.tar")
	if !ok || !validComp(comp) {
		return nil, fmt.Errorf("%w: found %q where header.tar[.gz|.xz|.zst] belongs", ErrOrder, h.Name)
	}
	hdr, err := rd.document(h)
	if err != nil {
		return nil, err
	}
	if err := rd.check(h.Name, hdr); err != nil {
		return nil, err
	}
	if err := a.parseHeader(hdr, comp); err != nil {
		return nil, err
	}
	if !full {
		return a, nil
	}
	// payloads
	for i := 0; ; i++ {
		h, err := rd.tr.Next()
		if err == io.EOF {
			if i != len(a.Payloads) {
				return nil, fmt.Errorf("%w: header declares %d payloads, artifact has %d", ErrFormat, len(a.Payloads), i)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading tar: %v", ErrFormat, err)
		}
		if strings.HasPrefix(h.Name, "header-augment") {
			return nil, fmt.Errorf("%w: augmented artifacts (header-augment) are not supported", ErrFormat)
		}
		m := dataName().FindStringSubmatch(h.Name)
		if m == nil {
			return nil, fmt.Errorf("%w: unexpected file %q after the header", ErrOrder, h.Name)
		}
		if n, _ := strconv.Atoi(m[1]); n != i {
			return nil, fmt.Errorf("%w: %q where data/%04d belongs", ErrOrder, h.Name, i)
		}
		if i >= len(a.Payloads) {
			return nil, fmt.Errorf("%w: %q but the header declares %d payloads", ErrFormat, h.Name, len(a.Payloads))
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: %q is not a regular file", ErrFormat, h.Name)
		}
		files, err := rd.payload(i, rd.tr, m[2])
		if err != nil {
			return nil, err
		}
		a.Payloads[i].Files = files
	}
	// every manifest entry must have been present
	var missing []string
	for name := range rd.manifest {
		if !rd.seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: manifest lists %q, which the artifact lacks", ErrChecksum, missing[0])
	}
	return a, nil
}

func validComp(c string) bool { return c == "" || c == ".gz" || c == ".xz" || c == ".zst" }

func (rd *reader) next(want string) (*tar.Header, error) {
	h, err := rd.tr.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: artifact ends before its %s", ErrFormat, want)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading tar: %v", ErrFormat, err)
	}
	if h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%w: %q is not a regular file", ErrFormat, h.Name)
	}
	return h, nil
}

// document reads a small file whole.
func (rd *reader) document(h *tar.Header) ([]byte, error) {
	if h.Size > MaxDocument {
		return nil, fmt.Errorf("%w: %q is %d bytes, more than %d", ErrFormat, h.Name, h.Size, MaxDocument)
	}
	b, err := io.ReadAll(rd.tr)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %q: %v", ErrFormat, h.Name, err)
	}
	return b, nil
}

// check compares b with the manifest's digest for name.
func (rd *reader) check(name string, b []byte) error {
	sum := sha256.Sum256(b)
	return rd.checkSum(name, hex.EncodeToString(sum[:]))
}

func (rd *reader) checkSum(name, sum string) error {
	want, ok := rd.manifest[name]
	if !ok {
		return fmt.Errorf("%w: %q is not listed in the manifest", ErrChecksum, name)
	}
	if rd.seen[name] {
		return fmt.Errorf("%w: %q appears twice", ErrFormat, name)
	}
	rd.seen[name] = true
	if want != sum {
		return fmt.Errorf("%w: %q has sha256 %s, manifest says %s", ErrChecksum, name, sum, want)
	}
	return nil
}

// parseManifest reads lines of "<sha256 hex>  <name>".
func parseManifest(b []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), MaxDocument)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if t == "" {
			continue
		}
		sum, name, ok := strings.Cut(t, "  ")
		if !ok || len(sum) != 64 || name == "" {
			return nil, fmt.Errorf("%w: manifest line %d: want \"<sha256>  <name>\"", ErrFormat, line)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("%w: manifest line %d: checksum is not hex", ErrFormat, line)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%w: manifest lists %q twice", ErrFormat, name)
		}
		if len(m) >= maxFiles {
			return nil, fmt.Errorf("%w: manifest lists more than %d files", ErrFormat, maxFiles)
		}
		m[name] = strings.ToLower(sum)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: empty manifest", ErrFormat)
	}
	return m, nil
}

// decompress wraps r for the compression a file name suffix names.
func decompress(r io.Reader, comp string) (io.Reader, func(), error) {
	switch comp {
	case "":
		return r, func() {}, nil
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case ".xz":
		br := bufio.NewReaderSize(r, 2048)
		if err := checkXZ(br); err != nil {
			return nil, nil, err
		}
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, func() {}, nil
	case ".zst":
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %q", comp)
}

// MaxXZDict caps the LZMA2 dictionary an xz stream may ask for: the
// decoder allocates it up front, so a hostile header could demand 4 GiB.
// 64 MiB is xz's largest preset (-9).
const MaxXZDict = 64 << 20

// checkXZ reads the xz stream header and the first block header without
// consuming them and refuses an LZMA2 dictionary over MaxXZDict.
func checkXZ(br *bufio.Reader) error {
	hdr, _ := br.Peek(13)
	if len(hdr) < 13 || !bytes.Equal(hdr[:6], []byte("\xfd7zXZ\x00")) {
		return errors.New("not an xz stream")
	}
	if hdr[12] == 0 {
		return nil // no block: the index follows
	}
	size := (int(hdr[12]) + 1) * 4
	b, err := br.Peek(12 + size)
	if err != nil {
		return errors.New("truncated xz block header")
	}
	b = b[12+1 : 12+size]
	flags := b[0]
	b = b[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && len(b) > 0; i++ {
			c := b[0]
			b = b[1:]
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	for _, bit := range []byte{0x40, 0x80} {
		if flags&bit != 0 {
			if _, ok := varint(); !ok {
				return errors.New("bad xz block header")
			}
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || n > uint64(len(b)) {
			return errors.New("bad xz filter flags")
		}
		if id == 0x21 && n == 1 {
			p := b[0]
			if p > 40 || p == 40 || uint64(2|p&1)<<(p/2+11) > MaxXZDict {
				return fmt.Errorf("xz dictionary larger than %d MiB", MaxXZDict>>20)
			}
		}
		b = b[n:]
	}
	return nil
}

type headerInfo struct {
	Payloads []struct {
		Type *string `json:"type"`
	} `json:"payloads"`
	Provides struct {
		Name  string `json:"artifact_name"`
		Group string `json:"artifact_group"`
	} `json:"artifact_provides"`
	Depends struct {
		DeviceType []string `json:"device_type"`
	} `json:"artifact_depends"`
}

var headerPayload = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^headers/([0-9]{4})/(type-info|meta-data)$`)
})

// parseHeader reads the header tar: header-info first, then scripts and
// per-payload type-info / meta-data.
func (a *Artifact) parseHeader(b []byte, comp string) error {
	zr, done, err := decompress(bytes.NewReader(b), comp)
	if err != nil {
		return fmt.Errorf("%w: header.tar%s: %v", ErrHeader, comp, err)
	}
	defer done()
	tr := tar.NewReader(zr)
	var info headerInfo
	typeInfo := map[int]bool{}
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: header.tar%s: %v", ErrHeader, comp, err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: %q is not a regular file", ErrHeader, h.Name)
		}
		if h.Size > MaxDocument {
			return fmt.Errorf("%w: %q is larger than %d bytes", ErrHeader, h.Name, MaxDocument)
		}
		doc, err := io.ReadAll(io.LimitReader(tr, MaxDocument+1))
		if err != nil {
			return fmt.Errorf("%w: reading %q: %v", ErrHeader, h.Name, err)
		}
		if i == 0 {
			if h.Name != "header-info" {
				return fmt.Errorf("%w: header starts with %q, want header-info", ErrOrder, h.Name)
			}
			if err := json.Unmarshal(doc, &info); err != nil {
				return fmt.Errorf("%w: header-info: %v", ErrHeader, err)
			}
			continue
		}
		if s, ok := strings.CutPrefix(h.Name, "scripts/"); ok && s != "" && !strings.Contains(s, "/") {
			a.Scripts = append(a.Scripts, s)
			continue
		}
		m := headerPayload().FindStringSubmatch(h.Name)
		if m == nil {
			return fmt.Errorf("%w: unexpected header file %q", ErrHeader, h.Name)
		}
		n, _ := strconv.Atoi(m[1])
		if n >= len(info.Payloads) {
			return fmt.Errorf("%w: %q but header-info declares %d payloads", ErrHeader, h.Name, len(info.Payloads))
		}
		if m[2] == "type-info" {
			var ti struct {
				Type *string `json:"type"`
			}
			if err := json.Unmarshal(doc, &ti); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrHeader, h.Name, err)
			}
			if p := info.Payloads[n].Type; ti.Type != nil && *ti.Type != "" && p != nil && *ti.Type != *p {
				return fmt.Errorf("%w: %s says type %q, header-info %q", ErrHeader, h.Name, *ti.Type, *p)
			}
			typeInfo[n] = true
		} else if len(doc) > 0 && !json.Valid(doc) {
			return fmt.Errorf("%w: %s is not JSON", ErrHeader, h.Name)
		}
	}
	if info.Provides.Name == "" {
		return fmt.Errorf("%w: header-info has no artifact_provides.artifact_name", ErrHeader)
	}
	if len(info.Depends.DeviceType) == 0 {
		return fmt.Errorf("%w: header-info has no artifact_depends.device_type", ErrHeader)
	}
	for _, t := range info.Depends.DeviceType {
		if t == "" {
			return fmt.Errorf("%w: header-info lists an empty device type", ErrHeader)
		}
	}
	if len(info.Payloads) > MaxPayloads {
		return fmt.Errorf("%w: more than %d payloads", ErrHeader, MaxPayloads)
	}
	a.Name, a.Group = info.Provides.Name, info.Provides.Group
	a.DeviceTypes = info.Depends.DeviceType
	for i, p := range info.Payloads {
		if !typeInfo[i] {
			return fmt.Errorf("%w: payload %d has no headers/%04d/type-info", ErrHeader, i, i)
		}
		t := ""
		if p.Type != nil {
			t = *p.Type
		}
		a.Payloads = append(a.Payloads, Payload{Type: t})
	}
	return nil
}

// payload hashes every file of data/NNNN against the manifest.
func (rd *reader) payload(i int, r io.Reader, comp string) ([]File, error) {
	zr, done, err := decompress(r, comp)
	if err != nil {
		return nil, fmt.Errorf("%w: data/%04d: %v", ErrFormat, i, err)
	}
	defer done()
	tr := tar.NewReader(zr)
	var files []File
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: data/%04d: %v", ErrFormat, i, err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: data/%04d: %q is not a regular file", ErrFormat, i, h.Name)
		}
		if h.Name == "" || strings.Contains(h.Name, "/") {
			return nil, fmt.Errorf("%w: data/%04d: bad file name %q", ErrFormat, i, h.Name)
		}
		if len(files) >= maxFiles {
			return nil, fmt.Errorf("%w: data/%04d: too many files", ErrFormat, i)
		}
		hs := sha256.New()
		n, err := io.Copy(hs, tr)
		if err != nil {
			return nil, fmt.Errorf("%w: data/%04d/%s: %v", ErrFormat, i, h.Name, err)
		}
		sum := hex.EncodeToString(hs.Sum(nil))
		name := fmt.Sprintf("data/%04d/%s", i, h.Name)
		if err := rd.checkSum(name, sum); err != nil {
			return nil, err
		}
		files = append(files, File{Name: h.Name, Size: n, SHA256: sum})
	}
	// Drain the compressed stream's end (trailing data must still be
	// consumed so the outer tar stays aligned; tar.Reader handles that).
	return files, nil
}
