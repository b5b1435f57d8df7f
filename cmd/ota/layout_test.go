package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otakit/otakit/internal/testutil"
)

func runLayoutCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestLayoutCLI(t *testing.T) {
	code, out, _ := runLayoutCLI(t, "layout", "show")
	if code != 0 || !strings.Contains(out, "slot-b       0x08044000") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	if code, out, _ := runLayoutCLI(t, "layout", "check", "--mode", "swap-move"); code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("check preset: %d %s", code, out)
	}
	code, out, _ = runLayoutCLI(t, "layout", "import-dts", "../../layout/testdata/stm32.dts")
	if code != 0 || !strings.Contains(out, `"name": "scratch"`) {
		t.Fatalf("import-dts: %d %s", code, out)
	}
	dir := t.TempDir()
	bad := strings.Replace(out, `"offset": "0x8044000"`, `"offset": "0x8040000"`, 1)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(bad), 0o644)
	code, _, errs := runLayoutCLI(t, "layout", "check", "--map", filepath.Join(dir, "bad.json"))
	if code != 1 || !strings.Contains(errs, "overlap") {
		t.Fatalf("overlapping map: code %d, %s", code, errs)
	}
	os.WriteFile(filepath.Join(dir, "junk.yaml"), []byte("flash: [\n"), 0o644)
	if code, _, _ := runLayoutCLI(t, "layout", "check", "--map", filepath.Join(dir, "junk.yaml")); code != 2 {
		t.Fatalf("junk map: code %d", code)
	}
	code, out, _ = runLayoutCLI(t, "layout", "mcuboot-config", "--mode", "swap-scratch",
		"--key", filepath.Join(testutil.SharedDir(t), "testdata/imgtool/keys/ecdsa-p256.pem"))
	if code != 0 || !strings.Contains(out, "SB_CONFIG_BOOT_SIGNATURE_TYPE_ECDSA_P256=y") || !strings.Contains(out, "SB_CONFIG_MCUBOOT_MODE_SWAP_SCRATCH=y") {
		t.Fatalf("mcuboot-config: %d %s", code, out)
	}
}
