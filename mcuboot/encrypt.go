package mcuboot

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// eciesInfo is the HKDF info string of MCUboot's ECIES key encapsulation.
const eciesInfo = "MCUBoot_ECIES_v1"

// KEK is a raw AES key-encryption key for ENC_KW images (RFC 3394 key wrap).
type KEK []byte

// encKeyTLV encrypts the random image key for the recipient and returns
// the TLV type and value: ENC_EC256 or ENC_X25519 (ECIES: ephemeral public
// key, HMAC-SHA256 tag, AES-CTR encrypted key), ENC_RSA2048 (RSA-OAEP-SHA256)
// or ENC_KW (AES key wrap).
func encKeyTLV(rand io.Reader, to any, imageKey []byte) (TLVType, []byte, error) {
	switch k := to.(type) {
	case *ecdsa.PublicKey:
		pub, err := k.ECDH()
		if err != nil || pub.Curve() != ecdh.P256() {
			return 0, nil, fmt.Errorf("%w: encryption needs a P-256 key, got %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return encKeyTLV(rand, pub, imageKey)
	case *ecdh.PublicKey:
		var t TLVType
		switch k.Curve() {
		case ecdh.P256():
			t = TLVEncEC256
		case ecdh.X25519():
			t = TLVEncX25519
		default:
			return 0, nil, fmt.Errorf("%w: ECIES with %v", ErrUnsupportedKey, k.Curve())
		}
		eph, err := k.Curve().GenerateKey(rand)
		if err != nil {
			return 0, nil, err
		}
		shared, err := eph.ECDH(k)
		if err != nil {
			return 0, nil, err
		}
		encKey, macKey, err := eciesKeys(shared, len(imageKey))
		if err != nil {
			return 0, nil, err
		}
		ct := ctr(encKey, imageKey)
		m := hmac.New(sha256.New, macKey)
		m.Write(ct)
		v := append(eph.PublicKey().Bytes(), m.Sum(nil)...)
		return t, append(v, ct...), nil
	case *rsa.PublicKey:
		ct, err := rsa.EncryptOAEP(sha256.New(), rand, k, imageKey, nil)
		if err != nil {
			return 0, nil, err
		}
		return TLVEncRSA2048, ct, nil
	case KEK:
		w, err := aesKeyWrap(k, imageKey)
		return TLVEncKW, w, err
	}
	return 0, nil, fmt.Errorf("%w: %T cannot encrypt images", ErrUnsupportedKey, to)
}

// eciesKeys derives the key-encryption and MAC keys from an ECDH secret:
// HKDF-SHA256 without salt, keyLen bytes of AES key then 32 of HMAC key.
func eciesKeys(shared []byte, keyLen int) (encKey, macKey []byte, err error) {
	d, err := hkdf.Key(sha256.New, shared, nil, eciesInfo, keyLen+sha256.Size)
	if err != nil {
		return nil, nil, err
	}
	return d[:keyLen], d[keyLen:], nil
}

// ctr runs AES-CTR with a zero IV, as MCUboot does for keys and payloads.
func ctr(key, in []byte) []byte {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // key lengths are fixed by the callers
	}
	out := make([]byte, len(in))
	cipher.NewCTR(b, make([]byte, aes.BlockSize)).XORKeyStream(out, in)
	return out
}

// openKeyTLV recovers the image key of length keyLen from an encryption
// key TLV with the recipient's private key.
func openKeyTLV(t TLVType, v []byte, priv any, keyLen int) ([]byte, error) {
	switch t {
	case TLVEncEC256, TLVEncX25519:
		var k *ecdh.PrivateKey
		switch p := priv.(type) {
		case *ecdsa.PrivateKey:
			var err error
			if k, err = p.ECDH(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
			}
		case *ecdh.PrivateKey:
			k = p
		default:
			return nil, fmt.Errorf("%w: %v needs an EC private key, got %T", ErrUnsupportedKey, t, priv)
		}
		want, pubLen := ecdh.P256(), 65
		if t == TLVEncX25519 {
			want, pubLen = ecdh.X25519(), 32
		}
		if k.Curve() != want {
			return nil, fmt.Errorf("%w: %v needs a %v key", ErrUnsupportedKey, t, want)
		}
		if len(v) != pubLen+sha256.Size+keyLen {
			return nil, fmt.Errorf("%w: %v is %d bytes, want %d", ErrTLVValue, t, len(v), pubLen+sha256.Size+keyLen)
		}
		eph, err := want.NewPublicKey(v[:pubLen])
		if err != nil {
			return nil, fmt.Errorf("%w: ephemeral key: %v", ErrDecrypt, err)
		}
		shared, err := k.ECDH(eph)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		encKey, macKey, err := eciesKeys(shared, keyLen)
		if err != nil {
			return nil, err
		}
		tag, ct := v[pubLen:pubLen+sha256.Size], v[pubLen+sha256.Size:]
		m := hmac.New(sha256.New, macKey)
		m.Write(ct)
		if !hmac.Equal(m.Sum(nil), tag) {
			return nil, fmt.Errorf("%w: %v HMAC tag does not match (wrong key or corrupted TLV)", ErrDecrypt, t)
		}
		return ctr(encKey, ct), nil
	case TLVEncRSA2048:
		p, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: ENC_RSA2048 needs an RSA private key, got %T", ErrUnsupportedKey, priv)
		}
		key, err := rsa.DecryptOAEP(sha256.New(), nil, p, v, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: ENC_RSA2048: %v", ErrDecrypt, err)
		}
		if len(key) != keyLen {
			return nil, fmt.Errorf("%w: ENC_RSA2048 holds a %d-byte key, want %d", ErrDecrypt, len(key), keyLen)
		}
		return key, nil
	case TLVEncKW:
		kek, ok := priv.(KEK)
		if !ok {
			return nil, fmt.Errorf("%w: ENC_KW needs a raw AES key, got %T", ErrUnsupportedKey, priv)
		}
		if len(v) != keyLen+8 {
			return nil, fmt.Errorf("%w: ENC_KW is %d bytes, want %d", ErrTLVValue, len(v), keyLen+8)
		}
		return aesKeyUnwrap(kek, v)
	}
	return nil, fmt.Errorf("%w: %v is not an encryption key TLV", ErrDecrypt, t)
}

var kwIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// aesKeyWrap implements RFC 3394 key wrap with the default IV.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: key-wrap key: %v", ErrUnsupportedKey, err)
	}
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("mcuboot: key wrap needs a multiple of 8 bytes, at least 16")
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out, kwIV[:])
	copy(out[8:], key)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], out[:8])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:], buf[8:])
		}
	}
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: key-wrap key: %v", ErrUnsupportedKey, err)
	}
	n := len(wrapped)/8 - 1
	if len(wrapped)%8 != 0 || n < 2 {
		return nil, fmt.Errorf("%w: ENC_KW length %d", ErrTLVValue, len(wrapped))
	}
	a := binary.BigEndian.Uint64(wrapped[:8])
	r := make([]byte, 8*n)
	copy(r, wrapped[8:])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(buf[:8], a^uint64(n*j+i))
			copy(buf[8:], r[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			a = binary.BigEndian.Uint64(buf[:8])
			copy(r[8*(i-1):], buf[8:])
		}
	}
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	if subtle.ConstantTimeCompare(got[:], kwIV[:]) != 1 {
		return nil, fmt.Errorf("%w: ENC_KW integrity check failed (wrong key or corrupted TLV)", ErrDecrypt)
	}
	return r, nil
}

// checkEncryptPair mirrors imgtool's rule that ECDSA-P256 and RSA signing
// keys must be paired with an encryption key of the same family.
func checkEncryptPair(signer crypto.PublicKey, to any) error {
	switch s := signer.(type) {
	case *ecdsa.PublicKey:
		if _, ok := to.(*ecdsa.PublicKey); !ok {
			if e, ok := to.(*ecdh.PublicKey); !ok || e.Curve() != ecdh.P256() {
				return fmt.Errorf("%w: signing and encryption must use the same type of key (ECDSA %s)", ErrOptions, s.Curve.Params().Name)
			}
		}
	case *rsa.PublicKey:
		if _, ok := to.(*rsa.PublicKey); !ok {
			return fmt.Errorf("%w: signing and encryption must use the same type of key (RSA)", ErrOptions)
		}
	}
	return nil
}
