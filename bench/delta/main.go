// Command delta compares otakit's delta patches with the peer tools on the
// firmware corpus (../shared/corpus): patch bytes, diff seconds, diff peak
// RSS and apply speed (the []byte applier on a codec-none patch and the
// streaming applier on the default patch), as ratios against the targets
// of issue 3.
//
//	go run ./bench/delta [-corpus DIR] [-big=false] [-runs N]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/otakit/otakit/codec"
	"github.com/otakit/otakit/delta"
)

// runs is how many times the diff CPU times are measured (-runs).
var runs int

type result struct {
	name                   string
	old, new               int
	ours, bsd, xd, zst, xz int
	oursSec, bsdSec        float64
	rss                    int64   // bytes
	applyMBs               float64 // Patch.Apply, codec none stream layout
	streamMBs              float64 // ApplyStream, the patch ota delta create wrote
}

func main() {
	corpus := flag.String("corpus", "", "corpus directory (default: find shared/corpus above the working directory)")
	big := flag.Bool("big", true, "also run the random 16 MiB and 64 MiB round trips")
	flag.IntVar(&runs, "runs", 5, "diff CPU times (ours, bsdiff, ota start-up) are the least of this many runs")
	flag.Parse()
	runs = max(runs, 1)
	if *corpus == "" {
		*corpus = findCorpus()
	}
	tmp, err := os.MkdirTemp("", "bench-delta")
	check(err)
	defer os.RemoveAll(tmp)
	ota := filepath.Join(tmp, "ota")
	build := exec.Command("go", "build", "-o", ota, "./cmd/ota")
	build.Dir = repoRoot()
	build.Stderr = os.Stderr
	check(build.Run())
	for _, t := range []string{"bsdiff", "xdelta3", "zstd", "xz"} {
		if _, err := exec.LookPath(t); err != nil {
			fatal("%s not installed (run scripts/test-deps.sh)", t)
		}
	}

	ents, err := os.ReadDir(filepath.Join(*corpus, "pairs"))
	check(err)
	var rs []result
	for _, e := range ents {
		dir := filepath.Join(*corpus, "pairs", e.Name())
		old, new := filepath.Join(dir, "old.bin"), filepath.Join(dir, "new.bin")
		rs = append(rs, measure(e.Name(), old, new, ota, tmp))
	}
	// On a shared machine other work only ever adds CPU time (cache and
	// core contention), so the least of a few alternating runs is the
	// steadiest estimate of each tool's own cost.
	for i := 1; i < runs; i++ {
		for j := range rs {
			dir := filepath.Join(*corpus, "pairs", rs[j].name)
			old, new := filepath.Join(dir, "old.bin"), filepath.Join(dir, "new.bin")
			s, _ := timed(ota, "delta", "create", old, new, filepath.Join(tmp, "p"))
			rs[j].oursSec = min(rs[j].oursSec, s)
			s, _ = timed("bsdiff", old, new, filepath.Join(tmp, "p"))
			rs[j].bsdSec = min(rs[j].bsdSec, s)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	// The ota binary carries the whole tool (fleet server, SQLite, ...);
	// its start-up alone costs CPU that bsdiff's small binary does not.
	startup := 1e18
	var idleRSS int64 // bytes the ota binary holds doing nothing
	for i := 0; i < 5*runs; i++ {
		s, ru := timed(ota, "version")
		startup = min(startup, s)
		idleRSS = max(idleRSS, ru.Maxrss*1024)
	}
	report(rs, startup, idleRSS)
	if *big {
		bigPairs(ota, tmp)
	}
}

func measure(name, old, new, ota, tmp string) result {
	ob, err := os.ReadFile(old)
	check(err)
	nb, err := os.ReadFile(new)
	check(err)
	r := result{name: name, old: len(ob), new: len(nb)}
	p := filepath.Join(tmp, "p")
	var ru *syscall.Rusage
	r.oursSec, ru = timed(ota, "delta", "create", old, new, p)
	r.rss = ru.Maxrss * 1024
	r.ours = size(p)
	pb, err := os.ReadFile(p)
	check(err)
	out := filepath.Join(tmp, "out")
	timed(ota, "delta", "apply", old, p, out)
	if b, _ := os.ReadFile(out); !bytes.Equal(b, nb) {
		fatal("%s: round trip through ota differs", name)
	}
	r.bsdSec, _ = timed("bsdiff", old, new, p)
	r.bsd = size(p)
	timed("xdelta3", "-e", "-9", "-S", "djw", "-f", "-s", old, new, p)
	r.xd = size(p)
	timed("zstd", "-q", "-f", "--ultra", "-22", "--long=31", "--patch-from="+old, new, "-o", p)
	r.zst = size(p)
	timed("sh", "-c", "xz -9e -k -c "+new+" > "+p)
	r.xz = size(p)
	r.applyMBs = applySpeed(ob, nb)
	r.streamMBs = streamSpeed(name, ob, nb, pb)
	return r
}

// applySpeed times the Go applier on an uncompressed (codec none) patch.
func applySpeed(old, new []byte) float64 {
	none, _ := codec.Lookup("none")
	patch, err := delta.Create(old, new, &delta.Options{Layout: delta.LayoutStream, Codec: none})
	check(err)
	pt, err := delta.Parse(patch)
	check(err)
	var out bytes.Buffer
	out.Grow(len(new))
	return mbPerCPUSecond(len(new), func() {
		out.Reset()
		check(pt.Apply(old, &out))
	})
}

// mbPerCPUSecond runs apply (which produces n bytes) for at least 0.3 s
// and three times, and returns MB per CPU second of this thread: the
// machine may be shared and loaded, and the garbage collector's background
// work belongs to the Create calls before.
func mbPerCPUSecond(n int, apply func()) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	runtime.GC()
	runs := 0
	start, cpu0 := time.Now(), cpuSeconds()
	for time.Since(start) < 300*time.Millisecond || runs < 3 {
		apply()
		runs++
	}
	return float64(runs*n) / (cpuSeconds() - cpu0) / 1e6
}

// streamSpeed times delta.ApplyStream, which reads the patch once from an
// io.Reader and the source through an io.ReaderAt, on the patch that ota
// delta create wrote (default layout and codec).
func streamSpeed(name string, old, new, patch []byte) float64 {
	var out bytes.Buffer
	out.Grow(len(new))
	check(delta.ApplyStream(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), &out))
	if !bytes.Equal(out.Bytes(), new) {
		fatal("%s: delta.ApplyStream output differs", name)
	}
	return mbPerCPUSecond(len(new), func() {
		out.Reset()
		check(delta.ApplyStream(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), &out))
	})
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	check(syscall.Getrusage(rusageThread, &ru))
	return tv(ru.Utime) + tv(ru.Stime)
}

func report(rs []result, startup float64, idleRSS int64) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tnew\tours\tbsdiff\txdelta3\tzstd\txz\tours/bsdiff\tours/best\tdiff cpu s\tbsdiff cpu s\tt ratio\tRSS MiB\tRSS/(o+n)\tapply MB/s\tstream apply MB/s\t")
	var t result
	t.name = "TOTAL"
	worstPair, minApply, minStream := 0.0, 1e18, 1e18
	maxRSS, maxAbove := 0.0, 0.0
	for _, r := range rs {
		row(tw, r)
		t.old += r.old
		t.new += r.new
		t.ours += r.ours
		t.bsd += r.bsd
		t.xd += r.xd
		t.zst += r.zst
		t.xz += r.xz
		t.oursSec += r.oursSec
		t.bsdSec += r.bsdSec
		t.rss = max(t.rss, r.rss)
		worstPair = max(worstPair, float64(r.ours)/float64(min(r.xd, r.zst)))
		minApply = min(minApply, r.applyMBs)
		minStream = min(minStream, r.streamMBs)
		maxRSS = max(maxRSS, float64(r.rss)/float64(r.old+r.new))
		maxAbove = max(maxAbove, float64(r.rss-idleRSS)/float64(r.old+r.new))
	}
	t.applyMBs = minApply
	t.streamMBs = minStream
	row(tw, t)
	tw.Flush()
	best := min(t.xd, t.zst)
	fmt.Printf("\ntargets (this run):\n")
	fmt.Printf("  total size / bsdiff           %.3f  (target <= 0.80) %s\n", ratio(t.ours, t.bsd), ok(ratio(t.ours, t.bsd) <= 0.80))
	fmt.Printf("  total size / best(xd3,zstd)   %.3f  (target <= 0.90) %s\n", ratio(t.ours, best), ok(ratio(t.ours, best) <= 0.90))
	fmt.Printf("  worst pair / best(xd3,zstd)   %.3f  (target <= 1.00) %s\n", worstPair, ok(worstPair <= 1))
	fmt.Printf("  diff time / bsdiff            %.3f  (target <= 0.50) %s\n", t.oursSec/t.bsdSec, ok(t.oursSec/t.bsdSec <= 0.5))
	adj := (t.oursSec - startup*float64(len(rs))) / t.bsdSec
	fmt.Printf("  same, without ota start-up     %.3f  (ota version takes %.3f cpu s)\n", adj, startup)
	// On the corpus's small pairs the ota binary's own RSS dominates; the
	// target is judged on the large generated pairs below (-big).
	fmt.Printf("  max peak RSS / (old+new)      %.2f   (corpus; target <= 8 judged on the large pairs below)\n", maxRSS)
	fmt.Printf("  same, above ota's idle RSS     %.2f   (ota version holds %.1f MiB)\n", maxAbove, float64(idleRSS)/(1<<20))
	fmt.Printf("  min Go apply MB/s (codec none) %.0f  (target >= 200) %s\n", minApply, ok(minApply >= 200))
	fmt.Printf("  min ApplyStream MB/s (default) %.0f  (no target; the patch ota delta create writes)\n", minStream)
}

func row(tw *tabwriter.Writer, r result) {
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%.0f\t%.1f\t\n",
		r.name, r.new, r.ours, r.bsd, r.xd, r.zst, r.xz, ratio(r.ours, r.bsd), ratio(r.ours, min(r.xd, r.zst)),
		r.oursSec, r.bsdSec, r.oursSec/r.bsdSec, float64(r.rss)/(1<<20), float64(r.rss)/float64(r.old+r.new), r.applyMBs, r.streamMBs)
}

// bigPairs round-trips generated 16 MiB and 64 MiB pairs through ota.
func bigPairs(ota, tmp string) {
	fmt.Println("\nlarge generated pairs (random data with edits and 0xFF padding):")
	for _, mb := range []int{16, 64} {
		rng := rand.New(rand.NewSource(int64(mb)))
		old := make([]byte, mb<<20)
		rng.Read(old[:len(old)*3/4]) // last quarter stays 0x00... then padded below
		for i := len(old) * 3 / 4; i < len(old); i++ {
			old[i] = 0xff
		}
		new := append([]byte(nil), old...)
		for i := 0; i < 2000; i++ {
			p := rng.Intn(len(new) * 3 / 4)
			new[p] ^= byte(1 + rng.Intn(255))
		}
		ins := make([]byte, 100000)
		rng.Read(ins)
		new = append(new[:1<<20], append(ins, new[1<<20:len(new)-len(ins)]...)...)
		o, n, p, out := filepath.Join(tmp, "bo"), filepath.Join(tmp, "bn"), filepath.Join(tmp, "bp"), filepath.Join(tmp, "bout")
		check(os.WriteFile(o, old, 0o644))
		check(os.WriteFile(n, new, 0o644))
		sec, ru := timed(ota, "delta", "create", o, n, p)
		asec, _ := timed(ota, "delta", "apply", o, p, out)
		got, _ := os.ReadFile(out)
		rssRatio := float64(ru.Maxrss*1024) / float64(2*len(old))
		fmt.Printf("  %d MiB: patch %d bytes, diff %.1f cpu s, peak RSS %.0f MiB (%.1f× old+new, target <= 8 %s), apply %.2f cpu s, round trip %s\n",
			mb, size(p), sec, float64(ru.Maxrss)/1024, rssRatio, ok(rssRatio <= 8), asec, ok(bytes.Equal(got, new)))
	}
}

func ok(b bool) string {
	if b {
		return "ok"
	}
	return "MISSED"
}

func ratio(a, b int) float64 { return float64(a) / float64(b) }

func timed(name string, args ...string) (float64, *syscall.Rusage) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		fatal("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	// CPU seconds (user+system), not wall time: the figures must compare
	// the tools fairly on a shared, loaded machine.
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return tv(ru.Utime) + tv(ru.Stime), ru
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func size(p string) int {
	fi, err := os.Stat(p)
	check(err)
	return int(fi.Size())
}

func repoRoot() string {
	dir, err := os.Getwd()
	check(err)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			fatal("go.mod not found above %s", dir)
		}
	}
}

func findCorpus() string {
	dir, err := os.Getwd()
	check(err)
	for d := dir; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, "shared", "corpus"), filepath.Join(d, "..", "shared", "corpus")} {
			if fi, err := os.Stat(filepath.Join(c, "pairs")); err == nil && fi.IsDir() {
				return c
			}
		}
		if filepath.Dir(d) == d {
			fatal("shared/corpus not found above %s; use -corpus", dir)
		}
	}
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/delta: "+format+"\n", args...)
	os.Exit(1)
}
