// Package ctest builds the C99 applier of delta/c with gcc and checks it
// against patches made in Go: plain (-O2) and under AddressSanitizer and
// UndefinedBehaviorSanitizer. The C sources live one directory up, outside
// any Go package, because Go refuses .c files in a package without cgo.
package ctest

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/internal/testutil"
)

// workBytes is the work buffer given to the harness: the 2 KiB heatshrink
// window plus a table of up to 170 blocks (11 MiB of target at 64 KiB).
const workBytes = 4096

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// harnesses compiles delta/c/harness.c with the applier twice, into one
// directory shared by the package's tests: "plain" (-O2) and "san"
// (ASan+UBSan, aborting on the first finding).
func harnesses(t *testing.T) (plain, san string) {
	t.Helper()
	buildOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			buildErr = fmt.Errorf("gcc not installed (scripts/test-deps.sh installs it): %w", err)
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "otadelta-c")
		if buildErr != nil {
			return
		}
		src := []string{"../harness.c", "../otadelta.c"}
		flags := []string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I.."}
		for name, extra := range map[string][]string{
			"plain": {"-O2"},
			"san":   {"-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"},
		} {
			args := append(append(append([]string{}, flags...), extra...), "-o", filepath.Join(buildDir, name))
			args = append(args, src...)
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "plain"), filepath.Join(buildDir, "san")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// result of one harness run.
type result struct {
	ok     bool   // applier succeeded
	msg    string // harness stdout
	output []byte
}

// runHarness applies patch to old with the given harness binary. A crash,
// a sanitizer report or a harness-side check (out-of-range read, write out
// of order) fails the test; an applier error is a normal result.
func runHarness(t *testing.T, bin string, old, patch []byte, seed int64, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	oldPath, patchPath, outPath := filepath.Join(dir, "old"), filepath.Join(dir, "patch"), filepath.Join(dir, "out")
	if err := os.WriteFile(oldPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(patchPath, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	mode, work := "apply", strconv.Itoa(workBytes)
	if len(args) > 0 && args[0] == "resume" {
		mode, args = "resume", args[1:]
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "work=") {
		work, args = strings.TrimPrefix(args[0], "work="), args[1:]
	}
	cmd := exec.Command(bin, append([]string{mode, oldPath, patchPath, outPath, strconv.FormatInt(seed, 10), work}, args...)...)
	cmd.Env = sanitizerEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	if code != 0 && code != 1 {
		t.Fatalf("harness %s crashed (exit %d):\n%s\n%s", mode, code, stdout.String(), stderr.String())
	}
	r := result{ok: code == 0, msg: strings.TrimSpace(stdout.String())}
	if r.ok {
		out, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		r.output = out
	}
	return r
}

// sanitizerEnv makes sanitizer findings exit with codes the tests tell apart
// from the applier's own error exit (1).
func sanitizerEnv() []string {
	return append(os.Environ(),
		"ASAN_OPTIONS=exitcode=99:detect_leaks=1",
		"UBSAN_OPTIONS=halt_on_error=1:exitcode=98:print_stacktrace=1")
}

func mustApply(t *testing.T, bin string, old, new, patch []byte, seed int64, args ...string) {
	t.Helper()
	r := runHarness(t, bin, old, patch, seed, args...)
	if !r.ok {
		t.Fatalf("C applier failed: %s", r.msg)
	}
	if !bytes.Equal(r.output, new) {
		t.Fatalf("C applier output differs from the target (%d bytes, want %d)", len(r.output), len(new))
	}
}

var codecs = []codec.ID{codec.None, codec.Heatshrink}

func codecName(id codec.ID) string {
	c, err := codec.ByID(id)
	if err != nil {
		return fmt.Sprint(id)
	}
	return c.Name()
}

func readPair(t *testing.T, p testutil.CorpusPair) (old, new []byte) {
	t.Helper()
	old, err := os.ReadFile(p.Old)
	if err != nil {
		t.Fatal(err)
	}
	new, err = os.ReadFile(p.New)
	if err != nil {
		t.Fatal(err)
	}
	return old, new
}

// TestRefPatchCorpus applies reference-writer patches with random
// instruction mixes (random ADD sources, negative source moves, one-byte and
// block-long instructions) for a few corpus pairs, both codecs, both builds.
// TestNativeCorpus covers every pair with delta.Create's output.
func TestRefPatchCorpus(t *testing.T) {
	plain, san := harnesses(t)
	for i, p := range testutil.CorpusPairs(t) {
		if i%4 != 0 {
			continue
		}
		old, new := readPair(t, p)
		for _, id := range codecs {
			t.Run(p.Name+"/"+codecName(id), func(t *testing.T) {
				rnd := rand.New(rand.NewSource(int64(i)))
				rp := refPatch{blockSize: 65536, codec: id, rnd: rnd, maxInstLen: 4000, srcVer: "1.0", tgtVer: "1.1", randomSP: i%8 == 0}
				patch := rp.make(old, new)
				mustApply(t, plain, old, new, patch, int64(i)+1, "verify-source")
				mustApply(t, san, old, new, patch, int64(i)+7)
			})
		}
	}
}

// edgeCases are the generated pairs of the acceptance list.
func edgeCases() map[string][2][]byte {
	rnd := rand.New(rand.NewSource(9))
	random := func(n int) []byte { b := make([]byte, n); rnd.Read(b); return b }
	ff := bytes.Repeat([]byte{0xff}, 200_000)
	ffNew := bytes.Clone(ff)
	copy(ffNew[1000:], random(5000))
	base := random(150_000)
	edited := bytes.Clone(base)
	for i := 0; i < 300; i++ {
		edited[rnd.Intn(len(edited))] ^= byte(1 + rnd.Intn(255))
	}
	return map[string][2][]byte{
		"both empty":   {{}, {}},
		"old empty":    {{}, random(5000)},
		"new empty":    {random(5000), {}},
		"identical":    {base, base},
		"one byte":     {{1}, {2}},
		"ff padded":    {ff, ffNew},
		"edited":       {base, edited},
		"grown":        {base[:50_000], base},
		"shrunk":       {base, base[70_000:]},
		"block+1":      {base[:65537], edited[:65537]},
		"exact blocks": {base[:131072], edited[:131072]},
	}
}

func TestRefPatchEdgeCases(t *testing.T) {
	_, san := harnesses(t)
	seed := int64(0)
	for name, c := range edgeCases() {
		for _, id := range codecs {
			for _, bs := range []int{1 << 16, 1000} {
				seed++
				t.Run(fmt.Sprintf("%s/%s/bs%d", name, codecName(id), bs), func(t *testing.T) {
					rp := refPatch{blockSize: bs, codec: id, rnd: rand.New(rand.NewSource(seed)), maxInstLen: 700, randomSP: seed%2 == 0}
					patch := rp.make(c[0], c[1])
					work := fmt.Sprintf("work=%d", 12*((len(c[1])+bs-1)/bs)+2048)
					mustApply(t, san, c[0], c[1], patch, seed, work, "verify-source")
				})
			}
		}
	}
}

// TestResume cuts the apply after some blocks, throws the context away and
// resumes from the checkpoint record.
func TestResume(t *testing.T) {
	plain, san := harnesses(t)
	pair := testutil.CorpusPairs(t)[1]
	old, new := readPair(t, pair)
	nblocks := (len(new) + 65535) / 65536
	for _, id := range codecs {
		rp := refPatch{blockSize: 65536, codec: id, rnd: rand.New(rand.NewSource(5)), maxInstLen: 3000}
		patch := rp.make(old, new)
		for _, stop := range []int{1, nblocks / 2, nblocks - 1} {
			t.Run(fmt.Sprintf("%s/stop%d", codecName(id), stop), func(t *testing.T) {
				for _, bin := range []string{plain, san} {
					r := runHarness(t, bin, old, patch, int64(stop), "resume", strconv.Itoa(stop))
					if !r.ok || !bytes.Equal(r.output, new) {
						t.Fatalf("resume after %d blocks failed: %s", stop, r.msg)
					}
					if !strings.Contains(r.msg, "resumed at block") {
						t.Fatalf("harness did not resume: %s", r.msg)
					}
				}
			})
		}
	}
}
