package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/otakit/otakit/internal/testutil"
)

func TestFleetCLI(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs, _ := blob.Open(filepath.Join(dir, "blobs"))
	ts := httptest.NewServer((&fleethttp.Server{Store: db, Blobs: bs, AdminToken: "cli-token"}).Handler())
	defer ts.Close()
	t.Setenv("OTA_SERVER", ts.URL)
	t.Setenv("OTA_ADMIN_TOKEN", "cli-token")
	ota := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != want {
			t.Fatalf("ota %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	rel := testutil.WriteFleetRelease(t, testutil.FleetRelease{Version: "1.2.0", Image: []byte("image"), Deltas: map[string][]byte{"1.1.0": []byte("d")}})
	if out := ota(0, "publish", rel); !strings.Contains(out, "published release 1.2.0 (2 artifacts)") || !strings.Contains(out, "from 1.1.0") {
		t.Fatalf("publish: %s", out)
	}
	ota(2, "publish", rel) // already exists
	out := ota(0, "devices", "add", "s1", "--group", "g", "--tag", "eu", "--version", "1.1.0", "--hw", "rev-b")
	if !regexp.MustCompile(`token: otd_\S{43}`).MatchString(out) {
		t.Fatalf("devices add: %s", out)
	}
	ota(0, "devices", "add", "s2", "--group", "g")
	ota(2, "devices", "add", "../bad")
	if out := ota(0, "devices", "list", "--group", "g"); !strings.Contains(out, "s1") || !strings.Contains(out, "s2") {
		t.Fatalf("devices list: %s", out)
	}
	out = ota(0, "deployments", "create", "--release", "1.2.0", "--group", "g", "--phases", "50%,50%", "--advance-at", "100", "--pause-at", "20")
	m := regexp.MustCompile(`deployment (dep-[0-9a-f]+): release 1.2.0, running, phase 1 of 2`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("deployments create: %s", out)
	}
	id := m[1]
	ota(2, "deployments", "create", "--release", "1.2.0", "--group", "g", "--phases", "10%,x")
	if out := ota(0, "deployments", "list"); !strings.Contains(out, id) || !strings.Contains(out, "running") {
		t.Fatalf("deployments list: %s", out)
	}
	if out := ota(0, "deployments", "pause", id); !strings.Contains(out, "paused") {
		t.Fatalf("pause: %s", out)
	}
	ota(2, "deployments", "pause", id) // already paused: 409
	ota(0, "deployments", "resume", id)
	if out := ota(0, "deployments", "show", id, "--json"); !strings.Contains(out, `"state": "running"`) {
		t.Fatalf("show --json: %s", out)
	}
	if out := ota(0, "deployments", "cancel", id); !strings.Contains(out, "canceled") {
		t.Fatalf("cancel: %s", out)
	}
	if out := ota(0, "devices", "show", "s1"); !strings.Contains(out, "deployment "+id+": canceled") {
		t.Fatalf("devices show: %s", out)
	}
	os.Unsetenv("OTA_ADMIN_TOKEN")
	if out := ota(2, "deployments", "list", "--token", "wrong"); !strings.Contains(out, "403") {
		t.Fatalf("wrong token: %s", out)
	}
}

func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "serve.json")
	os.WriteFile(conf, []byte(`{"addr": "127.0.0.1:1", "poll": 300, "log-level": "debug"}`), 0o644)
	cmd := newServeCmd()
	cmd.Flags().Parse([]string{"--config", conf, "--addr", "127.0.0.1:2"})
	t.Setenv("OTA_LOG_LEVEL", "warn")
	if err := applyEnvAndConfig(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	get := func(n string) string { return cmd.Flags().Lookup(n).Value.String() }
	if get("addr") != "127.0.0.1:2" || get("poll") != "300" || get("log-level") != "warn" {
		t.Fatalf("addr %s poll %s log-level %s", get("addr"), get("poll"), get("log-level"))
	}
	os.WriteFile(conf, []byte(`{"adr": "x"}`), 0o644)
	cmd = newServeCmd()
	cmd.Flags().Parse([]string{"--config", conf})
	if err := applyEnvAndConfig(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestServeDevTLS(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir, "--dev-tls")
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("url %s", srv.url)
	}
	var out, errb bytes.Buffer
	code := run([]string{"devices", "list", "--server", srv.url, "--token", srv.token, "--ca", filepath.Join(dir, "dev-tls", "cert.pem")}, &out, &errb)
	if code != 0 {
		t.Fatalf("devices list over TLS: %d %s", code, errb.String())
	}
	code = run([]string{"devices", "list", "--server", srv.url, "--token", srv.token}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %s", errb.String())
	}
}
