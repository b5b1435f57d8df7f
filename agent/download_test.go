package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cuttingServer serves files over HTTP with Range and ETag support, and
// drops the connection mid-body at random points for the first cuts
// responses.
type cuttingServer struct {
	mu       sync.Mutex
	files    map[string][]byte
	rng      *rand.Rand
	cuts     int    // responses still to cut
	cutOnly  string // when set, only files with this suffix are cut
	sent     int64  // body bytes written to clients
	requests []string
	srv      *httptest.Server
}

func newCuttingServer(t *testing.T, cuts int, files map[string][]byte) *cuttingServer {
	cs := &cuttingServer{files: files, rng: rand.New(rand.NewPCG(1, 2)), cuts: cuts}
	cs.srv = httptest.NewServer(http.HandlerFunc(cs.serve))
	t.Cleanup(cs.srv.Close)
	return cs
}

func (cs *cuttingServer) set(name string, b []byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.files[name] = b
}

func (cs *cuttingServer) serve(w http.ResponseWriter, r *http.Request) {
	cs.mu.Lock()
	name := strings.TrimPrefix(r.URL.Path, "/")
	data, ok := cs.files[name]
	cs.requests = append(cs.requests, name+" "+r.Header.Get("Range")+" "+r.Header.Get("If-Range"))
	cut := int64(-1)
	if ok && cs.cuts > 0 && len(data) > 1 && strings.HasSuffix(name, cs.cutOnly) {
		cs.cuts--
		// Cut somewhere in what this response will carry.
		start := int64(0)
		if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			start, _ = strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64)
		}
		if rest := min(int64(len(data))-start, int64(len(data))/4); rest > 1 {
			cut = 1 + cs.rng.Int64N(rest-1)
		}
	}
	cs.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sum[:8]))
	cw := &cutWriter{ResponseWriter: w, cut: cut, cs: cs}
	http.ServeContent(cw, r, name, time.Time{}, bytes.NewReader(data))
}

// cutWriter passes the body through until cut bytes, then flushes and
// closes the connection under the client.
type cutWriter struct {
	http.ResponseWriter
	cut     int64
	written int64
	dead    bool
	cs      *cuttingServer
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if w.dead {
		return 0, http.ErrHijacked
	}
	if w.cut >= 0 && w.written+int64(len(p)) > w.cut {
		n := int(w.cut - w.written)
		w.ResponseWriter.Write(p[:n])
		w.count(n)
		rc := http.NewResponseController(w.ResponseWriter)
		rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
		w.dead = true
		return n, http.ErrHijacked
	}
	n, err := w.ResponseWriter.Write(p)
	w.count(n)
	w.written += int64(n)
	return n, err
}

func (w *cutWriter) count(n int) {
	w.cs.mu.Lock()
	w.cs.sent += int64(n)
	w.cs.mu.Unlock()
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// downloadAgent returns an agent set up to download name from cs, with
// its state in dir.
func downloadAgent(t *testing.T, dir string, cs *cuttingServer, name string, data []byte) *Agent {
	t.Helper()
	ls, _ := newLinuxSlots(t, newTestImages().make("1.1.0", 0, []byte("app")))
	a, err := New(Config{Slots: ls, Store: FileStore{Path: filepath.Join(dir, "state.json")},
		Images: newTestImages(), Server: &HTTPServer{ManifestURL: cs.srv.URL + "/manifest.json"},
		WorkDir: filepath.Join(dir, "work"), CheckpointBytes: 16 << 10, MaxRetries: 3, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if a.rec.State == Idle {
		art := &Artifact{Name: name, URL: cs.srv.URL + "/" + name, Type: TypeFull, Size: int64(len(data)), SHA256: sum[:]}
		if err := a.transition(Downloading, func(r *Record) { r.Artifact = art; r.Version = "1.2.0" }); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func checkPartial(t *testing.T, a *Agent, want []byte) {
	t.Helper()
	got, err := os.ReadFile(a.partialPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes that differ from the %d served", len(got), len(want))
	}
}

// A download cut at random points resumes where it stopped: every request
// after the first asks for a range, and the total transferred stays below
// twice the file's size.
func TestDownloadResumesAfterDrops(t *testing.T) {
	data := randomBytes(7, 1<<20+12345)
	const cuts = 12
	cs := newCuttingServer(t, cuts, map[string][]byte{"app.bin": data})
	a := downloadAgent(t, t.TempDir(), cs, "app.bin", data)
	a.cfg.MaxRetries = 1 // every drop makes progress, so retries never pile up
	if err := a.download(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPartial(t, a, data)
	if len(cs.requests) != cuts+1 {
		t.Errorf("%d requests, want %d (one per cut plus the last)", len(cs.requests), cuts+1)
	}
	for i, r := range cs.requests[1:] {
		if !strings.Contains(r, "bytes=") || strings.Contains(r, "bytes=0-") || !strings.Contains(r, `"`) {
			t.Errorf("request %d after a drop = %q: want Range from a non-zero offset and If-Range", i+1, r)
		}
	}
	if cs.sent >= 2*int64(len(data)) || a.BytesReceived() >= 2*int64(len(data)) {
		t.Errorf("transferred %d bytes (agent counted %d) for a %d-byte file", cs.sent, a.BytesReceived(), len(data))
	}
	t.Logf("%d-byte file, %d cuts: %d bytes sent by the server (%.3f×)", len(data), cuts, cs.sent, float64(cs.sent)/float64(len(data)))
}

// A download interrupted by a reboot continues from the persisted offset in
// a new agent process.
func TestDownloadResumesAfterReboot(t *testing.T) {
	data := randomBytes(8, 300<<10)
	cs := newCuttingServer(t, 0, map[string][]byte{"app.bin": data})
	dir := t.TempDir()
	a := downloadAgent(t, dir, cs, "app.bin", data)
	ctx, cancel := context.WithCancel(context.Background())
	a.cfg.Progress = func(st Status) {
		if st.Details.BytesReceived > 150<<10 {
			cancel() // power goes off
		}
	}
	if err := a.download(ctx); err == nil {
		t.Fatal("download survived the power cut")
	}
	if a.State() != Downloading {
		t.Fatalf("state after cut = %s", a.State())
	}

	b := downloadAgent(t, dir, cs, "app.bin", data)
	persisted := b.Record().Offset
	if persisted < 100<<10 {
		t.Fatalf("persisted offset %d: checkpoints were not saved", persisted)
	}
	cs.requests = nil
	if err := b.download(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPartial(t, b, data)
	if want := fmt.Sprintf("bytes=%d-", persisted); len(cs.requests) != 1 || !strings.Contains(cs.requests[0], want) {
		t.Errorf("requests after reboot = %q, want one with %s", cs.requests, want)
	}
	if b.BytesReceived() != int64(len(data))-persisted {
		t.Errorf("after reboot received %d bytes, want %d", b.BytesReceived(), int64(len(data))-persisted)
	}
}

// When the file changes between attempts, If-Range makes the server send
// the whole new file and the agent starts over instead of splicing.
func TestDownloadRestartsWhenFileChanges(t *testing.T) {
	data := randomBytes(9, 200<<10)
	cs := newCuttingServer(t, 1, map[string][]byte{"app.bin": data})
	a := downloadAgent(t, t.TempDir(), cs, "app.bin", data)
	newer := randomBytes(10, 200<<10)
	a.cfg.Progress = func(st Status) {
		if st.Details.BytesReceived > 0 {
			cs.set("app.bin", newer)
		}
	}
	sum := sha256.Sum256(newer)
	a.rec.Artifact.SHA256 = sum[:]
	if err := a.download(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPartial(t, a, newer)
}

// quiet discards the agent's logs in tests.
var quiet = slog.New(slog.DiscardHandler)

// A server that stops sending without closing the connection is cut
// after StallTimeout and the download resumes on a new connection.
func TestDownloadResumesAfterStall(t *testing.T) {
	data := randomBytes(11, 256<<10)
	stalls := 2
	var mu sync.Mutex
	var ranges []string
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		stall := stalls > 0
		stalls--
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if !stall {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		sw := &stallWriter{ResponseWriter: w, after: 40 << 10, release: release}
		http.ServeContent(sw, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the stalled handlers
	cs := &cuttingServer{srv: srv}
	a := downloadAgent(t, t.TempDir(), cs, "app.bin", data)
	a.rec.Artifact.URL = srv.URL + "/app.bin"
	a.cfg.StallTimeout = 50 * time.Millisecond
	if err := a.download(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPartial(t, a, data)
	if len(ranges) < 3 || ranges[0] != "" {
		t.Errorf("ranges requested: %q, want a first full request and resumes", ranges)
	}
	for _, r := range ranges[1:] {
		if r == "" || r == "bytes=0-" {
			t.Errorf("a resume restarted from zero: %q", ranges)
		}
	}
}

// stallWriter sends after bytes, then blocks until release.
type stallWriter struct {
	http.ResponseWriter
	after   int
	n       int
	release chan struct{}
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.after {
		k := w.after - w.n
		w.ResponseWriter.Write(p[:k])
		http.NewResponseController(w.ResponseWriter).Flush()
		select {
		case <-w.release:
		case <-time.After(10 * time.Second):
		}
		return k, http.ErrHandlerTimeout
	}
	w.n += len(p)
	return w.ResponseWriter.Write(p)
}
