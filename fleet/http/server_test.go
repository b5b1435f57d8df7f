package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/otakit/otakit/internal/testutil"
)

const adminToken = "test-admin-token"

type env struct {
	t      *testing.T
	url    string
	admin  *fleethttp.Client
	store  *sqlite.DB
	blobs  string
	server *fleethttp.Server
}

func newEnv(t *testing.T, tweak ...func(*fleethttp.Server)) *env {
	t.Helper()
	e := newEnvB(t, tweak...)
	e.t = t
	return e
}

func newEnvB(t testing.TB, tweak ...func(*fleethttp.Server)) *env {
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
	s := &fleethttp.Server{Store: db, Blobs: bs, AdminToken: adminToken}
	for _, f := range tweak {
		f(s)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{url: ts.URL, admin: fleethttp.NewClient(ts.URL, adminToken, nil), store: db,
		blobs: filepath.Join(dir, "blobs"), server: s}
}

// device is a lightweight simulated device speaking the device API.
type device struct {
	id, version string
	c           *fleethttp.DeviceClient
}

func (e *env) devices(n int, group, version string, extra func(i int, d *fleethttp.NewDevice)) []*device {
	e.t.Helper()
	var list []fleethttp.NewDevice
	for i := range n {
		d := fleethttp.NewDevice{ID: fmt.Sprintf("%s-%03d", group, i), Group: group, CurrentVersion: version,
			HardwareRevision: "rev-b", BootloaderVersion: "2.0.0"}
		if extra != nil {
			extra(i, &d)
		}
		list = append(list, d)
	}
	ps, err := e.admin.CreateDevices(context.Background(), list)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]*device, len(ps))
	for i, p := range ps {
		out[i] = &device{id: p.ID, version: version, c: fleethttp.NewDeviceClient(e.url, p.Token, nil)}
	}
	return out
}

func (d *device) checkIn(t *testing.T) *fleethttp.CheckInResponse {
	t.Helper()
	r, err := d.c.CheckIn(context.Background(), fleet.CheckIn{CurrentVersion: d.version, HardwareRevision: "rev-b", BootloaderVersion: "2.0.0"})
	if err != nil {
		t.Fatalf("%s check-in: %v", d.id, err)
	}
	return r
}

// update runs a whole update: check in, download, report states, and
// CONFIRMED or FAILED at the end.
func (d *device) update(t *testing.T, ok bool) {
	t.Helper()
	r := d.checkIn(t)
	if !r.Update {
		t.Fatalf("%s: no offer", d.id)
	}
	ctx := context.Background()
	var buf bytes.Buffer
	if _, _, err := d.c.Download(ctx, r.Artifact.URL, 0, "", &buf); err != nil {
		t.Fatalf("%s download: %v", d.id, err)
	}
	if int64(buf.Len()) != r.Artifact.Size {
		t.Fatalf("%s: downloaded %d bytes, want %d", d.id, buf.Len(), r.Artifact.Size)
	}
	steps := []string{"DOWNLOADING", "VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "CONFIRMED"}
	if !ok {
		steps = []string{"DOWNLOADING", "VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "REVERTING", "FAILED"}
	}
	for _, st := range steps {
		s := fleet.Status{State: st, Progress: 100, Version: r.Version,
			Details: fleet.StatusDetails{BytesReceived: int64(buf.Len()), TotalBytes: r.Artifact.Size, DownloadSpeed: 1000}}
		if st == "FAILED" {
			s.Error = "health check failed"
		}
		if _, err := d.c.Report(ctx, r.Deployment, s); err != nil {
			t.Fatalf("%s report %s: %v", d.id, st, err)
		}
	}
	if ok {
		d.version = r.Version
	}
}

func (e *env) publish(r testutil.FleetRelease) *fleet.Release {
	e.t.Helper()
	rel, err := e.admin.Publish(context.Background(), testutil.WriteFleetRelease(e.t, r))
	if err != nil {
		e.t.Fatal(err)
	}
	return rel
}

func (e *env) deployment(id string) *fleet.Deployment {
	e.t.Helper()
	d, err := e.admin.Deployment(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func image(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func TestPhasedRolloutAutoAdvanceAndAutoPause(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(5000, 1)})
	devs := e.devices(10, "line1", "1.1.0", nil)
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "line1"},
		Phases: []fleet.Phase{{Count: 2}, {Percent: 30}, {Percent: 50}}, AdvanceAt: 1, PauseAt: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if dep.State != fleet.DeploymentRunning || dep.Stats.Total != 10 || len(dep.Stats.Phases) != 3 ||
		dep.Stats.Phases[0].Total != 2 || dep.Stats.Phases[1].Total != 3 || dep.Stats.Phases[2].Total != 5 {
		t.Fatalf("deployment = %+v, stats %+v", dep, dep.Stats)
	}
	phases := map[int][]*device{}
	execs, err := e.admin.DeploymentExecutions(ctx, dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*device{}
	for _, d := range devs {
		byID[d.id] = d
	}
	for _, x := range execs {
		phases[x.Phase] = append(phases[x.Phase], byID[x.DeviceID])
	}
	// Only phase 1 is offered.
	for _, d := range append(phases[1], phases[2]...) {
		if r := d.checkIn(t); r.Update {
			t.Fatalf("%s in a later phase got an offer", d.id)
		}
	}
	phases[0][0].update(t, true)
	if d := e.deployment(dep.ID); d.CurrentPhase != 0 {
		t.Fatalf("advanced after 1/2 successes: phase %d", d.CurrentPhase)
	}
	phases[0][1].update(t, true)
	if d := e.deployment(dep.ID); d.CurrentPhase != 1 || d.State != fleet.DeploymentRunning {
		t.Fatalf("after phase 1 succeeded: phase %d state %s", d.CurrentPhase, d.State)
	}
	// Phase 2: one failure is 1/5 = 20% ≤ 25%, the second 2/5 = 40% pauses.
	phases[1][0].update(t, false)
	if d := e.deployment(dep.ID); d.State != fleet.DeploymentRunning {
		t.Fatalf("paused at 20%% failures: %s (%s)", d.State, d.Reason)
	}
	phases[1][1].update(t, false)
	d := e.deployment(dep.ID)
	if d.State != fleet.DeploymentPaused || !strings.Contains(d.Reason, "failure rate") {
		t.Fatalf("not auto-paused at 40%% failures: %s (%s)", d.State, d.Reason)
	}
	if d.Stats.Phases[1].Failure != 2 || d.Stats.States[fleet.ExecFailure] != 2 {
		t.Fatalf("stats = %+v", d.Stats)
	}
	if r := phases[1][2].checkIn(t); r.Update {
		t.Fatal("paused deployment made a new offer")
	}
	if _, err := e.admin.DeploymentAction(ctx, dep.ID, "resume"); err != nil {
		t.Fatal(err)
	}
	phases[1][2].update(t, true)
	// Phase 2 finished with 1/3 successes, below advanceAt: paused again.
	d = e.deployment(dep.ID)
	if d.State != fleet.DeploymentPaused || d.CurrentPhase != 1 {
		t.Fatalf("phase 2 below threshold: %s phase %d (%s)", d.State, d.CurrentPhase, d.Reason)
	}
	// The operator resumes anyway: phase 3 starts.
	if d, err = e.admin.DeploymentAction(ctx, dep.ID, "resume"); err != nil || d.CurrentPhase != 2 {
		t.Fatalf("resume: %v, phase %d", err, d.CurrentPhase)
	}
	for _, dv := range phases[2] {
		dv.update(t, true)
	}
	d = e.deployment(dep.ID)
	if d.State != fleet.DeploymentCompleted || d.Stats.States[fleet.ExecSuccess] != 8 || d.Stats.States[fleet.ExecFailure] != 2 {
		t.Fatalf("end: %s %+v", d.State, d.Stats)
	}
	// History of a failed device has every state, in order.
	hist, err := e.admin.DeviceExecutions(ctx, phases[1][0].id)
	if err != nil || len(hist) != 1 {
		t.Fatal(err, hist)
	}
	var states []string
	for _, ev := range hist[0].History {
		states = append(states, ev.State)
	}
	if got := strings.Join(states, ","); got != "offered,downloading,verifying,applying,pending_reboot,testing,failure" {
		t.Fatalf("history = %s", got)
	}
	if hist[0].Error != "health check failed" {
		t.Fatalf("error = %q", hist[0].Error)
	}
	if dv, _ := e.admin.Device(ctx, phases[2][0].id); dv.CurrentVersion != "1.2.0" || dv.State != "CONFIRMED" {
		t.Fatalf("device after update: %+v", dv)
	}
}

func TestDeltaSelectionByCurrentVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(8000, 2),
		Deltas:           map[string][]byte{"1.1.0": image(300, 3), "1.0.0": image(700, 4)},
		HardwareRevision: []string{"rev-a", "rev-b"}, MinBootloaderVersion: "1.5.0"})
	vers := []string{"1.1.0", "1.0.0", "0.9.0", "1.1.0", "1.1.0"}
	devs := e.devices(5, "mix", "", func(i int, d *fleethttp.NewDevice) { d.CurrentVersion = vers[i] })
	for i, d := range devs {
		d.version = vers[i]
	}
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "mix"}, AdvanceAt: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]struct{ kind, from string }{0: {"delta", "1.1.0"}, 1: {"delta", "1.0.0"}, 2: {"full", ""}}
	for i, w := range want {
		r := devs[i].checkIn(t)
		if !r.Update || r.Artifact.Kind != w.kind || r.Artifact.FromVersion != w.from || r.Version != "1.2.0" {
			t.Fatalf("device on %s: offer %+v", vers[i], r.Artifact)
		}
		if !bytes.Contains(r.Manifest, []byte(`"signatures"`)) {
			t.Fatalf("manifest not served verbatim: %s", r.Manifest)
		}
		var buf bytes.Buffer
		if _, _, err := devs[i].c.Download(ctx, r.Artifact.URL, 0, "", &buf); err != nil || int64(buf.Len()) != r.Artifact.Size {
			t.Fatalf("download %s: %v (%d bytes)", r.Artifact.Name, err, buf.Len())
		}
	}
	// Incompatible hardware and an old bootloader: never offered, skipped.
	r, err := devs[3].c.CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.1.0", HardwareRevision: "rev-z", BootloaderVersion: "2.0.0"})
	if err != nil || r.Update {
		t.Fatalf("incompatible hardware offered: %v %+v", err, r)
	}
	r, err = devs[4].c.CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.1.0", HardwareRevision: "rev-a", BootloaderVersion: "1.4.9"})
	if err != nil || r.Update {
		t.Fatalf("old bootloader offered: %v %+v", err, r)
	}
	d := e.deployment(dep.ID)
	if d.Stats.States[fleet.ExecSkipped] != 2 || d.Stats.States[fleet.ExecOffered] != 3 {
		t.Fatalf("stats = %+v", d.Stats.States)
	}
	// A skipped device cannot download the release either.
	off := devs[0].checkIn(t)
	if _, _, err := devs[3].c.Download(ctx, off.Artifact.URL, 0, "", io.Discard); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("skipped device downloaded: %v", err)
	}
}

// cutWriter fails after n bytes, like a dropped connection.
type cutWriter struct {
	buf bytes.Buffer
	n   int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.n {
		k := c.n - c.buf.Len()
		c.buf.Write(p[:k])
		return k, errors.New("connection cut")
	}
	return c.buf.Write(p)
}

func TestResumeCutDownload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := image(3<<20, 5)
	e.publish(testutil.FleetRelease{Version: "2.0.0", Image: img})
	d := e.devices(1, "r", "1.0.0", nil)[0]
	if _, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "2.0.0", Target: fleet.Target{Devices: []string{d.id}}}); err != nil {
		t.Fatal(err)
	}
	r := d.checkIn(t)
	cw := &cutWriter{n: 1234567}
	_, etag, err := d.c.Download(ctx, r.Artifact.URL, 0, "", cw)
	if err == nil || etag == "" {
		t.Fatalf("cut download: err %v etag %q", err, etag)
	}
	got := cw.buf.Bytes()
	n, etag2, err := d.c.Download(ctx, r.Artifact.URL, int64(len(got)), etag, &cw.buf)
	if err != nil || etag2 != etag || n != int64(len(img)-1234567) {
		t.Fatalf("resume: n=%d err=%v etag %q/%q", n, err, etag2, etag)
	}
	if !bytes.Equal(cw.buf.Bytes(), img) {
		t.Fatal("resumed download differs from the image")
	}
	// ETag revalidation and a stale If-Range.
	req, _ := http.NewRequest("GET", e.url+r.Artifact.URL, nil)
	req.Header.Set("Authorization", "Bearer "+d.c.Token)
	req.Header.Set("If-None-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	if _, _, err := d.c.Download(ctx, r.Artifact.URL, 10, `"stale"`, io.Discard); !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("stale If-Range resumed: %v", err)
	}
}

func TestCancelMidRollout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(4000, 6)})
	devs := e.devices(6, "c", "1.1.0", nil)
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "c"},
		Phases: []fleet.Phase{{Percent: 50}, {Percent: 50}}, AdvanceAt: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	var first []*device
	for _, d := range devs {
		if d.checkIn(t).Update {
			first = append(first, d)
		}
	}
	if len(first) != 3 {
		t.Fatalf("%d offers in phase 1, want 3", len(first))
	}
	first[0].update(t, true)
	first[1].update(t, true) // 2/3 ≥ 50%: phase 2 released
	r := first[2].checkIn(t)
	if _, err := first[2].c.Report(ctx, dep.ID, fleet.Status{State: "DOWNLOADING", Progress: 40,
		Details: fleet.StatusDetails{BytesReceived: 1600, TotalBytes: 4000, DownloadSpeed: 800}}); err != nil {
		t.Fatal(err)
	}
	if d := e.deployment(dep.ID); d.CurrentPhase != 1 {
		t.Fatalf("phase %d", d.CurrentPhase)
	}
	d, err := e.admin.DeploymentAction(ctx, dep.ID, "cancel")
	if err != nil || d.State != fleet.DeploymentCanceled {
		t.Fatalf("cancel: %v %+v", err, d)
	}
	if d.Stats.States[fleet.ExecSuccess] != 2 || d.Stats.States[fleet.ExecCanceled] != 4 {
		t.Fatalf("stats after cancel: %+v", d.Stats.States)
	}
	for _, dv := range devs {
		if r := dv.checkIn(t); r.Update {
			t.Fatalf("%s offered after cancel", dv.id)
		}
	}
	if _, err := first[2].c.Report(ctx, dep.ID, fleet.Status{State: "DOWNLOADING", Progress: 50}); !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("report after cancel: %v, want 409", err)
	}
	if _, _, err := first[2].c.Download(ctx, r.Artifact.URL, 0, "", io.Discard); !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("download after cancel: %v, want 409", err)
	}
	if _, err := e.admin.DeploymentAction(ctx, dep.ID, "resume"); !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("resume canceled: %v", err)
	}
}

func TestDeviceIsolationAndAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(1000, 7)})
	devs := e.devices(2, "iso", "1.1.0", nil)
	a, b := devs[0], devs[1]
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Devices: []string{a.id}}})
	if err != nil {
		t.Fatal(err)
	}
	ra := a.checkIn(t)
	if !ra.Update {
		t.Fatal("a not offered")
	}
	if rb := b.checkIn(t); rb.Update {
		t.Fatal("b offered a's deployment")
	}
	if _, _, err := b.c.Download(ctx, ra.Artifact.URL, 0, "", io.Discard); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("b read a's artifact: %v", err)
	}
	if _, err := b.c.Report(ctx, dep.ID, fleet.Status{State: "FAILED"}); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("b reported on a's deployment: %v", err)
	}
	if hist, err := b.c.Executions(ctx); err != nil || len(hist) != 0 {
		t.Fatalf("b sees history %v %v", hist, err)
	}
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", e.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{ra.ManifestURL, b.c.Token, 404},
		{ra.ManifestURL, a.c.Token, 200},
		{ra.ManifestURL, "", 401},
		{ra.ManifestURL, "otd_forged", 403},
		{ra.ManifestURL, adminToken, 403},
		{"/api/v1/device/executions", "", 401},
		{"/api/v1/releases", "", 401},
		{"/api/v1/releases", "wrong", 403},
		{"/api/v1/releases", a.c.Token, 403},
		{"/api/v1/devices/" + a.id, adminToken, 200},
		{"/api/v1/device/deployments/" + dep.ID + "/artifacts/../../releases", a.c.Token, 404},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	// Unauthenticated writes are refused too.
	resp, _ := http.Post(e.url+"/api/v1/device/checkin", "application/json", strings.NewReader(`{}`))
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous check-in: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

// rawUpload posts files (name -> content) as a release upload.
func rawUpload(t *testing.T, url string, files [][2]string) int {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="file"; filename="%s"`, f[0])}
		w, _ := mw.CreatePart(h)
		w.Write([]byte(f[1]))
	}
	mw.Close()
	req, _ := http.NewRequest("POST", url+"/api/v1/releases", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func countBlobs(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func TestHostileInputChangesNothing(t *testing.T) {
	e := newEnv(t, func(s *fleethttp.Server) { s.MaxUpload = 64 << 10; s.MaxJSON = 4 << 10 })
	ctx := context.Background()
	img := "firmware-bytes"
	sum := "sha256:" + testutilSHA(img)
	manifest := func(file string, size int, hash string) string {
		return fmt.Sprintf(`{"version":"3.0.0","images":[{"slot":1,"file":%q,"size":%d,"hash":%q}]}`, file, size, hash)
	}
	cases := []struct {
		name  string
		files [][2]string
		want  int
	}{
		{"dotdot name", [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}, {"../fw.bin", img}}, 400},
		{"absolute name", [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}, {"/etc/fw.bin", img}}, 400},
		{"dotdot in manifest", [][2]string{{"manifest.json", manifest("../fw.bin", len(img), sum)}, {"fw.bin", img}}, 400},
		{"size mismatch", [][2]string{{"manifest.json", manifest("fw.bin", len(img)+1, sum)}, {"fw.bin", img}}, 400},
		{"hash mismatch", [][2]string{{"manifest.json", manifest("fw.bin", len(img), "sha256:"+strings.Repeat("0", 64))}, {"fw.bin", img}}, 400},
		{"missing file", [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}}, 400},
		{"malformed manifest", [][2]string{{"manifest.json", `{"version":`}, {"fw.bin", img}}, 400},
		{"no manifest", [][2]string{{"fw.bin", img}}, 400},
		{"oversized", [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}, {"fw.bin", img}, {"big.bin", strings.Repeat("x", 100<<10)}}, 413},
	}
	for _, c := range cases {
		if got := rawUpload(t, e.url, c.files); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
		if rs, _ := e.admin.Releases(ctx); len(rs) != 0 {
			t.Fatalf("%s: a release was stored", c.name)
		}
		if n := countBlobs(t, e.blobs); n != 0 {
			t.Fatalf("%s: %d blobs left behind", c.name, n)
		}
	}
	// The same upload, correct, is accepted.
	if got := rawUpload(t, e.url, [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}, {"fw.bin", img}}); got != 201 {
		t.Fatalf("good upload: %d", got)
	}
	// Publishing the same version again conflicts and keeps the first.
	if got := rawUpload(t, e.url, [][2]string{{"manifest.json", manifest("fw.bin", len(img), sum)}, {"fw.bin", img}}); got != 409 {
		t.Fatalf("duplicate upload: %d", got)
	}
	if n := countBlobs(t, e.blobs); n != 1 {
		t.Fatalf("blobs after duplicate upload: %d", n)
	}
	// Malformed and oversized JSON bodies.
	post := func(path, body string) int {
		req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/devices", `{"id":"x"`, 400},
		{"/api/v1/devices", `{"id":"../x"}`, 400},
		{"/api/v1/devices", `[{"id":"a"},{"id":"a"}]`, 409},
		{"/api/v1/devices", `{"id":"` + strings.Repeat("a", 8<<10) + `"}`, 413},
		{"/api/v1/deployments", `{"release":"3.0.0","target":{"group":"none"}}`, 400},
		{"/api/v1/deployments", `{"release":"9.9.9","target":{"group":"g"}}`, 400},
		{"/api/v1/deployments", `not json`, 400},
		{"/api/v1/deployments", `{"release":"3.0.0","target":{"group":"g"},"phases":[{"percent":50,"count":2}]}`, 400},
	} {
		if got := post(c.path, c.body); got != c.want {
			t.Errorf("POST %s %.40q: %d, want %d", c.path, c.body, got, c.want)
		}
	}
	if ds, _ := e.admin.Devices(ctx, "", ""); len(ds) != 0 {
		t.Fatalf("devices created by bad requests: %d", len(ds))
	}
	if ds, _ := e.admin.Deployments(ctx); len(ds) != 0 {
		t.Fatalf("deployments created by bad requests: %d", len(ds))
	}
	// Device-side bad input.
	d := e.devices(1, "g", "1.0.0", nil)[0]
	for _, body := range []string{`{"currentVersion":`, `{"state":"EXPLODED"}`, `{"state":"DOWNLOADING","progress":101}`} {
		req, _ := http.NewRequest("POST", e.url+"/api/v1/device/checkin", strings.NewReader(body))
		if strings.Contains(body, "state") {
			req.URL.Path = "/api/v1/device/deployments/dep-x/status"
		}
		req.Header.Set("Authorization", "Bearer "+d.c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("device %s: %d, want 400", body, resp.StatusCode)
		}
	}
}

func TestScheduledDeploymentStartsOnTime(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(100, 8)})
	d := e.devices(1, "s", "1.1.0", nil)[0]
	start := time.Now().Add(time.Hour)
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "s"}, StartAt: start})
	if err != nil || dep.State != fleet.DeploymentScheduled {
		t.Fatalf("%v %+v", err, dep)
	}
	if d.checkIn(t).Update {
		t.Fatal("offered before the scheduled start")
	}
	if err := e.store.StartDue(ctx, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !d.checkIn(t).Update {
		t.Fatal("not offered after the scheduled start")
	}
}

func testutilSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
