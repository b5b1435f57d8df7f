// Package keys generates, loads and exports the keys otakit signs and
// encrypts with: ECDSA P-256/P-384, Ed25519, RSA-2048/3072 and X25519, in the
// PEM encodings MCUboot's imgtool writes and reads.
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

// ErrNoPEM is returned when a key file holds no PEM block.
var ErrNoPEM = errors.New("keys: no PEM block found")

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

// ParsePrivate parses a PEM-encoded private key (PKCS#8, PKCS#1 RSA or SEC 1 EC).
func ParsePrivate(data, password []byte) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, ErrNoPEM
	}
	switch block.Type {
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return parseEncryptedPKCS8(block.Bytes, password)
	default:
		return nil, fmt.Errorf("keys: unsupported PEM block %q", block.Type)
	}
}

// LoadPublic reads a public key from a PEM file holding either a public key
// or a private key (whose public half is returned).
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

// ParsePublic parses a PEM public key (PKIX) or the public half of a PEM
// private key.
func ParsePublic(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, ErrNoPEM
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	priv, err := ParsePrivate(data, nil)
	if err != nil {
		return nil, err
	}
	return PublicOf(priv)
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
	return nil, fmt.Errorf("keys: unsupported private key type %T", priv)
}

// parseEncryptedPKCS8 is replaced by the full PBES2 implementation.
func parseEncryptedPKCS8(der, password []byte) (crypto.PrivateKey, error) {
	return nil, errors.New("keys: encrypted PKCS#8 keys are not supported yet")
}
