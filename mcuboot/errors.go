package mcuboot

import "errors"

// Errors returned by this package, wrapped with the details of what failed.
// Test with errors.Is.
var (
	// ErrMagic means the data does not start with an MCUboot header.
	ErrMagic = errors.New("mcuboot: bad header magic (not an MCUboot image)")
	// ErrHeader means a header field is out of range.
	ErrHeader = errors.New("mcuboot: invalid image header")
	// ErrTruncated means the image ends before a structure it declares.
	ErrTruncated = errors.New("mcuboot: image truncated")
	// ErrTLVInfo means a TLV area does not start with its info magic.
	ErrTLVInfo = errors.New("mcuboot: bad TLV info magic")
	// ErrProtectedSize means the header's protected TLV size does not match
	// the protected TLV area.
	ErrProtectedSize = errors.New("mcuboot: protected TLV size does not add up")
	// ErrTLVLength means a TLV entry runs past the end of its area.
	ErrTLVLength = errors.New("mcuboot: TLV length past the end of its area")
	// ErrUnknownTLV means a TLV type MCUboot does not define appears
	// outside the vendor-reserved ranges.
	ErrUnknownTLV = errors.New("mcuboot: unknown TLV type")
	// ErrDuplicateTLV means a TLV that may appear once appears twice.
	ErrDuplicateTLV = errors.New("mcuboot: duplicate TLV")
	// ErrMisplacedTLV means a TLV that must be protected by the hash is in
	// the unprotected area, or the reverse.
	ErrMisplacedTLV = errors.New("mcuboot: TLV in the wrong area")
	// ErrTLVValue means a TLV has the wrong length or content for its type.
	ErrTLVValue = errors.New("mcuboot: malformed TLV value")
	// ErrNoHash means the image has no SHA256/384/512 TLV.
	ErrNoHash = errors.New("mcuboot: image has no hash TLV")
	// ErrNoEncKey means the header says the payload is encrypted but no
	// encrypted-key TLV is present (or the reverse).
	ErrNoEncKey = errors.New("mcuboot: encrypted flag set but no encryption key TLV")

	// ErrHashMismatch means the hash over header, payload and protected
	// TLVs differs from the hash TLV.
	ErrHashMismatch = errors.New("mcuboot: image hash mismatch")
	// ErrSignature means the signature does not verify with the key.
	ErrSignature = errors.New("mcuboot: invalid signature")
	// ErrNoSignature means the image carries no signature for the key.
	ErrNoSignature = errors.New("mcuboot: no signature in image")
	// ErrKeyMismatch means the KEYHASH or PUBKEY TLV names another key.
	ErrKeyMismatch = errors.New("mcuboot: image was signed with a different key")
	// ErrEncrypted means the payload is encrypted and no decryption key was
	// given, so its hash could not be checked.
	ErrEncrypted = errors.New("mcuboot: payload is encrypted")
	// ErrDecrypt means the encryption key TLV could not be opened with the
	// given key (wrong key or corrupted TLV).
	ErrDecrypt = errors.New("mcuboot: cannot decrypt image key")

	// ErrUnsupportedKey means a key type cannot be used for the operation.
	ErrUnsupportedKey = errors.New("mcuboot: unsupported key type")
	// ErrOptions means signing options are invalid or inconsistent.
	ErrOptions = errors.New("mcuboot: invalid options")
	// ErrSlotOverflow means image and trailer do not fit in the slot.
	ErrSlotOverflow = errors.New("mcuboot: image and trailer exceed the slot size")
	// ErrHeaderNotZero means the payload does not start with header-size
	// zero bytes although --pad-header was not given.
	ErrHeaderNotZero = errors.New("mcuboot: header padding not requested and payload does not start with zeros")
	// ErrVersion means a version string is not maj.min.rev+build.
	ErrVersion = errors.New("mcuboot: invalid version")
	// ErrShortPayload means the payload reader ended before its stated size.
	ErrShortPayload = errors.New("mcuboot: payload shorter than its size")
)
