package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// MenderClient is a running Debian mender-client daemon (see StartMenderClient).
type MenderClient struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Log returns the client's output so far.
func (m *MenderClient) Log() string { return m.log.String() }

// Done is closed when the client process has exited.
func (m *MenderClient) Done() <-chan struct{} { return m.done }

// StartMenderClient runs `mender daemon` (Debian's mender-client 3.4)
// against url, polling every second, with device type deviceType, current
// artifact artifactName and identity mac=mac. For an https url, serverCert
// names the PEM certificate to trust (mender.conf's ServerCertificate).
//
// mender-client 3.4 reads the current artifact name from
// /etc/mender/artifact_info and runs the identity script
// /usr/share/mender/identity/mender-device-identity: fixed paths that no
// option moves. So the daemon runs in a private mount namespace
// (`unshare --mount`, which needs root or CAP_SYS_ADMIN) where test
// directories are bind-mounted over those two; the host's files are never
// touched. Config, state database and update-module work dirs live in
// t.TempDir(). The process is killed when the test ends; on failure its log
// tail is printed.
func StartMenderClient(t testing.TB, url, deviceType, artifactName, mac string, serverCert ...string) *MenderClient {
	t.Helper()
	for _, tool := range []string{"mender", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/test-deps.sh installs Debian's mender-client and util-linux)", tool)
		}
	}
	if _, err := os.Stat("/usr/share/mender/identity"); err != nil {
		t.Fatalf("mender-client's identity directory is missing: %v", err)
	}
	root := t.TempDir()
	etc, ident, data := filepath.Join(root, "etc"), filepath.Join(root, "identity"), filepath.Join(root, "data")
	for _, d := range []string{etc, ident, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert := ""
	if len(serverCert) > 0 {
		cert = serverCert[0]
	}
	conf := fmt.Sprintf(`{"ServerURL": %q, "ServerCertificate": %q, "UpdatePollIntervalSeconds": 1,
		"InventoryPollIntervalSeconds": 2, "RetryPollIntervalSeconds": 1, "RetryPollCount": 3, "DeviceTypeFile": %q,
		"DBus": {"Enabled": false}}`, url, cert, filepath.Join(data, "device_type"))
	files := map[string]string{
		filepath.Join(root, "mender.conf"):             conf,
		filepath.Join(data, "device_type"):             "device_type=" + deviceType + "\n",
		filepath.Join(etc, "artifact_info"):            "artifact_name=" + artifactName + "\n",
		filepath.Join(ident, "mender-device-identity"): "#!/bin/sh\necho mac=" + mac + "\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`mount --bind %q /etc/mender && mount --bind %q /usr/share/mender/identity && `+
		`exec mender --config %q --data %q --no-syslog --log-level debug daemon`,
		etc, ident, filepath.Join(root, "mender.conf"), data)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	mc := &MenderClient{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = mc.log, mc.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mender-client: %v", err)
	}
	go func() { cmd.Wait(); close(mc.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-mc.done
		if t.Failed() {
			l := mc.log.String()
			if len(l) > 6000 {
				l = l[len(l)-6000:]
			}
			t.Logf("mender-client log (tail):\n%s", l)
		}
	})
	return mc
}

// WaitMender polls cond every 100 ms until it holds; it fails the test
// when the client exits or d passes first.
func WaitMender(t testing.TB, mc *MenderClient, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-mc.done:
			t.Fatalf("mender-client exited while waiting for %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WriteSingleFileArtifact builds a single-file Mender Artifact with
// Debian's mender-artifact that installs payload as destDir/app.bin, in
// outDir as app-NAME.mender, and returns its path.
func WriteSingleFileArtifact(t testing.TB, outDir, name, deviceType, destDir string, payload []byte) string {
	t.Helper()
	if _, err := exec.LookPath("mender-artifact"); err != nil {
		t.Fatal("mender-artifact not installed (scripts/test-deps.sh installs Debian's mender-artifact)")
	}
	dir := t.TempDir()
	for f, b := range map[string][]byte{"dest_dir": []byte(destDir + "\n"), "filename": []byte("app.bin\n"), "app.bin": payload} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(outDir, "app-"+name+".mender")
	cmd := exec.Command("mender-artifact", "write", "module-image", "-T", "single-file", "-n", name, "-t", deviceType,
		"-o", out, "-f", "dest_dir", "-f", "filename", "-f", "app.bin")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact: %v\n%s", err, b)
	}
	return out
}
