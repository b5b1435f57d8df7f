package http_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/otakit/otakit/internal/testutil"
)

// menderEnv is a fleet server with the Mender API on loopback. Hook, when
// set, sees every request before the server does.
type menderEnv struct {
	*env
	mu   sync.Mutex
	hook func(r *http.Request, body []byte)
	log  []string // "METHOD path status" of Mender device requests
}

func newMenderEnv(t *testing.T, auto bool) *menderEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s := &fleethttp.Server{Store: db, Blobs: bs, AdminToken: adminToken,
		Mender: &fleethttp.MenderOptions{AuthSets: db, AutoAccept: auto}}
	me := &menderEnv{}
	h := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if strings.HasPrefix(r.URL.Path, "/api/devices/") { // small bodies, maybe chunked
			body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		}
		me.mu.Lock()
		hook := me.hook
		me.mu.Unlock()
		if hook != nil && strings.HasPrefix(r.URL.Path, "/api/devices/") {
			hook(r, body)
		}
		rec := &statusRecorder{ResponseWriter: w, code: 200}
		h.ServeHTTP(rec, r)
		if strings.HasPrefix(r.URL.Path, "/api/devices/") {
			me.mu.Lock()
			me.log = append(me.log, fmt.Sprintf("%s %s %d %s", r.Method, r.URL.Path, rec.code, bytes.TrimSpace(body)))
			me.mu.Unlock()
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Mender requests:\n%s", strings.Join(me.requests(""), "\n"))
		}
	})
	me.env = &env{t: t, url: ts.URL, admin: fleethttp.NewClient(ts.URL, adminToken, nil), store: db,
		blobs: filepath.Join(dir, "blobs"), server: s}
	return me
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(c int) { r.code = c; r.ResponseWriter.WriteHeader(c) }

// ReadFrom keeps the server's sendfile path (its recorder expects it).
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	return r.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
}

func (me *menderEnv) requests(substr string) []string {
	me.mu.Lock()
	defer me.mu.Unlock()
	var out []string
	for _, l := range me.log {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func writeSingleFile(t *testing.T, name, deviceType, destDir string, payload []byte) string {
	t.Helper()
	return testutil.WriteSingleFileArtifact(t, t.TempDir(), name, deviceType, destDir, payload)
}

func waitFor(t *testing.T, mc *testutil.MenderClient, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testutil.WaitMender(t, mc, what, d, cond)
}

// publishMender publishes a release folder holding only the artifact.
func (me *menderEnv) publishMender(path string) *fleet.Release {
	me.t.Helper()
	dir := me.t.TempDir()
	b, err := os.ReadFile(path)
	if err != nil {
		me.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
	rel, err := me.admin.Publish(context.Background(), dir)
	if err != nil {
		me.t.Fatalf("publish %s: %v", path, err)
	}
	return rel
}

func (me *menderEnv) execution(dep string) *fleet.Execution {
	me.t.Helper()
	es, err := me.admin.DeploymentExecutions(context.Background(), dep)
	if err != nil || len(es) != 1 {
		me.t.Fatalf("executions of %s: %v, %v", dep, es, err)
	}
	return es[0]
}

func (me *menderEnv) deploy(rel, device string) string {
	me.t.Helper()
	d, err := me.admin.CreateDeployment(context.Background(), fleethttp.NewDeployment{Release: rel,
		Target: fleet.Target{Devices: []string{device}}})
	if err != nil {
		me.t.Fatal(err)
	}
	return d.ID
}

// TestMenderClient drives Debian's unmodified mender-client 3.4 daemon
// against the server: acceptance, a successful single-file update, a
// corrupted artifact reported as failure, and an abort answered with 409.
func TestMenderClient(t *testing.T) {
	me := newMenderEnv(t, false)
	ctx := context.Background()
	dest := t.TempDir()
	const devType = "otakit-qemu"
	mc := testutil.StartMenderClient(t, me.url, devType, "1.0.0", "52:54:00:12:34:56")
	wantID, _, _ := fleethttp.MenderDeviceID(`{"mac":"52:54:00:12:34:56"}`)

	// 1. The device asks to join and waits: 401 until an admin accepts.
	waitFor(t, mc, "a pending auth request", 30*time.Second, func() bool {
		as, err := me.admin.AuthSets(ctx, fleet.AuthPending)
		return err == nil && len(as) == 1
	})
	as, _ := me.admin.AuthSets(ctx, "")
	if as[0].DeviceID != wantID || !strings.Contains(as[0].PublicKey, "PUBLIC KEY") {
		t.Fatalf("auth set %+v, want device %s", as[0], wantID)
	}
	if got := me.requests("auth_requests 401"); len(got) == 0 {
		t.Fatalf("pending device was not refused with 401")
	}
	if _, err := me.admin.SetAuthStatus(ctx, wantID, "accept"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, mc, "inventory from the accepted device", 30*time.Second, func() bool {
		d, err := me.admin.Device(ctx, wantID)
		return err == nil && d.Attributes["device_type"] == devType && d.CurrentVersion == "1.0.0"
	})

	// 2. A single-file update installs and reports success.
	payload := make([]byte, 32<<10) // mender-client refuses artifacts under 4 KiB
	rand.Read(payload)
	rel := me.publishMender(writeSingleFile(t, "1.0.1", devType, dest, payload))
	if rel.Version != "1.0.1" {
		t.Fatalf("release version %q", rel.Version)
	}
	start := time.Now()
	dep := me.deploy(rel.ID, wantID)
	waitFor(t, mc, "success of "+dep, 45*time.Second, func() bool { return fleet.ExecFinal(me.execution(dep).State) })
	if e := me.execution(dep); e.State != fleet.ExecSuccess {
		t.Fatalf("execution %s: %s (%s)", dep, e.State, e.Error)
	}
	t.Logf("deployment created → success reported: %v (poll interval 1 s)", time.Since(start).Round(10*time.Millisecond))
	got, err := os.ReadFile(filepath.Join(dest, "app.bin"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("installed file differs from the payload (%v)", err)
	}
	if d, _ := me.admin.Deployment(ctx, dep); d.State != fleet.DeploymentCompleted {
		t.Errorf("deployment state %s", d.State)
	}
	for _, s := range []string{`"status":"downloading"`, `"status":"installing"`, `"status":"success"`} {
		if len(me.requests(s)) == 0 {
			t.Errorf("mender-client never reported %s", s)
		}
	}
	waitFor(t, mc, "the new artifact name in the inventory", 20*time.Second, func() bool {
		d, err := me.admin.Device(ctx, wantID)
		return err == nil && d.CurrentVersion == "1.0.1"
	})

	// 3. A corrupted artifact (the stored blob damaged after upload) is
	// reported as failure, with the client's log, and the file is kept.
	payload2 := bytes.Repeat([]byte("second version "), 4000)
	rel2 := me.publishMender(writeSingleFile(t, "1.0.2", devType, dest, payload2))
	corruptBlob(t, me.blobs, rel2.Artifacts[0].SHA256, []byte("second version"))
	dep2 := me.deploy(rel2.ID, wantID)
	waitFor(t, mc, "failure of "+dep2, 45*time.Second, func() bool { return fleet.ExecFinal(me.execution(dep2).State) })
	if e2 := me.execution(dep2); e2.State != fleet.ExecFailure {
		t.Fatalf("corrupted artifact: execution %s (%s)", e2.State, e2.Error)
	}
	waitFor(t, mc, "the deployment log of "+dep2, 20*time.Second, func() bool {
		return strings.Contains(me.execution(dep2).Error, "mender log:")
	})
	e2 := me.execution(dep2)
	if got, _ := os.ReadFile(filepath.Join(dest, "app.bin")); !bytes.Equal(got, payload) {
		t.Fatal("a failed update changed the installed file")
	}
	t.Logf("failure recorded: %s", e2.Error)

	// 4. A deployment aborted while the client works gets 409 and the
	// client stops: no install, no further status for it.
	payload3 := bytes.Repeat([]byte("third version "), 4000)
	rel3 := me.publishMender(writeSingleFile(t, "1.0.3", devType, dest, payload3))
	var (
		depMu sync.Mutex
		dep3  string
		once  sync.Once
	)
	me.mu.Lock()
	me.hook = func(r *http.Request, body []byte) {
		depMu.Lock()
		d := dep3
		depMu.Unlock()
		if d != "" && strings.Contains(r.URL.Path, d+"/status") && bytes.Contains(body, []byte("downloading")) {
			once.Do(func() {
				if _, err := me.admin.DeploymentAction(context.Background(), d, "cancel"); err != nil {
					t.Errorf("cancel: %v", err)
				}
			})
		}
	}
	me.mu.Unlock()
	d3 := me.deploy(rel3.ID, wantID)
	depMu.Lock()
	dep3 = d3
	depMu.Unlock()
	waitFor(t, mc, "409 for the aborted deployment", 45*time.Second, func() bool {
		return len(me.requests(dep3+"/status 409")) > 0
	})
	waitFor(t, mc, "the client to note the abort", 20*time.Second, func() bool {
		return strings.Contains(mc.Log(), "aborted")
	})
	time.Sleep(3 * time.Second) // several poll intervals
	if e := me.execution(dep3); e.State != fleet.ExecCanceled {
		t.Fatalf("aborted deployment: execution %s", e.State)
	}
	for _, l := range me.requests(dep3 + "/") {
		if !strings.Contains(l, " 409 ") && !strings.Contains(l, "/log ") {
			t.Errorf("request for the aborted deployment accepted: %s", l)
		}
		if strings.Contains(l, "installing") || strings.Contains(l, "success") {
			t.Errorf("client went on after the abort: %s", l)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "app.bin")); !bytes.Equal(got, payload) {
		t.Fatal("the aborted update changed the installed file")
	}
	if d, _ := me.admin.Device(ctx, wantID); d.CurrentVersion != "1.0.1" {
		t.Errorf("device version after abort %q", d.CurrentVersion)
	}
}

// corruptBlob flips one byte of the stored blob sum where marker occurs
// inside the artifact's data (its gzip stream, so look for a byte past the
// header instead when the marker is compressed away).
func corruptBlob(t *testing.T, dir, sum string, marker []byte) {
	t.Helper()
	var path string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(filepath.Base(p), sum) {
			path = p
		}
		return nil
	})
	if path == "" {
		t.Fatalf("blob %s not found under %s", sum, dir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("data/0000.tar"))
	if i < 0 {
		t.Fatal("no data/0000 in the artifact")
	}
	// Past the 512-byte tar header of data/0000 and the gzip header.
	b[i+512+200] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	if hex.EncodeToString(h[:]) == sum {
		t.Fatal("corruption did not change the blob")
	}
}
