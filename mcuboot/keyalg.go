package mcuboot

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
)

// pssSaltLen is the RSA-PSS salt length MCUboot requires.
const pssSaltLen = 32

// sigScheme describes how one kind of public key signs an image.
type sigScheme struct {
	tlv    TLVType
	hashes []crypto.Hash // allowed image hashes; the first is the default
	padLen int           // fixed length for --pad-sig (ECDSA only)
}

// schemeFor returns the signature scheme of a public key as imgtool uses it.
func schemeFor(pub crypto.PublicKey) (sigScheme, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return sigScheme{TLVECDSASig, []crypto.Hash{crypto.SHA256}, 72}, nil
		case elliptic.P384():
			return sigScheme{TLVECDSASig, []crypto.Hash{crypto.SHA384}, 103}, nil
		}
		return sigScheme{}, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return sigScheme{TLVRSA2048PSS, []crypto.Hash{crypto.SHA256}, 0}, nil
		case 3072:
			return sigScheme{TLVRSA3072PSS, []crypto.Hash{crypto.SHA256}, 0}, nil
		}
		return sigScheme{}, fmt.Errorf("%w: RSA-%d (want 2048 or 3072)", ErrUnsupportedKey, k.N.BitLen())
	case ed25519.PublicKey:
		// imgtool defaults to SHA-256 for compatibility; SHA-512 is allowed.
		return sigScheme{TLVEd25519, []crypto.Hash{crypto.SHA256, crypto.SHA512}, 0}, nil
	}
	return sigScheme{}, fmt.Errorf("%w: %T cannot sign images", ErrUnsupportedKey, pub)
}

// pickHash applies imgtool's --sha rules: 0 means the key's default; an
// explicit hash must be one the key allows. Without a key any hash goes.
func pickHash(pub crypto.PublicKey, want crypto.Hash) (crypto.Hash, error) {
	if pub == nil {
		if want == 0 {
			return crypto.SHA256, nil
		}
		return want, nil
	}
	s, err := schemeFor(pub)
	if err != nil {
		return 0, err
	}
	if want == 0 {
		return s.hashes[0], nil
	}
	if !slices.Contains(s.hashes, want) {
		return 0, fmt.Errorf("%w: key %T cannot be used with %v", ErrOptions, pub, want)
	}
	return want, nil
}

func hashTLV(h crypto.Hash) (TLVType, error) {
	switch h {
	case crypto.SHA256:
		return TLVSHA256, nil
	case crypto.SHA384:
		return TLVSHA384, nil
	case crypto.SHA512:
		return TLVSHA512, nil
	}
	return 0, fmt.Errorf("%w: hash %v", ErrOptions, h)
}

func tlvHash(t TLVType) crypto.Hash {
	switch t {
	case TLVSHA256:
		return crypto.SHA256
	case TLVSHA384:
		return crypto.SHA384
	case TLVSHA512:
		return crypto.SHA512
	}
	return 0
}

// PublicKeyBytes returns the encoding of pub that MCUboot embeds and
// hashes for KEYHASH: SubjectPublicKeyInfo DER for ECDSA and Ed25519,
// PKCS#1 RSAPublicKey DER for RSA.
func PublicKeyBytes(pub crypto.PublicKey) ([]byte, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return x509.MarshalPKCS1PublicKey(k), nil
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return x509.MarshalPKIXPublicKey(k)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// signDigest signs an image digest the way the bootloader verifies it.
func signDigest(s crypto.Signer, rand io.Reader, h crypto.Hash, digest []byte, padSig bool) ([]byte, error) {
	sc, err := schemeFor(s.Public())
	if err != nil {
		return nil, err
	}
	var sig []byte
	switch sc.tlv {
	case TLVECDSASig:
		sig, err = s.Sign(rand, digest, h)
		if err == nil && padSig && len(sig) < sc.padLen {
			sig = append(sig, make([]byte, sc.padLen-len(sig))...)
		}
	case TLVRSA2048PSS, TLVRSA3072PSS:
		sig, err = s.Sign(rand, digest, &rsa.PSSOptions{SaltLength: pssSaltLen, Hash: h})
	case TLVEd25519:
		// Not "pure": Ed25519 signs the image digest as its message.
		sig, err = s.Sign(rand, digest, crypto.Hash(0))
	}
	if err != nil {
		return nil, fmt.Errorf("mcuboot: signing: %w", err)
	}
	return sig, nil
}

// verifyDigest checks sig over digest with pub; it reports only true/false
// because the caller names the failure.
func verifyDigest(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		// Strip the zero padding old imgtool versions appended (--pad-sig).
		if len(sig) >= 2 && sig[0] == 0x30 && int(sig[1])+2 <= len(sig) && sig[1] < 0x80 {
			sig = sig[:int(sig[1])+2]
		}
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: pssSaltLen, Hash: h}) == nil
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, digest, sig)
	}
	return false
}
