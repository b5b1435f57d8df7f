package mcuboot

import (
	"encoding/binary"
	"fmt"
)

// TrailerLayout describes the image trailer at the end of a slot: the
// swap status area, encryption key slots and the flag fields followed by
// the magic. Sizes follow imgtool's _trailer_size.
type TrailerLayout struct {
	Align         int  // flash write size used by the swap status (--align)
	MaxAlign      int  // alignment of the flag fields and magic (--max-align)
	MaxSectors    int  // sectors the swap status has room for (-M)
	OverwriteOnly bool // overwrite-only upgrades keep no swap status
	Encrypted     bool // room for the two encryption key slots
	SaveEncTLV    bool // key slots hold the whole key TLV (--save-enctlv)
	EncTLVLen     int  // length of that TLV when SaveEncTLV is set
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

func (l TrailerLayout) maxAlign() int {
	if l.MaxAlign != 0 {
		return l.MaxAlign
	}
	return max(DefaultMaxAlign, l.Align)
}

// Size returns the trailer size in bytes.
func (l TrailerLayout) Size() (int, error) {
	ma := l.maxAlign()
	switch ma {
	case 8, 16, 32:
	default:
		return 0, fmt.Errorf("%w: max-align %d not one of 8, 16, 32", ErrOptions, ma)
	}
	magicAlign := alignUp(bootMagicSize, ma)
	if l.OverwriteOnly {
		return ma*2 + magicAlign, nil
	}
	switch l.Align {
	case 1, 2, 4, 8, 16, 32:
	default:
		return 0, fmt.Errorf("%w: alignment %d not one of 1, 2, 4, 8, 16, 32", ErrOptions, l.Align)
	}
	m := l.MaxSectors
	if m == 0 {
		m = DefaultMaxSectors
	}
	size := m * 3 * l.Align
	if l.Encrypted {
		keylen := alignUp(16, ma)
		if l.SaveEncTLV {
			keylen = alignUp(l.EncTLVLen, ma)
		}
		size += keylen * 2
	}
	size += ma*4 + magicAlign
	return size, nil
}

// imageOKOffset is the offset of image_ok counted back from the slot end.
func (l TrailerLayout) imageOKOffset() int {
	ma := l.maxAlign()
	return alignUp(bootMagicSize, ma) + ma
}

// BootMagic returns the 16-byte trailer magic for the given maximum
// alignment: the classic magic for 8, otherwise the alignment in byte order
// o followed by the fixed tail.
func BootMagic(maxAlign int, o binary.ByteOrder) [16]byte {
	if maxAlign == DefaultMaxAlign || maxAlign == 0 {
		return bootMagic
	}
	var m [16]byte
	o.PutUint16(m[:2], uint16(maxAlign))
	copy(m[2:], bootMagicTail[:])
	return m
}

// Trailer is what dumpinfo reports about the end of a padded image.
type Trailer struct {
	Magic    string `json:"magic"`     // "good", "unset" (erased) or "bad"
	MaxAlign int    `json:"max_align"` // derived from the magic; 8 for the classic magic
	SwapSize uint32 `json:"swap_size"`
	SwapInfo uint8  `json:"swap_info"`
	CopyDone uint8  `json:"copy_done"`
	ImageOK  uint8  `json:"image_ok"`
	// Offset is where the flag fields start in the file.
	Offset int64 `json:"offset"`
}

// parseTrailer reads the trailer fields from the last bytes of a slot
// image. tail holds the end of the file; it needs 16+4*32+32 bytes at most.
func parseTrailer(tail []byte, o binary.ByteOrder, fileSize int64) *Trailer {
	if len(tail) < bootMagicSize {
		return nil
	}
	magic := tail[len(tail)-bootMagicSize:]
	t := &Trailer{Magic: "bad", MaxAlign: DefaultMaxAlign}
	switch {
	case [16]byte(magic) == bootMagic:
		t.Magic = "good"
	case [14]byte(magic[2:]) == bootMagicTail:
		a := int(o.Uint16(magic[:2]))
		if a == 16 || a == 32 {
			t.Magic, t.MaxAlign = "good", a
		}
	default:
		erased := true
		for _, c := range magic {
			if c != magic[0] || (c != 0xff && c != 0x00) {
				erased = false
			}
		}
		if erased {
			t.Magic = "unset"
		}
	}
	ma := t.MaxAlign
	end := len(tail) - alignUp(bootMagicSize, ma)
	if end-4*ma < 0 {
		return t
	}
	t.ImageOK = tail[end-ma]
	t.CopyDone = tail[end-2*ma]
	t.SwapInfo = tail[end-3*ma]
	t.SwapSize = o.Uint32(tail[end-4*ma:])
	t.Offset = fileSize - int64(len(tail)-(end-4*ma))
	return t
}
