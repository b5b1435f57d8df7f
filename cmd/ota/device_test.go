package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
)

func TestDeviceCLI(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(testutil.DevicesShared(t), "testdata/imgtool/keys/ed25519.pem")
	pub := filepath.Join(testutil.DevicesShared(t), "testdata/imgtool/keys/ed25519.pub.pem")
	fl := filepath.Join(dir, "dev.flash")
	sign := func(ver, sc, out string, n int, extra ...string) string {
		in := filepath.Join(dir, out+".raw")
		os.WriteFile(in, []byte(strings.Repeat(ver, n)), 0o644)
		p := filepath.Join(dir, out)
		args := append([]string{"sign", "-k", key, "-v", ver, "-H", "0x200", "--pad-header", "-S", "0x3c000", "--align", "8", "-s", sc}, extra...)
		if code, _, errs := runLayoutCLI(t, append(args, in, p)...); code != 0 {
			t.Fatalf("sign %s: %s", ver, errs)
		}
		return p
	}
	v1 := sign("1.1.0", "1", "v1.bin", 4000, "--pad", "--confirm")
	v2 := sign("1.2.0", "2", "v2.bin", 6000)
	step := func(want int, contains string, args ...string) string {
		t.Helper()
		code, out, errs := runLayoutCLI(t, append(args, "--flash", fl)...)
		if code != want || !strings.Contains(out+errs, contains) {
			t.Fatalf("ota %v: code %d (want %d)\n%s%s", args, code, want, out, errs)
		}
		return out
	}
	step(0, "created", "device", "init", "--mode", "swap-scratch", "--image", v1, "--key", key)
	step(2, "exists", "device", "init", "--image", v1)
	step(0, "booted: 1.1.0+0, confirmed", "device", "boot")
	step(0, "PENDING_REBOOT", "device", "install", "-k", pub, v2) // the agent, on the simulator
	out := step(0, "next boot: test", "device", "status")
	if !strings.Contains(out, "secondary  good   unset     unset      test       1.2.0+0") {
		t.Fatalf("status:\n%s", out)
	}
	step(0, "booted: 1.2.0+0, testing", "device", "boot")
	step(0, "booted: 1.1.0+0, confirmed", "device", "rollback") // revert a test image
	step(0, "swap: none", "device", "boot")
	step(0, "PENDING_REBOOT", "device", "install", "-k", pub, v2)
	step(0, "swap: test", "device", "boot")
	step(0, "confirmed", "device", "confirm")
	step(0, "booted: 1.2.0+0, confirmed", "device", "boot")
	out = step(0, "security counter: 2", "device", "status")
	if !strings.Contains(out, "primary    good   set       set") {
		t.Fatalf("status:\n%s", out)
	}
	// The agent refuses a downgrade below the security counter; the boot
	// loader would too (package boot's tests), so there is nothing to
	// roll back to.
	step(1, "", "device", "install", "-k", pub, v1)
	step(1, "no valid image in slot B", "device", "rollback")

	// The agent on the simulator, end to end: install, reboot, confirm.
	fl2 := filepath.Join(dir, "dev2.flash")
	for _, args := range [][]string{
		{"device", "init", "--flash", fl2, "--mode", "swap-move", "--image", v1, "--key", key},
		{"device", "install", "--flash", fl2, "-k", pub, "--confirm", v2},
	} {
		if code, out, errs := runLayoutCLI(t, args...); code != 0 {
			t.Fatalf("ota %v: %d\n%s%s", args, code, out, errs)
		}
	}
	if _, out, _ := runLayoutCLI(t, "device", "status", "--flash", fl2); !strings.Contains(out, "primary    good   set       set        test       1.2.0+0") || !strings.Contains(out, "security counter: 2") {
		t.Fatalf("after agent install --confirm:\n%s", out)
	}

	// A truncated flash file is a clear input error.
	raw, _ := os.ReadFile(fl)
	os.WriteFile(fl, raw[:len(raw)/2], 0o644)
	step(2, "truncated", "device", "status")
}

// ota device run --flash: the agent polls a signed manifest on a plain
// HTTP file server and updates the simulated MCUboot device (preset map,
// swap-scratch) through download, package decryption, slot B, the swap
// at reboot and the confirmation.
func TestDeviceRunFlash(t *testing.T) {
	r := newAgentRelease(t)
	fl := filepath.Join(t.TempDir(), "dev.flash")
	pub := filepath.Join(r.keys, "ed25519.pub.pem")
	if code, out, errs := runLayoutCLI(t, "device", "init", "--flash", fl, "--image", r.slotA, "--key", pub); code != 0 {
		t.Fatalf("init: %d\n%s%s", code, out, errs)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(r.manifest))))
	defer srv.Close()
	code, out, errs := runLayoutCLI(t, "device", "run", "--flash", fl, "-k", pub, "--package-key", r.aesKey,
		"--manifest-url", srv.URL+"/manifest.json", "--once", "--manifest-key", filepath.Join(r.keys, "ecdsa-p256.pub.pem"))
	if code != 0 || !strings.Contains(out, "state CONFIRMED, running 1.2.0") {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ = runLayoutCLI(t, "device", "status", "--flash", fl)
	if !strings.Contains(out, "primary    good   set       set        test       1.2.0+0") || !strings.Contains(out, "secondary  unset") {
		t.Fatalf("status after run:\n%s", out)
	}
}
