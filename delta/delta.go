// Package delta makes and applies binary patches between firmware images.
//
// The engine builds a suffix array of the old image with SA-IS (linear time,
// int32 entries, no worst case on padded or repetitive images), finds
// aligned regions bsdiff-style and weighs "copy with small differences"
// (add) against literal inserts by their estimated coded cost.
//
// Patches come in three formats: otakit's native format (documented in
// docs/delta-format.md: SHA-256 of both images, restart points every block,
// a model layout for the smallest patches, whose instructions, add
// differences and literals are coded by context-mixing models that see the
// source bytes under them, and a stream layout that a microcontroller
// applies in a few KiB, see delta/c), BSDIFF40 (Debian's
// bspatch; ENDSLEY/BSDIFF43 is read too) and RFC 3284 VCDIFF (xdelta3).
//
// Native patches apply in one pass. Parse and Patch.Apply take both images
// as byte slices; NewApplier and ApplyStream read the patch once from an
// io.Reader and the source through an io.ReaderAt, and hold the block table
// (12 bytes per block), about 88 KiB of buffers and the codec's decoder
// state, plus for layouts 1 and 2 one decoded block (at most
// 12 × block_size + 33 bytes) and for layout 2 its models' tables (the
// header's ApplierRAM gives the total).
package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/otakit/otakit/codec"
)

// Format names a patch format.
type Format string

// Patch formats.
const (
	FormatNative   Format = "native"
	FormatBSDIFF40 Format = "bsdiff"
	FormatBSDIFF43 Format = "bsdiff43"
	FormatVCDIFF   Format = "vcdiff"
)

// Detect returns the format of patch from its magic bytes.
func Detect(patch []byte) (Format, error) {
	switch {
	case bytes.HasPrefix(patch, []byte(Magic)):
		return FormatNative, nil
	case bytes.HasPrefix(patch, []byte(BSDIFF40Magic)):
		return FormatBSDIFF40, nil
	case bytes.HasPrefix(patch, []byte(BSDIFF43Magic)):
		return FormatBSDIFF43, nil
	case bytes.HasPrefix(patch, []byte(VCDIFFMagic)):
		return FormatVCDIFF, nil
	}
	return "", fmt.Errorf("%w: magic % x", ErrUnknownFormat, patch[:min(len(patch), 8)])
}

// ApplyAny applies a patch in any supported format to old and writes the
// target to w. Native patches are checked against both images' SHA-256;
// the interop formats carry no such hash (VCDIFF from xdelta3 may carry
// per-window Adler-32 checksums, which are checked).
func ApplyAny(old, patch []byte, w io.Writer) error {
	f, err := Detect(patch)
	if err != nil {
		return err
	}
	var out []byte
	switch f {
	case FormatNative:
		pt, err := Parse(patch)
		if err != nil {
			return err
		}
		return pt.Apply(old, w)
	case FormatBSDIFF40, FormatBSDIFF43:
		out, err = ApplyBSDIFF(old, patch)
	case FormatVCDIFF:
		out, err = ApplyVCDIFF(old, patch)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Info describes a patch for ota delta info.
type Info struct {
	Format     Format  `json:"format"`
	PatchSize  int     `json:"patchSize"`
	TargetSize int64   `json:"targetSize"` // -1 when the format does not say
	Codec      string  `json:"codec,omitempty"`
	Blocks     int     `json:"blocks,omitempty"`
	Native     *Header `json:"native,omitempty"`
}

// Describe parses a patch's header without applying it.
func Describe(patch []byte) (*Info, error) {
	f, err := Detect(patch)
	if err != nil {
		return nil, err
	}
	in := &Info{Format: f, PatchSize: len(patch), TargetSize: -1}
	switch f {
	case FormatNative:
		pt, err := Parse(patch)
		if err != nil {
			return nil, err
		}
		in.Native = &pt.Header
		in.TargetSize = pt.Header.TargetSize
		in.Blocks = len(pt.Blocks)
		in.Codec = fmt.Sprint(pt.Header.Codec)
		if c, err := codec.ByID(pt.Header.Codec); err == nil {
			in.Codec = c.Name()
		}
	case FormatBSDIFF40:
		if len(patch) < 32 {
			return nil, formatErr("BSDIFF40 header truncated")
		}
		in.TargetSize = offt(patch[24:])
	case FormatBSDIFF43:
		if len(patch) < 24 {
			return nil, formatErr("BSDIFF43 header truncated")
		}
		in.TargetSize = int64(binary.LittleEndian.Uint64(patch[16:]))
	}
	return in, nil
}
