// Package mcuboot reads, writes, signs, verifies, encrypts and decrypts
// MCUboot firmware images byte for byte as MCUboot's imgtool and bootloader
// define them.
//
// An image is a header (32 bytes, padded to the header size), the payload,
// an optional protected TLV area, the TLV area, and — when padded to the
// slot — the image trailer at the end of the slot. The hash TLV covers the
// header, the payload and the protected TLV area; signatures cover that hash.
//
// Sign writes an image in one pass from a payload stream; Parse reads one
// through an io.ReaderAt, so neither holds the payload in memory.
package mcuboot

import "fmt"

// ImageMagic identifies an MCUboot image header (ih_magic).
const ImageMagic uint32 = 0x96f3b83d

// Sizes and magics of the fixed structures.
const (
	// HeaderSize is the size of the image header structure; the header
	// area (-H) may be larger and is then filled up to its size.
	HeaderSize = 32
	// TLVInfoMagic starts the (unprotected) TLV area.
	TLVInfoMagic uint16 = 0x6907
	// ProtTLVInfoMagic starts the protected TLV area.
	ProtTLVInfoMagic uint16 = 0x6908

	tlvInfoSize   = 4 // magic + total length
	tlvHeaderSize = 4 // type, pad, length as imgtool packs them ('BBH')

	// DefaultMaxSectors is imgtool's default for -M/--max-sectors.
	DefaultMaxSectors = 128
	// DefaultMaxAlign is the trailer alignment unless --max-align says otherwise.
	DefaultMaxAlign = 8

	bootMagicSize = 16
)

// bootMagic is the trailer magic when the maximum alignment is 8.
var bootMagic = [bootMagicSize]byte{
	0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f,
	0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
}

// bootMagicTail is the last 14 bytes of the trailer magic used with a
// maximum alignment other than 8; the first two bytes hold the alignment.
var bootMagicTail = [14]byte{
	0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b,
	0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
}

// Flags are the image header flags (IMAGE_F_*).
type Flags uint32

// Header flags.
const (
	FlagPIC                Flags = 0x00000001 // position independent (unsupported by MCUboot)
	FlagEncryptedAES128    Flags = 0x00000004 // payload encrypted with AES-128-CTR
	FlagEncryptedAES256    Flags = 0x00000008 // payload encrypted with AES-256-CTR
	FlagNonBootable        Flags = 0x00000010 // split image application part
	FlagRAMLoad            Flags = 0x00000020 // copy to RAM at load_addr before running
	FlagROMFixed           Flags = 0x00000100 // built for a fixed flash address (load_addr)
	FlagCompressedLZMA1    Flags = 0x00000200
	FlagCompressedLZMA2    Flags = 0x00000400
	FlagCompressedARMThumb Flags = 0x00000800
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagPIC, "PIC"},
	{FlagEncryptedAES128, "ENCRYPTED_AES128"},
	{FlagEncryptedAES256, "ENCRYPTED_AES256"},
	{FlagNonBootable, "NON_BOOTABLE"},
	{FlagRAMLoad, "RAM_LOAD"},
	{FlagROMFixed, "ROM_FIXED"},
	{FlagCompressedLZMA1, "COMPRESSED_LZMA1"},
	{FlagCompressedLZMA2, "COMPRESSED_LZMA2"},
	{FlagCompressedARMThumb, "COMPRESSED_ARM_THUMB"},
}

// Names lists the names of the set flags; unknown bits appear as hex.
func (f Flags) Names() []string {
	var out []string
	rest := f
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
			rest &^= n.f
		}
	}
	if rest != 0 {
		out = append(out, fmt.Sprintf("0x%08x", uint32(rest)))
	}
	return out
}

// Encrypted reports whether either encryption flag is set.
func (f Flags) Encrypted() bool { return f&(FlagEncryptedAES128|FlagEncryptedAES256) != 0 }

// TLVType is the type of a TLV entry (IMAGE_TLV_*).
type TLVType uint16

// TLV types.
const (
	TLVKeyHash         TLVType = 0x01 // hash of the signing public key
	TLVPubKey          TLVType = 0x02 // the signing public key itself
	TLVKeyID           TLVType = 0x03 // PSA key id of the signing key
	TLVSHA256          TLVType = 0x10 // SHA-256 of header, payload and protected TLVs
	TLVSHA384          TLVType = 0x11
	TLVSHA512          TLVType = 0x12
	TLVRSA2048PSS      TLVType = 0x20
	TLVECDSA224        TLVType = 0x21 // obsolete
	TLVECDSASig        TLVType = 0x22 // ECDSA P-256 or P-384, ASN.1 DER
	TLVRSA3072PSS      TLVType = 0x23
	TLVEd25519         TLVType = 0x24
	TLVSigPure         TLVType = 0x25 // signature is over the image, not its hash
	TLVEncRSA2048      TLVType = 0x30 // AES key encrypted with RSA-OAEP
	TLVEncKW           TLVType = 0x31 // AES key wrapped with AES-KW (RFC 3394)
	TLVEncEC256        TLVType = 0x32 // ECIES-P256
	TLVEncX25519       TLVType = 0x33 // ECIES-X25519
	TLVEncX25519SHA512 TLVType = 0x34
	TLVDependency      TLVType = 0x40
	TLVSecCnt          TLVType = 0x50 // security counter
	TLVBootRecord      TLVType = 0x60 // CBOR measured boot record
	TLVDecompSize      TLVType = 0x70
	TLVDecompSHA       TLVType = 0x71
	TLVDecompSignature TLVType = 0x72
	TLVCompDecSize     TLVType = 0x73
	TLVUUIDVID         TLVType = 0x74 // vendor UUID
	TLVUUIDCID         TLVType = 0x75 // image class UUID
)

var tlvNames = map[TLVType]string{
	TLVKeyHash:         "KEYHASH",
	TLVPubKey:          "PUBKEY",
	TLVKeyID:           "KEYID",
	TLVSHA256:          "SHA256",
	TLVSHA384:          "SHA384",
	TLVSHA512:          "SHA512",
	TLVRSA2048PSS:      "RSA2048_PSS",
	TLVECDSA224:        "ECDSA224",
	TLVECDSASig:        "ECDSA_SIG",
	TLVRSA3072PSS:      "RSA3072_PSS",
	TLVEd25519:         "ED25519",
	TLVSigPure:         "SIG_PURE",
	TLVEncRSA2048:      "ENC_RSA2048",
	TLVEncKW:           "ENC_KW",
	TLVEncEC256:        "ENC_EC256",
	TLVEncX25519:       "ENC_X25519",
	TLVEncX25519SHA512: "ENC_X25519_SHA512",
	TLVDependency:      "DEPENDENCY",
	TLVSecCnt:          "SEC_CNT",
	TLVBootRecord:      "BOOT_RECORD",
	TLVDecompSize:      "DECOMP_SIZE",
	TLVDecompSHA:       "DECOMP_SHA",
	TLVDecompSignature: "DECOMP_SIGNATURE",
	TLVCompDecSize:     "COMP_DEC_SIZE",
	TLVUUIDVID:         "UUID_VID",
	TLVUUIDCID:         "UUID_CID",
}

// String returns the MCUboot name of the type (without the IMAGE_TLV_
// prefix), "VENDOR_0x..." for the vendor-reserved range, or hex.
func (t TLVType) String() string {
	if n, ok := tlvNames[t]; ok {
		return n
	}
	if t.Vendor() {
		return fmt.Sprintf("VENDOR_0x%04x", uint16(t))
	}
	return fmt.Sprintf("0x%02x", uint16(t))
}

// Known reports whether t is a TLV type MCUboot defines.
func (t TLVType) Known() bool { _, ok := tlvNames[t]; return ok }

// Vendor reports whether t lies in a vendor-reserved range (xxA0–xxFF,
// up to 0xfffe), where custom TLVs live.
func (t TLVType) Vendor() bool { return t&0xff >= 0xa0 && t != 0xffff }

// protectedOnly are the types that must sit in the protected area because
// the bootloader trusts them only when they are covered by the hash.
func (t TLVType) protectedOnly() bool {
	switch t {
	case TLVDependency, TLVSecCnt, TLVBootRecord, TLVDecompSize, TLVDecompSHA,
		TLVDecompSignature, TLVCompDecSize, TLVUUIDVID, TLVUUIDCID:
		return true
	}
	return false
}

func (t TLVType) isHash() bool { return t == TLVSHA256 || t == TLVSHA384 || t == TLVSHA512 }

func (t TLVType) isSignature() bool {
	switch t {
	case TLVRSA2048PSS, TLVECDSA224, TLVECDSASig, TLVRSA3072PSS, TLVEd25519:
		return true
	}
	return false
}

func (t TLVType) isEncKey() bool {
	switch t {
	case TLVEncRSA2048, TLVEncKW, TLVEncEC256, TLVEncX25519, TLVEncX25519SHA512:
		return true
	}
	return false
}
