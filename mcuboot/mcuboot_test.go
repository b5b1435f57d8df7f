package mcuboot

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
	"github.com/otakit/otakit/keys"
)

func vectorDir(t testing.TB) string {
	return filepath.Join(testutil.SharedDir(t), "testdata", "imgtool")
}

func loadSigner(t testing.TB, name string) crypto.Signer {
	t.Helper()
	k, err := keys.LoadPrivate(filepath.Join(vectorDir(t), "keys", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func readInput(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir(t), "inputs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t testing.TB, payload []byte, o SignOptions) []byte {
	t.Helper()
	if o.HeaderSize == 0 {
		o.HeaderSize, o.PadHeader = 0x200, true
	}
	if o.SlotSize == 0 {
		o.SlotSize = 0x60000
	}
	var buf bytes.Buffer
	if _, err := Sign(&buf, bytes.NewReader(payload), int64(len(payload)), &o); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return buf.Bytes()
}

func parse(b []byte) (*Image, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

func verify(b []byte, opts *VerifyOptions) error {
	img, err := parse(b)
	if err != nil {
		return err
	}
	_, err = img.Verify(opts)
	return err
}

// TestSignVerifyMatrix signs with every key type, with and without
// encryption, padding, confirm and protected TLVs, and checks the result
// parses, verifies and decrypts back to the payload.
func TestSignVerifyMatrix(t *testing.T) {
	payload := readInput(t, "app-small.bin")
	p256 := loadSigner(t, "ecdsa-p256.pem")
	x25519Priv, err := keys.LoadPrivate(filepath.Join(vectorDir(t), "keys", "x25519.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rsaEnc, _ := rsa.GenerateKey(rand.Reader, 2048)
	kek := KEK(bytes.Repeat([]byte{0x42}, 16))
	signers := map[string]crypto.Signer{
		"none":       nil,
		"ecdsa-p256": p256,
		"ecdsa-p384": loadSigner(t, "ecdsa-p384.pem"),
		"ed25519":    loadSigner(t, "ed25519.pem"),
		"rsa-2048":   loadSigner(t, "rsa-2048.pem"),
		"rsa-3072":   loadSigner(t, "rsa-3072.pem"),
	}
	encs := map[string]struct{ to, priv any }{
		"plain":  {nil, nil},
		"ec256":  {p256.Public(), p256},
		"x25519": {x25519Priv.(*ecdh.PrivateKey).PublicKey(), x25519Priv},
		"rsa":    {&rsaEnc.PublicKey, rsaEnc},
		"kw":     {kek, kek},
	}
	sc := uint32(7)
	for sname, s := range signers {
		for ename, e := range encs {
			for _, keylen := range []int{128, 256} {
				if e.to == nil && keylen == 256 {
					continue
				}
				o := SignOptions{Version: Version{1, 2, 3, 4}, Signer: s, EncryptTo: e.to, EncryptKeyLen: keylen,
					Confirm: true, SecurityCounter: &sc, Dependencies: []Dependency{{1, Version{1, 0, 0, 0}}}}
				if s != nil && e.to != nil {
					if checkEncryptPair(s.Public(), e.to) != nil {
						continue // imgtool refuses these pairs too
					}
				}
				name := sname + "/" + ename
				if e.to != nil {
					name += "/" + string(rune('0'+keylen/128))
				}
				t.Run(name, func(t *testing.T) {
					img := sign(t, payload, o)
					opts := &VerifyOptions{DecryptKey: e.priv}
					if s != nil {
						opts.Keys = []crypto.PublicKey{s.Public()}
					}
					if err := verify(img, opts); err != nil {
						t.Fatalf("verify: %v", err)
					}
					if e.to == nil {
						return
					}
					// Without the decryption key the hash cannot be checked.
					if err := verify(img, &VerifyOptions{Keys: opts.Keys}); !errors.Is(err, ErrEncrypted) {
						t.Fatalf("verify without decryption key: %v, want ErrEncrypted", err)
					}
					parsed, _ := parse(img)
					var plain bytes.Buffer
					if err := parsed.Decrypt(&plain, e.priv); err != nil {
						t.Fatalf("decrypt: %v", err)
					}
					got := plain.Bytes()[0x200 : 0x200+len(payload)]
					if !bytes.Equal(got, payload) {
						t.Fatal("decrypted payload differs")
					}
					if err := verify(plain.Bytes(), &VerifyOptions{Keys: opts.Keys}); err != nil {
						t.Fatalf("verify decrypted: %v", err)
					}
				})
			}
		}
	}
}

// flipImage signs a small image with protected TLVs for the bit-flip tests.
func flipImage(t *testing.T) ([]byte, *Image, crypto.Signer) {
	s := loadSigner(t, "ed25519.pem")
	sc := uint32(3)
	img := sign(t, readInput(t, "app-small.bin"), SignOptions{Version: Version{1, 0, 0, 0}, Signer: s,
		SecurityCounter: &sc, Dependencies: []Dependency{{1, Version{1, 2, 3, 4}}}})
	parsed, err := parse(img)
	if err != nil {
		t.Fatal(err)
	}
	return img, parsed, s
}

// TestBitFlips flips single bits in the header, payload, protected TLVs
// and signature: verification must fail and say what failed.
func TestBitFlips(t *testing.T) {
	img, parsed, s := flipImage(t)
	sig, _ := parsed.Find(TLVEd25519)
	sigOff := int(sig.Offset) + tlvHeaderSize
	regions := []struct {
		name       string
		start, end int
		step       int // bits between samples
		allowed    []error
	}{
		{"header", 0, HeaderSize, 1, []error{ErrMagic, ErrHeader, ErrTruncated, ErrProtectedSize, ErrTLVInfo, ErrNoEncKey, ErrHashMismatch, ErrTLVLength}},
		{"header padding", HeaderSize, 0x200, 61, []error{ErrHashMismatch}},
		{"payload", int(parsed.PayloadOffset()), int(parsed.ProtectedOffset()), 97, []error{ErrHashMismatch}},
		{"protected TLVs", int(parsed.ProtectedOffset()), int(parsed.TLVOffset()), 1, []error{ErrHashMismatch, ErrProtectedSize, ErrTLVInfo, ErrTLVLength, ErrUnknownTLV, ErrDuplicateTLV, ErrMisplacedTLV, ErrTLVValue, ErrTruncated}},
		{"signature", sigOff, sigOff + len(sig.Value), 1, []error{ErrSignature}},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			n := 0
			for bit := r.start * 8; bit < r.end*8; bit += r.step {
				b := bytes.Clone(img)
				b[bit/8] ^= 1 << (bit % 8)
				err := verify(b, &VerifyOptions{Keys: []crypto.PublicKey{s.Public()}})
				if err == nil {
					t.Fatalf("flipping bit %d of byte 0x%x: image still verifies", bit%8, bit/8)
				}
				ok := false
				for _, want := range r.allowed {
					ok = ok || errors.Is(err, want)
				}
				if !ok {
					t.Fatalf("flipping byte 0x%x bit %d: error %q names none of the expected failures", bit/8, bit%8, err)
				}
				n++
			}
			if n == 0 {
				t.Fatal("no bits flipped")
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	img, _, _ := flipImage(t)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, k := range map[string]crypto.PublicKey{"other ed25519": other, "ecdsa": &p256.PublicKey} {
		err := verify(img, &VerifyOptions{Keys: []crypto.PublicKey{k}})
		if !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("%s: %v, want ErrKeyMismatch", name, err)
		}
	}
	// A full public key in the image: a wrong key is caught by PUBKEY.
	s := loadSigner(t, "ed25519.pem")
	full := sign(t, []byte("payload"), SignOptions{Signer: s, FullPublicKey: true})
	if err := verify(full, &VerifyOptions{Keys: []crypto.PublicKey{other}}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("PUBKEY image, wrong key: %v", err)
	}
	if err := verify(full, &VerifyOptions{Keys: []crypto.PublicKey{other, s.Public()}}); err != nil {
		t.Errorf("PUBKEY image, second key right: %v", err)
	}
	// Hash-only image checked against a key: no signature.
	hashOnly := sign(t, []byte("payload"), SignOptions{})
	if err := verify(hashOnly, &VerifyOptions{Keys: []crypto.PublicKey{other}}); !errors.Is(err, ErrNoSignature) {
		t.Errorf("hash-only image with a key: %v, want ErrNoSignature", err)
	}
}

// TestHostileImages checks that malformed images give the named error.
func TestHostileImages(t *testing.T) {
	img, parsed, _ := flipImage(t)
	o := binary.LittleEndian
	tlvOff := int(parsed.TLVOffset())
	protOff := int(parsed.ProtectedOffset())
	keyHash, _ := parsed.Find(TLVKeyHash)
	khOff := int(keyHash.Offset)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(img)) }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", img[:20], ErrTruncated},
		{"header only", img[:HeaderSize], ErrTruncated},
		{"cut in payload", img[:0x300], ErrTruncated},
		{"cut in protected TLVs", img[:protOff+6], ErrTruncated},
		{"cut in TLV area", img[:len(img)-10], ErrTruncated},
		{"not an image", bytes.Repeat([]byte{0xff}, 64), ErrMagic},
		{"header size below 32", mod(func(b []byte) []byte { o.PutUint16(b[8:], 16); return b }), ErrHeader},
		{"TLV length past the end", mod(func(b []byte) []byte { o.PutUint16(b[khOff+2:], 0x400); return b }), ErrTLVLength},
		{"protected size too big", mod(func(b []byte) []byte { o.PutUint16(b[10:], o.Uint16(b[10:])+4); return b }), ErrProtectedSize},
		{"protected size zero", mod(func(b []byte) []byte { o.PutUint16(b[10:], 0); return b }), ErrProtectedSize},
		{"protected info disagrees", mod(func(b []byte) []byte { o.PutUint16(b[protOff+2:], 12); return b }), ErrProtectedSize},
		{"bad TLV magic", mod(func(b []byte) []byte { b[tlvOff] ^= 0xff; return b }), ErrTLVInfo},
		{"unknown TLV", mod(func(b []byte) []byte { b[khOff] = 0x99; return b }), ErrUnknownTLV},
		{"duplicate TLV", mod(func(b []byte) []byte { b[khOff] = byte(TLVSHA256); return b }), ErrDuplicateTLV},
		{"SEC_CNT unprotected", mod(func(b []byte) []byte { b[khOff] = byte(TLVSecCnt); return b }), ErrMisplacedTLV},
		{"encrypted flag without key", mod(func(b []byte) []byte { b[16] |= byte(FlagEncryptedAES128); return b }), ErrNoEncKey},
		{"both encryption flags", mod(func(b []byte) []byte { b[16] |= byte(FlagEncryptedAES128 | FlagEncryptedAES256); return b }), ErrHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(c.data)
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse: %v, want %v", err, c.want)
			}
		})
	}
	// Every truncation fails cleanly (never panics, never verifies).
	for n := 0; n < len(img); n += 7 {
		if err := verify(img[:n], nil); err == nil {
			t.Fatalf("image cut to %d bytes verifies", n)
		}
	}
}

// TestVerifyNoHash covers an image whose only TLV is not a hash.
func TestVerifyNoHash(t *testing.T) {
	img := sign(t, []byte("payload"), SignOptions{})
	parsed, _ := parse(img)
	h, _ := parsed.Find(TLVSHA256)
	b := bytes.Clone(img)
	b[h.Offset] = byte(TLVKeyHash)
	if err := verify(b, nil); !errors.Is(err, ErrNoHash) {
		t.Fatalf("got %v, want ErrNoHash", err)
	}
}

func TestSignOptionErrors(t *testing.T) {
	s := loadSigner(t, "ecdsa-p256.pem")
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	cases := []struct {
		name string
		o    SignOptions
		want error
	}{
		{"small header", SignOptions{HeaderSize: 16, SlotSize: 0x1000}, ErrOptions},
		{"slot too small", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x400}, ErrSlotOverflow},
		{"bad align", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, Align: 3}, ErrOptions},
		{"p256 with x25519", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, Signer: s, EncryptTo: x.PublicKey()}, ErrOptions},
		{"wrong sha", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, Signer: s, Hash: crypto.SHA512}, ErrOptions},
		{"header not zero", SignOptions{HeaderSize: 0x20, SlotSize: 0x60000}, ErrHeaderNotZero},
		{"confirm and test", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, Confirm: true, Test: true}, ErrOptions},
		{"fix-sig without key", SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000, FixedSignature: []byte{1}}, ErrOptions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := []byte("not zeros, a payload of some length.......")
			_, err := Sign(io.Discard, bytes.NewReader(p), int64(len(p)), &c.o)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A payload shorter than its declared size.
	o := SignOptions{HeaderSize: 0x200, PadHeader: true, SlotSize: 0x60000}
	if _, err := Sign(io.Discard, strings.NewReader("abc"), 100, &o); !errors.Is(err, ErrShortPayload) {
		t.Fatalf("short payload: %v", err)
	}
}

// TestExternalSigning runs the --vector-to-sign / --fix-sig round trip:
// the digest is signed outside, and the image made with the fixed
// signature equals the one signed directly (Ed25519 is deterministic).
func TestExternalSigning(t *testing.T) {
	s := loadSigner(t, "ed25519.pem")
	payload := readInput(t, "app-small.bin")
	direct := sign(t, payload, SignOptions{Version: Version{1, 0, 0, 0}, Signer: s})
	digest := sign(t, payload, SignOptions{Version: Version{1, 0, 0, 0}, FixedSigPublicKey: s.Public(), VectorToSign: "digest"})
	if len(digest) != sha256.Size {
		t.Fatalf("digest vector is %d bytes", len(digest))
	}
	vec := sign(t, payload, SignOptions{Version: Version{1, 0, 0, 0}, VectorToSign: "payload"})
	if h := sha256.Sum256(vec); !bytes.Equal(h[:], digest) {
		t.Fatal("payload vector does not hash to the digest vector")
	}
	sig := ed25519.Sign(s.(ed25519.PrivateKey), digest)
	fixed := sign(t, payload, SignOptions{Version: Version{1, 0, 0, 0}, FixedSignature: sig, FixedSigPublicKey: s.Public()})
	if !bytes.Equal(direct, fixed) {
		t.Fatal("image with fixed signature differs from the directly signed one")
	}
}

func TestKeyWrapRFC3394(t *testing.T) {
	// RFC 3394 section 4.1: 128-bit key data with a 128-bit KEK.
	kek := mustHex("000102030405060708090A0B0C0D0E0F")
	data := mustHex("00112233445566778899AABBCCDDEEFF")
	want := mustHex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
	got, err := aesKeyWrap(kek, data)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap = %x, %v", got, err)
	}
	back, err := aesKeyUnwrap(kek, got)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("unwrap = %x, %v", back, err)
	}
	got[3] ^= 1
	if _, err := aesKeyUnwrap(kek, got); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("corrupted unwrap: %v", err)
	}
}

func TestWrongDecryptKey(t *testing.T) {
	p256 := loadSigner(t, "ecdsa-p256.pem")
	img := sign(t, []byte("secret firmware"), SignOptions{Signer: p256, EncryptTo: p256.Public()})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	err := verify(img, &VerifyOptions{Keys: []crypto.PublicKey{p256.Public()}, DecryptKey: other})
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("got %v, want ErrDecrypt", err)
	}
}

func TestVersionAndDependencies(t *testing.T) {
	v, err := ParseVersion("3.3.262+2025")
	if err != nil || v != (Version{3, 3, 262, 2025}) || v.SecurityCounter() != 0x03030106 {
		t.Fatalf("ParseVersion = %v, %v", v, err)
	}
	for _, bad := range []string{"", "1.2.3.4", "01.2", "256", "1.2.65536", "1.2.3+4294967296", "a"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrVersion) {
			t.Errorf("ParseVersion(%q) = %v", bad, err)
		}
	}
	d, err := ParseDependencies("(1,1.2.3+4), (2, 0.1)")
	if err != nil || len(d) != 2 || d[0] != (Dependency{1, Version{1, 2, 3, 4}}) || d[1] != (Dependency{2, Version{0, 1, 0, 0}}) {
		t.Fatalf("ParseDependencies = %v, %v", d, err)
	}
	if _, err := ParseDependencies("1,1.2.3"); err == nil {
		t.Fatal("bad dependency accepted")
	}
}

// TestBootRecordAndUUIDs checks the protected TLVs that no reference
// vector covers: the CBOR boot record layout and the UUIDs.
func TestBootRecordAndUUIDs(t *testing.T) {
	s := loadSigner(t, "ed25519.pem")
	vid := VendorUUID("example.com")
	// RFC 4122 appendix-style check: uuid5(DNS, "example.com").
	if got := describeTLV(TLV{Type: TLVUUIDVID, Value: vid[:]}, binary.LittleEndian).Decoded; got != "cfbff0d1-9375-5685-968c-48ce8b15ae17" {
		t.Fatalf("VendorUUID(example.com) = %v", got)
	}
	cid := ClassUUID(vid, "sensor")
	img := sign(t, []byte("payload"), SignOptions{Version: Version{1, 2, 3, 0}, Signer: s, BootRecord: "SPE", VendorID: vid[:], ClassID: cid[:]})
	parsed, err := parse(img)
	if err != nil {
		t.Fatal(err)
	}
	br, ok := parsed.Find(TLVBootRecord)
	if !ok {
		t.Fatal("no BOOT_RECORD")
	}
	pb, _ := PublicKeyBytes(s.Public())
	kh := sha256.Sum256(pb)
	want := []byte{0xa5, 0x01, 0x63, 'S', 'P', 'E', 0x04, 0x65, '1', '.', '2', '.', '3', 0x05, 0x58, 0x20}
	want = append(want, kh[:]...)
	want = append(want, 0x06, 0x66, 'S', 'H', 'A', '2', '5', '6', 0x02, 0x58, 0x20)
	want = append(want, make([]byte, 32)...)
	if !bytes.Equal(br.Value, want) {
		t.Fatalf("boot record\n got %x\nwant %x", br.Value, want)
	}
	if _, ok := parsed.Find(TLVUUIDCID); !ok {
		t.Fatal("no UUID_CID")
	}
	if err := verify(img, &VerifyOptions{Keys: []crypto.PublicKey{s.Public()}}); err != nil {
		t.Fatal(err)
	}
}

// TestDumpinfoVectors describes every reference output without error.
func TestDumpinfoVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(vectorDir(t), "outputs", "*.bin"))
	if len(files) == 0 {
		t.Fatal("no vector outputs")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		img, err := parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var out bytes.Buffer
		if err := Describe(img).WriteText(&out); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "pad-confirm.bin") && (img.Trailer == nil || img.Trailer.ImageOK != 1 || img.Trailer.Magic != "good") {
			t.Errorf("%s: trailer %+v, want good magic and image_ok 1", f, img.Trailer)
		}
		if strings.HasSuffix(f, "max-align-32.bin") && (img.Trailer == nil || img.Trailer.MaxAlign != 32) {
			t.Errorf("%s: trailer %+v, want max_align 32", f, img.Trailer)
		}
	}
}

// patternReader yields size pseudo-random bytes without holding them.
type patternReader struct {
	n, size int64
	x       uint64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n >= p.size {
		return 0, io.EOF
	}
	k := int(min(int64(len(b)), p.size-p.n))
	for i := range k {
		p.x = p.x*6364136223846793005 + 1442695040888963407
		b[i] = byte(p.x >> 56)
	}
	p.n += int64(k)
	return k, nil
}

// TestStreaming64MiB signs, verifies and decrypts a 64 MiB image through
// files and checks that allocations stay far below the image size.
func TestStreaming64MiB(t *testing.T) {
	const size = 64 << 20
	s := loadSigner(t, "ecdsa-p256.pem")
	path := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(fn func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		fn()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	var res *SignResult
	used := allocs(func() {
		res, err = Sign(f, &patternReader{size: size}, size, &SignOptions{HeaderSize: 0x200, PadHeader: true,
			SlotSize: size + 0x10000, Signer: s, EncryptTo: s.Public(), Confirm: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	const limit = 8 << 20
	if used > limit {
		t.Fatalf("Sign allocated %d bytes for a %d-byte image", used, size)
	}
	if res.Written != size+0x10000 {
		t.Fatalf("wrote %d bytes, want the slot size", res.Written)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	used = allocs(func() {
		var img *Image
		if img, err = Parse(in, res.Written); err == nil {
			_, err = img.Verify(&VerifyOptions{Keys: []crypto.PublicKey{s.Public()}, DecryptKey: s})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if used > limit {
		t.Fatalf("Verify allocated %d bytes for a %d-byte image", used, size)
	}
}

func FuzzParseImage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(vectorDir(f), "outputs", "*.bin"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(miniature(f, b))
	}
	// Small images with every area, for fast fuzzing.
	sc := uint32(1)
	small := []byte("tiny firmware")
	f.Add(sign(f, small, SignOptions{}))
	f.Add(sign(f, small, SignOptions{Signer: loadSigner(f, "ed25519.pem"), SecurityCounter: &sc,
		Dependencies: []Dependency{{1, Version{1, 0, 0, 0}}}, HeaderSize: 32, PadHeader: true}))
	f.Add(sign(f, small, SignOptions{Signer: loadSigner(f, "ecdsa-p256.pem"), EncryptTo: loadSigner(f, "ecdsa-p256.pem").Public(),
		HeaderSize: 32, PadHeader: true, SlotSize: 0x1000, Pad: true, Align: 4, MaxSectors: 4}))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := parse(b)
		if err != nil {
			return
		}
		Describe(img)
		img.Verify(&VerifyOptions{})
		if img.End() > int64(len(b)) {
			t.Fatalf("End %d past the data %d", img.End(), len(b))
		}
	})
}

// miniature shrinks a reference image for fuzzing (the fuzzer crawls on
// 100 KiB inputs): a 32-byte header area and 16 payload bytes, then the
// vector's own TLV areas and the last bytes of its trailer. The hash no
// longer matches, but every structure the parser reads is the vector's.
func miniature(t testing.TB, b []byte) []byte {
	img, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	o := img.ByteOrder
	h := img.Header
	h.HeaderSize, h.ImageSize = HeaderSize, 16
	out := append(h.Marshal(o), b[img.PayloadOffset():img.PayloadOffset()+16]...)
	out = append(out, b[img.ProtectedOffset():img.End()]...)
	if img.Trailer != nil {
		out = append(out, b[len(b)-maxTrailerRead:]...)
	}
	return out
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return b
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// TestHeaderAndTrailerOptions checks the flags, addresses and trailer
// layouts that no reference vector covers, against imgtool's formulas.
func TestHeaderAndTrailerOptions(t *testing.T) {
	payload := []byte("firmware")
	sc := uint32(0x01020003)
	cases := []struct {
		name        string
		o           SignOptions
		flags       Flags
		loadAddr    uint32
		trailerSize int
		check       func(t *testing.T, b []byte)
	}{
		{"ram load", SignOptions{LoadAddr: 0x20000000}, FlagRAMLoad, 0x20000000, 128*3*1 + 8*4 + 16, nil},
		{"rom fixed", SignOptions{ROMFixed: 0x08020000}, FlagROMFixed, 0x08020000, 128*3*1 + 8*4 + 16, nil},
		{"non-bootable", SignOptions{NonBootable: true}, FlagNonBootable, 0, 128*3*1 + 8*4 + 16, nil},
		{"max sectors and align", SignOptions{MaxSectors: 16, Align: 4, Pad: true}, 0, 0, 16*3*4 + 8*4 + 16, nil},
		{"encrypted trailer", SignOptions{EncryptTo: KEK(make([]byte, 16)), Align: 8}, FlagEncryptedAES128, 0, 128*3*8 + 2*16 + 8*4 + 16, nil},
		{"overwrite-only align 32", SignOptions{OverwriteOnly: true, MaxAlign: 32}, 0, 0, 32*2 + 32, nil},
		{"erased zero", SignOptions{ErasedZero: true, Confirm: true}, 0, 0, 128*3*1 + 8*4 + 16, func(t *testing.T, b []byte) {
			if b[40] != 0 {
				t.Error("header padding is not 0x00")
			}
			tail := b[len(b)-24:]
			if tail[0] != 1 || !bytes.Equal(tail[8:], bootMagic[:]) || b[len(b)-100] != 0 {
				t.Errorf("trailer %x", tail)
			}
		}},
		{"big-endian protected TLVs", SignOptions{ByteOrder: binary.BigEndian, SecurityCounter: &sc,
			Dependencies: []Dependency{{2, Version{1, 2, 3, 4}}}, MaxAlign: 16, Pad: true}, 0, 0, 128*3*1 + 16*4 + 16, func(t *testing.T, b []byte) {
			img, err := parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := img.SecurityCounter(); !ok || v != sc {
				t.Errorf("SEC_CNT = %x", v)
			}
			if d := img.Dependencies(); len(d) != 1 || d[0] != (Dependency{2, Version{1, 2, 3, 4}}) {
				t.Errorf("dependencies = %v", d)
			}
			if img.Trailer == nil || img.Trailer.MaxAlign != 16 || img.Trailer.Magic != "good" || !bytes.Equal(b[len(b)-16:len(b)-14], []byte{0, 16}) {
				t.Errorf("trailer %+v %x", img.Trailer, b[len(b)-16:])
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.HeaderSize, o.PadHeader, o.SlotSize = 0x200, true, 0x10000
			var buf bytes.Buffer
			res, err := Sign(&buf, bytes.NewReader(payload), int64(len(payload)), &o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Header.Flags != c.flags || res.Header.LoadAddr != c.loadAddr || res.TrailerSize != c.trailerSize {
				t.Fatalf("flags %v load 0x%x trailer %d, want %v 0x%x %d", res.Header.Flags.Names(), res.Header.LoadAddr, res.TrailerSize,
					c.flags.Names(), c.loadAddr, c.trailerSize)
			}
			if (o.Pad || o.Confirm) && int64(buf.Len()) != o.SlotSize {
				t.Fatalf("padded image is %d bytes, want the slot size", buf.Len())
			}
			// The trailer must fit exactly: one byte less of slot fails.
			o2 := o
			o2.SlotSize = res.ImageLen + int64(res.TrailerSize) - 1
			if _, err := Sign(io.Discard, bytes.NewReader(payload), int64(len(payload)), &o2); !errors.Is(err, ErrSlotOverflow) {
				t.Fatalf("slot one byte short: %v", err)
			}
			if c.check != nil {
				c.check(t, buf.Bytes())
			}
		})
	}
}
