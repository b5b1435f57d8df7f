package mcuboot

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// namespaceDNS is RFC 4122's name space for domain names.
var namespaceDNS = [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// parseUUID accepts the canonical 8-4-4-4-12 form or 32 hex digits.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || (strings.Contains(s, "-") && len(s) != 36) {
		return u, false
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, false
	}
	return u, true
}

// uuid5 is the RFC 4122 name-based (SHA-1) UUID of name in namespace ns.
func uuid5(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

// VendorUUID returns the UUID_VID value for --vid: the UUID itself if s is
// one, else the UUIDv5 of s as a domain name.
func VendorUUID(s string) [16]byte {
	if u, ok := parseUUID(s); ok {
		return u
	}
	return uuid5(namespaceDNS, s)
}

// ClassUUID returns the UUID_CID value for --cid: the UUID itself if s is
// one, else the UUIDv5 of s under the vendor UUID.
func ClassUUID(vendor [16]byte, s string) [16]byte {
	if u, ok := parseUUID(s); ok {
		return u
	}
	return uuid5(vendor, s)
}
