package keys

import (
	"crypto"
	"errors"
	"fmt"
	"io"
)

// Signer is a signing key for the signing commands (mcuboot sign, manifest
// signing): a crypto.Signer that may hold a resource outside the process,
// such as a PKCS#11 session, released by Close. The two implementations are
// FileSigner (a PEM key file) and PKCS11Signer (a key in a token, which
// never leaves it).
type Signer interface {
	crypto.Signer
	// Close releases the key's resources; the Signer is unusable afterwards.
	Close() error
}

// FileSigner is a private key read from a PEM file.
type FileSigner struct {
	// Key is the parsed key: *ecdsa.PrivateKey, ed25519.PrivateKey or
	// *rsa.PrivateKey.
	Key crypto.Signer
}

// Public returns the public half of the key.
func (s *FileSigner) Public() crypto.PublicKey { return s.Key.Public() }

// Sign signs digest (or, for Ed25519 with opts crypto.Hash(0), the message)
// as the key's own Sign method does.
func (s *FileSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.Key.Sign(rand, digest, opts)
}

// Close does nothing: a file key holds no resources.
func (s *FileSigner) Close() error { return nil }

// ErrNotSigner is returned when a key cannot sign (an X25519 key).
var ErrNotSigner = errors.New("keys: key cannot sign")

// Open opens the signing key named by ref: an RFC 7512 "pkcs11:" URI (see
// ParsePKCS11URI; the module comes from module-path or the OTA_PKCS11_MODULE
// environment variable, the PIN from pin-value, pin-source or password),
// giving a *PKCS11Signer, or else the path of a PEM private key file
// (password decrypts an encrypted one), giving a *FileSigner. Close the
// Signer when done.
func Open(ref string, password []byte) (Signer, error) {
	if IsPKCS11URI(ref) {
		u, err := ParsePKCS11URI(ref)
		if err != nil {
			return nil, err
		}
		s, err := OpenPKCS11(u, password)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
	priv, err := LoadPrivate(ref, password)
	if err != nil {
		return nil, err
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds an X25519 (encryption) key", ErrNotSigner, ref)
	}
	return &FileSigner{Key: s}, nil
}

// OpenSigner is Open for callers that want a plain crypto.Signer: a file
// key comes back as the stdlib key itself (*ecdsa.PrivateKey,
// ed25519.PrivateKey, *rsa.PrivateKey), a PKCS#11 key as *PKCS11Signer.
// Release it with CloseSigner.
func OpenSigner(ref string, password []byte) (crypto.Signer, error) {
	s, err := Open(ref, password)
	if err != nil {
		return nil, err
	}
	return Unwrap(s), nil
}

// CloseSigner closes s if it holds resources (a PKCS#11 session).
func CloseSigner(s crypto.Signer) error {
	if c, ok := s.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Unwrap returns the stdlib key behind a FileSigner, or s itself.
func Unwrap(s crypto.Signer) crypto.Signer {
	if f, ok := s.(*FileSigner); ok {
		return f.Key
	}
	return s
}
