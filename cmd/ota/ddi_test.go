package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/spf13/pflag"
)

func TestDDIConfigFlags(t *testing.T) {
	for _, c := range []struct {
		tenants, typ string
		want         map[string]string
		bad          bool
	}{
		{"DEFAULT", "forced", map[string]string{"DEFAULT": ""}, false},
		{"DEFAULT=gw1, acme=gw2,plain", "attempt", map[string]string{"DEFAULT": "gw1", "acme": "gw2", "plain": ""}, false},
		{"a/b", "forced", nil, true},
		{"DEFAULT", "sometimes", nil, true},
	} {
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		addDDIFlags(f)
		f.Set("ddi-tenants", c.tenants)
		f.Set("ddi-type", c.typ)
		got, err := ddiConfig(f)
		if (err != nil) != c.bad {
			t.Errorf("%q %q: err %v", c.tenants, c.typ, err)
			continue
		}
		if !c.bad && (!reflect.DeepEqual(got.Tenants, c.want) || got.Type != c.typ) {
			t.Errorf("%q %q: %+v", c.tenants, c.typ, got)
		}
	}
}

func TestPublishOneFile(t *testing.T) {
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
	swu := filepath.Join(dir, "update.swu")
	os.WriteFile(swu, []byte("070701 not really a swu"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"publish", "--version", "1.0.1", swu}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "published release 1.0.1 (1 artifacts)") || !strings.Contains(out.String(), "update.swu") {
		t.Errorf("publish --version: %s", out.String())
	}
	rel, err := db.Release(context.Background(), "1.0.1")
	if err != nil || len(rel.Artifacts) != 1 || rel.Artifacts[0].Kind != fleet.KindFull {
		t.Fatalf("stored release %+v, %v", rel, err)
	}
	out.Reset()
	if code := run([]string{"publish", "--version", "1.0.2", dir}, &out, &errb); code != 2 {
		t.Errorf("publish --version DIR: exit %d, want 2", code)
	}
}
