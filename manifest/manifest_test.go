package manifest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/update"
	"github.com/otakit/otakit/version"
)

// sharedTestdata walks up from the package directory to the shared/testdata
// folder that sits beside the repository.
func sharedTestdata(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		for _, c := range []string{filepath.Join(dir, "shared", "testdata"), filepath.Join(dir, "..", "shared", "testdata")} {
			if st, err := os.Stat(c); err == nil && st.IsDir() {
				return c
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("shared/testdata not found beside the repository")
		}
		dir = parent
	}
}

// fakeImage builds a minimal MCUboot-format image: 32-byte header, payload,
// and a TLV area with a SHA-256 and an ECDSA-signature-shaped TLV.
func fakeImage(v string, payload []byte) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h[0:], 0x96f3b83d)
	binary.LittleEndian.PutUint16(h[8:], 32)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	version.MustParse(v).Put(h[20:])
	b := append(h, payload...)
	tlv := []byte{0x07, 0x69, 0, 0}
	tlv = append(tlv, 0x10, 0, 32, 0)
	tlv = append(tlv, make([]byte, 32)...)
	tlv = append(tlv, 0x22, 0, 4, 0, 0xde, 0xad, 0xbe, 0xef)
	binary.LittleEndian.PutUint16(tlv[2:], uint16(len(tlv)))
	return append(b, tlv...)
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaErr  error
)

// genKeys returns fresh Ed25519 and ECDSA keys and a shared RSA key (RSA
// generation is slow and its freshness is not under test).
func genKeys(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	ed := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	ec := func(c elliptic.Curve) crypto.Signer { k, _ := ecdsa.GenerateKey(c, rand.Reader); return k }
	rsaOnce.Do(func() { rsaKey, rsaErr = rsa.GenerateKey(rand.Reader, 2048) })
	if rsaErr != nil {
		t.Fatal(rsaErr)
	}
	rk := rsaKey
	return map[string]crypto.Signer{
		AlgEd25519: ed(), AlgECDSAP256: ec(elliptic.P256()), AlgECDSAP384: ec(elliptic.P384()), AlgRSAPSS: rk,
	}
}

// release writes a 1.2.0+456 release (image and a delta package from 1.1.0)
// into a temp dir and returns the dir and options.
func release(t *testing.T) (string, Options) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "app-1.2.0.bin")
	os.WriteFile(img, fakeImage("1.2.0+456", bytes.Repeat([]byte("new firmware "), 100)), 0o644)
	patch := filepath.Join(dir, "app-1.1.0-to-1.2.0.update")
	os.WriteFile(filepath.Join(dir, "patch.bin"), []byte("a patch"), 0o644)
	if _, err := update.PackFile(patch, filepath.Join(dir, "patch.bin"), update.Header{
		Type: update.TypeDelta, Version: version.MustParse("1.2.0+456"), BaseVersion: version.MustParse("1.1.0"), Compression: codec.Zstd,
	}, nil); err != nil {
		t.Fatal(err)
	}
	return dir, Options{
		Dir: dir, Image: img, Patches: map[string]string{"1.1.0": patch},
		HardwareRevisions: []string{"rev-a", "rev-b"}, MinBootloaderVersion: "1.0.0", RequiredBaseVersion: "1.1.0",
		ReleaseNotes: "Fixes: \"quotes\", ünïcödé, 🚀", Sequence: 7,
		Now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), Validity: 720 * time.Hour,
	}
}

func signed(t *testing.T, o Options, signers ...crypto.Signer) []byte {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(signers...); err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keySet(t testing.TB, k int, signers ...crypto.Signer) *KeySet {
	t.Helper()
	var pubs []crypto.PublicKey
	for _, s := range signers {
		pubs = append(pubs, s.Public())
	}
	ks, err := NewKeySet(k, pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var verifyTime = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func TestShape(t *testing.T) {
	_, o := release(t)
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "1.2.0" || m.Build != 456 || m.Sequence != 7 || !m.Delta.Available ||
		m.Delta.BaseVersions[0] != "1.1.0" || m.Images[0].File != "app-1.2.0.bin" ||
		m.Images[0].Signature != "ecdsa:3q2+7w==" || m.Expires != o.Now.Add(720*time.Hour) {
		t.Fatalf("unexpected manifest %+v", m)
	}
	// Every field the spec names is present in the JSON.
	b, _ := m.Marshal()
	for _, k := range []string{"version", "build", "timestamp", "images", "slot", "type", "file", "size", "hash", "signature",
		"compatibility", "minBootloaderVersion", "hardwareRevision", "requiredBaseVersion", "delta", "available", "baseVersions",
		"files", "releaseNotes", "sequence", "expires"} {
		if !bytes.Contains(b, []byte(`"`+k+`"`)) {
			t.Errorf("manifest JSON lacks %q", k)
		}
	}
}

func TestSharedVectorImage(t *testing.T) {
	src := filepath.Join(sharedTestdata(t), "imgtool", "outputs", "ecdsa-p256.bin")
	dir := t.TempDir()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "app.bin"), data, 0o644)
	m, err := New(Options{Dir: dir, Image: filepath.Join(dir, "app.bin"), Sequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "3.3.262" || m.Build != 2025 || !strings.HasPrefix(m.Images[0].Signature, "ecdsa:MEY") &&
		!strings.HasPrefix(m.Images[0].Signature, "ecdsa:MEU") && !strings.HasPrefix(m.Images[0].Signature, "ecdsa:MEQ") {
		t.Fatalf("from imgtool's image: version %s build %d signature %q", m.Version, m.Build, m.Images[0].Signature)
	}
}

func TestSignVerifyAlgorithms(t *testing.T) {
	_, o := release(t)
	for alg, k := range genKeys(t) {
		t.Run(alg, func(t *testing.T) {
			b := signed(t, o, k)
			m, err := Verify(b, Policy{Keys: keySet(t, 1, k), Now: verifyTime, LastSequence: 6})
			if err != nil {
				t.Fatal(err)
			}
			if m.Signatures[0].Algorithm != alg {
				t.Fatalf("algorithm %s", m.Signatures[0].Algorithm)
			}
		})
	}
}

func TestSharedKeys(t *testing.T) {
	_, o := release(t)
	dir := filepath.Join(sharedTestdata(t), "imgtool", "keys")
	for _, name := range []string{"ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072"} {
		s, err := keys.OpenSigner(filepath.Join(dir, name+".pem"), nil)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := keys.LoadPublic(filepath.Join(dir, name+".pub.pem"))
		if err != nil {
			t.Fatal(err)
		}
		ks, err := NewKeySet(1, pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(signed(t, o, s), Policy{Keys: ks, Now: verifyTime}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestTamper flips every byte of a signed manifest: each change must be
// refused, as malformed JSON or as a bad signature.
func TestTamper(t *testing.T) {
	_, o := release(t)
	k := genKeys(t)[AlgEd25519]
	b := signed(t, o, k)
	pol := Policy{Keys: keySet(t, 1, k), Now: verifyTime}
	if _, err := Verify(b, pol); err != nil {
		t.Fatal(err)
	}
	sigStart := bytes.Index(b, []byte(`"signatures"`))
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x01
		_, err := Verify(bad, pol)
		if err == nil {
			t.Fatalf("flipping byte %d (%q) went unnoticed", i, b[i])
		}
		if i < sigStart && !errors.Is(err, ErrJSON) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrSchema) {
			t.Fatalf("byte %d: unexpected error %v", i, err)
		}
	}
}

func TestThreshold(t *testing.T) {
	_, o := release(t)
	ks := genKeys(t)
	a, b, c := ks[AlgEd25519], ks[AlgECDSAP256], ks[AlgECDSAP384]
	outsider := genKeys(t)[AlgEd25519]
	trust := keySet(t, 2, a, b, c)
	tests := []struct {
		name    string
		signers []crypto.Signer
		want    error
	}{
		{"2 of 3", []crypto.Signer{a, c}, nil},
		{"3 of 3", []crypto.Signer{a, b, c}, nil},
		{"1 of 3", []crypto.Signer{b}, ErrThreshold},
		{"same key twice", []crypto.Signer{a, a}, ErrThreshold},
		{"1 trusted + outsider", []crypto.Signer{a, outsider}, ErrThreshold},
		{"outsider only", []crypto.Signer{outsider}, ErrSignature},
	}
	for _, tt := range tests {
		_, err := Verify(signed(t, o, tt.signers...), Policy{Keys: trust, Now: verifyTime})
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := NewKeySet(3, a.Public(), a.Public()); !errors.Is(err, ErrThreshold) {
		t.Errorf("threshold above distinct keys: %v", err)
	}
	// A signature moved onto a different key id does not verify.
	m, _ := New(o)
	m.Sign(a)
	m.Signatures[0].KeyID, _ = KeyID(b.Public())
	raw, _ := m.Marshal()
	if _, err := Verify(raw, Policy{Keys: keySet(t, 1, b), Now: verifyTime}); !errors.Is(err, ErrSignature) {
		t.Errorf("relabelled signature: %v", err)
	}
}

func TestFreshness(t *testing.T) {
	_, o := release(t)
	k := genKeys(t)[AlgECDSAP256]
	b := signed(t, o, k)
	trust := keySet(t, 1, k)
	tests := []struct {
		name string
		pol  Policy
		want error
	}{
		{"fresh", Policy{Keys: trust, Now: verifyTime, LastSequence: 6}, nil},
		{"first ever", Policy{Keys: trust, Now: verifyTime}, nil},
		{"replay", Policy{Keys: trust, Now: verifyTime, LastSequence: 7}, ErrReplay},
		{"rollback", Policy{Keys: trust, Now: verifyTime, LastSequence: 9}, ErrRollback},
		{"expired (freeze)", Policy{Keys: trust, Now: o.Now.Add(721 * time.Hour)}, ErrExpired},
		{"expiry instant", Policy{Keys: trust, Now: o.Now.Add(720 * time.Hour)}, ErrExpired},
	}
	for _, tt := range tests {
		_, err := Verify(b, tt.pol)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestCheckDevice(t *testing.T) {
	_, o := release(t)
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dev   Device
		want  error
		delta bool
	}{
		{"delta from 1.1.0", Device{"rev-a", "1.0.0", "1.1.0+12"}, nil, true},
		{"full from 1.1.5", Device{"rev-b", "1.2.0", "1.1.5"}, nil, false},
		{"wrong hardware", Device{"rev-c", "1.0.0", "1.1.0"}, ErrHardware, false},
		{"old bootloader", Device{"rev-a", "0.9.9", "1.1.0"}, ErrBootloader, false},
		{"no bootloader version", Device{"rev-a", "", "1.1.0"}, ErrBootloader, false},
		{"below required base, no delta", Device{"rev-a", "1.0.0", "1.0.3"}, ErrBase, false},
		{"same version", Device{"rev-a", "1.0.0", "1.2.0+456"}, ErrDowngrade, false},
		{"newer device", Device{"rev-a", "1.0.0", "2.0.0"}, ErrDowngrade, false},
	}
	for _, tt := range tests {
		off, err := m.Check(tt.dev)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && off.Delta != tt.delta {
			t.Errorf("%s: offer %+v", tt.name, off)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	dir, o := release(t)
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFiles(dir); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "app-1.2.0.bin")
	good, _ := os.ReadFile(img)
	restore := func() { os.WriteFile(img, good, 0o644) }

	flip := bytes.Clone(good)
	flip[100] ^= 1
	os.WriteFile(img, flip, 0o644)
	if err := m.CheckFiles(dir); !errors.Is(err, ErrFileHash) {
		t.Errorf("flipped byte: %v", err)
	}
	os.WriteFile(img, good[:len(good)-1], 0o644)
	if err := m.CheckFiles(dir); !errors.Is(err, ErrFileSize) {
		t.Errorf("truncated: %v", err)
	}
	os.Remove(img)
	if err := m.CheckFiles(dir); !errors.Is(err, ErrFileMissing) {
		t.Errorf("missing: %v", err)
	}
	restore()

	// Mixed release: an image of another version, listed with its own
	// (correct) hash, is still refused.
	other := fakeImage("1.1.0+400", bytes.Repeat([]byte("old firmware "), 100))
	os.WriteFile(img, other, 0o644)
	mixed := *m
	mixed.Images = []Image{m.Images[0]}
	mixed.Images[0].Size, mixed.Images[0].Hash, _ = FileRef(img)
	if err := mixed.CheckFiles(dir); !errors.Is(err, ErrMixed) {
		t.Errorf("image of another release: %v", err)
	}
	// New refuses to build it: the delta package targets 1.2.0+456.
	if _, err := New(o); !errors.Is(err, ErrMixed) {
		t.Errorf("New over a mixed release: %v", err)
	}
	restore()

	// A delta package listed under the wrong base version.
	m2 := *m
	m2.Delta.Files = map[string]DeltaFile{"1.0.0": m.Delta.Files["1.1.0"]}
	if err := m2.CheckFiles(dir); !errors.Is(err, ErrMixed) {
		t.Errorf("delta under wrong base: %v", err)
	}
	// A delta package for another target version.
	pv := filepath.Join(dir, "other.update")
	update.PackFile(pv, filepath.Join(dir, "patch.bin"), update.Header{Type: update.TypeDelta,
		Version: version.MustParse("1.3.0"), BaseVersion: version.MustParse("1.1.0"), Compression: codec.None}, nil)
	m3 := *m
	df := DeltaFile{File: "other.update"}
	df.Size, df.Hash, _ = FileRef(pv)
	m3.Delta.Files = map[string]DeltaFile{"1.1.0": df}
	if err := m3.CheckFiles(dir); !errors.Is(err, ErrMixed) {
		t.Errorf("delta for another release: %v", err)
	}
}

func TestNewRefusesEscapes(t *testing.T) {
	dir, o := release(t)
	outside := filepath.Join(t.TempDir(), "x.bin")
	os.WriteFile(outside, fakeImage("1.2.0+456", []byte("x")), 0o644)
	o.Image = outside
	if _, err := New(o); !errors.Is(err, ErrSchema) {
		t.Errorf("image outside the release dir: %v", err)
	}
	_ = dir
	raw := `{"version":"1.0.0","build":0,"sequence":1,"expires":"2030-01-01T00:00:00Z","timestamp":"2026-01-01T00:00:00Z",
	  "images":[{"slot":0,"type":"application","file":"../../etc/passwd","size":1,"hash":"sha256:` + strings.Repeat("0", 64) + `"}],
	  "compatibility":{"hardwareRevision":[]},"delta":{"available":false,"baseVersions":[],"files":{}},"releaseNotes":""}`
	if _, err := Parse([]byte(raw)); !errors.Is(err, ErrSchema) {
		t.Errorf("path traversal in file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":"1.2.0","build":456,"timestamp":"2026-11-24T12:00:00Z","sequence":7,"expires":"2026-12-24T12:00:00Z",
"images":[{"slot":0,"type":"application","file":"app.bin","size":10,"hash":"sha256:` + strings.Repeat("ab", 32) + `","signature":"ecdsa:3q2+7w=="}],
"compatibility":{"minBootloaderVersion":"1.0.0","hardwareRevision":["rev-a"],"requiredBaseVersion":"1.1.0"},
"delta":{"available":true,"baseVersions":["1.1.0"],"files":{"1.1.0":{"file":"p.update","size":3,"hash":"sha256:` + strings.Repeat("cd", 32) + `"}}},
"releaseNotes":"x","signatures":[{"keyid":"00","algorithm":"ed25519","value":"AA=="}]}`))
	f.Add([]byte(`{"a":[1,2,{"b":null}],"c":"\ud83d\ude00"}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`1e400`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := Canonicalize(b); err == nil {
			// Canonical form is a fixed point.
			c2, err := Canonicalize(c)
			if err != nil || !bytes.Equal(c, c2) {
				t.Fatalf("canonical form not stable: %q → %q (%v)", c, c2, err)
			}
		}
		Parse(b)
	})
}

// TestStrictMembers: member names are matched exactly and unknown members
// are refused, so nothing is read that differs from what was signed.
func TestStrictMembers(t *testing.T) {
	_, o := release(t)
	k := genKeys(t)[AlgEd25519]
	b := signed(t, o, k)
	pol := Policy{Keys: keySet(t, 1, k), Now: verifyTime}
	for _, tc := range []struct{ from, to string }{
		{`"keyid"`, `"Keyid"`},
		{`"version"`, `"Version"`},
		{`"releaseNotes"`, `"releasenotes"`},
		{`"build": 456,`, `"build": 456, "extra": 1,`},
	} {
		bad := bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1)
		if _, err := Verify(bad, pol); err == nil {
			t.Errorf("%s → %s accepted", tc.from, tc.to)
		}
		if _, err := Parse(bad); !errors.Is(err, ErrSchema) && !errors.Is(err, ErrJSON) {
			if tc.from != `"keyid"` {
				t.Errorf("Parse with %s: %v", tc.to, err)
			}
		}
	}
}

// TestContentHash: a package whose payload differs from the imageHash or
// patchHash in the manifest is refused as mixed, even with a matching
// file hash.
func TestContentHash(t *testing.T) {
	dir, o := release(t)
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	df := m.Delta.Files["1.1.0"]
	if df.PatchHash == "" {
		t.Fatal("patchHash not recorded for a delta package")
	}
	df.PatchHash = "sha256:" + strings.Repeat("00", 32)
	m.Delta.Files["1.1.0"] = df
	if err := m.CheckFiles(dir); !errors.Is(err, ErrMixed) {
		t.Errorf("wrong patchHash: %v", err)
	}
}

// TestRawPatchMixed lists raw native patches: one must produce the
// manifest's image and come from the base it is listed under.
func TestRawPatchMixed(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	old := fakeImage("1.1.0", bytes.Repeat([]byte("old firmware "), 200))
	img := fakeImage("1.2.0+456", bytes.Repeat([]byte("new firmware "), 200))
	other := fakeImage("1.2.0+456", bytes.Repeat([]byte("NEW firmware "), 200))
	os.WriteFile(p("app.bin"), img, 0o644)
	mk := func(name string, target []byte, from string) {
		patch, err := delta.Create(old, target, &delta.Options{SourceVersion: from, TargetVersion: "1.2.0+456"})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p(name), patch, 0o644)
	}
	mk("good.patch", img, "1.1.0")
	mk("other-target.patch", other, "1.1.0")
	mk("other-base.patch", img, "1.0.0")
	o := Options{Dir: dir, Image: p("app.bin"), Sequence: 1}
	o.Patches = map[string]string{"1.1.0": p("good.patch")}
	if _, err := New(o); err != nil {
		t.Fatalf("good patch: %v", err)
	}
	for _, bad := range []string{"other-target.patch", "other-base.patch"} {
		o.Patches = map[string]string{"1.1.0": p(bad)}
		if _, err := New(o); !errors.Is(err, ErrMixed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	o.Patches = nil
	o.Image = p("good.patch")
	if _, err := New(o); err == nil {
		t.Error("a patch accepted as the full image")
	}
}
