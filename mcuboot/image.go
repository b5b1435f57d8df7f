package mcuboot

import (
	"encoding/binary"
	"fmt"
	"io"
)

// TLV is one entry of a TLV area.
type TLV struct {
	Type  TLVType
	Value []byte
	// Offset is the file offset of the entry's 4-byte header (0 for TLVs
	// not read from a file).
	Offset int64
}

// Image is a parsed MCUboot image. The header and TLV areas are held in
// memory; the payload stays in the underlying io.ReaderAt.
type Image struct {
	Header    Header
	ByteOrder binary.ByteOrder
	// Protected are the TLVs of the protected area, covered by the hash.
	Protected []TLV
	// TLVs are the entries of the (unprotected) TLV area.
	TLVs []TLV
	// Trailer describes the end of a slot-padded image; nil when the file
	// ends with the TLV area.
	Trailer *Trailer
	// Size is the size of the whole file.
	Size int64

	r io.ReaderAt
}

// PayloadOffset is where the payload starts (the header area's size).
func (img *Image) PayloadOffset() int64 { return int64(img.Header.HeaderSize) }

// ProtectedOffset is where the protected TLV area (if any) starts.
func (img *Image) ProtectedOffset() int64 {
	return int64(img.Header.HeaderSize) + int64(img.Header.ImageSize)
}

// TLVOffset is where the unprotected TLV area starts.
func (img *Image) TLVOffset() int64 {
	return img.ProtectedOffset() + int64(img.Header.ProtectedTLVSize)
}

// End is the offset just past the TLV area: the image proper, without
// padding or trailer.
func (img *Image) End() int64 {
	return img.TLVOffset() + tlvInfoSize + int64(tlvAreaLen(img.TLVs))
}

func tlvAreaLen(ts []TLV) int {
	n := 0
	for _, t := range ts {
		n += tlvHeaderSize + len(t.Value)
	}
	return n
}

// Find returns the first TLV of type t, protected or not.
func (img *Image) Find(t TLVType) (TLV, bool) {
	for _, area := range [][]TLV{img.Protected, img.TLVs} {
		for _, e := range area {
			if e.Type == t {
				return e, true
			}
		}
	}
	return TLV{}, false
}

// SecurityCounter returns the SEC_CNT value, if present.
func (img *Image) SecurityCounter() (uint32, bool) {
	t, ok := img.Find(TLVSecCnt)
	if !ok || len(t.Value) != 4 {
		return 0, false
	}
	return img.ByteOrder.Uint32(t.Value), true
}

// Dependencies decodes the DEPENDENCY TLVs.
func (img *Image) Dependencies() []Dependency {
	var out []Dependency
	for _, t := range img.Protected {
		if t.Type == TLVDependency {
			if d, err := parseDependency(t.Value, img.ByteOrder); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// maxTrailerRead covers the flag fields and magic at the largest alignment.
const maxTrailerRead = 4*32 + 32

// Parse reads and checks the structure of an MCUboot image of the given
// size: header, protected TLV area, TLV area and, if present, the trailer.
// It reads the payload no further than needed; Verify hashes it.
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	hb := make([]byte, HeaderSize)
	if size < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, the header alone needs %d", ErrTruncated, size, HeaderSize)
	}
	if _, err := r.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("mcuboot: reading header: %w", err)
	}
	h, o, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	img := &Image{Header: h, ByteOrder: o, Size: size, r: r}
	off := img.ProtectedOffset()
	if off+tlvInfoSize > size {
		return nil, fmt.Errorf("%w: header (0x%x) and payload (0x%x) need 0x%x bytes plus TLVs, file has 0x%x", ErrTruncated, h.HeaderSize, h.ImageSize, off, size)
	}
	info := make([]byte, tlvInfoSize)
	if _, err := r.ReadAt(info, off); err != nil {
		return nil, fmt.Errorf("mcuboot: reading TLV info: %w", err)
	}
	magic, tot := o.Uint16(info), o.Uint16(info[2:])
	if h.ProtectedTLVSize != 0 {
		if magic != ProtTLVInfoMagic {
			return nil, fmt.Errorf("%w: header says %d bytes of protected TLVs but found magic 0x%04x at 0x%x, not 0x%04x", ErrProtectedSize, h.ProtectedTLVSize, magic, off, ProtTLVInfoMagic)
		}
		if tot != h.ProtectedTLVSize {
			return nil, fmt.Errorf("%w: header says %d bytes, protected TLV info says %d", ErrProtectedSize, h.ProtectedTLVSize, tot)
		}
		if img.Protected, err = readArea(r, off, int(tot), size, o, "protected TLV area"); err != nil {
			return nil, err
		}
		off += int64(tot)
		if off+tlvInfoSize > size {
			return nil, fmt.Errorf("%w: no room for the TLV area after the protected TLVs at 0x%x", ErrTruncated, off)
		}
		if _, err := r.ReadAt(info, off); err != nil {
			return nil, fmt.Errorf("mcuboot: reading TLV info: %w", err)
		}
		magic, tot = o.Uint16(info), o.Uint16(info[2:])
	} else if magic == ProtTLVInfoMagic {
		return nil, fmt.Errorf("%w: protected TLV area of %d bytes at 0x%x but the header's protected size is 0", ErrProtectedSize, tot, off)
	}
	if magic != TLVInfoMagic {
		return nil, fmt.Errorf("%w: found 0x%04x at 0x%x, want 0x%04x", ErrTLVInfo, magic, off, TLVInfoMagic)
	}
	if img.TLVs, err = readArea(r, off, int(tot), size, o, "TLV area"); err != nil {
		return nil, err
	}
	if err := img.check(); err != nil {
		return nil, err
	}
	if end := off + int64(tot); size-end >= bootMagicSize {
		n := min(size-end, maxTrailerRead)
		tail := make([]byte, n)
		if _, err := r.ReadAt(tail, size-n); err != nil {
			return nil, fmt.Errorf("mcuboot: reading trailer: %w", err)
		}
		img.Trailer = parseTrailer(tail, o, size)
	}
	return img, nil
}

// readArea reads a TLV area of tot bytes (info header included) at off
// and splits it into entries, each checked to lie inside the area.
func readArea(r io.ReaderAt, off int64, tot int, size int64, o binary.ByteOrder, what string) ([]TLV, error) {
	if tot < tlvInfoSize {
		return nil, fmt.Errorf("%w: %s length %d is smaller than its info header", ErrTLVLength, what, tot)
	}
	if off+int64(tot) > size {
		return nil, fmt.Errorf("%w: %s at 0x%x claims %d bytes, file ends at 0x%x", ErrTruncated, what, off, tot, size)
	}
	a := make([]byte, tot)
	if _, err := r.ReadAt(a, off); err != nil {
		return nil, fmt.Errorf("mcuboot: reading %s: %w", what, err)
	}
	var out []TLV
	for p := tlvInfoSize; p < tot; {
		if p+tlvHeaderSize > tot {
			return nil, fmt.Errorf("%w: %s: entry header at 0x%x runs past the area end 0x%x", ErrTLVLength, what, off+int64(p), off+int64(tot))
		}
		t := tlvTypeAt(a[p:], o)
		n := int(o.Uint16(a[p+2:]))
		if p+tlvHeaderSize+n > tot {
			return nil, fmt.Errorf("%w: %s: %v at 0x%x has length %d, past the area end 0x%x", ErrTLVLength, what, t, off+int64(p), n, off+int64(tot))
		}
		out = append(out, TLV{Type: t, Value: a[p+tlvHeaderSize : p+tlvHeaderSize+n : p+tlvHeaderSize+n], Offset: off + int64(p)})
		p += tlvHeaderSize + n
	}
	return out, nil
}

// tlvTypeAt decodes an entry type. imgtool packs MCUboot's types as a byte
// and a zero pad byte, and vendor types as a 16-bit value; in little-endian
// images both read as one uint16.
func tlvTypeAt(b []byte, o binary.ByteOrder) TLVType {
	if o == binary.BigEndian && b[1] == 0 {
		return TLVType(b[0])
	}
	return TLVType(o.Uint16(b))
}

// check enforces which TLVs may appear where and how often.
func (img *Image) check() error {
	seen := map[TLVType]bool{}
	for i, area := range [][]TLV{img.Protected, img.TLVs} {
		protected := i == 0
		name := "TLV area"
		if protected {
			name = "protected TLV area"
		}
		for _, t := range area {
			if !t.Type.Known() && !t.Type.Vendor() {
				return fmt.Errorf("%w 0x%02x at 0x%x in the %s", ErrUnknownTLV, uint16(t.Type), t.Offset, name)
			}
			if t.Type.protectedOnly() && !protected {
				return fmt.Errorf("%w: %v at 0x%x must be in the protected area", ErrMisplacedTLV, t.Type, t.Offset)
			}
			if protected && (t.Type.isHash() || t.Type.isSignature() || t.Type.isEncKey() ||
				t.Type == TLVKeyHash || t.Type == TLVPubKey) {
				return fmt.Errorf("%w: %v at 0x%x cannot be in the protected area", ErrMisplacedTLV, t.Type, t.Offset)
			}
			if seen[t.Type] && t.Type != TLVDependency {
				return fmt.Errorf("%w: second %v at 0x%x", ErrDuplicateTLV, t.Type, t.Offset)
			}
			seen[t.Type] = true
			if want := tlvFixedLen(t.Type); want > 0 && len(t.Value) != want {
				return fmt.Errorf("%w: %v at 0x%x is %d bytes, want %d", ErrTLVValue, t.Type, t.Offset, len(t.Value), want)
			}
		}
	}
	hashes := 0
	for _, t := range img.TLVs {
		if t.Type.isHash() {
			hashes++
		}
	}
	if hashes > 1 {
		return fmt.Errorf("%w: more than one image hash TLV", ErrDuplicateTLV)
	}
	if img.Header.Flags.Encrypted() {
		found := false
		for _, t := range img.TLVs {
			found = found || t.Type.isEncKey()
		}
		if !found {
			return fmt.Errorf("%w (flags %v)", ErrNoEncKey, img.Header.Flags.Names())
		}
	}
	return nil
}

func tlvFixedLen(t TLVType) int {
	switch t {
	case TLVSHA256:
		return 32
	case TLVSHA384:
		return 48
	case TLVSHA512:
		return 64
	case TLVEd25519:
		return 64
	case TLVSecCnt, TLVKeyID:
		return 4
	case TLVDependency:
		return 12
	case TLVUUIDVID, TLVUUIDCID:
		return 16
	}
	return 0
}

// hashedLen is the length of the hashed region: header, payload and the
// protected TLV area.
func (img *Image) hashedLen() int64 { return img.TLVOffset() }
