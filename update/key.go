package update

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// ParseKey decodes the contents of a key file: either the raw 16 or 32 key
// bytes, or the key in hexadecimal (32 or 64 hex digits) with optional
// surrounding white space, as `openssl rand -hex 16 > key.bin` writes it.
// Hex wins when the file is valid hex of the right length; a random raw key
// made only of hex digits is too unlikely to matter (p ≈ 2^-113).
func ParseKey(data []byte) ([]byte, error) {
	if t := strings.TrimSpace(string(data)); len(t) == 32 || len(t) == 64 {
		if k, err := hex.DecodeString(t); err == nil {
			return k, nil
		}
	}
	if len(data) == 16 || len(data) == 32 {
		return append([]byte(nil), data...), nil
	}
	return nil, fmt.Errorf("%w: key file holds %d bytes; want 16 or 32 raw bytes or 32 or 64 hex digits", ErrKey, len(data))
}

// LoadKey reads and parses a key file with ParseKey.
func LoadKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
