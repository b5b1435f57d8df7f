package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
)

type imgtoolVector struct {
	Name       string   `json:"name"`
	Expect     string   `json:"expect"`
	Args       []string `json:"args"`
	Input      string   `json:"input"`
	Output     string   `json:"output"`
	VerifyKey  *string  `json:"verify_key"`
	DecryptKey *string  `json:"decrypt_key"`
}

func loadVectors(t testing.TB) (string, []imgtoolVector) {
	t.Helper()
	dir := filepath.Join(testutil.SharedDir(t), "testdata", "imgtool")
	data, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Vectors []imgtoolVector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Vectors) == 0 {
		t.Fatal("vectors.json lists no vectors")
	}
	return dir, v.Vectors
}

// runOTA runs the CLI and returns exit code, stdout and stderr.
func runOTA(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestImgtoolVectors runs every reference vector through ota with the same
// arguments and applies its expect rule.
func TestImgtoolVectors(t *testing.T) {
	dir, vectors := loadVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			tmp := t.TempDir()
			ourOut := filepath.Join(tmp, filepath.Base(v.Output))
			args := make([]string, len(v.Args))
			for i, a := range v.Args {
				switch {
				case a == v.Output:
					args[i] = ourOut
				case strings.HasPrefix(a, "keys/") || strings.HasPrefix(a, "inputs/"):
					args[i] = filepath.Join(dir, a)
				default:
					args[i] = a
				}
			}
			if code, _, stderr := runOTA(t, args...); code != 0 {
				t.Fatalf("ota %s: exit %d: %s", strings.Join(args, " "), code, stderr)
			}
			ref := filepath.Join(dir, v.Output)
			verifyArgs := func(img string) []string {
				a := []string{"verify"}
				if v.VerifyKey != nil {
					a = append(a, "-k", filepath.Join(dir, *v.VerifyKey))
				}
				if v.DecryptKey != nil {
					a = append(a, "--decrypt-key", filepath.Join(dir, *v.DecryptKey))
				}
				return append(a, img)
			}
			switch v.Expect {
			case "identical":
				want, err := os.ReadFile(ref)
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(ourOut)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("output differs from imgtool's: %d bytes vs %d, first difference at %d", len(got), len(want), firstDiff(got, want))
				}
			case "verify", "decrypt":
			default:
				t.Fatalf("unknown expect rule %q", v.Expect)
			}
			// imgtool's image and ours both verify.
			for _, img := range []string{ref, ourOut} {
				if code, stdout, stderr := runOTA(t, verifyArgs(img)...); code != 0 {
					t.Fatalf("verify %s: exit %d: %s%s", img, code, stdout, stderr)
				}
			}
			if v.Expect == "decrypt" {
				for _, img := range []string{ref, ourOut} {
					checkDecrypt(t, dir, v, img)
				}
			}
		})
	}
}

// checkDecrypt decrypts img, compares its payload with the vector input and
// verifies the decrypted image without a decryption key.
func checkDecrypt(t *testing.T, dir string, v imgtoolVector, img string) {
	t.Helper()
	plain := filepath.Join(t.TempDir(), "plain.bin")
	if code, _, stderr := runOTA(t, "decrypt", "-k", filepath.Join(dir, *v.DecryptKey), img, plain); code != 0 {
		t.Fatalf("decrypt %s: exit %d: %s", img, code, stderr)
	}
	got, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	input, err := os.ReadFile(filepath.Join(dir, v.Input))
	if err != nil {
		t.Fatal(err)
	}
	const hs = 0x200 // every vector uses --header-size 0x200 --pad-header
	if len(got) < hs+len(input) || !bytes.Equal(got[hs:hs+len(input)], input) {
		t.Fatalf("decrypted payload of %s differs from %s", img, v.Input)
	}
	if code, stdout, stderr := runOTA(t, "verify", "-k", filepath.Join(dir, *v.VerifyKey), plain); code != 0 {
		t.Fatalf("verify decrypted %s: exit %d: %s%s", img, code, stdout, stderr)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestImageExitCodes checks 0/1/2 and that failure messages name the cause.
func TestImageExitCodes(t *testing.T) {
	dir, _ := loadVectors(t)
	key := func(n string) string { return filepath.Join(dir, "keys", n) }
	tmp := t.TempDir()
	img := filepath.Join(tmp, "img.bin")
	if code, _, stderr := runOTA(t, "sign", "-k", key("ed25519.pem"), "-v", "1.2.3", "-H", "0x200", "--pad-header",
		"-S", "0x60000", filepath.Join(dir, "inputs", "app-small.bin"), img); code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(tmp, "flipped.bin")
	bad := bytes.Clone(data)
	bad[0x300] ^= 0x10
	os.WriteFile(flipped, bad, 0o644)
	truncated := filepath.Join(tmp, "truncated.bin")
	os.WriteFile(truncated, data[:0x100], 0o644)

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"good", []string{"verify", "-k", key("ed25519.pub.pem"), img}, 0, ""},
		{"payload flipped", []string{"verify", "-k", key("ed25519.pub.pem"), flipped}, 1, "hash mismatch"},
		{"wrong key", []string{"verify", "-k", key("ecdsa-p256.pub.pem"), img}, 1, "different key"},
		{"truncated", []string{"verify", truncated}, 1, "truncated"},
		{"missing image", []string{"verify", filepath.Join(tmp, "nope.bin")}, 2, "no such file"},
		{"missing key file", []string{"verify", "-k", filepath.Join(tmp, "nokey.pem"), img}, 2, "no such file"},
		{"sign without version", []string{"sign", "-H", "0x200", "-S", "0x1000", img, filepath.Join(tmp, "x.bin")}, 2, "required"},
		{"sign bad version", []string{"sign", "-v", "1.x", "-H", "0x200", "-S", "0x1000", img, filepath.Join(tmp, "x.bin")}, 2, "invalid version"},
		{"sign slot overflow", []string{"sign", "-v", "1", "-H", "0x200", "--pad-header", "-S", "0x400", img, filepath.Join(tmp, "x.bin")}, 2, "exceed"},
		{"decrypt plain image", []string{"decrypt", "-k", key("ecdsa-p256.pem"), img, filepath.Join(tmp, "y.bin")}, 2, "not encrypted"},
		{"dumpinfo garbage", []string{"dumpinfo", key("ed25519.pem")}, 2, "magic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runOTA(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d: %s%s", code, c.code, stdout, stderr)
			}
			if !strings.Contains(strings.ToLower(stderr), c.msg) {
				t.Fatalf("stderr %q does not mention %q", stderr, c.msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "x.bin")); err == nil {
		t.Fatal("a failed sign left its output behind")
	}
}

func TestDecryptKeyErrors(t *testing.T) {
	dir, _ := loadVectors(t)
	enc := filepath.Join(dir, "outputs", "enc-ec256.bin")
	out := filepath.Join(t.TempDir(), "plain.bin")
	code, _, stderr := runOTA(t, "decrypt", "-k", filepath.Join(dir, "keys", "x25519.pem"), enc, out)
	if code != 2 || !strings.Contains(stderr, "ENC_EC256") {
		t.Fatalf("x25519 key on ENC_EC256: exit %d %s", code, stderr)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	other := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	code, _, stderr = runOTA(t, "decrypt", "-k", other, enc, out)
	if code != 1 || !strings.Contains(stderr, "HMAC") {
		t.Fatalf("wrong P-256 key: exit %d %s", code, stderr)
	}
	code, _, stderr = runOTA(t, "verify", "-k", filepath.Join(dir, "keys", "ecdsa-p256.pub.pem"), "--decrypt-key", other, enc)
	if code != 1 || !strings.Contains(stderr, "decrypt") {
		t.Fatalf("verify with wrong decryption key: exit %d %s", code, stderr)
	}
	code, _, stderr = runOTA(t, "verify", "-k", filepath.Join(dir, "keys", "ecdsa-p256.pub.pem"), enc)
	if code != 1 || !strings.Contains(stderr, "encrypted") {
		t.Fatalf("verify encrypted without decryption key: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("failed decrypt left its output behind")
	}
}

// TestExternalSigningCLI: --vector-to-sign digest, sign it outside,
// --fix-sig gives the same image as signing directly; --sig-out writes the
// signature.
func TestExternalSigningCLI(t *testing.T) {
	dir, _ := loadVectors(t)
	tmp := t.TempDir()
	in := filepath.Join(dir, "inputs", "app.bin")
	base := []string{"sign", "-v", "3.3.262+2025", "-H", "0x200", "-S", "0x60000", "--pad-header"}
	direct, digest, sigFile, fixed := filepath.Join(tmp, "direct.bin"), filepath.Join(tmp, "digest.bin"), filepath.Join(tmp, "sig.b64"), filepath.Join(tmp, "fixed.bin")
	steps := [][]string{
		append(append([]string{}, base...), "-k", filepath.Join(dir, "keys", "ed25519.pem"), "--sig-out", sigFile, in, direct),
		append(append([]string{}, base...), "--fix-sig-pubkey", filepath.Join(dir, "keys", "ed25519.pub.pem"), "--vector-to-sign", "digest", in, digest),
		append(append([]string{}, base...), "--fix-sig", sigFile, "--fix-sig-pubkey", filepath.Join(dir, "keys", "ed25519.pub.pem"), in, fixed),
	}
	for _, s := range steps {
		if code, _, stderr := runOTA(t, s...); code != 0 {
			t.Fatalf("ota %v: %d %s", s, code, stderr)
		}
	}
	a, _ := os.ReadFile(direct)
	b, _ := os.ReadFile(fixed)
	if !bytes.Equal(a, b) {
		t.Fatal("--fix-sig image differs from the directly signed one")
	}
	d, _ := os.ReadFile(digest)
	if len(d) != 32 {
		t.Fatalf("digest vector is %d bytes", len(d))
	}
}

func TestDumpinfoJSON(t *testing.T) {
	dir, _ := loadVectors(t)
	code, stdout, stderr := runOTA(t, "dumpinfo", "--json", filepath.Join(dir, "outputs", "ed25519-seccnt-deps-confirm.bin"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var info struct {
		Header struct {
			Version string `json:"version"`
		} `json:"header"`
		Protected []struct {
			Type    string `json:"type"`
			Decoded any    `json:"decoded"`
		} `json:"protected_tlvs"`
		TLVs []struct {
			Type string `json:"type"`
		} `json:"tlvs"`
		Trailer *struct {
			Magic   string `json:"magic"`
			ImageOK int    `json:"image_ok"`
		} `json:"trailer"`
	}
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if info.Header.Version != "3.3.262+2025" || len(info.Protected) != 2 || info.Protected[0].Type != "SEC_CNT" ||
		info.Protected[0].Decoded != float64(0x03030106) || info.Protected[1].Type != "DEPENDENCY" ||
		len(info.TLVs) != 3 || info.TLVs[2].Type != "ED25519" || info.Trailer == nil || info.Trailer.ImageOK != 1 || info.Trailer.Magic != "good" {
		t.Fatalf("unexpected dumpinfo: %s", stdout)
	}
	code, stdout, _ = runOTA(t, "dumpinfo", filepath.Join(dir, "outputs", "ecdsa-p256-hex.hex"))
	if code != 0 || !strings.Contains(stdout, "ECDSA_SIG") {
		t.Fatalf("dumpinfo of a .hex image: %d %s", code, stdout)
	}
}

// TestHexOutputFromBinary writes a .hex from a binary with -x and reads it
// back through verify.
func TestHexOutputFromBinary(t *testing.T) {
	dir, _ := loadVectors(t)
	out := filepath.Join(t.TempDir(), "img.hex")
	args := []string{"sign", "-v", "1", "-H", "0x200", "-S", "0x60000", "--pad-header", "--confirm", "-k", filepath.Join(dir, "keys", "ed25519.pem"),
		filepath.Join(dir, "inputs", "app-small.bin"), out}
	if code, _, stderr := runOTA(t, args...); code != 2 || !strings.Contains(stderr, "hex-addr") {
		t.Fatalf("hex output without address: %d %s", code, stderr)
	}
	args = append(args[:len(args)-2], "-x", "0x08020000", args[len(args)-2], args[len(args)-1])
	if code, _, stderr := runOTA(t, args...); code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	if code, stdout, stderr := runOTA(t, "verify", "-k", filepath.Join(dir, "keys", "ed25519.pub.pem"), out); code != 0 {
		t.Fatalf("verify: %d %s %s", code, stdout, stderr)
	}
	code, stdout, _ := runOTA(t, "dumpinfo", out)
	if code != 0 || !strings.Contains(stdout, "image_ok:  0x01") {
		t.Fatalf("dumpinfo: %s", stdout)
	}
}

// TestHexLayoutMatchesImgtool: the ECDSA hex vector cannot be byte-identical
// (the signature is random), but every record except those holding the
// signature TLV must be.
func TestHexLayoutMatchesImgtool(t *testing.T) {
	dir, _ := loadVectors(t)
	out := filepath.Join(t.TempDir(), "img.hex")
	code, _, stderr := runOTA(t, "sign", "--key", filepath.Join(dir, "keys", "ecdsa-p256.pem"), "--version", "3.3.262+2025",
		"--header-size", "0x200", "--slot-size", "0x60000", "--pad-header", filepath.Join(dir, "inputs", "app-at-0x8020000.hex"), out)
	if code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(dir, "outputs", "ecdsa-p256-hex.hex"))
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	// The TLV area (at most 152 bytes, its length depending on the DER
	// signature's) fills at most 11 records before the end-of-file record
	// and the final empty line.
	const tail = 14
	// A DER signature shorter by a few bytes may save the last record.
	if d := len(gl) - len(wl); d < -1 || d > 1 || len(wl) < tail {
		t.Fatalf("%d lines, imgtool wrote %d", len(gl), len(wl))
	}
	if strings.Join(gl[:len(wl)-tail], "\n") != strings.Join(wl[:len(wl)-tail], "\n") {
		t.Fatalf("hex records before the signature differ from imgtool's (line %d)", firstDiff([]byte(string(got)), want))
	}
	if gl[len(gl)-2] != ":00000001FF" {
		t.Fatalf("no end-of-file record: %q", gl[len(gl)-2])
	}
}

// TestCreateAlias: "create" is imgtool's alias of "sign".
func TestCreateAlias(t *testing.T) {
	dir, _ := loadVectors(t)
	out := filepath.Join(t.TempDir(), "hash-only.bin")
	if code, _, stderr := runOTA(t, "create", "--version", "3.3.262+2025", "--header-size", "0x200", "--slot-size", "0x60000",
		"--pad-header", filepath.Join(dir, "inputs", "app.bin"), out); code != 0 {
		t.Fatalf("create: %d %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(dir, "outputs", "hash-only.bin"))
	if !bytes.Equal(got, want) {
		t.Fatal("ota create differs from imgtool's hash-only vector")
	}
}
