package keys

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
)

// Info describes a key for people: what it is and how to recognise it.
type Info struct {
	Type    Type   `json:"type"`
	Bits    int    `json:"bits"`
	Private bool   `json:"private"`
	SigType string `json:"sigType"` // imgtool's name, e.g. ECDSA256_SHA256
	// KeyHash is the hex SHA-256 of PublicBytes: MCUboot's KEYHASH TLV.
	KeyHash string `json:"keyHash"`
	// SPKISHA256 is the hex SHA-256 of the SubjectPublicKeyInfo DER, the
	// fingerprint other tools (openssl, PKCS#11 tokens) can reproduce.
	SPKISHA256 string `json:"spkiSha256"`
}

// Describe returns the Info of a public or private key.
func Describe(key any) (Info, error) {
	t, err := TypeOf(key)
	if err != nil {
		return Info{}, err
	}
	pub := key
	private := false
	switch k := key.(type) {
	case crypto.Signer:
		private = true
		pub = k.Public()
	default:
		if p, err := PublicOf(key); err == nil {
			private = true
			pub = p
		}
	}
	h, err := PublicKeyHash(pub)
	if err != nil {
		return Info{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Info{}, err
	}
	s := sha256.Sum256(spki)
	return Info{
		Type:       t,
		Bits:       t.Bits(),
		Private:    private,
		SigType:    t.SigType(),
		KeyHash:    hex.EncodeToString(h),
		SPKISHA256: hex.EncodeToString(s[:]),
	}, nil
}

// WriteText writes i as aligned "label: value" lines.
func (i Info) WriteText(w io.Writer) error {
	kind := "public"
	if i.Private {
		kind = "private"
	}
	sig := i.SigType
	if i.Type == X25519 {
		sig = "none (X25519 keys encrypt images)"
	}
	_, err := fmt.Fprintf(w, "Key type:     %s (%s key)\nBits:         %d\nSignature:    %s\nKey hash:     %s\nSPKI SHA-256: %s\n",
		i.Type, kind, i.Bits, sig, i.KeyHash, i.SPKISHA256)
	return err
}
