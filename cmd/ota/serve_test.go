package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/internal/testutil"
)

// serveChildEnv makes the test binary act as the ota command, so crash
// tests can kill -9 a real `ota serve` process.
const serveChildEnv = "OTA_TEST_RUN_AS_OTA"

func init() {
	if os.Getenv(serveChildEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
}

type serveProc struct {
	cmd   *exec.Cmd
	url   string
	token string
	errb  *bytes.Buffer
}

var listenRE = regexp.MustCompile(`listening on (https?://\S+)`)

// startServe runs `ota serve` on a free loopback port with data in dir.
func startServe(t *testing.T, dir string, extra ...string) *serveProc {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--admin-token", "crash-admin"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), serveChildEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, token: "crash-admin", errb: &bytes.Buffer{}}
	cmd.Stderr = p.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	m := listenRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		p.kill()
		t.Fatalf("ota serve did not start: %q %v\nstderr: %s", line, err, p.errb)
	}
	go io.Copy(io.Discard, out)
	p.url = m[1]
	return p
}

// kill sends SIGKILL: no shutdown code runs.
func (p *serveProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31>>3) ^ seed
	}
	return b
}

func TestServeCrashDuringUpload(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir)
	ctx := context.Background()
	admin := fleethttp.NewClient(srv.url, srv.token, nil)
	img1 := pattern(200<<10, 1)
	if _, err := admin.Publish(ctx, testutil.WriteFleetRelease(t, testutil.FleetRelease{Version: "1.0.0", Image: img1})); err != nil {
		t.Fatal(err)
	}
	// A second upload streams slowly; the server dies in the middle.
	img2 := pattern(8<<20, 2)
	rel2 := testutil.WriteFleetRelease(t, testutil.FleetRelease{Version: "2.0.0", Image: img2})
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	upErr := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.url+"/api/v1/releases", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+srv.token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("upload finished: %s", resp.Status)
		}
		upErr <- err
	}()
	if err := fleethttp.WritePart(mw, "manifest.json", filepath.Join(rel2, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	part, _ := mw.CreateFormFile("file", "firmware-2.0.0.signed.bin")
	part.Write(img2[:3<<20]) // 3 of 8 MiB
	// Wait until the server holds a partial temporary file.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "tmp"))
		if len(ents) > 0 {
			if st, err := os.Stat(filepath.Join(dir, "blobs", "tmp", ents[0].Name())); err == nil && st.Size() > 1<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("upload never reached the server's temporary file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	pw.CloseWithError(errors.New("client gone"))
	<-upErr
	// A kill just after a blob was stored, before its release committed,
	// leaves an unreferenced blob; the restart reclaims it.
	orphan := []byte("artifact of an upload cut before its commit")
	orphanPath := filepath.Join(dir, "blobs", "sha256", sha(orphan)[:2], sha(orphan))
	os.MkdirAll(filepath.Dir(orphanPath), 0o755)
	if err := os.WriteFile(orphanPath, orphan, 0o644); err != nil {
		t.Fatal(err)
	}

	srv = startServe(t, dir)
	admin = fleethttp.NewClient(srv.url, srv.token, nil)
	rs, err := admin.Releases(ctx)
	if err != nil || len(rs) != 1 || rs[0].Version != "1.0.0" {
		t.Fatalf("after restart: releases %v, err %v", rs, err)
	}
	if _, err := os.Stat(orphanPath); !os.IsNotExist(err) {
		t.Fatalf("unreferenced blob not reclaimed: %v", err)
	}
	// No partial blob anywhere: every stored blob hashes to its name.
	if ents, _ := os.ReadDir(filepath.Join(dir, "blobs", "tmp")); len(ents) != 0 {
		t.Fatalf("temporary files left: %d", len(ents))
	}
	filepath.WalkDir(filepath.Join(dir, "blobs", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			if sha(b) != d.Name() {
				t.Errorf("blob %s holds other content", d.Name())
			}
			if d.Name() == sha(img2) {
				t.Errorf("the interrupted image became visible")
			}
		}
		return nil
	})
	// The committed release is whole and served.
	dev, err := admin.CreateDevice(ctx, fleethttp.NewDevice{ID: "d1", CurrentVersion: "0.9.0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.0.0", Target: fleet.Target{Devices: []string{"d1"}}}); err != nil {
		t.Fatal(err)
	}
	dc := fleethttp.NewDeviceClient(srv.url, dev.Token, nil)
	off, err := dc.CheckIn(ctx, fleet.CheckIn{CurrentVersion: "0.9.0"})
	if err != nil || !off.Update {
		t.Fatal(err, off)
	}
	var buf bytes.Buffer
	if _, _, err := dc.Download(ctx, off.Artifact.URL, 0, "", &buf); err != nil || !bytes.Equal(buf.Bytes(), img1) {
		t.Fatalf("download after restart: %v, %d bytes", err, buf.Len())
	}
	// And the interrupted release can be published again.
	if _, err := admin.Publish(ctx, rel2); err != nil {
		t.Fatal(err)
	}
}

func TestServeCrashDuringRollout(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir)
	ctx := context.Background()
	admin := fleethttp.NewClient(srv.url, srv.token, nil)
	img := pattern(1<<20, 3)
	if _, err := admin.Publish(ctx, testutil.WriteFleetRelease(t, testutil.FleetRelease{Version: "1.2.0", Image: img})); err != nil {
		t.Fatal(err)
	}
	var nds []fleethttp.NewDevice
	for i := range 6 {
		nds = append(nds, fleethttp.NewDevice{ID: fmt.Sprintf("k%d", i), Group: "crash", CurrentVersion: "1.1.0"})
	}
	provisioned, err := admin.CreateDevices(ctx, nds)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "crash"},
		Phases: []fleet.Phase{{Percent: 50}, {Percent: 50}}, AdvanceAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	clients := func(url string) []*fleethttp.DeviceClient {
		var cs []*fleethttp.DeviceClient
		for _, p := range provisioned {
			cs = append(cs, fleethttp.NewDeviceClient(url, p.Token, nil))
		}
		return cs
	}
	finish := func(c *fleethttp.DeviceClient, off *fleethttp.CheckInResponse) {
		t.Helper()
		for _, st := range []string{"VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "CONFIRMED"} {
			if _, err := c.Report(ctx, off.Deployment, fleet.Status{State: st, Progress: 100, Version: off.Version}); err != nil {
				t.Fatalf("report %s: %v", st, err)
			}
		}
	}
	var phase1 []int
	offers := map[int]*fleethttp.CheckInResponse{}
	for i, c := range clients(srv.url) {
		off, err := c.CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if off.Update {
			phase1 = append(phase1, i)
			offers[i] = off
		}
	}
	if len(phase1) != 3 {
		t.Fatalf("phase 1 has %d devices", len(phase1))
	}
	cs := clients(srv.url)
	for _, i := range phase1[:2] {
		finish(cs[i], offers[i])
	}
	// The third is half way through its download when the server dies.
	third := phase1[2]
	cw := &bytes.Buffer{}
	if _, _, err := cs[third].Download(ctx, offers[third].Artifact.URL, 0, "", &limitWriter{cw, 400 << 10}); err == nil {
		t.Fatal("download was not cut")
	}
	if _, err := cs[third].Report(ctx, dep.ID, fleet.Status{State: "DOWNLOADING", Progress: 39,
		Details: fleet.StatusDetails{BytesReceived: int64(cw.Len()), TotalBytes: int64(len(img))}}); err != nil {
		t.Fatal(err)
	}
	srv.kill()

	srv = startServe(t, dir)
	admin = fleethttp.NewClient(srv.url, srv.token, nil)
	cs = clients(srv.url)
	d, err := admin.Deployment(ctx, dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != fleet.DeploymentRunning || d.CurrentPhase != 0 || d.Stats.States[fleet.ExecSuccess] != 2 ||
		d.Stats.States[fleet.ExecDownloading] != 1 {
		t.Fatalf("after restart: %s phase %d %v", d.State, d.CurrentPhase, d.Stats.States)
	}
	// The cut device resumes where it was and finishes.
	off, err := cs[third].CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.1.0"})
	if err != nil || !off.Update || off.State != fleet.ExecDownloading {
		t.Fatalf("resume offer: %v %+v", err, off)
	}
	if _, _, err := cs[third].Download(ctx, off.Artifact.URL, int64(cw.Len()), `"`+off.Artifact.SHA256+`"`, cw); err != nil ||
		!bytes.Equal(cw.Bytes(), img) {
		t.Fatalf("resumed download: %v", err)
	}
	finish(cs[third], off)
	// The rollout continues into phase 2 and completes.
	for i, c := range cs {
		if i == phase1[0] || i == phase1[1] || i == third {
			continue
		}
		off, err := c.CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.1.0"})
		if err != nil || !off.Update {
			t.Fatalf("phase 2 device %d: %v %+v", i, err, off)
		}
		if _, err := c.Report(ctx, off.Deployment, fleet.Status{State: "DOWNLOADING"}); err != nil {
			t.Fatal(err)
		}
		finish(c, off)
	}
	if d, _ = admin.Deployment(ctx, dep.ID); d.State != fleet.DeploymentCompleted || d.Stats.States[fleet.ExecSuccess] != 6 {
		t.Fatalf("end: %s %v", d.State, d.Stats.States)
	}
	// Graceful shutdown on SIGTERM exits 0.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM shutdown: %v\n%s", err, srv.errb)
	}
	if !strings.Contains(srv.errb.String(), "shutting down") {
		t.Fatalf("no shutdown log: %s", srv.errb)
	}
}

// limitWriter fails after n bytes, like a dropped connection.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		k, _ := l.w.Write(p[:l.n])
		l.n = 0
		return k, errors.New("connection cut")
	}
	l.n -= len(p)
	return l.w.Write(p)
}
