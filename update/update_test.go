package update

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/version"
)

// firmwareLike returns compressible but non-trivial test data.
func firmwareLike(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	for i := range b {
		if i%64 < 40 {
			b[i] = byte(i / 64)
		} else {
			b[i] = byte(rng.Intn(256))
		}
	}
	return b
}

// memFile is an in-memory io.WriteSeeker.
type memFile struct {
	buf []byte
	off int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.off + int64(len(p)); end > int64(len(m.buf)) {
		m.buf = append(m.buf, make([]byte, end-int64(len(m.buf)))...)
	}
	copy(m.buf[m.off:], p)
	m.off += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		m.off = off
	case io.SeekCurrent:
		m.off += off
	case io.SeekEnd:
		m.off = int64(len(m.buf)) + off
	}
	return m.off, nil
}

func pack(t testing.TB, data []byte, hdr Header, key []byte) []byte {
	t.Helper()
	var m memFile
	w, err := NewWriter(&m, hdr, key)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes exercise the streaming path.
	for i := 0; i < len(data); i += 1000 {
		if _, err := w.Write(data[i:min(i+1000, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return m.buf
}

func unpack(pkg, key []byte) ([]byte, *Header, error) {
	r, err := NewReader(bytes.NewReader(pkg), key)
	if err != nil {
		return nil, nil, err
	}
	out, err := io.ReadAll(r)
	return out, r.Header(), err
}

var (
	key128 = bytes.Repeat([]byte{0x11}, 16)
	key256 = bytes.Repeat([]byte{0x22}, 32)
)

func TestRoundTrip(t *testing.T) {
	data := firmwareLike(100_000, 1)
	for _, name := range []string{"none", "lz4", "zlib", "lzma", "zstd"} {
		c, err := codec.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []struct {
			alg Encryption
			key []byte
		}{{EncryptNone, nil}, {EncryptAES128CTR, key128}, {EncryptAES256CTR, key256}} {
			t.Run(name+"/"+enc.alg.String(), func(t *testing.T) {
				hdr := Header{Type: TypeDelta, Version: version.MustParse("1.2.0+456"),
					BaseVersion: version.MustParse("1.1.0"), Compression: c.ID(), Encryption: enc.alg}
				pkg := pack(t, data, hdr, enc.key)
				got, h, err := unpack(pkg, enc.key)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("payload differs after round trip")
				}
				if h.Size != int64(len(data)) || h.SHA256 != sha256.Sum256(data) ||
					h.StoredSize != int64(len(pkg)-HeaderSize) || h.StoredSHA256 != sha256.Sum256(pkg[HeaderSize:]) {
					t.Fatalf("header sizes/digests wrong: %+v", h)
				}
				if h.Version != hdr.Version || h.BaseVersion != hdr.BaseVersion || h.Type != TypeDelta {
					t.Fatalf("header versions wrong: %+v", h)
				}
				if (enc.alg == EncryptNone) != (h.Nonce == [16]byte{}) {
					t.Fatalf("nonce %x for %s", h.Nonce, enc.alg)
				}
			})
		}
	}
}

func TestEmptyPayload(t *testing.T) {
	for _, name := range []string{"none", "zstd"} {
		c, _ := codec.Lookup(name)
		pkg := pack(t, nil, Header{Type: TypeFull, Compression: c.ID()}, nil)
		got, _, err := unpack(pkg, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("%s: %v, %d bytes", name, err, len(got))
		}
	}
}

func TestFreshNonce(t *testing.T) {
	data := firmwareLike(4096, 2)
	hdr := Header{Type: TypeFull, Version: version.MustParse("1.0.0"), Compression: codec.None, Encryption: EncryptAES128CTR}
	a, b := pack(t, data, hdr, key128), pack(t, data, hdr, key128)
	if bytes.Equal(a[offNonce:offNonce+16], b[offNonce:offNonce+16]) {
		t.Fatal("two packages share a nonce")
	}
	if bytes.Equal(a[HeaderSize:], b[HeaderSize:]) {
		t.Fatal("two packages share a keystream")
	}
}

// TestPeerTools decrypts the stored payload with openssl and decompresses it
// with the zstd and xz command-line tools: the payload is standard
// AES-CTR over standard codec streams.
func TestPeerTools(t *testing.T) {
	for _, tool := range []string{"openssl", "zstd", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make deps installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	// The spec's key recipe, newline included.
	keyFile := filepath.Join(dir, "key.bin")
	out, err := exec.Command("sh", "-c", "openssl rand -hex 16 > "+keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl rand: %v %s", err, out)
	}
	key, err := LoadKey(keyFile)
	if err != nil || len(key) != 16 {
		t.Fatalf("LoadKey: %v (%d bytes)", err, len(key))
	}
	data := firmwareLike(50_000, 3)
	for _, tc := range []struct{ codec, cmd string }{{"zstd", "zstd -d -c"}, {"lzma", "xz --format=lzma -d -c"}} {
		c, _ := codec.Lookup(tc.codec)
		pkg := pack(t, data, Header{Type: TypeFull, Compression: c.ID(), Encryption: EncryptAES128CTR}, key)
		var h Header
		if err := h.UnmarshalBinary(pkg); err != nil {
			t.Fatal(err)
		}
		payload := filepath.Join(dir, tc.codec+".payload")
		os.WriteFile(payload, pkg[HeaderSize:], 0o644)
		cmd := exec.Command("sh", "-c", "openssl enc -d -aes-128-ctr -K "+hex.EncodeToString(key)+
			" -iv "+hex.EncodeToString(h.Nonce[:])+" -in "+payload+" | "+tc.cmd)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.codec, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: peer tools decoded %d bytes that differ from the input", tc.codec, len(got))
		}
	}
}

// TestTamper flips every byte of a small package in turn: each flip must be
// refused by the header checks or the digests, never accepted or panic.
func TestTamper(t *testing.T) {
	data := firmwareLike(800, 4)
	for _, tc := range []struct {
		name string
		alg  Encryption
		key  []byte
		id   codec.ID
	}{{"zstd-aes", EncryptAES256CTR, key256, codec.Zstd}, {"none-plain", EncryptNone, nil, codec.None}, {"lz4-aes", EncryptAES128CTR, key128, codec.LZ4}} {
		pkg := pack(t, data, Header{Type: TypeFull, Version: version.MustParse("2.0.0"), Compression: tc.id, Encryption: tc.alg}, tc.key)
		for i := range pkg {
			bad := bytes.Clone(pkg)
			bad[i] ^= 0x01
			if _, _, err := unpack(bad, tc.key); err == nil {
				t.Fatalf("%s: flipping byte %d went unnoticed", tc.name, i)
			}
		}
		for _, n := range []int{0, 10, HeaderSize, HeaderSize + 1, len(pkg) - 1} {
			if _, _, err := unpack(pkg[:n], tc.key); err == nil {
				t.Fatalf("%s: truncation to %d bytes went unnoticed", tc.name, n)
			}
		}
		if _, _, err := unpack(append(bytes.Clone(pkg), 0), tc.key); !errors.Is(err, ErrTrailingData) {
			t.Fatalf("%s: trailing byte: %v", tc.name, err)
		}
		if _, err := CheckStored(bytes.NewReader(pkg)); err != nil {
			t.Fatalf("%s: CheckStored on a good package: %v", tc.name, err)
		}
		bad := bytes.Clone(pkg)
		bad[len(bad)-1] ^= 0x80
		if _, err := CheckStored(bytes.NewReader(bad)); !errors.Is(err, ErrStoredDigest) {
			t.Fatalf("%s: CheckStored on a bad payload: %v", tc.name, err)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	data := firmwareLike(2000, 5)
	pkg := pack(t, data, Header{Type: TypeFull, Compression: codec.Zlib, Encryption: EncryptAES128CTR}, key128)
	if _, _, err := unpack(pkg, nil); !errors.Is(err, ErrKey) {
		t.Errorf("no key: %v", err)
	}
	if _, _, err := unpack(pkg, key256); !errors.Is(err, ErrKey) {
		t.Errorf("wrong key size: %v", err)
	}
	wrong := bytes.Repeat([]byte{0x33}, 16)
	if _, _, err := unpack(pkg, wrong); err == nil {
		t.Errorf("wrong key accepted")
	}
	if _, err := ReadHeader(bytes.NewReader([]byte("not a package at all, not at all, no"))); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: %v", err)
	}
	junk := bytes.Repeat([]byte{'x'}, HeaderSize)
	if _, err := ReadHeader(bytes.NewReader(junk)); !errors.Is(err, ErrHeader) {
		t.Errorf("junk: %v", err)
	}
	future := bytes.Clone(pkg)
	future[offFormat] = 9
	if _, err := ReadHeader(bytes.NewReader(future)); !errors.Is(err, ErrFormatVersion) {
		t.Errorf("format version: %v", err)
	}
	if _, err := NewWriter(&memFile{}, Header{Type: TypeFull, Encryption: EncryptAES128CTR}, key256); !errors.Is(err, ErrKey) {
		t.Errorf("writer key size: %v", err)
	}
	if _, err := NewWriter(&memFile{}, Header{Type: 7}, nil); !errors.Is(err, ErrHeader) {
		t.Errorf("writer type: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	raw16 := []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff")
	tests := []struct {
		name string
		in   []byte
		want []byte
		ok   bool
	}{
		{"raw16", raw16, raw16, true},
		{"raw32", bytes.Repeat([]byte{0xfe}, 32), bytes.Repeat([]byte{0xfe}, 32), true},
		{"hex16 newline", []byte("000102030405060708090a0b0c0d0eff\n"), raw16, true},
		{"hex16 crlf upper", []byte("  000102030405060708090A0B0C0D0EFF\r\n"), raw16, true},
		{"hex32", []byte(hex.EncodeToString(bytes.Repeat([]byte{0xab}, 32)) + "\n"), bytes.Repeat([]byte{0xab}, 32), true},
		{"hex odd", []byte("000102030405060708090a0b0c0d0e\n"), nil, false},
		{"empty", nil, nil, false},
		{"24 raw", make([]byte, 24), nil, false},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.in)
		if (err == nil) != tt.ok || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: ParseKey = %x, %v", tt.name, got, err)
		}
		if err != nil && !errors.Is(err, ErrKey) {
			t.Errorf("%s: error %v is not ErrKey", tt.name, err)
		}
	}
}

func TestPackUnpackFile(t *testing.T) {
	dir := t.TempDir()
	in, pkgPath, out := filepath.Join(dir, "in.bin"), filepath.Join(dir, "app.update"), filepath.Join(dir, "out.bin")
	data := firmwareLike(70_000, 6)
	os.WriteFile(in, data, 0o644)
	if _, err := PackFile(pkgPath, in, Header{Type: TypeFull, Compression: codec.LZMA, Encryption: EncryptAES256CTR}, key256); err != nil {
		t.Fatal(err)
	}
	if _, err := UnpackFile(out, pkgPath, key256); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("unpacked file differs")
	}
	// A corrupt package leaves neither output nor temporary files.
	pkg, _ := os.ReadFile(pkgPath)
	pkg[len(pkg)/2] ^= 4
	os.WriteFile(pkgPath, pkg, 0o644)
	out2 := filepath.Join(dir, "out2.bin")
	if _, err := UnpackFile(out2, pkgPath, key256); err == nil {
		t.Fatal("corrupt package unpacked")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "in.bin" && e.Name() != "app.update" && e.Name() != "out.bin" {
			t.Fatalf("left behind %s", e.Name())
		}
	}
}

// TestHeaderLayout pins the byte layout documented in docs/package-format.md.
func TestHeaderLayout(t *testing.T) {
	h := Header{Type: TypeDelta, Version: version.MustParse("1.2.3+4"), BaseVersion: version.MustParse("1.1.0"),
		Compression: codec.Zstd, Encryption: EncryptAES128CTR, Nonce: [16]byte{0: 0xaa, 15: 0xbb},
		Size: 0x0102, StoredSize: 0x0304}
	h.SHA256[0], h.StoredSHA256[31] = 0xcc, 0xdd
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := "4f544155010204018000000001020300040000000101000000000000" +
		"aa0000000000000000000000000000bb" +
		"0201000000000000" + "cc" + "00000000000000000000000000000000000000000000000000000000000000" +
		"0403000000000000" + "00000000000000000000000000000000000000000000000000000000000000" + "dd"
	if got := hex.EncodeToString(b[:offCRC]); got != want {
		t.Fatalf("header layout\n got %s\nwant %s", got, want)
	}
	var back Header
	if err := back.UnmarshalBinary(b); err != nil || back != h {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func FuzzReadHeader(f *testing.F) {
	data := firmwareLike(500, 7)
	f.Add(pack(f, data, Header{Type: TypeFull, Compression: codec.None}, nil))
	f.Add(pack(f, data, Header{Type: TypeDelta, BaseVersion: version.MustParse("1.0.0"), Compression: codec.Zstd, Encryption: EncryptAES128CTR}, key128))
	f.Add(pack(f, data, Header{Type: TypeFull, Compression: codec.LZ4, Encryption: EncryptAES256CTR}, key256))
	f.Add([]byte("OTAU"))
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		// A header that parses must re-encode to the same bytes.
		enc, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(enc, b[:HeaderSize]) {
			t.Fatalf("re-encode differs: %v", err)
		}
		// And reading the payload must fail cleanly or succeed, never panic.
		key := map[Encryption][]byte{EncryptAES128CTR: key128, EncryptAES256CTR: key256}[h.Encryption]
		r, err := NewReader(bytes.NewReader(b), key)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		}
	})
}

// A wrong key is an integrity failure (ErrWrongKey, or ErrDigest when the
// garbage happens to decompress), whatever the codec.
func TestWrongKeyIsIntegrityError(t *testing.T) {
	data := firmwareLike(2000, 5)
	wrong := bytes.Repeat([]byte{0x33}, 16)
	for _, id := range []codec.ID{codec.None, codec.LZ4, codec.Zlib, codec.Zstd, codec.LZMA, codec.Heatshrink} {
		pkg := pack(t, data, Header{Type: TypeFull, Compression: id, Encryption: EncryptAES128CTR}, key128)
		if _, _, err := unpack(pkg, wrong); !errors.Is(err, ErrWrongKey) && !errors.Is(err, ErrDigest) {
			t.Errorf("codec %v: wrong key gave %v, want ErrWrongKey or ErrDigest", id, err)
		}
	}
}
