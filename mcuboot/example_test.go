package mcuboot_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"

	"github.com/otakit/otakit/mcuboot"
)

// Sign an image, then parse and verify it, as imgtool sign and verify do.
func Example() {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	firmware := []byte("firmware image bytes")

	var img bytes.Buffer
	_, err := mcuboot.Sign(&img, bytes.NewReader(firmware), int64(len(firmware)), &mcuboot.SignOptions{
		Version:    mcuboot.Version{Major: 1, Minor: 2, Revision: 3},
		HeaderSize: 0x200,
		PadHeader:  true,
		SlotSize:   0x20000,
		Signer:     key,
	})
	if err != nil {
		panic(err)
	}

	parsed, err := mcuboot.Parse(bytes.NewReader(img.Bytes()), int64(img.Len()))
	if err != nil {
		panic(err)
	}
	res, err := parsed.Verify(&mcuboot.VerifyOptions{Keys: []crypto.PublicKey{key.Public()}})
	fmt.Println(parsed.Header.Version, res.SignatureType, err)
	for _, t := range parsed.TLVs {
		fmt.Println(t.Type, len(t.Value))
	}
	// Output:
	// 1.2.3+0 ED25519 <nil>
	// SHA256 32
	// KEYHASH 32
	// ED25519 64
}
