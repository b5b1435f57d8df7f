package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runOTAExpect runs ota and fails the test unless it exits with want.
func runOTAExpect(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != want {
		t.Fatalf("ota %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func TestPackageCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	data := bytes.Repeat([]byte("firmware image bytes "), 5000)
	os.WriteFile(p("app.bin"), data, 0o644)
	os.WriteFile(p("key.bin"), []byte("00112233445566778899aabbccddeeff\n"), 0o600)

	runOTAExpect(t, 0, "package", "--type", "full", "--input", p("app.bin"), "--output", p("app.update"),
		"--version", "1.2.0+456", "--compression", "zstd", "--encrypt", "aes-128-ctr", "--key-file", p("key.bin"))
	info := runOTAExpect(t, 0, "package", "info", p("app.update"))
	for _, want := range []string{"version:       1.2.0+456", "encryption:    aes-128-ctr", "compression:   zstd", "stored check:  ok"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	runOTAExpect(t, 0, "package", "unpack", p("app.update"), p("out.bin"), "--key-file", p("key.bin"))
	if got, _ := os.ReadFile(p("out.bin")); !bytes.Equal(got, data) {
		t.Fatal("unpacked image differs")
	}
	runOTAExpect(t, 2, "package", "unpack", p("app.update"), p("nokey.bin"))

	// Tampering: exit 1 and no output file.
	pkg, _ := os.ReadFile(p("app.update"))
	pkg[len(pkg)-3] ^= 1
	os.WriteFile(p("bad.update"), pkg, 0o644)
	runOTAExpect(t, 1, "package", "info", p("bad.update"))
	runOTAExpect(t, 1, "package", "unpack", p("bad.update"), p("bad.bin"), "--key-file", p("key.bin"))
	if _, err := os.Stat(p("bad.bin")); !os.IsNotExist(err) {
		t.Fatal("unpack of a tampered package left an output file")
	}

	// The spec's imageConfig shape.
	// Relative paths resolve against the config file's directory.
	cfg := `{"type":"delta","input":"app.bin","output":"cfg.update",
	  "version":{"major":1,"minor":2,"patch":0,"build":456},"compression":"lzma",
	  "encryption":{"algorithm":"aes-128-ctr","keyFile":"key.bin"}}`
	os.WriteFile(p("image.json"), []byte(cfg), 0o644)
	runOTAExpect(t, 0, "package", "--config", p("image.json"), "--base-version", "1.1.0")
	info = runOTAExpect(t, 0, "package", "info", "--json", p("cfg.update"))
	for _, want := range []string{`"type": "delta"`, `"baseVersion": "1.1.0"`, `"compression": "lzma"`, `"version": "1.2.0+456"`} {
		if !strings.Contains(info, want) {
			t.Errorf("info --json lacks %q:\n%s", want, info)
		}
	}

	runOTAExpect(t, 2, "package", "--input", p("app.bin"), "--output", p("x.update"), "--version", "1.2.0", "--compression", "brotli")
	runOTAExpect(t, 2, "package", "--input", p("app.bin"), "--output", p("x.update"), "--version", "1.2.0", "--encrypt", "aes-128-ctr")
	runOTAExpect(t, 2, "package", "info", p("app.bin"))
}
