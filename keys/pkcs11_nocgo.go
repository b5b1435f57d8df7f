//go:build !cgo

package keys

import (
	"crypto"
	"errors"
	"io"
)

// ModuleEnv names the environment variable holding the PKCS#11 module path.
const ModuleEnv = "OTA_PKCS11_MODULE"

// ErrNoPKCS11 is returned by OpenPKCS11 in builds without cgo.
var ErrNoPKCS11 = errors.New("keys: PKCS#11 needs a cgo build of ota")

// ErrKeyNotFound is returned when the token holds no key matching the URI.
var ErrKeyNotFound = errors.New("keys: no matching key in the PKCS#11 token")

// PKCS11Signer is a private key inside a PKCS#11 token (unavailable here).
type PKCS11Signer struct{}

// Public returns nil: there is no PKCS#11 support in this build.
func (*PKCS11Signer) Public() crypto.PublicKey { return nil }

// Sign always fails with ErrNoPKCS11.
func (*PKCS11Signer) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, ErrNoPKCS11
}

// Close does nothing.
func (*PKCS11Signer) Close() error { return nil }

// OpenPKCS11 always fails with ErrNoPKCS11.
func OpenPKCS11(*PKCS11URI, []byte) (*PKCS11Signer, error) { return nil, ErrNoPKCS11 }
