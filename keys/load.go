// Package keys generates, loads and exports the keys otakit signs and
// encrypts with: ECDSA P-256/P-384, Ed25519, RSA-2048/3072 and X25519, in the
// PEM encodings MCUboot's imgtool writes and reads. It also opens signing
// keys held outside the process (PKCS#11 tokens) behind one Signer interface.
package keys

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Errors returned when a key cannot be read.
var (
	// ErrNoPEM is returned when a key file holds no PEM block.
	ErrNoPEM = errors.New("keys: no PEM block found")
	// ErrPasswordRequired is returned for an encrypted private key when no
	// password was given.
	ErrPasswordRequired = errors.New("keys: the private key is encrypted and needs a password")
	// ErrBadPassword is returned when an encrypted private key does not
	// decrypt with the given password (or its ciphertext is corrupt).
	ErrBadPassword = errors.New("keys: wrong password or corrupt encrypted key")
	// ErrUnsupportedKey is returned for key types MCUboot does not use.
	ErrUnsupportedKey = errors.New("keys: unsupported key type")
	// ErrPublicOnly is returned when a private key is needed (to sign or
	// decrypt) and the file holds only a public key.
	ErrPublicOnly = errors.New("keys: this is a public key; a private key is needed")
)

// LoadPrivate reads a private key from a PEM file. password decrypts an
// encrypted PKCS#8 key; it is ignored for unencrypted keys. The result is an
// *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey or *ecdh.PrivateKey
// (X25519).
func LoadPrivate(path string, password []byte) (crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivate(data, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParsePrivate parses a PEM-encoded private key (PKCS#8, encrypted PKCS#8,
// PKCS#1 RSA or SEC 1 EC). Encrypted keys need password; otherwise it is
// ignored.
func ParsePrivate(data, password []byte) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, ErrNoPEM
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		k, err = parseEncryptedPKCS8(block.Bytes, password)
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, ErrPublicOnly
	default:
		return nil, fmt.Errorf("keys: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		if errors.Is(err, ErrPasswordRequired) || errors.Is(err, ErrBadPassword) {
			return nil, err
		}
		return nil, fmt.Errorf("keys: %s: %w", block.Type, err)
	}
	if _, err := TypeOf(k); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadPublic reads a public key from a PEM file holding either a public key
// or an unencrypted private key (whose public half is returned).
func LoadPublic(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParsePublic parses a PEM public key (PKIX or PKCS#1 RSA) or the public
// half of an unencrypted PEM private key.
func ParsePublic(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, ErrNoPEM
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		priv, err := ParsePrivate(data, nil)
		if err != nil {
			return nil, err
		}
		return PublicOf(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", block.Type, err)
	}
	if _, err := TypeOf(k); err != nil {
		return nil, err
	}
	return k, nil
}

// PublicOf returns the public half of a private key.
func PublicOf(priv crypto.PrivateKey) (crypto.PublicKey, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		return &k.PublicKey, nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	case *ecdh.PrivateKey:
		return k.PublicKey(), nil
	case crypto.Signer:
		return k.Public(), nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, priv)
}
