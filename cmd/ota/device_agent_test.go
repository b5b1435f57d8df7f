package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
)

// agentRelease builds, through the CLI, signed images 1.1.0 and 1.2.0, an
// encrypted package of 1.2.0 and its signed manifest, and two Linux slot
// files with 1.1.0 in slot A.
type agentRelease struct {
	dir, keys, slotA, slotB, pkg, aesKey, manifest string
}

func newAgentRelease(t *testing.T) *agentRelease {
	t.Helper()
	r := &agentRelease{dir: t.TempDir(), keys: filepath.Join(testutil.SharedDir(t), "testdata/imgtool/keys")}
	p := func(name string) string { return filepath.Join(r.dir, name) }
	fw := make([]byte, 40<<10)
	rand.Read(fw)
	os.WriteFile(p("app.bin"), fw, 0o644)
	os.WriteFile(p("aes.key"), []byte("00112233445566778899aabbccddeeff\n"), 0o600)
	must := func(args ...string) {
		t.Helper()
		if code, out, errs := runOTA(t, args...); code != 0 {
			t.Fatalf("ota %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	sign := func(ver, sc, key, out string) {
		must("sign", "-k", filepath.Join(r.keys, key), "-v", ver, "-s", sc, "-H", "0x200", "--pad-header", "-S", "0x3c000", p("app.bin"), out)
	}
	sign("1.1.0", "1", "ed25519.pem", p("v110.img"))
	os.MkdirAll(p("rel"), 0o755)
	sign("1.2.0", "2", "ed25519.pem", p("v120.img"))
	sign("1.2.0", "2", "ecdsa-p384.pem", p("rogue.img"))
	must("package", "--type", "full", "--input", p("v120.img"), "--output", p("rel/app-1.2.0.update"),
		"--version", "1.2.0", "--encrypt", "aes-128-ctr", "--key-file", p("aes.key"))
	must("manifest", "generate", "--image", p("rel/app-1.2.0.update"), "--key", filepath.Join(r.keys, "ecdsa-p256.pem"),
		"--sequence", "1", "--output", p("rel/manifest.json"))
	b, _ := os.ReadFile(p("v110.img"))
	os.WriteFile(p("slot-a.img"), b, 0o644)
	os.WriteFile(p("slot-b.img"), nil, 0o644)
	r.slotA, r.slotB, r.pkg, r.aesKey, r.manifest = p("slot-a.img"), p("slot-b.img"), p("rel/app-1.2.0.update"), p("aes.key"), p("rel/manifest.json")
	return r
}

func (r *agentRelease) deviceArgs(args ...string) []string {
	return append(args, "--slots", r.slotA+","+r.slotB, "-k", filepath.Join(r.keys, "ed25519.pub.pem"),
		"--package-key", r.aesKey)
}

func TestDeviceInstall(t *testing.T) {
	r := newAgentRelease(t)
	code, out, errs := runOTA(t, r.deviceArgs("device", "install", "--confirm", r.pkg)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"DOWNLOADING", "VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "CONFIRMED", "state CONFIRMED, running 1.2.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The new image is in slot B, which is now active.
	b, _ := os.ReadFile(r.slotB)
	img, _ := os.ReadFile(filepath.Join(r.dir, "v120.img"))
	if !bytes.Equal(b, img) {
		t.Error("slot B does not hold the 1.2.0 image")
	}
	// An image signed by an untrusted key is refused with exit code 1, and
	// the device keeps running 1.2.0.
	code, out, errs = runOTA(t, r.deviceArgs("device", "install", "--reboot", filepath.Join(r.dir, "rogue.img"))...)
	if code != 1 || !strings.Contains(errs, "image refused") {
		t.Errorf("rogue image: exit %d\n%s%s", code, out, errs)
	}
}

func TestDeviceInstallUsage(t *testing.T) {
	for _, args := range [][]string{
		{"device", "install", "x.update"},                       // no device
		{"device", "install", "--slots", "a", "-k", "k", "x"},   // one slot
		{"device", "run", "--slots", "a,b", "-k", "k"},          // no server
		{"device", "install", "--flash", "f", "--slots", "a,b"}, // no key
	} {
		if code, _, _ := runOTA(t, args...); code != 2 {
			t.Errorf("ota %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

// ota device run polls the signed manifest on a plain HTTP file server,
// installs, reboots, passes its health check and confirms.
func TestDeviceRunFileServer(t *testing.T) {
	r := newAgentRelease(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(r.manifest))))
	defer srv.Close()
	args := r.deviceArgs("device", "run", "--manifest-url", srv.URL+"/manifest.json", "--once",
		"--manifest-key", filepath.Join(r.keys, "ecdsa-p256.pub.pem"))
	code, out, errs := runOTA(t, args...)
	if code != 0 || !strings.Contains(out, "state CONFIRMED, running 1.2.0") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	// Once up to date, a second run finds nothing to do.
	code, out, errs = runOTA(t, args...)
	if code != 0 || strings.Contains(out, "DOWNLOADING") || !strings.Contains(out, "running 1.2.0") {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errs)
	}
}

// The whole chain through the CLI: ota release makes 1.1.0 and 1.2.0 (with
// a delta), a simulated MCUboot device starts on 1.1.0, and ota device run
// fetches the delta from a plain file server, swaps, confirms.
func TestDeviceRunReleaseDeltaOnFlash(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(testutil.SharedDir(t), "testdata/imgtool/keys")
	p := func(name string) string { return filepath.Join(dir, name) }
	fw := make([]byte, 60<<10)
	rand.Read(fw)
	os.WriteFile(p("fw1.bin"), fw, 0o644)
	copy(fw[3000:], "version 1.2.0 changes")
	os.WriteFile(p("fw2.bin"), fw, 0o644)
	os.WriteFile(p("aes.key"), []byte("00112233445566778899aabbccddeeff\n"), 0o600)
	must := func(args ...string) string {
		t.Helper()
		code, out, errs := runOTA(t, args...)
		if code != 0 {
			t.Fatalf("ota %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	for _, v := range [][2]string{{"1.1.0", "fw1.bin"}, {"1.2.0", "fw2.bin"}} {
		must("release", "--firmware", p(v[1]), "--version", v[0], "--key", filepath.Join(keys, "ed25519.pem"),
			"--manifest-key", filepath.Join(keys, "ecdsa-p256.pem"), "--releases", p("R"), "--encrypt-key", p("aes.key"))
	}
	must("device", "init", "--flash", p("dev.flash"), "--mode", "swap-scratch",
		"--image", p("R/1.1.0/app-1.1.0.signed.bin"), "--key", filepath.Join(keys, "ed25519.pub.pem"))
	srv := httptest.NewServer(http.FileServer(http.Dir(p("R"))))
	defer srv.Close()
	out := must("device", "run", "--flash", p("dev.flash"), "--manifest-url", srv.URL+"/1.2.0/manifest.json", "--once",
		"-k", filepath.Join(keys, "ed25519.pub.pem"), "--manifest-key", filepath.Join(keys, "ecdsa-p256.pub.pem"),
		"--package-key", p("aes.key"))
	delta, err := os.Stat(p("R/1.2.0/app-1.1.0-to-1.2.0.update"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("%d/%d bytes", delta.Size(), delta.Size())) || !strings.Contains(out, "state CONFIRMED, running 1.2.0") {
		t.Fatalf("device run did not install the delta:\n%s", out)
	}
	if st := must("device", "status", "--flash", p("dev.flash")); !strings.Contains(st, "1.2.0") {
		t.Fatalf("status:\n%s", st)
	}
}

// A gateway whose health check command fails does not confirm the new
// image: it reverts at the deadline, and the same release is not retried.
func TestDeviceRunHealthCmdFails(t *testing.T) {
	r := newAgentRelease(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(r.manifest))))
	defer srv.Close()
	args := r.deviceArgs("device", "run", "--manifest-url", srv.URL+"/manifest.json", "--once",
		"--manifest-key", filepath.Join(r.keys, "ecdsa-p256.pub.pem"), "--health-cmd", "false", "--confirm-timeout", "1ms")
	code, out, errs := runOTA(t, args...)
	if code != 0 || !strings.Contains(out, "REVERTING") || !strings.Contains(out, "state FAILED, running 1.1.0") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runOTA(t, args...); code != 0 || strings.Contains(out, "DOWNLOADING") {
		t.Fatalf("the reverted release was retried: exit %d\n%s", code, out)
	}
}
