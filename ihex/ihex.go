// Package ihex reads and writes Intel HEX files, the format firmware
// builds emit and MCUboot's imgtool signs: data records (type 00), end of
// file (01), extended segment (02) and linear (04) addresses, and start
// segment (03) and linear (05) addresses.
//
// Read returns the data as sorted, merged segments. Write produces the
// exact bytes of Python's intelhex (which imgtool uses): 16 data bytes per
// record, records never crossing a 64 KiB boundary or a gap, an extended
// linear address record whenever the upper 16 address bits change (if any
// address is above 0xFFFF), the start address record first, and the EOF
// record last, with "\n" line ends.
package ihex

import (
	"errors"
	"fmt"
	"sort"
)

// Record types.
const (
	TypeData           = 0x00
	TypeEOF            = 0x01
	TypeExtSegmentAddr = 0x02
	TypeStartSegment   = 0x03
	TypeExtLinearAddr  = 0x04
	TypeStartLinear    = 0x05
)

// Errors returned by Read; they are wrapped with the line number.
var (
	ErrSyntax     = errors.New("ihex: syntax error")
	ErrChecksum   = errors.New("ihex: bad record checksum")
	ErrLength     = errors.New("ihex: bad record length")
	ErrRecordType = errors.New("ihex: unknown record type")
	ErrOverlap    = errors.New("ihex: overlapping data")
	ErrNoEOF      = errors.New("ihex: missing end-of-file record")
	ErrAfterEOF   = errors.New("ihex: data after end-of-file record")
	ErrStart      = errors.New("ihex: conflicting start addresses")
	ErrRange      = errors.New("ihex: address beyond 4 GiB")
	ErrTooLarge   = errors.New("ihex: image too large to flatten")
)

// Segment is a run of contiguous bytes at an absolute address.
type Segment struct {
	Addr uint32
	Data []byte
}

// End is the address just past the segment (as uint64: a segment may end
// exactly at 4 GiB).
func (s Segment) End() uint64 { return uint64(s.Addr) + uint64(len(s.Data)) }

// Start is a start address record: either linear (EIP, type 05) or segment
// (CS:IP, type 03).
type Start struct {
	Linear bool
	EIP    uint32 // when Linear
	CS, IP uint16 // when !Linear
}

// File is the content of an Intel HEX file.
type File struct {
	// Segments are sorted by address, non-overlapping and non-adjacent
	// (adjacent runs are merged).
	Segments []Segment
	// Start is the start address, or nil if the file has none.
	Start *Start
}

// FromBinary returns a File holding data at addr.
func FromBinary(addr uint32, data []byte) *File {
	return &File{Segments: []Segment{{Addr: addr, Data: data}}}
}

// MinAddr is the lowest address holding data (0 if there is none).
func (f *File) MinAddr() uint32 {
	if len(f.Segments) == 0 {
		return 0
	}
	return f.Segments[0].Addr
}

// MaxFlatten bounds the size Flatten will allocate.
const MaxFlatten = 1 << 30

// Flatten returns the bytes from the lowest to the highest address, gaps
// filled with fill (imgtool fills with 0xff), and the base address.
func (f *File) Flatten(fill byte) (base uint32, data []byte, err error) {
	if len(f.Segments) == 0 {
		return 0, nil, nil
	}
	base = f.Segments[0].Addr
	size := f.Segments[len(f.Segments)-1].End() - uint64(base)
	if size > MaxFlatten {
		return 0, nil, fmt.Errorf("%w: %d bytes from 0x%08x", ErrTooLarge, size, base)
	}
	data = make([]byte, size)
	pos := uint64(0)
	for _, s := range f.Segments {
		off := uint64(s.Addr) - uint64(base)
		for ; pos < off; pos++ {
			data[pos] = fill
		}
		pos += uint64(copy(data[off:], s.Data))
	}
	return base, data, nil
}

// normalize sorts segments, rejects overlaps and merges adjacent ones.
func (f *File) normalize() error {
	segs := f.Segments
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Addr < segs[j].Addr })
	out := segs[:0]
	for _, s := range segs {
		if len(s.Data) == 0 {
			continue
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if uint64(s.Addr) < last.End() {
				return fmt.Errorf("%w at 0x%08x", ErrOverlap, s.Addr)
			}
			if uint64(s.Addr) == last.End() {
				last.Data = append(last.Data, s.Data...)
				continue
			}
		}
		out = append(out, s)
	}
	f.Segments = out
	return nil
}
