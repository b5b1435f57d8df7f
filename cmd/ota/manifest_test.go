package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/version"
)

// writeTestKey writes a private key of type typ and its public PEM; it
// returns both paths.
func writeTestKey(t *testing.T, dir, name string, typ keys.Type) (string, string) {
	t.Helper()
	priv, err := keys.Generate(typ)
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")
	if err := keys.SavePrivate(privPath, priv, nil); err != nil {
		t.Fatal(err)
	}
	pub, _ := keys.PublicOf(priv)
	pem, err := keys.PublicPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pubPath, pem, 0o644)
	return privPath, pubPath
}

// testMCUbootImage returns a minimal image in MCUboot's format (header,
// payload, TLV area) with version v.
func testMCUbootImage(v string, payload []byte) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h[0:], 0x96f3b83d)
	binary.LittleEndian.PutUint16(h[8:], 32)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	version.MustParse(v).Put(h[20:])
	tlv := []byte{0x07, 0x69, 8, 0, 0x24, 0, 0, 0}
	return append(append(h, payload...), tlv...)
}

func TestManifestCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	key, pub := writeTestKey(t, dir, "k1", keys.ECDSAP256)
	key2, pub2 := writeTestKey(t, dir, "k2", keys.Ed25519)
	os.WriteFile(p("app.bin"), testMCUbootImage("1.2.0+456", bytes.Repeat([]byte("v1.2 "), 300)), 0o644)
	os.WriteFile(p("patch.bin"), []byte("patch bytes"), 0o644)
	runOTAExpect(t, 0, "package", "--type", "delta", "--input", p("patch.bin"), "--output", p("from-1.1.0.update"),
		"--version", "1.2.0+456", "--base-version", "1.1.0")

	runOTAExpect(t, 0, "manifest", "generate", "--image", p("app.bin"), "--patch", "1.1.0="+p("from-1.1.0.update"),
		"--hardware", "rev-a,rev-b", "--min-bootloader", "1.0.0", "--required-base", "1.1.0", "--notes", "first",
		"--sequence-file", p("seq"), "--expires", "720h", "--key", key, "--key", key2, "--output", p("manifest.json"))
	if s, _ := os.ReadFile(p("seq")); strings.TrimSpace(string(s)) != "1" {
		t.Fatalf("sequence file holds %q", s)
	}
	os.WriteFile(p("device.json"), []byte(`{"hardwareRevision":"rev-a","bootloaderVersion":"1.1.0","currentVersion":"1.1.0"}`), 0o644)
	out := runOTAExpect(t, 0, "manifest", "verify", "--key", pub, "--key", pub2, "--threshold", "2", p("manifest.json"), "--device", p("device.json"))
	for _, want := range []string{"signature ok (2 of 2 key(s), threshold 2)", "version 1.2.0+456", "files ok", "delta from 1.1.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// Refusals: each exits 1 and names its reason.
	_, other := writeTestKey(t, dir, "k3", keys.Ed25519)
	os.WriteFile(p("olddev.json"), []byte(`{"hardwareRevision":"rev-a","bootloaderVersion":"0.9.0","currentVersion":"1.1.0"}`), 0o644)
	os.WriteFile(p("hwdev.json"), []byte(`{"hardwareRevision":"rev-z","bootloaderVersion":"1.1.0","currentVersion":"1.1.0"}`), 0o644)
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"--key", pub, p("manifest.json"), "--last-sequence", "1"}, "replayed"},
		{[]string{"--key", pub, p("manifest.json"), "--last-sequence", "5"}, "rollback"},
		{[]string{"--key", pub, p("manifest.json"), "--at", "2099-01-01T00:00:00Z"}, "expired"},
		{[]string{"--key", pub, "--key", other, "--threshold", "2", p("manifest.json")}, "too few valid signatures"},
		{[]string{"--key", pub, p("manifest.json"), "--device", p("olddev.json")}, "bootloader too old"},
		{[]string{"--key", pub, p("manifest.json"), "--device", p("hwdev.json")}, "hardware revision"},
	}
	for _, r := range refusals {
		if out := runOTAExpect(t, 1, append([]string{"manifest", "verify"}, r.args...)...); !strings.Contains(out, r.want) {
			t.Errorf("%v: output lacks %q: %s", r.args, r.want, out)
		}
	}
	// A key that did not sign.
	if out := runOTAExpect(t, 1, "manifest", "verify", "--key", other, p("manifest.json")); !strings.Contains(out, "no valid signature") {
		t.Errorf("untrusted key: %s", out)
	}
	// Tampering with a listed file.
	img, _ := os.ReadFile(p("app.bin"))
	img[50] ^= 1
	os.WriteFile(p("app.bin"), img, 0o644)
	if out := runOTAExpect(t, 1, "manifest", "verify", "--key", pub, p("manifest.json")); !strings.Contains(out, "hash mismatch") {
		t.Errorf("tampered image: %s", out)
	}
	// Tampering with the manifest.
	m, _ := os.ReadFile(p("manifest.json"))
	tampered := bytes.Replace(m, []byte(`"first"`), []byte(`"firsT"`), 1)
	os.WriteFile(p("tampered.json"), tampered, 0o644)
	runOTAExpect(t, 1, "manifest", "verify", "--skip-files", "--key", pub, p("tampered.json"))

	runOTAExpect(t, 2, "manifest", "generate", "--image", p("app.bin"), "--key", key, "--output", p("m2.json"))
	runOTAExpect(t, 2, "manifest", "verify", p("manifest.json"))
}

func TestKeysRotateCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	a, _ := writeTestKey(t, dir, "a", keys.Ed25519)
	b, _ := writeTestKey(t, dir, "b", keys.ECDSAP256)
	c, _ := writeTestKey(t, dir, "c", keys.ECDSAP384)
	runOTAExpect(t, 0, "keys", "rotate", "--new-key", a, "--output", p("root-v1.json"))
	runOTAExpect(t, 0, "keys", "rotate", "--root", p("root-v1.json"), "--old-key", a, "--new-key", b, "--output", p("root-v2.json"))
	runOTAExpect(t, 0, "keys", "rotate", "--root", p("root-v2.json"), "--old-key", b, "--new-key", c, "--output", p("root-v3.json"))
	// Rotating with a key the current root does not hold fails.
	runOTAExpect(t, 1, "keys", "rotate", "--root", p("root-v2.json"), "--old-key", a, "--new-key", c, "--output", p("bad.json"))

	os.WriteFile(p("app.bin"), testMCUbootImage("2.0.0", []byte("image")), 0o644)
	runOTAExpect(t, 0, "manifest", "generate", "--image", p("app.bin"), "--sequence", "3", "--key", c, "--output", p("manifest.json"))
	out := runOTAExpect(t, 0, "manifest", "verify", "--root", p("root-v1.json"), "--chain", p("root-v2.json"), "--chain", p("root-v3.json"), p("manifest.json"))
	if !strings.Contains(out, "of root v3") {
		t.Errorf("verify via chain: %s", out)
	}
	// Without the chain, or with a gap in it, the new key is not trusted.
	runOTAExpect(t, 1, "manifest", "verify", "--root", p("root-v1.json"), p("manifest.json"))
	runOTAExpect(t, 1, "manifest", "verify", "--root", p("root-v1.json"), "--chain", p("root-v3.json"), p("manifest.json"))
	// A manifest by the retired key fails against the rotated root.
	runOTAExpect(t, 0, "manifest", "generate", "--image", p("app.bin"), "--sequence", "4", "--key", a, "--output", p("old.json"))
	runOTAExpect(t, 1, "manifest", "verify", "--root", p("root-v1.json"), "--chain", p("root-v2.json"), "--chain", p("root-v3.json"), p("old.json"))
}
