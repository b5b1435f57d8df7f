// Command fleet is a load generator for `ota serve`: lightweight simulated
// devices (plain HTTP clients, not full agents) on loopback. It builds the
// ota binary, starts `ota serve` with a fresh SQLite database, provisions
// devices through the admin API and reports:
//
//   - check-ins per second with p50/p99 latency at 10k and 100k devices;
//   - artifact download throughput with 1,000 concurrent devices;
//   - the server's resident memory (VmRSS now, VmHWM peak) from /proc.
//
// Run from the repository root: go run ./bench/fleet [-devices 10000,100000].
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/internal/testutil"
)

func main() {
	sizes := flag.String("devices", "10000,100000", "registered device counts to measure check-ins at")
	workerList := flag.String("workers", "16,64", "concurrent check-in clients (one run per value)")
	dur := flag.Duration("duration", 8*time.Second, "check-in measurement time per size")
	dlDevices := flag.Int("download-devices", 1000, "concurrent downloading devices")
	imgSize := flag.Int("image", 4<<20, "image size in bytes for the download test")
	pprofAddr := flag.String("pprof", "", "pass --pprof-addr to ota serve (e.g. 127.0.0.1:6060)")
	flag.Parse()
	log.SetFlags(0)

	tmp, err := os.MkdirTemp("", "ota-bench-fleet-")
	check(err)
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "ota")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ota")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())

	token := "bench-admin"
	srv := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(tmp, "data"),
		"--admin-token", token, "--log-level", "warn", "--poll", "60", "--pprof-addr", *pprofAddr)
	out, err := srv.StdoutPipe()
	check(err)
	srv.Stderr = os.Stderr
	check(srv.Start())
	server = srv
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(line)
	if m == nil {
		fatalf("unexpected serve output %q", line)
	}
	base := m[1]
	go io.Copy(io.Discard, out)
	pid := srv.Process.Pid
	ctx := context.Background()
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr}
	admin := fleethttp.NewClient(base, token, hc)

	// A release and a deployment to a canary group, so check-ins of those
	// devices answer with an offer and the rest with "no update".
	img := make([]byte, *imgSize)
	rand.Read(img)
	relDir, cleanup := releaseDir(img)
	defer cleanup()
	_, err = admin.Publish(ctx, relDir)
	check(err)

	var tokens []string
	canary := max(*dlDevices, 1000)
	provision := func(upTo int) {
		start := time.Now()
		for len(tokens) < upTo {
			n := min(2000, upTo-len(tokens)) // stays under the 1 MiB JSON limit
			batch := make([]fleethttp.NewDevice, n)
			for i := range batch {
				id := len(tokens) + i
				g := "fleet"
				if id < canary {
					g = "canary"
				}
				batch[i] = fleethttp.NewDevice{ID: fmt.Sprintf("dev-%06d", id), Group: g, CurrentVersion: "1.0.0",
					HardwareRevision: "rev-b", BootloaderVersion: "2.0.0"}
			}
			ps, err := admin.CreateDevices(ctx, batch)
			check(err)
			for _, p := range ps {
				tokens = append(tokens, p.Token)
			}
		}
		fmt.Printf("provisioned %d devices in %.1fs\n", upTo, time.Since(start).Seconds())
	}

	fmt.Printf("ota serve pid %d at %s; %s per run; host cores %d, load average %s\n",
		pid, base, *dur, runtimeCPUs(), loadAvg())
	fmt.Println()
	type row struct {
		devices, workers int
		rate, p50, p99   float64
		offers, requests int64
		rss              int64
		cpuPerReq        float64 // server CPU µs per check-in
	}
	var rows []row
	deployed := false
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		provision(n)
		if !deployed {
			_, err := admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "2.0.0", Target: fleet.Target{Group: "canary"}})
			check(err)
			deployed = true
		}
		for _, ws := range strings.Split(*workerList, ",") {
			w, err := strconv.Atoi(strings.TrimSpace(ws))
			check(err)
			cpu0 := cpuTime(pid)
			rate, p50, p99, reqs, offers := checkins(base, tokens, w, *dur, hc)
			cpu := cpuTime(pid) - cpu0
			rows = append(rows, row{n, w, rate, p50, p99, offers, reqs, rss(pid, "VmRSS"), cpu.Seconds() * 1e6 / float64(max(reqs, 1))})
		}
	}
	fmt.Println("| registered devices | clients | check-ins/s | p50 ms | p99 ms | requests | offers | server CPU µs/check-in | server RSS MB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %d | %.0f | %.2f | %.2f | %d | %d | %.0f | %.0f |\n", r.devices, r.workers, r.rate, r.p50, r.p99, r.requests, r.offers,
			r.cpuPerReq, float64(r.rss)/1e6)
	}
	fmt.Println("(server CPU per check-in does not depend on what else runs on the machine; 2 cores / that = the server-side ceiling)")
	fmt.Println()

	// Downloads: the first dlDevices canary devices fetch their artifact at once.
	dl := min(*dlDevices, len(tokens))
	urls := make([]string, dl)
	for i := 0; i < dl; i++ {
		r, err := fleethttp.NewDeviceClient(base, tokens[i], hc).CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.0.0"})
		check(err)
		if !r.Update {
			fatalf("device %d got no offer", i)
		}
		urls[i] = r.Artifact.URL
	}
	dtr := &http.Transport{MaxIdleConnsPerHost: dl, DisableCompression: true}
	dhc := &http.Client{Transport: dtr}
	var total atomic.Int64
	var wg sync.WaitGroup
	var failures atomic.Int64
	startGate := make(chan struct{})
	for i := 0; i < dl; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-startGate
			req, _ := http.NewRequest("GET", base+urls[i], nil)
			req.Header.Set("Authorization", "Bearer "+tokens[i])
			resp, err := dhc.Do(req)
			if err != nil {
				failures.Add(1)
				return
			}
			// Read with a large buffer: io.Discard's own 8 KiB copies
			// would make the client, not the server, the bottleneck.
			buf := make([]byte, 128<<10)
			var n int64
			for {
				k, rerr := resp.Body.Read(buf)
				n += int64(k)
				if rerr != nil {
					if rerr != io.EOF {
						err = rerr
					}
					break
				}
			}
			resp.Body.Close()
			if err != nil || n != int64(len(img)) {
				failures.Add(1)
			}
			total.Add(n)
		}(i)
	}
	t0 := time.Now()
	dcpu0 := cpuTime(pid)
	close(startGate)
	wg.Wait()
	el := time.Since(t0).Seconds()
	dcpu := cpuTime(pid) - dcpu0
	fmt.Println("| concurrent downloads | image | bytes | seconds | throughput | server CPU s | failures |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %d KiB | %d | %.2f | %.2f GB/s | %.2f | %d |\n", dl, len(img)>>10, total.Load(), el,
		float64(total.Load())/el/1e9, dcpu.Seconds(), failures.Load())
	fmt.Println()
	fmt.Printf("load average at the end %s\n", loadAvg())
	fmt.Printf("server RSS now %.0f MB, peak (VmHWM) %.0f MB\n", float64(rss(pid, "VmRSS"))/1e6, float64(rss(pid, "VmHWM"))/1e6)
	fmt.Println("targets: ≥ 5000 check-ins/s with p99 ≤ 50 ms, ≥ 1 GB/s downloads, RSS ≤ 500 MB at 100k devices")
}

// checkins drives check-ins from workers goroutines for d and returns the
// rate, p50 and p99 in ms, the request count and the offers seen.
func checkins(base string, tokens []string, workers int, d time.Duration, hc *http.Client) (float64, float64, float64, int64, int64) {
	var mu sync.Mutex
	var all []time.Duration
	var offers, errs atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	body := `{"currentVersion":"1.0.0","hardwareRevision":"rev-b","bootloaderVersion":"2.0.0"}`
	host := strings.TrimPrefix(base, "http://")
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			i := w * 7919
			var c *rawConn
			for time.Now().Before(stop) {
				i = (i + 104729) % len(tokens)
				if c == nil {
					var err error
					if c, err = dialRaw(host); err != nil {
						errs.Add(1)
						continue
					}
				}
				t0 := time.Now()
				code, resp, err := c.post("/api/v1/device/checkin", tokens[i], body)
				if err != nil {
					errs.Add(1)
					c.Close()
					c = nil
					continue
				}
				lat = append(lat, time.Since(t0))
				if code != 200 {
					errs.Add(1)
				}
				if strings.HasPrefix(resp, `{"update":true`) {
					offers.Add(1)
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	if errs.Load() > 0 {
		log.Printf("check-in errors: %d", errs.Load())
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	return float64(len(all)) / d.Seconds(), pct(0.50), pct(0.99), int64(len(all)), offers.Load()
}

// rawConn is a minimal HTTP/1.1 keep-alive client: a simulated device
// needs no more, and net/http's client would cost the load generator as
// much CPU as the server spends answering, on the same two cores.
type rawConn struct {
	net.Conn
	host string
	r    *bufio.Reader
	req  []byte
	body []byte
}

func dialRaw(host string) (*rawConn, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c, host: host, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// post sends one request and returns the status code and the body.
func (c *rawConn) post(path, token, body string) (int, string, error) {
	c.req = c.req[:0]
	c.req = fmt.Appendf(c.req, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, c.host, token, len(body), body)
	if _, err := c.Write(c.req); err != nil {
		return 0, "", err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, "", err
	}
	if len(line) < 12 {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	code, _ := strconv.Atoi(string(line[9:12]))
	n := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, "", err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(h), ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return 0, "", fmt.Errorf("no Content-Length")
	}
	if cap(c.body) < n {
		c.body = make([]byte, n)
	}
	c.body = c.body[:n]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return 0, "", err
	}
	return code, string(c.body), nil
}

// releaseDir writes a release folder for version 2.0.0 with img.
func releaseDir(img []byte) (string, func()) {
	dir, err := os.MkdirTemp("", "ota-bench-release-")
	check(err)
	check(testutil.WriteFleetReleaseDir(dir, testutil.FleetRelease{Version: "2.0.0", Image: img}))
	return dir, func() { os.RemoveAll(dir) }
}

// rss reads a memory field (VmRSS, VmHWM) of pid in bytes.
func rss(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// cpuTime returns the user+system CPU time pid has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are
	// fields 14 and 15, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func runtimeCPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// server is killed before a fatal error exits, so it never outlives us.
var server *exec.Cmd

func fatalf(format string, args ...any) {
	if server != nil && server.Process != nil {
		server.Process.Kill()
	}
	log.Fatalf(format, args...)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}
