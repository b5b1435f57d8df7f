package main

import (
	"bytes"
	"encoding/json"
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

func loadVectors(t *testing.T) (string, []imgtoolVector) {
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
