package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/fleet"
)

func TestMigrationsAreVersionedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.SchemaVersion()
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	var mode string
	if err := db.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q %v", mode, err)
	}
	if _, err := db.CreateDevice(context.Background(), &fleet.Device{ID: "keep"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Reopening applies nothing twice and keeps the data.
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Device(context.Background(), "keep"); err != nil {
		t.Fatal(err)
	}
	var n int
	db.r.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
	if n != len(migrations) {
		t.Fatalf("%d migration rows", n)
	}
	db.Close()
	// A database from a newer program is refused rather than corrupted.
	raw, _ := sql.Open("sqlite", path)
	raw.Exec(`INSERT INTO schema_migrations VALUES (999, 0)`)
	raw.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("opened a database with a newer schema")
	}
}

func TestDeviceTokensAreHashed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tok, err := db.CreateDevice(ctx, &fleet.Device{ID: "a", Group: "g", Tags: []string{"x", "y", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	db.r.QueryRow(`SELECT token_hash FROM devices WHERE id = 'a'`).Scan(&stored)
	if stored == tok || stored != hashToken(tok) {
		t.Fatalf("stored %q for token %q", stored, tok)
	}
	if id, err := db.AuthenticateDevice(ctx, tok); err != nil || id != "a" {
		t.Fatalf("authenticate: %q %v", id, err)
	}
	for _, bad := range []string{"", tok + "x", "otd_", stored} {
		if _, err := db.AuthenticateDevice(ctx, bad); !errors.Is(err, fleet.ErrUnauthorized) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, err := db.CreateDevice(ctx, &fleet.Device{ID: "a"}); !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	d, _ := db.Device(ctx, "a")
	if len(d.Tags) != 2 {
		t.Fatalf("tags = %v", d.Tags)
	}
	ds, err := db.Devices(ctx, fleet.DeviceFilter{Tag: "y"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("by tag: %v %v", ds, err)
	}
	g := "h"
	if _, err := db.UpdateDevice(ctx, "a", fleet.DeviceUpdate{Group: &g, Tags: &[]string{"z"}}); err != nil {
		t.Fatal(err)
	}
	if ds, _ := db.Devices(ctx, fleet.DeviceFilter{Tag: "y"}); len(ds) != 0 {
		t.Fatal("old tag still indexed")
	}
	if ds, _ := db.Devices(ctx, fleet.DeviceFilter{Group: "h", Tag: "z"}); len(ds) != 1 {
		t.Fatal("new group and tag not found")
	}
}

func TestLastSeenIsFlushedOnClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateDevice(ctx, &fleet.Device{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckIn(ctx, "a", fleet.CheckIn{CurrentVersion: "1.0.0", Attributes: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, _ = Open(path)
	defer db.Close()
	d, _ := db.Device(ctx, "a")
	if d.LastSeen.IsZero() || d.CurrentVersion != "1.0.0" || d.Attributes["k"] != "v" {
		t.Fatalf("device = %+v", d)
	}
}

func TestOffersAfterRestartWithWarmCaches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleet.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := db.CreateDevices(ctx, []*fleet.Device{{ID: "idle", Group: "g"}, {ID: "busy", Group: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	rel := &fleet.Release{ID: "2.0.0", Version: "2.0.0", Manifest: []byte(`{}`), Artifacts: []fleet.Artifact{{Name: "fw", Kind: fleet.KindFull, SHA256: "x"}}}
	if err := db.CreateRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDeployment(ctx, &fleet.Deployment{ReleaseID: "2.0.0", Target: fleet.Target{Group: "b"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, id := range []string{"idle", "busy"} {
		if got, err := db.AuthenticateDevice(ctx, toks[i]); err != nil || got != id {
			t.Fatalf("token of %s after restart: %q %v", id, got, err)
		}
	}
	check := func(id string, want bool) {
		t.Helper()
		off, err := db.CheckIn(ctx, id, fleet.CheckIn{CurrentVersion: "1.0.0"})
		if err != nil || (off != nil) != want {
			t.Fatalf("%s: offer %v, err %v; want offer %v", id, off, err, want)
		}
	}
	check("busy", true)
	check("idle", false)
	check("idle", false) // answered from the cache
	if err := db.CreateDeployment(ctx, &fleet.Deployment{ReleaseID: "2.0.0", Target: fleet.Target{Group: "g"}}); err != nil {
		t.Fatal(err)
	}
	check("idle", true) // the new deployment invalidated the cached answer
}
