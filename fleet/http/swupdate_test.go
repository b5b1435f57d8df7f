package http_test

// End-to-end test of the hawkBit DDI against the real, unmodified SWUpdate
// from Debian (suricatta mode): it polls, downloads a CMS-signed .swu,
// verifies and installs it into a file, and reports back.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
)

// cpioNewc writes a cpio "newc" archive (the format SWUpdate reads) of the
// files in order, each a regular file.
func cpioNewc(files [][2][]byte) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	entry := func(name string, data []byte, mode, nlink int) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			len(files), mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name)
		b.WriteByte(0)
		pad()
		b.Write(data)
		pad()
	}
	for _, f := range files {
		entry(string(f[0]), f[1], 0o100644, 1)
	}
	entry("TRAILER!!!", nil, 0, 1)
	return b.Bytes()
}

func runCmd(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// swuKit is a test CA, a signing certificate and the key, made by openssl.
type swuKit struct{ dir string }

func newSWUKit(t *testing.T) *swuKit {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not installed (scripts/test-deps.sh installs it)")
	}
	k := &swuKit{dir: t.TempDir()}
	runCmd(t, k.dir, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
		"-days", "2", "-subj", "/CN=otakit test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
	runCmd(t, k.dir, "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "sign.key", "-out", "sign.csr", "-subj", "/CN=otakit signer")
	os.WriteFile(filepath.Join(k.dir, "ext"), []byte("keyUsage=digitalSignature\nextendedKeyUsage=emailProtection\n"), 0o644)
	runCmd(t, k.dir, "openssl", "x509", "-req", "-in", "sign.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
		"-out", "sign.crt", "-days", "2", "-extfile", "ext")
	return k
}

// build returns a .swu installing image into target with SWUpdate's
// "files" type (the rawfile handler). sw-description is signed with
// openssl cms; SWUpdate checks it against the CA and the image's sha256.
func (k *swuKit) build(t *testing.T, version, target string, image []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(image)
	desc := fmt.Sprintf(`software =
{
	version = "%s";
	hardware-compatibility: [ "1.0" ];
	files: (
		{
			filename = "image.bin";
			path = "%s";
			sha256 = "%s";
		}
	);
}
`, version, target, hex.EncodeToString(sum[:]))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sw-description"), []byte(desc), 0o644)
	runCmd(t, dir, "openssl", "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig",
		"-signer", filepath.Join(k.dir, "sign.crt"), "-inkey", filepath.Join(k.dir, "sign.key"),
		"-outform", "DER", "-nosmimecap", "-binary")
	sig, err := os.ReadFile(filepath.Join(dir, "sw-description.sig"))
	if err != nil {
		t.Fatal(err)
	}
	return cpioNewc([][2][]byte{
		{[]byte("sw-description"), []byte(desc)},
		{[]byte("sw-description.sig"), sig},
		{[]byte("image.bin"), image},
	})
}

// syncBuf collects a child's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// swupdate is one run of the Debian swupdate binary in suricatta mode, in
// its own process group, with TMPDIR (its sockets) and its configuration
// in temporary folders, so it never touches the system's.
type swupdate struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

func startSWUpdate(t *testing.T, k *swuKit, url, device, token string, extra ...string) *swupdate {
	t.Helper()
	bin, err := exec.LookPath("swupdate")
	if err != nil {
		t.Fatal("swupdate not installed (scripts/test-deps.sh installs Debian's swupdate)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "swupdate.cfg")
	os.WriteFile(cfg, []byte(`globals :
{
	verbose = true;
	loglevel = 6;
};
identify : (
	{ name = "board"; value = "otakit-test"; },
	{ name = "serial"; value = "`+device+`"; }
);
`), 0o644)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)
	suri := strings.Join(append([]string{"-t", fleethttp.DefaultTenant, "-i", device, "-u", url, "-k", token, "-r", "2", "-w", "1"}, extra...), " ")
	// Debian runs swupdate from systemd, whose IgnoreSIGPIPE=yes default
	// leaves SIGPIPE ignored; so does this test (the shell's trap is
	// inherited across exec). Without it, SWUpdate 2022.12 can die of
	// SIGPIPE when a canceled download closes its installer stream.
	cmd := exec.Command("/bin/sh", "-c", `trap "" PIPE; exec "$0" "$@"`,
		bin, "-f", cfg, "-l", "6", "-v", "-k", filepath.Join(k.dir, "ca.crt"), "-H", "board:1.0", "-u", suri)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &swupdate{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	return s
}

// stop ends the run's process group: SIGTERM, then SIGKILL.
func (s *swupdate) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	pg := s.cmd.Process.Pid
	syscall.Kill(-pg, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pg, syscall.SIGKILL)
		<-s.done
	}
	syscall.Kill(-pg, syscall.SIGKILL) // helpers that outlived the main process
}

func waitForSWUpdate(t *testing.T, sw *swupdate, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond)) }()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		select {
		case <-sw.done:
			if cond() {
				return
			}
			t.Fatalf("swupdate exited (%v) while waiting for %s:\n%s", sw.cmd.ProcessState, what, tail(sw.out.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; swupdate log:\n%s", what, tail(sw.out.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string) string {
	if len(s) > 12000 {
		return "…" + s[len(s)-12000:]
	}
	return s
}

func execOf(t *testing.T, e *env, dep string) *fleet.Execution {
	t.Helper()
	es, err := e.store.Executions(context.Background(), fleet.ExecutionFilter{DeploymentID: dep})
	if err != nil || len(es) != 1 {
		t.Fatalf("executions of %s: %v %d", dep, err, len(es))
	}
	full, err := e.store.Execution(context.Background(), es[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

func hasNote(e *fleet.Execution, sub string) bool {
	for _, ev := range e.History {
		if strings.Contains(ev.Message, sub) {
			return true
		}
	}
	return false
}

func TestSWUpdateSuricatta(t *testing.T) {
	k := newSWUKit(t)
	// The download of the third release is held back until the test has
	// canceled its deployment, so the cancel lands mid-way.
	var hold sync.Mutex
	holdName, held, holdBody := "", false, []byte(nil)
	release, canceled := make(chan struct{}), make(chan struct{})
	e := newEnv(t, func(s *fleethttp.Server) { s.PollSeconds = 1 })
	inner := e.server.Handler()
	mid := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold.Lock()
		h := holdName
		hold.Unlock()
		if h != "" && strings.Contains(r.URL.Path, "/softwaremodules/"+h+"/") {
			hold.Lock()
			held = true
			body := holdBody
			hold.Unlock()
			// Send a first part, then trickle: SWUpdate checks for a
			// cancel while it receives data.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:64<<10])
			w.(http.Flusher).Flush()
			for off := 64 << 10; off < len(body); off += 512 {
				select {
				case <-release:
					w.Write(body[off:])
					return
				case <-r.Context().Done():
					return
				case <-canceled:
					// The server drops a canceled action's download.
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := w.Write(body[off:min(off+512, len(body))]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(mid.Close)

	dev := e.devices(1, "swu", "", nil)[0]
	token := dev.c.Token
	work := t.TempDir()
	target := filepath.Join(work, "rootfs.img")

	// 1. A good update: installed, then confirmed after the "reboot".
	img := image(200_000, 3)
	rel := e.publishFile("1.0.1", "update.swu", k.build(t, "1.0.1", target, img))
	dep := e.deploy(rel.ID, dev.id)
	sw := startSWUpdate(t, k, mid.URL, dev.id, token)
	waitForSWUpdate(t, sw, "install", func() bool {
		got, _ := os.ReadFile(target)
		return bytes.Equal(got, img) && hasNote(execOf(t, e, dep.ID), "All Chunks Installed")
	})
	sw.stop()
	ex := execOf(t, e, dep.ID)
	if ex.State != fleet.ExecDownloading || ex.Progress != 100 {
		t.Errorf("after install, before confirmation: %s %d%%", ex.State, ex.Progress)
	}
	if d, _ := e.store.Device(context.Background(), dev.id); d.Attributes["board"] != "otakit-test" {
		t.Errorf("configData from swupdate.cfg identify not stored: %v", d.Attributes)
	}
	// SWUpdate reports the result after a reboot; without a bootloader
	// state, -c 2 tells it the new image is good.
	sw = startSWUpdate(t, k, mid.URL, dev.id, token, "-c", "2")
	waitForSWUpdate(t, sw, "success", func() bool { return execOf(t, e, dep.ID).State == fleet.ExecSuccess })
	sw.stop()
	ex = execOf(t, e, dep.ID)
	if ex.Progress != 100 || !hasNote(ex, "Update Installed") {
		t.Errorf("success: progress %d, history %+v", ex.Progress, ex.History)
	}
	if d := e.deployment(dep.ID); d.Stats.States[fleet.ExecSuccess] != 1 || d.State != fleet.DeploymentCompleted {
		t.Errorf("deployment: %s %+v", d.State, d.Stats)
	}
	if d, _ := e.store.Device(context.Background(), dev.id); d.CurrentVersion != "1.0.1" {
		t.Errorf("device version %q", d.CurrentVersion)
	}

	// 2. A corrupted .swu: SWUpdate refuses it and says why.
	bad := k.build(t, "1.0.2", target, image(200_000, 4))
	bad[len(bad)-3000] ^= 0xff // inside image.bin: its sha256 no longer matches
	rel2 := e.publishFile("1.0.2", "update.swu", bad)
	dep2 := e.deploy(rel2.ID, dev.id)
	sw = startSWUpdate(t, k, mid.URL, dev.id, token)
	waitForSWUpdate(t, sw, "failure", func() bool { return execOf(t, e, dep2.ID).State == fleet.ExecFailure })
	sw.stop()
	ex = execOf(t, e, dep2.ID)
	// SWUpdate closes with a summary and sends its log, errors included,
	// as "proceeding" details just before.
	if ex.Error == "" || !hasNote(ex, "ERROR : HASH mismatch") {
		t.Errorf("failure without SWUpdate's details: %q, history %+v", ex.Error, ex.History)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, img) {
		t.Errorf("corrupted update changed the installed file")
	}

	// 3. Cancel mid-way: the download is held, the deployment canceled,
	// and SWUpdate's check during the download sees cancelAction.
	swu3 := k.build(t, "1.0.3", target, image(200_000, 5))
	rel3 := e.publishFile("1.0.3", "update.swu", swu3)
	dep3 := e.deploy(rel3.ID, dev.id)
	hold.Lock()
	holdBody = swu3
	holdName = fmt.Sprint(execOf(t, e, dep3.ID).ID)
	hold.Unlock()
	sw = startSWUpdate(t, k, mid.URL, dev.id, token)
	waitForSWUpdate(t, sw, "download start", func() bool {
		hold.Lock()
		defer hold.Unlock()
		return held
	})
	if _, err := e.admin.DeploymentAction(context.Background(), dep3.ID, "cancel"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // SWUpdate checks for a cancel once per poll interval
	close(canceled)
	waitForSWUpdate(t, sw, "cancel acknowledgement", func() bool { return hasNote(execOf(t, e, dep3.ID), "cancel acknowledged") })
	close(release)
	if os.Getenv("OTA_TEST_SWUPDATE_LOG") != "" {
		t.Log(sw.out.String())
	}
	sw.stop()
	if ex := execOf(t, e, dep3.ID); ex.State != fleet.ExecCanceled {
		t.Errorf("canceled execution is %s", ex.State)
	}
}
