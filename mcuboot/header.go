package mcuboot

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"sync"
)

// Version is an image version, major.minor.revision+build.
type Version struct {
	Major    uint8
	Minor    uint8
	Revision uint16
	Build    uint32
}

// String formats v as imgtool prints it: "1.2.3+4".
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d+%d", v.Major, v.Minor, v.Revision, v.Build)
}

// SecurityCounter is the value imgtool's "--security-counter auto" derives
// from the version: major<<24 | minor<<16 | revision.
func (v Version) SecurityCounter() uint32 {
	return uint32(v.Major)<<24 | uint32(v.Minor)<<16 | uint32(v.Revision)
}

// The regular expressions compile on first use, not at start-up: every
// run of the ota binary would pay for them otherwise.
var versionRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([1-9]\d*|0)(\.([1-9]\d*|0)(\.([1-9]\d*|0)(\+([1-9]\d*|0))?)?)?$`)
})

// ParseVersion parses "maj[.min[.rev[+build]]]" with imgtool's rules: no
// leading zeros, later parts optional, each part within its field's range.
func ParseVersion(s string) (Version, error) {
	m := versionRE().FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("%w %q: want maj.min.rev+build with later parts optional", ErrVersion, s)
	}
	part := func(i int, bits int, name string) (uint64, error) {
		if m[i] == "" {
			return 0, nil
		}
		n, err := strconv.ParseUint(m[i], 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%w %q: %s %s out of range", ErrVersion, s, name, m[i])
		}
		return n, nil
	}
	var v Version
	var n uint64
	var err error
	if n, err = part(1, 8, "major"); err != nil {
		return v, err
	}
	v.Major = uint8(n)
	if n, err = part(3, 8, "minor"); err != nil {
		return v, err
	}
	v.Minor = uint8(n)
	if n, err = part(5, 16, "revision"); err != nil {
		return v, err
	}
	v.Revision = uint16(n)
	if n, err = part(7, 32, "build"); err != nil {
		return v, err
	}
	v.Build = uint32(n)
	return v, nil
}

// Dependency says that this image needs image ImageID at Version or newer
// (a DEPENDENCY TLV).
type Dependency struct {
	ImageID uint8
	Version Version
}

var (
	depImageRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\((\d+)`) })
	depVersionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`,\s*([0-9.+]+)\)`) })
)

// ParseDependencies parses imgtool's -d/--dependencies syntax:
// "(1,1.2.3+4)" or several, "(0,1.0.0), (1,2.3.0+7)".
func ParseDependencies(s string) ([]Dependency, error) {
	imgs := depImageRE().FindAllStringSubmatch(s, -1)
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%w: image dependency format is invalid: %q", ErrOptions, s)
	}
	vers := depVersionRE().FindAllStringSubmatch(s, -1)
	if len(imgs) != len(vers) {
		return nil, fmt.Errorf("%w: the number of dependency images and versions differ in %q", ErrOptions, s)
	}
	deps := make([]Dependency, len(imgs))
	for i := range imgs {
		id, err := strconv.ParseUint(imgs[i][1], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: dependency image id %s out of range", ErrOptions, imgs[i][1])
		}
		v, err := ParseVersion(vers[i][1])
		if err != nil {
			return nil, err
		}
		deps[i] = Dependency{ImageID: uint8(id), Version: v}
	}
	return deps, nil
}

// marshal encodes d as the 12-byte DEPENDENCY TLV value.
func (d Dependency) marshal(o binary.ByteOrder) []byte {
	b := make([]byte, 12)
	b[0] = d.ImageID
	b[4] = d.Version.Major
	b[5] = d.Version.Minor
	o.PutUint16(b[6:], d.Version.Revision)
	o.PutUint32(b[8:], d.Version.Build)
	return b
}

func parseDependency(v []byte, o binary.ByteOrder) (Dependency, error) {
	if len(v) != 12 {
		return Dependency{}, fmt.Errorf("%w: DEPENDENCY is %d bytes, want 12", ErrTLVValue, len(v))
	}
	return Dependency{ImageID: v[0], Version: Version{v[4], v[5], o.Uint16(v[6:]), o.Uint32(v[8:])}}, nil
}

// Header is the fixed 32-byte image header (struct image_header).
type Header struct {
	LoadAddr         uint32 // RAM load address, or flash address with ROM_FIXED
	HeaderSize       uint16 // size of the header area; the payload starts here
	ProtectedTLVSize uint16 // size of the protected TLV area including its info header
	ImageSize        uint32 // payload size, not counting the header area
	Flags            Flags
	Version          Version
}

// Marshal encodes h in byte order o (little-endian for every MCUboot
// target except big-endian builds made with imgtool --endian big).
func (h *Header) Marshal(o binary.ByteOrder) []byte {
	b := make([]byte, HeaderSize)
	o.PutUint32(b[0:], ImageMagic)
	o.PutUint32(b[4:], h.LoadAddr)
	o.PutUint16(b[8:], h.HeaderSize)
	o.PutUint16(b[10:], h.ProtectedTLVSize)
	o.PutUint32(b[12:], h.ImageSize)
	o.PutUint32(b[16:], uint32(h.Flags))
	b[20] = h.Version.Major
	b[21] = h.Version.Minor
	o.PutUint16(b[22:], h.Version.Revision)
	o.PutUint32(b[24:], h.Version.Build)
	// b[28:32] is _pad1, zero.
	return b
}

// parseHeader decodes a header, detecting the byte order from the magic.
func parseHeader(b []byte) (Header, binary.ByteOrder, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize)
	}
	var o binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint32(b) == ImageMagic:
		o = binary.LittleEndian
	case binary.BigEndian.Uint32(b) == ImageMagic:
		o = binary.BigEndian
	default:
		return Header{}, nil, fmt.Errorf("%w: got 0x%08x", ErrMagic, binary.LittleEndian.Uint32(b))
	}
	h := Header{
		LoadAddr:         o.Uint32(b[4:]),
		HeaderSize:       o.Uint16(b[8:]),
		ProtectedTLVSize: o.Uint16(b[10:]),
		ImageSize:        o.Uint32(b[12:]),
		Flags:            Flags(o.Uint32(b[16:])),
		Version:          Version{b[20], b[21], o.Uint16(b[22:]), o.Uint32(b[24:])},
	}
	if h.HeaderSize < HeaderSize {
		return h, o, fmt.Errorf("%w: header size %d is below %d", ErrHeader, h.HeaderSize, HeaderSize)
	}
	if h.Flags&FlagEncryptedAES128 != 0 && h.Flags&FlagEncryptedAES256 != 0 {
		return h, o, fmt.Errorf("%w: both ENCRYPTED_AES128 and ENCRYPTED_AES256 flags set", ErrHeader)
	}
	return h, o, nil
}
