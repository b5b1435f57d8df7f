package boot

import (
	"encoding/binary"
	"fmt"
)

// Magic states of a trailer, as MCUboot's BOOT_MAGIC_*.
type Magic uint8

// Trailer magic states.
const (
	MagicGood  Magic = 1 // BOOT_MAGIC_GOOD
	MagicBad   Magic = 2 // BOOT_MAGIC_BAD
	MagicUnset Magic = 3 // BOOT_MAGIC_UNSET: erased
)

// String names the state as MCUboot logs it.
func (m Magic) String() string {
	switch m {
	case MagicGood:
		return "good"
	case MagicBad:
		return "bad"
	case MagicUnset:
		return "unset"
	}
	return fmt.Sprintf("magic(%d)", uint8(m))
}

// Flag states of image_ok and copy_done, as MCUboot's BOOT_FLAG_*.
type Flag uint8

// Flag states.
const (
	FlagSet   Flag = 1 // BOOT_FLAG_SET: the byte holds 0x01
	FlagBad   Flag = 2 // BOOT_FLAG_BAD: written, but not 0x01
	FlagUnset Flag = 3 // BOOT_FLAG_UNSET: erased
)

// String names the flag state.
func (f Flag) String() string {
	switch f {
	case FlagSet:
		return "set"
	case FlagBad:
		return "bad"
	case FlagUnset:
		return "unset"
	}
	return fmt.Sprintf("flag(%d)", uint8(f))
}

// SwapType is MCUboot's BOOT_SWAP_TYPE_*.
type SwapType uint8

// Swap types. The values are those MCUboot stores in swap_info.
const (
	SwapNone   SwapType = 1 // boot the primary slot as is
	SwapTest   SwapType = 2 // swap, boot once; revert unless confirmed
	SwapPerm   SwapType = 3 // swap permanently
	SwapRevert SwapType = 4 // swap back: the test image was not confirmed
	SwapFail   SwapType = 5 // the secondary image failed validation
	SwapPanic  SwapType = 0xff
)

// String names the swap type as MCUboot logs it.
func (t SwapType) String() string {
	switch t {
	case SwapNone:
		return "none"
	case SwapTest:
		return "test"
	case SwapPerm:
		return "perm"
	case SwapRevert:
		return "revert"
	case SwapFail:
		return "fail"
	case SwapPanic:
		return "panic"
	}
	return fmt.Sprintf("swap(%d)", uint8(t))
}

// The classic trailer magic (BOOT_MAX_ALIGN 8): boot_img_magic as bytes.
var magic8 = [16]byte{0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80}

// The tail of the magic for other BOOT_MAX_ALIGN values, after the
// little-endian 16-bit alignment.
var magicTail = [14]byte{0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a}

// MagicBytes returns the 16-byte trailer magic MCUboot uses for a
// BOOT_MAX_ALIGN: the classic magic for 8, else the alignment as a
// little-endian uint16 followed by a fixed 14-byte tail.
func MagicBytes(maxAlign int) [16]byte {
	if maxAlign == 8 {
		return magic8
	}
	var m [16]byte
	binary.LittleEndian.PutUint16(m[:], uint16(maxAlign))
	copy(m[2:], magicTail[:])
	return m
}

// Trailer is the geometry of the image trailer at the end of a slot (or
// of the scratch area), laid out as MCUboot's bootutil does, from the end:
//
//	magic      16 bytes, at the end of a BOOT_MAGIC_ALIGN_SIZE block
//	image_ok   1 byte in a BOOT_MAX_ALIGN block
//	copy_done  1 byte in a BOOT_MAX_ALIGN block
//	swap_info  1 byte in a BOOT_MAX_ALIGN block: swap type | image number << 4
//	swap_size  4 bytes (little-endian) in a BOOT_MAX_ALIGN block
//	enc keys   two key slots (only with encryption)
//	status     BOOT_MAX_IMG_SECTORS × state count entries of one write each
type Trailer struct {
	Size       int // the area (slot or scratch) size
	Align      int // flash write size: one status entry
	MaxAlign   int // BOOT_MAX_ALIGN: max(8, Align)
	MaxSectors int // BOOT_MAX_IMG_SECTORS
	EncKeySize int // bytes per encryption key slot before alignment; 0 without encryption
}

// NewTrailer returns the trailer geometry of an area of size bytes.
func NewTrailer(size, align, maxSectors, encKeySize int) Trailer {
	return Trailer{Size: size, Align: align, MaxAlign: max(8, align), MaxSectors: maxSectors, EncKeySize: encKeySize}
}

func alignUp(n, a int) int   { return (n + a - 1) / a * a }
func alignDown(n, a int) int { return n / a * a }

// StateCount is BOOT_STATUS_STATE_COUNT: 3 for both swap modes (scratch:
// three states; move: one move and two swap states).
const StateCount = 3

func (t Trailer) magicAlignSize() int { return alignUp(16, t.MaxAlign) }

// MagicOff is boot_magic_off: where the 16 magic bytes start.
func (t Trailer) MagicOff() int { return t.Size - 16 }

// MagicBlockOff is where the padded magic block is written.
func (t Trailer) MagicBlockOff() int { return t.Size - t.magicAlignSize() }

// ImageOKOff is boot_image_ok_off.
func (t Trailer) ImageOKOff() int { return alignDown(t.MagicOff()-t.MaxAlign, t.MaxAlign) }

// CopyDoneOff is boot_copy_done_off.
func (t Trailer) CopyDoneOff() int { return t.ImageOKOff() - t.MaxAlign }

// SwapInfoOff is boot_swap_info_off.
func (t Trailer) SwapInfoOff() int { return t.CopyDoneOff() - t.MaxAlign }

// SwapSizeOff is boot_swap_size_off.
func (t Trailer) SwapSizeOff() int { return t.SwapInfoOff() - t.MaxAlign }

func (t Trailer) encKeyAlignSize() int {
	if t.EncKeySize == 0 {
		return 0
	}
	return alignUp(t.EncKeySize, t.MaxAlign)
}

// EncKeyOff is boot_enc_key_off for key slot 0 or 1.
func (t Trailer) EncKeyOff(slot int) int { return t.SwapSizeOff() - (slot+1)*t.encKeyAlignSize() }

// InfoSize is boot_trailer_info_sz: everything but the status entries.
func (t Trailer) InfoSize() int { return 2*t.encKeyAlignSize() + 4*t.MaxAlign + t.magicAlignSize() }

// StatusSize is boot_status_sz.
func (t Trailer) StatusSize() int { return t.MaxSectors * StateCount * t.Align }

// TrailerSize is boot_trailer_sz.
func (t Trailer) TrailerSize() int { return t.StatusSize() + t.InfoSize() }

// StatusOff is boot_status_off: where the status entries start.
func (t Trailer) StatusOff() int { return t.Size - t.TrailerSize() }

// State is what boot_read_swap_state reads from a trailer.
type State struct {
	Magic    Magic
	SwapType SwapType // from swap_info; SwapNone when erased or invalid
	ImageNum uint8
	CopyDone Flag
	ImageOK  Flag
	SwapSize uint32 // raw, meaningful only while a swap is under way
}

// ParseState decodes the trailer fields from the last bytes of an area:
// tail must hold at least InfoSize() bytes and end where the area ends.
// A field that reads as the erased value is unset.
func (t Trailer) ParseState(tail []byte, erased byte) (State, error) {
	need := 4*t.MaxAlign + t.magicAlignSize()
	if len(tail) < need {
		return State{}, fmt.Errorf("%w: %d bytes, need %d", ErrTrailer, len(tail), need)
	}
	at := func(off int) []byte { return tail[len(tail)-(t.Size-off):] }
	isErased := func(b []byte) bool {
		for _, c := range b {
			if c != erased {
				return false
			}
		}
		return true
	}
	var s State
	m := at(t.MagicOff())[:16]
	switch {
	case isErased(m):
		s.Magic = MagicUnset
	case [16]byte(m) == MagicBytes(t.MaxAlign):
		s.Magic = MagicGood
	default:
		s.Magic = MagicBad
	}
	flag := func(off int) Flag {
		b := at(off)[0]
		switch {
		case b == erased:
			return FlagUnset
		case b == 0x01:
			return FlagSet
		}
		return FlagBad
	}
	s.ImageOK = flag(t.ImageOKOff())
	s.CopyDone = flag(t.CopyDoneOff())
	info := at(t.SwapInfoOff())[0]
	s.SwapType, s.ImageNum = SwapType(info&0x0f), info>>4
	if info == erased || s.SwapType > SwapRevert || s.SwapType == 0 {
		s.SwapType, s.ImageNum = SwapNone, 0
	}
	s.SwapSize = binary.LittleEndian.Uint32(at(t.SwapSizeOff()))
	return s, nil
}

// swapTable is MCUboot's boot_swap_tables: the first row that matches the
// two trailers decides the swap type; no match means SwapNone.
var swapTable = []struct {
	magicPrimary, magicSecondary     Magic // 0: any
	imageOKPrimary, imageOKSecondary Flag  // 0: any
	copyDonePrimary                  Flag
	swapType                         SwapType
}{
	{0, MagicGood, 0, FlagUnset, 0, SwapTest},
	{0, MagicGood, 0, FlagSet, 0, SwapPerm},
	{MagicGood, MagicUnset, FlagUnset, 0, FlagSet, SwapRevert},
}

// DecideSwap applies MCUboot's swap-type table to the primary and
// secondary trailers.
func DecideSwap(primary, secondary State) SwapType {
	for _, r := range swapTable {
		if (r.magicPrimary == 0 || r.magicPrimary == primary.Magic) &&
			(r.magicSecondary == 0 || r.magicSecondary == secondary.Magic) &&
			(r.imageOKPrimary == 0 || r.imageOKPrimary == primary.ImageOK) &&
			(r.imageOKSecondary == 0 || r.imageOKSecondary == secondary.ImageOK) &&
			(r.copyDonePrimary == 0 || r.copyDonePrimary == primary.CopyDone) {
			return r.swapType
		}
	}
	return SwapNone
}
