// Package version parses, prints and orders firmware versions in the shape
// MCUboot puts in its image header: major.minor.revision+build, with an 8-bit
// major and minor, a 16-bit revision and a 32-bit build number.
//
// Update packages, manifests and the release pipeline share this type so a
// version read from a signed image compares exactly with one in a manifest.
package version

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is returned for a string that is not a valid version.
var ErrSyntax = errors.New("version: invalid version")

// Size is the length of the binary encoding (MCUboot's struct image_version).
const Size = 8

// Version is a firmware version as MCUboot encodes it.
type Version struct {
	Major    uint8
	Minor    uint8
	Revision uint16
	Build    uint32
}

// Parse parses "MAJOR.MINOR.REVISION[+BUILD]"; MINOR and REVISION may be
// omitted ("1", "1.2"), as imgtool allows.
func Parse(s string) (Version, error) {
	var v Version
	core, build, hasBuild := strings.Cut(s, "+")
	parts := strings.Split(core, ".")
	if core == "" || len(parts) > 3 {
		return v, fmt.Errorf("%w %q: want MAJOR.MINOR.REVISION[+BUILD]", ErrSyntax, s)
	}
	bits := []int{8, 8, 16}
	var nums [3]uint64
	for i, p := range parts {
		n, err := parseUint(p, bits[i])
		if err != nil {
			return v, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
		}
		nums[i] = n
	}
	v.Major, v.Minor, v.Revision = uint8(nums[0]), uint8(nums[1]), uint16(nums[2])
	if hasBuild {
		n, err := parseUint(build, 32)
		if err != nil {
			return v, fmt.Errorf("%w %q: build: %v", ErrSyntax, s, err)
		}
		v.Build = uint32(n)
	}
	return v, nil
}

func parseUint(s string, bits int) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit in %d bits", s, bits)
	}
	return n, nil
}

// MustParse is like Parse but panics on error; for constants in tests.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String formats v as "major.minor.revision+build", omitting "+0".
func (v Version) String() string {
	s := v.Core()
	if v.Build != 0 {
		s += "+" + strconv.FormatUint(uint64(v.Build), 10)
	}
	return s
}

// Core formats v without the build number, "major.minor.revision": the
// form manifests use for the version field (the build goes in its own field).
func (v Version) Core() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Revision)
}

// IsZero reports whether v is 0.0.0+0, which formats use for "no version".
func (v Version) IsZero() bool { return v == Version{} }

// Compare orders versions as MCUboot does: major, minor, revision, then build.
// It returns -1, 0 or +1.
func (v Version) Compare(w Version) int {
	a := [4]uint64{uint64(v.Major), uint64(v.Minor), uint64(v.Revision), uint64(v.Build)}
	b := [4]uint64{uint64(w.Major), uint64(w.Minor), uint64(w.Revision), uint64(w.Build)}
	for i := range a {
		switch {
		case a[i] < b[i]:
			return -1
		case a[i] > b[i]:
			return 1
		}
	}
	return 0
}

// CompareCore is Compare ignoring the build number.
func (v Version) CompareCore(w Version) int {
	v.Build, w.Build = 0, 0
	return v.Compare(w)
}

// MarshalBinary encodes v as MCUboot's 8-byte little-endian image_version.
func (v Version) MarshalBinary() ([]byte, error) {
	b := make([]byte, Size)
	v.Put(b)
	return b, nil
}

// Put writes the 8-byte encoding of v into b[:8].
func (v Version) Put(b []byte) {
	b[0], b[1] = v.Major, v.Minor
	binary.LittleEndian.PutUint16(b[2:], v.Revision)
	binary.LittleEndian.PutUint32(b[4:], v.Build)
}

// Decode reads an 8-byte MCUboot image_version from b.
func Decode(b []byte) Version {
	return Version{b[0], b[1], binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])}
}

// UnmarshalBinary decodes MCUboot's 8-byte image_version.
func (v *Version) UnmarshalBinary(b []byte) error {
	if len(b) != Size {
		return fmt.Errorf("%w: binary encoding is %d bytes, want %d", ErrSyntax, len(b), Size)
	}
	*v = Decode(b)
	return nil
}
