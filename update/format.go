// Package update reads and writes otakit update packages (".update" files):
// a 128-byte header followed by a payload that is the firmware image or delta
// patch, compressed with a codec and optionally encrypted with AES-CTR.
//
// The layout is documented in docs/package-format.md. Like archive/tar, the
// package offers a Writer and a Reader that stream the payload and never hold
// it in memory.
//
// A package is not signed by itself: its authenticity comes from the signed
// manifest, which lists the SHA-256 of the whole .update file. The header's
// own digests let a device check the stored bytes before decrypting them and
// the rebuilt plaintext after, and its CRC catches a damaged header early.
package update

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/version"
)

// HeaderSize is the length of the fixed header in format version 1.
const HeaderSize = 128

// FormatVersion is the header layout this package writes.
const FormatVersion = 1

// Magic opens every update package.
var Magic = [4]byte{'O', 'T', 'A', 'U'}

// Errors returned by the Reader. They are wrapped with details.
var (
	ErrHeader        = errors.New("update: invalid package header")
	ErrFormatVersion = errors.New("update: unsupported package format version")
	ErrTruncated     = errors.New("update: package truncated")
	ErrTrailingData  = errors.New("update: data after the payload")
	ErrStoredDigest  = errors.New("update: stored payload SHA-256 mismatch")
	ErrDigest        = errors.New("update: plaintext SHA-256 mismatch")
	ErrSize          = errors.New("update: plaintext size mismatch")
	ErrKey           = errors.New("update: bad encryption key")
	// ErrWrongKey is returned when an encrypted payload, whose stored
	// digest checks out, decrypts to something that does not decompress:
	// the key is not the one it was encrypted with.
	ErrWrongKey = errors.New("update: payload does not decompress (wrong key?)")
)

// Type says whether the payload is a full image or a delta patch.
type Type uint8

// Payload types.
const (
	TypeFull  Type = 1
	TypeDelta Type = 2
)

// String returns "full" or "delta".
func (t Type) String() string {
	switch t {
	case TypeFull:
		return "full"
	case TypeDelta:
		return "delta"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses "full" or "delta".
func ParseType(s string) (Type, error) {
	switch s {
	case "full":
		return TypeFull, nil
	case "delta":
		return TypeDelta, nil
	}
	return 0, fmt.Errorf("update: unknown package type %q (want full or delta)", s)
}

// Encryption names the cipher applied to the compressed payload.
type Encryption uint8

// Encryption algorithms. Both use the header's 16-byte nonce as the initial
// counter block.
const (
	EncryptNone      Encryption = 0
	EncryptAES128CTR Encryption = 1
	EncryptAES256CTR Encryption = 2
)

// String returns the flag name: "none", "aes-128-ctr" or "aes-256-ctr".
func (e Encryption) String() string {
	switch e {
	case EncryptNone:
		return "none"
	case EncryptAES128CTR:
		return "aes-128-ctr"
	case EncryptAES256CTR:
		return "aes-256-ctr"
	}
	return fmt.Sprintf("encryption(%d)", uint8(e))
}

// KeySize is the AES key length e requires, 0 for EncryptNone.
func (e Encryption) KeySize() int {
	switch e {
	case EncryptAES128CTR:
		return 16
	case EncryptAES256CTR:
		return 32
	}
	return 0
}

// ParseEncryption parses an encryption name; "" means none.
func ParseEncryption(s string) (Encryption, error) {
	switch s {
	case "", "none":
		return EncryptNone, nil
	case "aes-128-ctr":
		return EncryptAES128CTR, nil
	case "aes-256-ctr":
		return EncryptAES256CTR, nil
	}
	return 0, fmt.Errorf("update: unknown encryption %q (want none, aes-128-ctr or aes-256-ctr)", s)
}

// Header describes a package. The Writer fills in the nonce, sizes and
// digests; callers set the rest.
type Header struct {
	Type        Type
	Version     version.Version // version the device runs after applying
	BaseVersion version.Version // for TypeDelta: the version the patch applies to
	Compression codec.ID
	Encryption  Encryption
	Nonce       [16]byte // AES-CTR initial counter block; zero when unencrypted

	Size   int64    // plaintext (image or patch) length
	SHA256 [32]byte // plaintext digest

	StoredSize   int64    // payload length as stored (compressed, encrypted)
	StoredSHA256 [32]byte // digest of the stored payload bytes
}

// Field offsets of format version 1, all integers little-endian.
const (
	offMagic        = 0   // [4]byte "OTAU"
	offFormat       = 4   // u8 format version
	offType         = 5   // u8 Type
	offCompression  = 6   // u8 codec.ID
	offEncryption   = 7   // u8 Encryption
	offHeaderSize   = 8   // u16 header length (128)
	offFlags        = 10  // u16 reserved, zero
	offVersion      = 12  // [8]byte MCUboot image_version
	offBaseVersion  = 20  // [8]byte MCUboot image_version
	offNonce        = 28  // [16]byte
	offSize         = 44  // u64
	offSHA256       = 52  // [32]byte
	offStoredSize   = 84  // u64
	offStoredSHA256 = 92  // [32]byte
	offCRC          = 124 // u32 CRC-32 (IEEE) of bytes 0..124
)

// maxSize bounds the sizes a header may declare (1 TiB), so arithmetic on
// them never overflows.
const maxSize = 1 << 40

// MarshalBinary encodes h as the 128-byte header.
func (h *Header) MarshalBinary() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, HeaderSize)
	copy(b[offMagic:], Magic[:])
	b[offFormat] = FormatVersion
	b[offType] = byte(h.Type)
	b[offCompression] = byte(h.Compression)
	b[offEncryption] = byte(h.Encryption)
	binary.LittleEndian.PutUint16(b[offHeaderSize:], HeaderSize)
	h.Version.Put(b[offVersion:])
	h.BaseVersion.Put(b[offBaseVersion:])
	copy(b[offNonce:], h.Nonce[:])
	binary.LittleEndian.PutUint64(b[offSize:], uint64(h.Size))
	copy(b[offSHA256:], h.SHA256[:])
	binary.LittleEndian.PutUint64(b[offStoredSize:], uint64(h.StoredSize))
	copy(b[offStoredSHA256:], h.StoredSHA256[:])
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.ChecksumIEEE(b[:offCRC]))
	return b, nil
}

// UnmarshalBinary decodes and checks a 128-byte header.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: header is %d bytes, want %d", ErrTruncated, len(b), HeaderSize)
	}
	if [4]byte(b[offMagic:offMagic+4]) != Magic {
		return fmt.Errorf("%w: bad magic % x (not an update package)", ErrHeader, b[:4])
	}
	if b[offFormat] != FormatVersion {
		return fmt.Errorf("%w %d (this reader knows %d)", ErrFormatVersion, b[offFormat], FormatVersion)
	}
	if got, want := crc32.ChecksumIEEE(b[:offCRC]), binary.LittleEndian.Uint32(b[offCRC:]); got != want {
		return fmt.Errorf("%w: header CRC %08x, computed %08x (header damaged)", ErrHeader, want, got)
	}
	if n := binary.LittleEndian.Uint16(b[offHeaderSize:]); n != HeaderSize {
		return fmt.Errorf("%w: header length field %d, want %d", ErrHeader, n, HeaderSize)
	}
	if f := binary.LittleEndian.Uint16(b[offFlags:]); f != 0 {
		return fmt.Errorf("%w: unknown flags %#04x", ErrHeader, f)
	}
	size := binary.LittleEndian.Uint64(b[offSize:])
	stored := binary.LittleEndian.Uint64(b[offStoredSize:])
	if size > maxSize || stored > maxSize {
		return fmt.Errorf("%w: sizes %d/%d exceed %d", ErrHeader, size, stored, uint64(maxSize))
	}
	*h = Header{
		Type:        Type(b[offType]),
		Version:     version.Decode(b[offVersion:]),
		BaseVersion: version.Decode(b[offBaseVersion:]),
		Compression: codec.ID(b[offCompression]),
		Encryption:  Encryption(b[offEncryption]),
		Size:        int64(size),
		StoredSize:  int64(stored),
	}
	copy(h.Nonce[:], b[offNonce:])
	copy(h.SHA256[:], b[offSHA256:])
	copy(h.StoredSHA256[:], b[offStoredSHA256:])
	return h.validate()
}

func (h *Header) validate() error {
	if h.Type != TypeFull && h.Type != TypeDelta {
		return fmt.Errorf("%w: unknown payload type %d", ErrHeader, h.Type)
	}
	if h.Type == TypeFull && !h.BaseVersion.IsZero() {
		return fmt.Errorf("%w: full package with base version %s", ErrHeader, h.BaseVersion)
	}
	if h.Encryption.KeySize() == 0 && h.Encryption != EncryptNone {
		return fmt.Errorf("%w: unknown encryption %d", ErrHeader, h.Encryption)
	}
	if h.Encryption == EncryptNone && h.Nonce != [16]byte{} {
		return fmt.Errorf("%w: nonce set on an unencrypted package", ErrHeader)
	}
	if _, err := codec.ByID(h.Compression); err != nil {
		return fmt.Errorf("%w: %v", ErrHeader, err)
	}
	if h.Size < 0 || h.StoredSize < 0 || h.Size > maxSize || h.StoredSize > maxSize {
		return fmt.Errorf("%w: negative or huge size", ErrHeader)
	}
	return nil
}
