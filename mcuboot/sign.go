package mcuboot

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

// SignOptions are imgtool's "sign" options. The zero value plus Version,
// HeaderSize and SlotSize gives an unsigned, hash-only image.
type SignOptions struct {
	Version    Version // -v
	HeaderSize int     // -H: size of the header area, at least 32
	PadHeader  bool    // --pad-header: prepend HeaderSize erased bytes to the payload
	SlotSize   int64   // -S: image plus trailer must fit; the padding target

	Align         int  // --align: flash write size, 1 (default), 2, 4, 8, 16 or 32
	MaxAlign      int  // --max-align: 8, 16 or 32; 0 means max(8, Align)
	MaxSectors    int  // -M: 0 means 128
	Pad           bool // --pad: pad to SlotSize and write the trailer magic
	Confirm       bool // --confirm: set image_ok in the trailer (implies Pad)
	Test          bool // --test: pad for a test swap, image_ok left unset (implies Pad)
	OverwriteOnly bool // --overwrite-only: small trailer, no image_ok

	ByteOrder  binary.ByteOrder // -e: nil means little-endian
	LoadAddr   uint32           // -L: RAM load address; sets RAM_LOAD
	ROMFixed   uint32           // -F: fixed flash address; sets ROM_FIXED
	ErasedZero bool             // -R 0: erased flash reads 0x00, not 0xff

	NonBootable     bool         // --non-bootable
	SecurityCounter *uint32      // -s: SEC_CNT TLV when set
	Dependencies    []Dependency // -d: DEPENDENCY TLVs
	BootRecord      string       // --boot-record: sw_type of a CBOR BOOT_RECORD TLV
	VendorID        []byte       // --vid: 16-byte UUID_VID TLV
	ClassID         []byte       // --cid: 16-byte UUID_CID TLV
	CustomTLVs      []TLV        // --custom-tlv: vendor TLVs in the protected area

	// Signer signs the image hash (file keys and PKCS#11 tokens alike).
	// Nil makes a hash-only image unless FixedSignature is set.
	Signer crypto.Signer
	// FullPublicKey embeds the public key (PUBKEY) instead of its hash
	// (KEYHASH): --public-key-format full.
	FullPublicKey bool
	// Hash is --sha: 0 picks the key's default (SHA-384 for P-384, else
	// SHA-256).
	Hash crypto.Hash
	// PadSig pads ECDSA signatures to a fixed length (for MCUboot < 1.5).
	PadSig bool

	// EncryptTo encrypts the payload for this recipient: *ecdsa.PublicKey
	// or *ecdh.PublicKey (P-256 → ENC_EC256, X25519 → ENC_X25519),
	// *rsa.PublicKey (ENC_RSA2048) or KEK (ENC_KW).
	EncryptTo any
	// EncryptKeyLen is the AES key size in bits, 128 (default) or 256.
	EncryptKeyLen int
	// Clear writes the payload unencrypted but keeps the key TLV and flag
	// (imgtool --clear).
	Clear bool
	// SaveEncTLV sizes the trailer for saved key TLVs (--save-enctlv).
	SaveEncTLV bool

	// FixedSignature is an externally made signature (--fix-sig), for the
	// key FixedSigPublicKey (--fix-sig-pubkey).
	FixedSignature    []byte
	FixedSigPublicKey crypto.PublicKey

	// VectorToSign, when "payload" or "digest", writes what an external
	// signer must sign instead of the image (--vector-to-sign).
	VectorToSign string

	// Rand is the randomness source for ECDSA, RSA-PSS and encryption;
	// nil means crypto/rand.
	Rand io.Reader
}

// SignResult describes a written image.
type SignResult struct {
	Header    Header
	ByteOrder binary.ByteOrder
	Digest    []byte // the hash TLV value
	Signature []byte // nil for hash-only images
	// ImageLen is the length of header, payload and TLV areas; Written
	// also counts padding and trailer.
	ImageLen    int64
	Written     int64
	TrailerSize int
}

func (o *SignOptions) order() binary.ByteOrder {
	if o.ByteOrder == nil {
		return binary.LittleEndian
	}
	return o.ByteOrder
}

func (o *SignOptions) erased() byte {
	if o.ErasedZero {
		return 0
	}
	return 0xff
}

func (o *SignOptions) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

func (o *SignOptions) layout(encTLVLen int) TrailerLayout {
	align := o.Align
	if align == 0 {
		align = 1
	}
	return TrailerLayout{
		Align: align, MaxAlign: o.MaxAlign, MaxSectors: o.MaxSectors,
		OverwriteOnly: o.OverwriteOnly, Encrypted: o.EncryptTo != nil,
		SaveEncTLV: o.SaveEncTLV, EncTLVLen: encTLVLen,
	}
}

// tlvArea accumulates TLV entries in imgtool's encoding.
type tlvArea struct {
	magic uint16
	o     binary.ByteOrder
	buf   []byte
}

func (a *tlvArea) add(t TLVType, v []byte) {
	var h [4]byte
	if t > 0xff {
		a.o.PutUint16(h[:], uint16(t)) // vendor types take both bytes
	} else {
		h[0] = byte(t)
	}
	a.o.PutUint16(h[2:], uint16(len(v)))
	a.buf = append(append(a.buf, h[:]...), v...)
}

// bytes returns the area with its info header, or nothing when empty.
func (a *tlvArea) bytes() []byte {
	if len(a.buf) == 0 {
		return nil
	}
	out := make([]byte, 4, 4+len(a.buf))
	a.o.PutUint16(out, a.magic)
	a.o.PutUint16(out[2:], uint16(4+len(a.buf)))
	return append(out, a.buf...)
}

const copyBufSize = 64 << 10

// Sign reads size bytes of firmware from payload and writes a signed MCUboot
// image to w in a single pass: the payload is hashed, optionally encrypted
// and written as it streams, so memory use does not depend on its size.
// If w receives a partial image before an error, the caller discards it.
func Sign(w io.Writer, payload io.Reader, size int64, opts *SignOptions) (*SignResult, error) {
	o := opts
	bo := o.order()
	if o.HeaderSize < HeaderSize || o.HeaderSize > 0xffff {
		return nil, fmt.Errorf("%w: header size %d (minimum %d, maximum 65535)", ErrOptions, o.HeaderSize, HeaderSize)
	}
	if size < 0 {
		return nil, fmt.Errorf("%w: negative payload size", ErrOptions)
	}
	if o.LoadAddr != 0 && o.ROMFixed != 0 {
		return nil, fmt.Errorf("%w: cannot set rom-fixed and load-addr at the same time", ErrOptions)
	}
	if o.Confirm && o.Test {
		return nil, fmt.Errorf("%w: --confirm and --test exclude each other", ErrOptions)
	}
	if o.Signer != nil && o.FixedSignature != nil {
		return nil, fmt.Errorf("%w: cannot sign with a key and a fixed signature at the same time", ErrOptions)
	}
	if o.FixedSignature != nil && o.FixedSigPublicKey == nil {
		return nil, fmt.Errorf("%w: public key of the fixed signature is not specified", ErrOptions)
	}
	switch o.VectorToSign {
	case "", "payload", "digest":
	default:
		return nil, fmt.Errorf("%w: vector-to-sign %q (want payload or digest)", ErrOptions, o.VectorToSign)
	}
	var pub crypto.PublicKey
	switch {
	case o.Signer != nil:
		pub = o.Signer.Public()
	case o.FixedSigPublicKey != nil:
		pub = o.FixedSigPublicKey
	}
	var scheme sigScheme
	if pub != nil {
		var err error
		if scheme, err = schemeFor(pub); err != nil {
			return nil, err
		}
	}
	h, err := pickHash(pub, o.Hash)
	if err != nil {
		return nil, err
	}
	hashType, err := hashTLV(h)
	if err != nil {
		return nil, err
	}
	var pubBytes, keyHash []byte
	if pub != nil {
		if pubBytes, err = PublicKeyBytes(pub); err != nil {
			return nil, err
		}
		kh := h.New()
		kh.Write(pubBytes)
		keyHash = kh.Sum(nil)
	}

	// Encryption set-up: a fresh image key, encapsulated for the recipient.
	var imageKey []byte
	var encType TLVType
	var encValue []byte
	flags := Flags(0)
	if o.EncryptTo != nil {
		if pub != nil {
			if err := checkEncryptPair(pub, o.EncryptTo); err != nil {
				return nil, err
			}
		}
		switch o.EncryptKeyLen {
		case 0, 128:
			imageKey = make([]byte, 16)
			flags |= FlagEncryptedAES128
		case 256:
			imageKey = make([]byte, 32)
			flags |= FlagEncryptedAES256
		default:
			return nil, fmt.Errorf("%w: encrypt key length %d (want 128 or 256)", ErrOptions, o.EncryptKeyLen)
		}
		if _, err := io.ReadFull(o.rand(), imageKey); err != nil {
			return nil, err
		}
		if encType, encValue, err = encKeyTLV(o.rand(), o.EncryptTo, imageKey); err != nil {
			return nil, err
		}
	}
	if o.LoadAddr != 0 {
		flags |= FlagRAMLoad
	}
	if o.ROMFixed != 0 {
		flags |= FlagROMFixed
	}
	if o.NonBootable {
		flags |= FlagNonBootable
	}

	// Protected TLVs, in imgtool's order.
	prot := tlvArea{magic: ProtTLVInfoMagic, o: bo}
	if o.SecurityCounter != nil {
		v := make([]byte, 4)
		bo.PutUint32(v, *o.SecurityCounter)
		prot.add(TLVSecCnt, v)
	}
	if o.BootRecord != "" {
		if len(o.BootRecord) > 12 {
			return nil, fmt.Errorf("%w: boot record sw_type %q is longer than 12 characters", ErrOptions, o.BootRecord)
		}
		signerID := keyHash
		if signerID == nil {
			signerID = make([]byte, 32) // imgtool: zero SHA-256 size without a key
		}
		prot.add(TLVBootRecord, bootRecord(o.BootRecord, o.Version, hashType.String(), make([]byte, h.Size()), signerID))
	}
	for _, d := range o.Dependencies {
		prot.add(TLVDependency, d.marshal(bo))
	}
	for _, u := range []struct {
		t TLVType
		v []byte
	}{{TLVUUIDVID, o.VendorID}, {TLVUUIDCID, o.ClassID}} {
		if u.v == nil {
			continue
		}
		if len(u.v) != 16 {
			return nil, fmt.Errorf("%w: %v must be 16 bytes", ErrOptions, u.t)
		}
		prot.add(u.t, u.v)
	}
	for _, t := range o.CustomTLVs {
		if t.Type.Known() || !t.Type.Vendor() {
			return nil, fmt.Errorf("%w: custom TLV type 0x%04x is not in a vendor-reserved range (0xXXa0-0xXXff)", ErrOptions, uint16(t.Type))
		}
		prot.add(t.Type, t.Value)
	}
	protBytes := prot.bytes()
	if len(protBytes) > 0xffff {
		return nil, fmt.Errorf("%w: protected TLV area of %d bytes", ErrOptions, len(protBytes))
	}

	// Sizes: the body is header area plus payload, padded to 16 bytes when
	// encrypting (imgtool pads with zeros, counted in img_size).
	hs := int64(o.HeaderSize)
	body := size
	if o.PadHeader {
		body += hs
	}
	if body < hs {
		return nil, fmt.Errorf("%w: payload of %d bytes is smaller than the %d-byte header it must start with", ErrHeaderNotZero, size, hs)
	}
	encPad := int64(0)
	if o.EncryptTo != nil && body%16 != 0 {
		encPad = 16 - body%16
	}
	imgSize := body + encPad - hs
	if imgSize > 0xffffffff {
		return nil, fmt.Errorf("%w: image of %d bytes exceeds 4 GiB", ErrOptions, imgSize)
	}
	hdr := Header{
		LoadAddr:         o.LoadAddr | o.ROMFixed,
		HeaderSize:       uint16(hs),
		ProtectedTLVSize: uint16(len(protBytes)),
		ImageSize:        uint32(imgSize),
		Flags:            flags,
		Version:          o.Version,
	}
	res := &SignResult{Header: hdr, ByteOrder: bo}

	// Header area: the header, then erased fill (--pad-header) or the
	// payload's own leading zeros.
	area := make([]byte, hs)
	if o.PadHeader {
		for i := range area {
			area[i] = o.erased()
		}
	} else {
		if _, err := io.ReadFull(payload, area); err != nil {
			return nil, fmt.Errorf("%w: reading header area: %v", ErrShortPayload, err)
		}
		for _, c := range area {
			if c != 0 {
				return nil, ErrHeaderNotZero
			}
		}
	}
	copy(area, hdr.Marshal(bo))

	hasher := h.New()
	cw := &countWriter{w: w}
	out := io.Writer(cw)
	vectorOnly := o.VectorToSign != ""
	if o.VectorToSign == "digest" {
		out = io.Discard
	}
	hasher.Write(area)
	if _, err := out.Write(area); err != nil {
		return nil, err
	}

	var stream cipher.Stream
	if imageKey != nil && !o.Clear && !vectorOnly {
		b, _ := aes.NewCipher(imageKey)
		stream = cipher.NewCTR(b, make([]byte, aes.BlockSize))
	}
	rest := body - hs // payload bytes still to read
	buf := make([]byte, min(int64(copyBufSize), max(rest+encPad, 16)))
	for rest > 0 || encPad > 0 {
		var n int
		if rest > 0 {
			n = int(min(rest, int64(len(buf))))
			if _, err := io.ReadFull(payload, buf[:n]); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrShortPayload, err)
			}
			rest -= int64(n)
		}
		if rest == 0 && encPad > 0 && n+int(encPad) <= len(buf) {
			clear(buf[n : n+int(encPad)])
			n += int(encPad)
			encPad = 0
		}
		chunk := buf[:n]
		hasher.Write(chunk)
		if stream != nil {
			stream.XORKeyStream(chunk, chunk)
		}
		if _, err := out.Write(chunk); err != nil {
			return nil, err
		}
	}
	hasher.Write(protBytes)
	if _, err := out.Write(protBytes); err != nil {
		return nil, err
	}
	digest := hasher.Sum(nil)
	res.Digest = digest
	if o.VectorToSign == "digest" {
		n, err := w.Write(digest)
		res.Written = int64(n)
		return res, err
	}
	if vectorOnly {
		res.Written = cw.n
		return res, nil
	}

	unprot := tlvArea{magic: TLVInfoMagic, o: bo}
	unprot.add(hashType, digest)
	var sig []byte
	switch {
	case o.Signer != nil:
		if sig, err = signDigest(o.Signer, o.rand(), h, digest, o.PadSig); err != nil {
			return nil, err
		}
	case o.FixedSignature != nil:
		sig = o.FixedSignature
	}
	if sig != nil {
		if o.FullPublicKey {
			unprot.add(TLVPubKey, pubBytes)
		} else {
			unprot.add(TLVKeyHash, keyHash)
		}
		unprot.add(scheme.tlv, sig)
		res.Signature = sig
	}
	if encValue != nil {
		unprot.add(encType, encValue)
	}
	unprotBytes := unprot.bytes()
	if len(unprotBytes) > 0xffff {
		return nil, fmt.Errorf("%w: TLV area of %d bytes", ErrOptions, len(unprotBytes))
	}

	layout := o.layout(len(encValue))
	tsize, err := layout.Size()
	if err != nil {
		return nil, err
	}
	res.TrailerSize = tsize
	imageLen := hs + imgSize + int64(len(protBytes)) + int64(len(unprotBytes))
	res.ImageLen = imageLen
	if o.SlotSize > 0 && imageLen+int64(tsize) > o.SlotSize {
		return nil, fmt.Errorf("%w: image size 0x%x + trailer 0x%x exceeds requested size 0x%x", ErrSlotOverflow, imageLen, tsize, o.SlotSize)
	}
	if _, err := out.Write(unprotBytes); err != nil {
		return nil, err
	}
	if o.Pad || o.Confirm || o.Test {
		if o.SlotSize <= 0 {
			return nil, fmt.Errorf("%w: padding needs a slot size", ErrOptions)
		}
		if err := writePadding(out, o.SlotSize-imageLen, o.erased(), o.trailer(layout, tsize)); err != nil {
			return nil, err
		}
	}
	res.Written = cw.n
	return res, nil
}

// trailer returns the trailer bytes: erased, image_ok when confirmed, and
// the magic at the end.
func (o *SignOptions) trailer(l TrailerLayout, size int) []byte {
	t := bytes.Repeat([]byte{o.erased()}, size)
	m := BootMagic(l.maxAlign(), o.order())
	copy(t[size-bootMagicSize:], m[:])
	if o.Confirm && !o.OverwriteOnly {
		t[size-l.imageOKOffset()] = 0x01
	}
	return t
}

// TrailerRecords returns the trailer bytes imgtool writes into an Intel
// HEX image, keyed by their offset from the slot start: the image_ok field
// (when confirmed) and the magic, never the erased padding between them.
func (o *SignOptions) TrailerRecords() map[int64][]byte {
	l := o.layout(0)
	ma := l.maxAlign()
	recs := map[int64][]byte{}
	if o.Confirm && !o.OverwriteOnly {
		f := bytes.Repeat([]byte{o.erased()}, ma)
		f[0] = 0x01
		recs[o.SlotSize-int64(l.imageOKOffset())] = f
	}
	m := BootMagic(ma, o.order())
	recs[o.SlotSize-bootMagicSize] = m[:]
	return recs
}

func writePadding(w io.Writer, n int64, erased byte, trailer []byte) error {
	fill := n - int64(len(trailer))
	if fill < 0 {
		return fmt.Errorf("%w: no room for the trailer", ErrSlotOverflow)
	}
	chunk := bytes.Repeat([]byte{erased}, int(min(fill, copyBufSize)))
	for fill > 0 {
		k := min(fill, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		fill -= k
	}
	_, err := w.Write(trailer)
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
