package keys

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
)

// Type names a key algorithm and size, spelled as imgtool's keygen -t.
type Type string

// The key types MCUboot verifies (signatures) or decrypts with (X25519).
const (
	ECDSAP256 Type = "ecdsa-p256"
	ECDSAP384 Type = "ecdsa-p384"
	Ed25519   Type = "ed25519"
	RSA2048   Type = "rsa-2048"
	RSA3072   Type = "rsa-3072"
	X25519    Type = "x25519"
)

// Types lists every supported key type in imgtool's order.
func Types() []Type {
	return []Type{RSA2048, RSA3072, ECDSAP256, ECDSAP384, Ed25519, X25519}
}

// ParseType returns the Type named s, or an error listing the valid names.
func ParseType(s string) (Type, error) {
	for _, t := range Types() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of %v)", ErrUnsupportedKey, s, Types())
}

// Bits is the key's security size in bits as imgtool reports it (curve or
// modulus size).
func (t Type) Bits() int {
	switch t {
	case ECDSAP256, Ed25519, X25519:
		return 256
	case ECDSAP384:
		return 384
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	}
	return 0
}

// SigType is imgtool's name of the signature scheme (its sig_type), e.g.
// "ECDSA256_SHA256"; X25519 keys only encrypt, and imgtool calls them "X25519".
func (t Type) SigType() string {
	switch t {
	case ECDSAP256:
		return "ECDSA256_SHA256"
	case ECDSAP384:
		return "ECDSA384_SHA384"
	case Ed25519:
		return "ED25519"
	case RSA2048:
		return "PKCS1_PSS_RSA2048_SHA256"
	case RSA3072:
		return "PKCS1_PSS_RSA3072_SHA256"
	case X25519:
		return "X25519"
	}
	return ""
}

// ShortName is the identifier imgtool uses in generated C and Rust source
// (ecdsa_pub_key, ecdsap384_pub_key, rsa_pub_key, …).
func (t Type) ShortName() string {
	switch t {
	case ECDSAP256:
		return "ecdsa"
	case ECDSAP384:
		return "ecdsap384"
	case Ed25519:
		return "ed25519"
	case RSA2048, RSA3072:
		return "rsa"
	case X25519:
		return "x25519"
	}
	return ""
}

// TypeOf reports the Type of a public or private key, including the
// crypto.Signer of a PKCS#11 key (judged by its public half).
func TypeOf(key any) (Type, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return TypeOf(&k.PublicKey)
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PrivateKey, ed25519.PublicKey:
		return Ed25519, nil
	case *rsa.PrivateKey:
		return TypeOf(&k.PublicKey)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		}
		return "", fmt.Errorf("%w: RSA-%d (MCUboot takes 2048 or 3072 bits)", ErrUnsupportedKey, k.N.BitLen())
	case *ecdh.PrivateKey:
		return TypeOf(k.PublicKey())
	case *ecdh.PublicKey:
		if k.Curve() == ecdh.X25519() {
			return X25519, nil
		}
		return "", fmt.Errorf("%w: ECDH curve %v", ErrUnsupportedKey, k.Curve())
	case crypto.Signer:
		return TypeOf(k.Public())
	}
	return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
}

// Generate makes a new private key of type t from crypto/rand: RSA keys use
// the public exponent 65537, as imgtool's do.
func Generate(t Type) (crypto.PrivateKey, error) {
	switch t {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA2048, RSA3072:
		return rsa.GenerateKey(rand.Reader, t.Bits())
	case X25519:
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupportedKey, string(t))
}
