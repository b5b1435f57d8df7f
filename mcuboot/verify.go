package mcuboot

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"hash"
	"io"
)

// VerifyOptions select what Verify checks beyond the image hash.
type VerifyOptions struct {
	// Keys are the trusted public keys; the image must carry a valid
	// signature by one of them. Without keys only the hash is checked.
	Keys []crypto.PublicKey
	// DecryptKey opens the image key of an encrypted image so that the
	// hash of its plaintext can be checked: *ecdsa.PrivateKey or
	// *ecdh.PrivateKey (ENC_EC256, ENC_X25519), *rsa.PrivateKey, or KEK.
	DecryptKey any
}

// VerifyResult reports what Verify checked.
type VerifyResult struct {
	HashType  TLVType
	Digest    []byte
	Decrypted bool // the payload was decrypted to check its hash
	// Signed is true when a signature was checked; Key is the key that
	// verified it and SignatureType its TLV.
	Signed        bool
	Key           crypto.PublicKey
	SignatureType TLVType
}

// Verify recomputes the image hash over header, payload and protected
// TLVs, streaming the payload from the underlying reader, and checks the
// signature with opts.Keys. Errors wrap ErrHashMismatch, ErrKeyMismatch,
// ErrNoSignature, ErrSignature, ErrEncrypted or ErrDecrypt and say what
// failed.
func (img *Image) Verify(opts *VerifyOptions) (*VerifyResult, error) {
	if opts == nil {
		opts = &VerifyOptions{}
	}
	if _, pure := img.Find(TLVSigPure); pure {
		return nil, fmt.Errorf("%w: SIG_PURE images (signature over the whole image, not its hash) are not supported", ErrUnsupportedKey)
	}
	var ht TLV
	found := false
	for _, t := range img.TLVs {
		if t.Type.isHash() {
			ht, found = t, true
		}
	}
	if !found {
		return nil, ErrNoHash
	}
	h := tlvHash(ht.Type)
	res := &VerifyResult{HashType: ht.Type, Digest: ht.Value}

	var imageKey []byte
	encrypted := img.Header.Flags.Encrypted()
	if encrypted && opts.DecryptKey != nil {
		k, err := img.ImageKey(opts.DecryptKey)
		if err != nil {
			return nil, err
		}
		imageKey = k
	}
	// One pass: the hash of the bytes as stored and, when we hold the
	// image key, of the decrypted payload. A decrypted image (payload
	// stored in clear, flags unchanged, as MCUboot leaves it in the
	// primary slot) matches the first.
	stored, plain, err := img.digests(h, imageKey)
	if err != nil {
		return nil, err
	}
	hashOK := bytes.Equal(stored, ht.Value)
	if !hashOK && plain != nil && bytes.Equal(plain, ht.Value) {
		hashOK, res.Decrypted = true, true
	}
	unchecked := false
	if !hashOK {
		if !encrypted {
			return nil, fmt.Errorf("%w: %v of header, payload and protected TLVs is %x, the %v TLV says %x", ErrHashMismatch, ht.Type, stored, ht.Type, ht.Value)
		}
		if imageKey != nil {
			return nil, fmt.Errorf("%w: %v of the decrypted header, payload and protected TLVs is %x, the %v TLV says %x", ErrHashMismatch, ht.Type, plain, ht.Type, ht.Value)
		}
		unchecked = true
	}
	if len(opts.Keys) > 0 {
		if err := img.checkSignature(opts.Keys, h, ht.Value, res); err != nil {
			return nil, err
		}
	}
	if unchecked {
		what := "the image hash"
		if res.Signed {
			what = "the signature over the image hash is valid, but the hash itself"
		}
		return res, fmt.Errorf("%w: %s could not be checked without the decryption key", ErrEncrypted, what)
	}
	return res, nil
}

// checkSignature finds the signature made by one of keys and verifies it.
func (img *Image) checkSignature(keys []crypto.PublicKey, h crypto.Hash, digest []byte, res *VerifyResult) error {
	keyHash, hasKeyHash := img.Find(TLVKeyHash)
	pubKey, hasPubKey := img.Find(TLVPubKey)
	var lastErr error
	for _, k := range keys {
		sc, err := schemeFor(k)
		if err != nil {
			lastErr = err
			continue
		}
		okHash := false
		for _, a := range sc.hashes {
			okHash = okHash || a == h
		}
		if !okHash {
			lastErr = fmt.Errorf("%w: a %v key does not sign images hashed with %v", ErrKeyMismatch, sc.tlv, h)
			continue
		}
		pb, err := PublicKeyBytes(k)
		if err != nil {
			lastErr = err
			continue
		}
		if hasKeyHash {
			kh := h.New()
			kh.Write(pb)
			if !bytes.Equal(kh.Sum(nil), keyHash.Value) {
				lastErr = fmt.Errorf("%w: KEYHASH %x is not the hash of the given key", ErrKeyMismatch, keyHash.Value)
				continue
			}
		} else if hasPubKey && !bytes.Equal(pb, pubKey.Value) {
			lastErr = fmt.Errorf("%w: PUBKEY TLV holds another key", ErrKeyMismatch)
			continue
		}
		sig, ok := img.Find(sc.tlv)
		if !ok {
			lastErr = fmt.Errorf("%w: no %v TLV for the given %T", ErrNoSignature, sc.tlv, k)
			continue
		}
		if !verifyDigest(k, h, digest, sig.Value) {
			return fmt.Errorf("%w: %v signature at 0x%x does not verify with the given key", ErrSignature, sc.tlv, sig.Offset)
		}
		res.Signed, res.Key, res.SignatureType = true, k, sc.tlv
		return nil
	}
	if lastErr == nil {
		lastErr = ErrNoSignature
	}
	return lastErr
}

// ImageKey recovers the AES key of an encrypted image from its key TLV.
func (img *Image) ImageKey(priv any) ([]byte, error) {
	keyLen := 16
	if img.Header.Flags&FlagEncryptedAES256 != 0 {
		keyLen = 32
	}
	for _, t := range img.TLVs {
		if t.Type.isEncKey() {
			return openKeyTLV(t.Type, t.Value, priv, keyLen)
		}
	}
	return nil, ErrNoEncKey
}

// digests hashes the hashed region as stored and, with key, with the
// payload decrypted.
func (img *Image) digests(h crypto.Hash, key []byte) (stored, plain []byte, err error) {
	hs := h.New()
	var hp hash.Hash
	var stream cipher.Stream
	if key != nil {
		hp = h.New()
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		stream = cipher.NewCTR(b, make([]byte, aes.BlockSize))
	}
	payStart, payEnd := img.PayloadOffset(), img.ProtectedOffset()
	var dec []byte
	err = img.copyRange(0, img.hashedLen(), func(off int64, p []byte) {
		hs.Write(p)
		if hp == nil {
			return
		}
		if off >= payStart && off < payEnd {
			// copyRange never lets a chunk straddle the payload's end.
			if cap(dec) < len(p) {
				dec = make([]byte, len(p))
			}
			dec = dec[:len(p)]
			stream.XORKeyStream(dec, p)
			hp.Write(dec)
		} else {
			hp.Write(p)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	stored = hs.Sum(nil)
	if hp != nil {
		plain = hp.Sum(nil)
	}
	return stored, plain, nil
}

// copyRange streams [start, end) of the image to fn in chunks that never
// straddle the payload boundaries.
func (img *Image) copyRange(start, end int64, fn func(off int64, p []byte)) error {
	buf := make([]byte, min(int64(copyBufSize), max(end-start, 1)))
	bounds := []int64{img.PayloadOffset(), img.ProtectedOffset(), end}
	for off := start; off < end; {
		lim := end
		for _, b := range bounds {
			if b > off && b < lim {
				lim = b
			}
		}
		n := int(min(int64(len(buf)), lim-off))
		if _, err := img.r.ReadAt(buf[:n], off); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: at 0x%x", ErrTruncated, off)
			}
			return fmt.Errorf("mcuboot: reading image: %w", err)
		}
		fn(off, buf[:n])
		off += int64(n)
	}
	return nil
}

// Decrypt writes the whole image to w with its payload decrypted, as
// MCUboot stores it after installing it: header, TLVs, padding and trailer
// are copied unchanged. It fails with ErrHashMismatch if the decrypted
// image does not match its hash TLV; w then holds the bad output and the
// caller discards it.
func (img *Image) Decrypt(w io.Writer, priv any) error {
	if !img.Header.Flags.Encrypted() {
		return fmt.Errorf("%w: image is not encrypted (flags %v)", ErrOptions, img.Header.Flags.Names())
	}
	key, err := img.ImageKey(priv)
	if err != nil {
		return err
	}
	b, _ := aes.NewCipher(key)
	stream := cipher.NewCTR(b, make([]byte, aes.BlockSize))
	var ht TLV
	for _, t := range img.TLVs {
		if t.Type.isHash() {
			ht = t
		}
	}
	var hs hash.Hash
	if h := tlvHash(ht.Type); h != 0 {
		hs = h.New()
	}
	payStart, payEnd := img.PayloadOffset(), img.ProtectedOffset()
	var werr error
	err = img.copyRange(0, img.Size, func(off int64, p []byte) {
		if werr != nil {
			return
		}
		if off >= payStart && off < payEnd {
			stream.XORKeyStream(p, p)
		}
		if hs != nil && off < img.hashedLen() {
			hs.Write(p[:min(int64(len(p)), img.hashedLen()-off)])
		}
		_, werr = w.Write(p)
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if hs != nil && !bytes.Equal(hs.Sum(nil), ht.Value) {
		return fmt.Errorf("%w: decrypted image does not match its %v TLV", ErrHashMismatch, ht.Type)
	}
	return nil
}
