package agent

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// testImages is a stand-in image format for tests that do not exercise
// MCUboot: "TIMG", a length-prefixed version, a security counter, a
// length-prefixed payload and an Ed25519 signature over all of it.
type testImages struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newTestImages() *testImages {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "otakit agent test key seed......")
	priv := ed25519.NewKeyFromSeed(seed)
	return &testImages{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
}

func (ti *testImages) make(version string, counter uint32, payload []byte) []byte {
	b := []byte("TIMG")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(version)))
	b = append(b, version...)
	b = binary.LittleEndian.AppendUint32(b, counter)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, ed25519.Sign(ti.priv, b)...)
}

var errTestImage = errors.New("test image invalid")

func (ti *testImages) VerifyImage(r io.ReaderAt, limit int64) (ImageInfo, error) {
	hdr := make([]byte, 6)
	if _, err := r.ReadAt(hdr, 0); err != nil || string(hdr[:4]) != "TIMG" {
		return ImageInfo{}, fmt.Errorf("%w: no header", errTestImage)
	}
	vl := int64(binary.LittleEndian.Uint16(hdr[4:]))
	mid := make([]byte, vl+8)
	if _, err := r.ReadAt(mid, 6); err != nil {
		return ImageInfo{}, fmt.Errorf("%w: truncated", errTestImage)
	}
	pl := int64(binary.LittleEndian.Uint32(mid[vl+4:]))
	n := 6 + vl + 8 + pl
	if n+ed25519.SignatureSize > limit {
		return ImageInfo{}, fmt.Errorf("%w: larger than its slot", errTestImage)
	}
	all := make([]byte, n+ed25519.SignatureSize)
	if _, err := r.ReadAt(all, 0); err != nil && err != io.EOF {
		return ImageInfo{}, fmt.Errorf("%w: truncated", errTestImage)
	}
	if !ed25519.Verify(ti.pub, all[:n], all[n:]) {
		return ImageInfo{}, fmt.Errorf("%w: bad signature", errTestImage)
	}
	return ImageInfo{Version: string(mid[:vl]), SecurityCounter: binary.LittleEndian.Uint32(mid[vl:]), Size: int64(len(all))}, nil
}
