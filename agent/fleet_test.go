package agent

import (
	"context"
	"crypto"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/release"
	"github.com/otakit/otakit/version"
)

// fleetEnv is a real fleet server (SQLite, blob directory) on loopback
// with releases 1.1.0 and 1.2.0 (and the delta) built by the release
// pipeline, 1.2.0 stored in the server.
//
// The release is put in the store directly rather than uploaded with
// Publish: fleet.ParseRelease does not yet read the pipeline's output
// (it wants manifest.json delta.files as a list where package manifest
// writes a map keyed by base version, and release.json "manifest" as a
// string where package release writes an object), so an upload is
// refused with 400. Everything the device API does is exercised as is.
type fleetEnv struct {
	url   string
	admin *fleethttp.Client
	rel   *fleet.Release
	dir   string // release 1.2.0
	img   []byte // signed 1.1.0
}

func newFleetEnv(t *testing.T, k *realKit) *fleetEnv {
	t.Helper()
	ctx := context.Background()
	releases := filepath.Join(k.dir, "releases")
	var dir string
	for _, v := range []string{"1.1.0", "1.2.0"} {
		fw := filepath.Join(k.dir, "fw-"+v+".bin")
		os.WriteFile(fw, k.firmware(v), 0o644)
		res, err := release.Build(ctx, release.Options{Firmware: fw, Version: version.MustParse(v),
			ImageSigner: k.imgKey, ManifestSigners: []crypto.Signer{k.manKey}, EncryptKey: k.pkgKey,
			Releases: releases, Now: k.now})
		if err != nil {
			t.Fatal(err)
		}
		dir = res.Dir
	}
	img, err := os.ReadFile(filepath.Join(releases, "1.1.0", "app-1.1.0.signed.bin"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bs, err := blob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s := &fleethttp.Server{Store: db, Blobs: bs, AdminToken: "admin-token"}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	e := &fleetEnv{url: ts.URL, admin: fleethttp.NewClient(ts.URL, "admin-token", nil), dir: dir, img: img}
	man, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	e.rel = &fleet.Release{ID: "1.2.0", Version: "1.2.0", Manifest: man, CreatedAt: k.now}
	for _, a := range []fleet.Artifact{
		{Name: "app-1.2.0.update", Kind: fleet.KindFull},
		{Name: "app-1.1.0-to-1.2.0.update", Kind: fleet.KindDelta, FromVersion: "1.1.0"},
	} {
		f, err := os.Open(filepath.Join(dir, a.Name))
		if err != nil {
			t.Fatal(err)
		}
		a.SHA256, a.Size, _, err = bs.Put(ctx, f, 1<<30)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		e.rel.Artifacts = append(e.rel.Artifacts, a)
	}
	if err := db.CreateRelease(ctx, e.rel); err != nil {
		t.Fatal(err)
	}
	return e
}

// A simulated MCUboot device checks in with the fleet server through the
// device API, gets the delta for its exact version, installs, swaps,
// passes its health check and confirms; the server sees the execution
// succeed with the agent's reports.
func TestFleetDeviceAPI(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		k := newRealKit(t)
		e := newFleetEnv(t, k)
		ctx := context.Background()
		dev, err := e.admin.CreateDevice(ctx, fleethttp.NewDevice{ID: "dev-1", CurrentVersion: "1.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: e.rel.ID,
			Target: fleet.Target{Devices: []string{"dev-1"}}}); err != nil {
			t.Fatal(err)
		}
		d := k.flashDevice(layout.SwapScratch, e.img)
		cfg := d.cfg
		cfg.Server = &FleetServer{URL: e.url, Token: dev.Token}
		cfg.Patcher = DeltaPatches{}
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Time passes only by the manual clock: the unhealthy device's
		// deadline comes when the test advances it.
		l := &Loop{Agent: a, Healthy: func() bool {
			if !healthy {
				d.clock.Advance(cfg.ConfirmTimeout)
			}
			return healthy
		}}
		if err := l.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		want, ver, exec := Confirmed, "1.2.0", fleet.ExecSuccess
		if !healthy {
			want, ver, exec = Failed, "1.1.0", fleet.ExecFailure
		}
		wantState(t, a, want)
		wantRunning(t, a, ver)
		if art := a.Record().Artifact; art.Type != TypeDelta {
			t.Errorf("downloaded %s (%s), want the delta", art.Name, art.Type)
		}
		es, err := e.admin.DeviceExecutions(ctx, "dev-1")
		if err != nil || len(es) != 1 {
			t.Fatalf("executions %v, %v", es, err)
		}
		if es[0].State != exec || es[0].DeviceState != string(want) {
			t.Errorf("healthy=%v: execution %s (device %s), want %s (%s); error %q", healthy, es[0].State, es[0].DeviceState, exec, want, es[0].Error)
		}
		if healthy && es[0].TotalBytes == 0 {
			t.Errorf("no download figures reported: %+v", es[0])
		}
		// Checking in again: nothing new is offered.
		if ok, err := a.CheckIn(ctx); ok || err != nil {
			t.Errorf("second check-in = %v, %v", ok, err)
		}
	}
}
