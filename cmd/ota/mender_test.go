package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/internal/testutil"
)

// TestMenderCLI runs a real `ota serve --dev-tls` process and Debian's
// mender-client daemon against it over HTTPS (trusting the dev certificate),
// driven by the CLI: the device shows up in
// `ota devices pending`, `ota devices accept` lets it in, `ota publish`
// takes a folder with a Mender Artifact, and a deployment to the device
// ends in success with the file installed.
func TestMenderCLI(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data, "--dev-tls")
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("--dev-tls serves %s", srv.url)
	}
	cert := filepath.Join(data, "dev-tls", "cert.pem")
	t.Setenv("OTA_SERVER", srv.url)
	t.Setenv("OTA_ADMIN_TOKEN", srv.token)
	ota := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--ca", cert)
		if code := run(args, &out, &errb); code != want {
			t.Fatalf("ota %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	mc := testutil.StartMenderClient(t, srv.url, "cli-board", "0.9.0", "02:00:00:00:00:01", cert)
	var id string
	testutil.WaitMender(t, mc, "the device in `ota devices pending`", 30*time.Second, func() bool {
		m := regexp.MustCompile(`(?m)^(mender-[0-9a-f]{16})\tpending\t\{"mac":"02:00:00:00:00:01"\}$`).FindStringSubmatch(ota(0, "devices", "pending"))
		if m != nil {
			id = m[1]
		}
		return m != nil
	})
	ota(2, "devices", "accept", "mender-0000000000000000")
	if out := ota(0, "devices", "accept", id); !strings.Contains(out, id+" accepted") {
		t.Fatalf("accept: %s", out)
	}
	dest, rel := t.TempDir(), t.TempDir()
	payload := make([]byte, 20<<10)
	rand.Read(payload)
	testutil.WriteSingleFileArtifact(t, rel, "1.0.0", "cli-board", dest, payload)
	if out := ota(0, "publish", rel); !strings.Contains(out, "1.0.0") {
		t.Fatalf("publish: %s", out)
	}
	out := ota(0, "deployments", "create", "--release", "1.0.0", "--device", id)
	dep := regexp.MustCompile(`dep-[0-9a-f]+`).FindString(out)
	testutil.WaitMender(t, mc, "success of "+dep, 45*time.Second, func() bool {
		return strings.Contains(ota(0, "devices", "show", id), "deployment "+dep+": success")
	})
	if got, _ := os.ReadFile(filepath.Join(dest, "app.bin")); !bytes.Equal(got, payload) {
		t.Fatal("installed file differs")
	}
	if out := ota(0, "deployments", "show", dep, "--json"); !strings.Contains(out, `"state": "completed"`) {
		t.Fatalf("deployment: %s", out)
	}
	if out := ota(0, "devices", "reject", id); !strings.Contains(out, "rejected") {
		t.Fatalf("reject: %s", out)
	}
}
