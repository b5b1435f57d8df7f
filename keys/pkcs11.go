//go:build cgo

package keys

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
)

// ModuleEnv names the environment variable holding the PKCS#11 module
// (shared library) path when a pkcs11: URI has no module-path.
const ModuleEnv = "OTA_PKCS11_MODULE"

// ErrKeyNotFound is returned when the token holds no key matching the URI.
var ErrKeyNotFound = errors.New("keys: no matching key in the PKCS#11 token")

// PKCS11Signer is a private key inside a PKCS#11 token. Signing happens in
// the token; the private key never leaves it.
type PKCS11Signer struct {
	ctx  *crypto11.Context
	key  crypto11.Signer
	once sync.Once
	err  error
}

// Public returns the key's public half, read from the token.
func (s *PKCS11Signer) Public() crypto.PublicKey { return s.key.Public() }

// Sign signs digest in the token. ECDSA signatures come back ASN.1 DER, as
// crypto/ecdsa's; RSA takes *rsa.PSSOptions (with an explicit salt length
// or PSSSaltLengthEqualsHash) or PKCS#1 v1.5. Ed25519 keys are not
// supported through PKCS#11.
func (s *PKCS11Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.key.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: PKCS#11 sign: %w", err)
	}
	return sig, nil
}

// Context returns the crypto11 context the key lives in, for callers that
// need token operations beyond signing.
func (s *PKCS11Signer) Context() *crypto11.Context { return s.ctx }

// Key returns the crypto11 key handle.
func (s *PKCS11Signer) Key() crypto11.Signer { return s.key }

// Close logs out and unloads the module.
func (s *PKCS11Signer) Close() error {
	s.once.Do(func() { s.err = s.ctx.Close() })
	return s.err
}

// ConfigurePKCS11 opens the token u names and logs in, without looking up
// a key; OpenPKCS11 uses it, and tests and tools use it to create keys.
// The PIN is u's pin-value or pin-source, else pin.
func ConfigurePKCS11(u *PKCS11URI, pin []byte) (*crypto11.Context, error) {
	module := u.ModulePath
	if module == "" {
		module = os.Getenv(ModuleEnv)
	}
	if module == "" {
		return nil, fmt.Errorf("keys: no PKCS#11 module: add module-path= to the URI or set %s", ModuleEnv)
	}
	p := string(pin)
	switch {
	case u.PinValue != "":
		p = u.PinValue
	case u.PinSource != "":
		path := u.PinSource
		if strings.HasPrefix(path, "file:") {
			pu, err := url.Parse(path)
			if err != nil {
				return nil, fmt.Errorf("keys: pin-source %q: %w", path, err)
			}
			path = pu.Path
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("keys: pin-source: %w", err)
		}
		p = strings.TrimRight(string(b), "\r\n")
	}
	if p == "" {
		return nil, ErrPINRequired
	}
	cfg := &crypto11.Config{Path: module, TokenLabel: u.Token, TokenSerial: u.Serial, SlotNumber: u.SlotID, Pin: p}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, fmt.Errorf("keys: PKCS#11 %s: %w", module, err)
	}
	return ctx, nil
}

// OpenPKCS11 opens the private key u names (by object label and/or id).
func OpenPKCS11(u *PKCS11URI, pin []byte) (*PKCS11Signer, error) {
	ctx, err := ConfigurePKCS11(u, pin)
	if err != nil {
		return nil, err
	}
	var label []byte
	if u.Object != "" {
		label = []byte(u.Object)
	}
	found, err := ctx.FindKeyPairs(u.ID, label)
	switch {
	case err != nil:
		err = fmt.Errorf("keys: PKCS#11: %w", err)
	case len(found) == 0:
		err = fmt.Errorf("%w (object=%q id=%x)", ErrKeyNotFound, u.Object, u.ID)
	case len(found) > 1:
		err = fmt.Errorf("keys: PKCS#11: %d keys match object=%q id=%x; name one", len(found), u.Object, u.ID)
	}
	if err != nil {
		ctx.Close()
		return nil, err
	}
	return &PKCS11Signer{ctx: ctx, key: found[0]}, nil
}
