package keys

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Errors about PKCS#11 key references.
var (
	// ErrPKCS11URI is returned for a malformed RFC 7512 pkcs11: URI.
	ErrPKCS11URI = errors.New("keys: bad pkcs11 URI")
	// ErrPINRequired is returned when a pkcs11: URI has no pin-value or
	// pin-source and no password was given to use as the PIN.
	ErrPINRequired = errors.New("keys: the PKCS#11 token needs a PIN: add pin-value= or pin-source= to the URI, or give a password")
)

// PKCS11URI is the part of an RFC 7512 "pkcs11:" URI that selects a signing
// key: the token (by label, serial or slot), the key object (by label and/or
// id), the PIN and the module to load.
type PKCS11URI struct {
	Token  string // token label ("token=")
	Serial string // token serial number ("serial=")
	SlotID *int   // slot ("slot-id=")
	Object string // key label ("object=")
	ID     []byte // key CKA_ID ("id=", percent-encoded bytes)
	Type   string // object class ("type="); only "private" or empty select a signing key

	PinValue   string // "pin-value=" query attribute
	PinSource  string // "pin-source=" query attribute: a file path or file: URI holding the PIN
	ModulePath string // "module-path=" query attribute: the PKCS#11 library to load
	ModuleName string // "module-name=" query attribute
}

// IsPKCS11URI reports whether ref names a PKCS#11 key rather than a file.
func IsPKCS11URI(ref string) bool {
	return len(ref) >= 7 && strings.EqualFold(ref[:7], "pkcs11:")
}

// ParsePKCS11URI parses an RFC 7512 URI such as
// "pkcs11:token=ota;object=fw-signing?pin-source=/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so".
// Unknown attributes in the vendor-specific "x-" space are ignored; other
// unknown or repeated attributes are errors, as the RFC says.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	if !IsPKCS11URI(s) {
		return nil, fmt.Errorf("%w: %q does not start with \"pkcs11\"", ErrPKCS11URI, s)
	}
	rest := s[7:]
	path, query, _ := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	attr := func(part, sep string) (string, string, error) {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return "", "", fmt.Errorf("%w: attribute %q is not name=value", ErrPKCS11URI, part)
		}
		if seen[sep+k] {
			return "", "", fmt.Errorf("%w: attribute %q appears twice", ErrPKCS11URI, k)
		}
		seen[sep+k] = true
		val, err := url.PathUnescape(v)
		if err != nil {
			return "", "", fmt.Errorf("%w: attribute %q: %v", ErrPKCS11URI, k, err)
		}
		return k, val, nil
	}
	if path != "" {
		for _, part := range strings.Split(path, ";") {
			k, v, err := attr(part, ";")
			if err != nil {
				return nil, err
			}
			switch k {
			case "token":
				u.Token = v
			case "serial":
				u.Serial = v
			case "object":
				u.Object = v
			case "id":
				u.ID = []byte(v)
			case "type":
				u.Type = v
			case "slot-id":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("%w: slot-id %q is not a number", ErrPKCS11URI, v)
				}
				u.SlotID = &n
			case "manufacturer", "model", "library-manufacturer", "library-description",
				"library-version", "slot-description", "slot-manufacturer":
				// Informational; the token label, serial or slot selects.
			default:
				if !strings.HasPrefix(k, "x-") {
					return nil, fmt.Errorf("%w: unknown path attribute %q", ErrPKCS11URI, k)
				}
			}
		}
	}
	if query != "" {
		for _, part := range strings.Split(query, "&") {
			k, v, err := attr(part, "?")
			if err != nil {
				return nil, err
			}
			switch k {
			case "pin-value":
				u.PinValue = v
			case "pin-source":
				u.PinSource = v
			case "module-path":
				u.ModulePath = v
			case "module-name":
				u.ModuleName = v
			default:
				if !strings.HasPrefix(k, "x-") {
					return nil, fmt.Errorf("%w: unknown query attribute %q", ErrPKCS11URI, k)
				}
			}
		}
	}
	if u.PinValue != "" && u.PinSource != "" {
		return nil, fmt.Errorf("%w: both pin-value and pin-source given", ErrPKCS11URI)
	}
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("%w: type=%s cannot sign (want type=private)", ErrPKCS11URI, u.Type)
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("%w: name the key with object= or id=", ErrPKCS11URI)
	}
	return u, nil
}
