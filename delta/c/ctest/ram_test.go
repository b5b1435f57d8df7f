package ctest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/internal/testutil"
)

// ramLimit is the budget for the C applier, decoder included.
const ramLimit = 16 << 10

// TestRAM measures what the C applier needs for each corpus pair with the
// heatshrink codec: sizeof(ota_delta_ctx) + work buffer (block table +
// 2^W window) + a stack bound (the sum of every function's frame from gcc
// -fstack-usage, an upper bound since nothing recurses). Run with -v to see
// the figures.
func TestRAM(t *testing.T) {
	plain, _ := harnesses(t)
	out := runRaw(t, plain, "ram")
	ctx, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("harness ram: %q", out)
	}
	stack := stackBound(t)
	window := 1 << codec.HeatshrinkDefaultWindow
	worst := 0
	for _, p := range testutil.CorpusPairs(t) {
		st, err := os.Stat(p.New)
		if err != nil {
			t.Fatal(err)
		}
		nblocks := (int(st.Size()) + 65535) / 65536
		total := ctx + 12*nblocks + window + stack
		worst = max(worst, total)
		t.Logf("%-45s target %8d B: ctx %d + table %d + window %d + stack ≤%d = %d B", p.Name, st.Size(), ctx, 12*nblocks, window, stack, total)
	}
	t.Logf("largest: %d B of %d B allowed", worst, ramLimit)
	if worst > ramLimit {
		t.Fatalf("C applier needs %d B, over the %d B budget", worst, ramLimit)
	}
}

func stackBound(t *testing.T) int {
	t.Helper()
	dir := t.TempDir()
	obj := filepath.Join(dir, "otadelta.o")
	cmd := exec.Command("gcc", "-std=c99", "-O2", "-fstack-usage", "-c", "../otadelta.c", "-o", obj)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc -fstack-usage: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "otadelta.su"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[len(fields)-1] != "static" {
			t.Fatalf("unbounded or dynamic stack frame: %q", sc.Text())
		}
		n, err := strconv.Atoi(fields[len(fields)-2])
		if err != nil {
			t.Fatalf("stack usage line %q", sc.Text())
		}
		sum += n
	}
	return sum
}

// TestLibcUse checks the applier object calls nothing outside memcpy and
// memset, at -O0 and -Os (what an MCU build would use).
func TestLibcUse(t *testing.T) {
	if _, err := exec.LookPath("nm"); err != nil {
		t.Fatal("nm (binutils) not installed")
	}
	dir := t.TempDir()
	for _, opt := range []string{"-O0", "-Os"} {
		obj := filepath.Join(dir, "o"+opt+".o")
		if out, err := exec.Command("gcc", "-std=c99", opt, "-ffreestanding", "-c", "../otadelta.c", "-o", obj).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", opt, err, out)
		}
		out, err := exec.Command("nm", "-u", obj).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if sym := f[len(f)-1]; sym != "memcpy" && sym != "memset" {
				t.Errorf("%s: applier uses %s", opt, sym)
			}
		}
	}
}
