// Package demo runs otakit's whole update chain in one process, as `ota
// demo` does. It needs nothing beyond Go and loopback networking:
//
//   - the fleet server (SQLite store, blob directory, HTTP API and
//     dashboard) on 127.0.0.1, with fresh signing and encryption keys;
//   - two firmware versions, deterministic and code-like (Firmware), made
//     into releases 1.1.0 and 1.2.0 with a delta by the release pipeline
//     and published to the server;
//   - simulated devices, each an MCUboot flash simulator running the real
//     update agent with its own device token, talking to the server's
//     device API over HTTP;
//   - a phased deployment of 1.2.0 with auto-advance, in which a share of
//     the devices fail their health check after the update and roll back;
//   - a summary: outcome per device and phase, bytes sent against what
//     full images would have cost, the dashboard URL.
//
// Everything is real except the devices' hardware: images are signed and
// verified, manifests checked, packages decrypted, deltas applied and
// slots swapped by the simulated boot loader.
package demo

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/otakit/otakit/keys"
	"github.com/otakit/otakit/release"
	"github.com/otakit/otakit/version"
)

// Versions the demo releases: devices start on From and are updated to To.
const (
	From = "1.1.0"
	To   = "1.2.0"
)

// Hardware the demo devices report and the releases are built for.
const (
	HardwareRevision  = "demo-board-rev-b"
	BootloaderVersion = "2.1.0"
)

// ErrOptions is returned for options out of range.
var ErrOptions = errors.New("demo: invalid options")

// Options configure a run. The zero value of each field picks the default.
type Options struct {
	// Devices is how many simulated devices take part (20).
	Devices int
	// FailRate is the share of devices whose health check fails after the
	// update, so that they roll back (0.1). Use a negative value for none.
	FailRate float64
	// Addr is the server's listen address (127.0.0.1:0, a free port).
	Addr string
	// Dir holds keys, firmware, releases, the server's data and the
	// devices' state; a temporary folder, removed at the end, when empty.
	Dir string
	// Keep keeps the server and the devices running after the rollout
	// until ctx ends.
	Keep bool
	// Out receives the steps and the summary; Status the progress, as bars
	// when it is a terminal and as plain lines otherwise.
	Out, Status io.Writer
	// Phases of the rollout (20%, then the rest); AdvanceAt is the phase
	// success rate that starts the next phase (0.75) and PauseAt the
	// failure rate that pauses the rollout (0.5).
	Phases             []fleet.Phase
	AdvanceAt, PauseAt float64
	// ConfirmTimeout is how long an unhealthy device runs the new image
	// before it reverts (2s).
	ConfirmTimeout time.Duration
	// Timeout bounds the rollout (2 minutes).
	Timeout time.Duration
	// Ready, if set, is called once the summary is printed, while the
	// server is still up (tests inspect it).
	Ready func(*Summary)
}

func (o *Options) defaults() error {
	if o.Devices == 0 {
		o.Devices = 20
	}
	if o.FailRate == 0 {
		o.FailRate = 0.1
	}
	if o.FailRate < 0 {
		o.FailRate = 0
	}
	if o.Devices < 1 || o.Devices > 1000 {
		return fmt.Errorf("%w: devices %d, want 1 to 1000", ErrOptions, o.Devices)
	}
	if o.FailRate > 1 {
		return fmt.Errorf("%w: fail rate %g, want 0 to 1", ErrOptions, o.FailRate)
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Status == nil {
		o.Status = io.Discard
	}
	if len(o.Phases) == 0 {
		o.Phases = []fleet.Phase{{Percent: 20}, {Percent: 80}}
	}
	if o.AdvanceAt == 0 {
		o.AdvanceAt = 0.75
	}
	if o.PauseAt == 0 {
		o.PauseAt = 0.5
	}
	if o.ConfirmTimeout == 0 {
		o.ConfirmTimeout = 2 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	return nil
}

// env is one run's world: paths, keys, releases, the server.
type env struct {
	o       Options
	dir     string
	started time.Time

	imageKey, manifestKey crypto.Signer
	packageKey            []byte
	releases              map[string]*release.Result

	url, token string
	admin      *fleethttp.Client
	registry   *prometheus.Registry
}

func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }

func (e *env) step(format string, args ...any) {
	fmt.Fprintf(e.o.Out, "\n== "+format+"\n", args...)
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.o.Out, format, args...) }

// Run runs the demo and returns its summary. With Keep, it returns when
// ctx ends; otherwise when the rollout has settled.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	e := &env{o: o, dir: o.Dir, started: time.Now(), releases: map[string]*release.Result{}}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "ota-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		e.dir = d
	} else if err := emptyDir(e.dir); err != nil {
		return nil, err
	}
	if err := e.makeKeys(); err != nil {
		return nil, fmt.Errorf("demo: keys: %w", err)
	}
	if err := e.makeReleases(ctx); err != nil {
		return nil, fmt.Errorf("demo: releases: %w", err)
	}
	stop, err := e.startServer()
	if err != nil {
		return nil, fmt.Errorf("demo: server: %w", err)
	}
	defer stop()
	if err := e.publish(ctx); err != nil {
		return nil, fmt.Errorf("demo: publish: %w", err)
	}
	devCtx, stopDevices := context.WithCancel(ctx)
	fl, err := e.startFleet(devCtx)
	defer func() {
		stopDevices()
		if fl != nil {
			fl.wait()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("demo: devices: %w", err)
	}
	rollCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dep, err := e.rollout(rollCtx, fl)
	if err != nil {
		return nil, fmt.Errorf("demo: rollout: %w", err)
	}
	sum, err := e.summarize(ctx, fl, dep)
	if err != nil {
		return nil, fmt.Errorf("demo: summary: %w", err)
	}
	sum.Print(o.Out)
	if err := sum.Check(); err != nil {
		return sum, err
	}
	if o.Ready != nil {
		o.Ready(sum)
	}
	if !o.Keep {
		e.printf("(the server stops with the demo: give --keep to browse the dashboard)\n")
	}
	if o.Keep {
		e.printf("\nserver and devices keep running; dashboard %s/ui/ (admin token %s). Ctrl-C stops.\n", e.url, e.token)
		if o.Dir == "" {
			e.printf("files in %s (removed on exit; give --dir to keep them)\n", e.dir)
		}
		<-ctx.Done()
	}
	return sum, nil
}

// emptyDir makes sure dir exists and is empty: a second run in the same
// folder would meet the first run's releases, signed with other keys, and
// its devices on the server.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: %s is not empty; give a new or empty folder", ErrOptions, dir)
	}
	return nil
}

// makeKeys writes the image signing key (ECDSA P-256, as MCUboot boot
// loaders commonly verify), a separate manifest key (Ed25519) and the
// AES-128 package key, with the public halves beside them.
func (e *env) makeKeys() error {
	e.step("keys: image signing (ecdsa-p256), manifest signing (ed25519), package encryption (aes-128-ctr)")
	if err := os.MkdirAll(e.path("keys"), 0o700); err != nil {
		return err
	}
	for _, k := range []struct {
		t    keys.Type
		name string
		dst  *crypto.Signer
	}{{keys.ECDSAP256, "image", &e.imageKey}, {keys.Ed25519, "manifest", &e.manifestKey}} {
		priv, err := keys.Generate(k.t)
		if err != nil {
			return err
		}
		if err := keys.SavePrivate(e.path("keys", k.name+".pem"), priv, nil); err != nil {
			return err
		}
		s, ok := priv.(crypto.Signer)
		if !ok {
			return fmt.Errorf("%s key cannot sign", k.t)
		}
		pub, err := keys.PublicPEM(s.Public())
		if err != nil {
			return err
		}
		if err := os.WriteFile(e.path("keys", k.name+".pub.pem"), pub, 0o644); err != nil {
			return err
		}
		*k.dst = s
	}
	e.packageKey = make([]byte, 16)
	rand.Read(e.packageKey)
	if err := os.WriteFile(e.path("keys", "package.key"), []byte(hex.EncodeToString(e.packageKey)+"\n"), 0o600); err != nil {
		return err
	}
	e.printf("wrote %s: image.pem, manifest.pem, package.key and the public keys\n", e.path("keys"))
	return nil
}

// makeReleases builds the two firmware versions and runs the release
// pipeline on each, as `ota release` does.
func (e *env) makeReleases(ctx context.Context) error {
	e.step("releases %s and %s: sign, delta, package, signed manifest", From, To)
	if err := os.MkdirAll(e.path("firmware"), 0o755); err != nil {
		return err
	}
	for _, v := range []string{From, To} {
		fw := e.path("firmware", "app-"+v+".bin")
		if err := os.WriteFile(fw, Firmware(v), 0o644); err != nil {
			return err
		}
		bar := newStepBar(e.o.Status, "release "+v)
		res, err := release.Build(ctx, release.Options{
			Firmware: fw, Version: version.MustParse(v),
			ImageSigner: e.imageKey, ManifestSigners: []crypto.Signer{e.manifestKey}, EncryptKey: e.packageKey,
			Releases: e.path("releases"), HardwareRevisions: []string{HardwareRevision}, MinBootloaderVersion: "2.0.0",
			ReleaseNotes: "demo release " + v, Progress: bar.step,
		})
		bar.done()
		if err != nil {
			return err
		}
		e.releases[v] = res
		s := res.Summary
		e.printf("%s: full image package %s (%d bytes; firmware %d bytes, signed image %d)\n",
			res.Dir, s.UpdateImage.File, s.UpdateImage.Size, len(Firmware(v)), s.UpdateImage.ImageSize)
		for _, d := range s.DeltaPatches {
			e.printf("  delta from %s: %s (%d bytes, %.1f%% smaller than the full package)\n", d.FromVersion, d.File, d.Size, d.Savings)
		}
	}
	return nil
}

// startServer runs the fleet server as `ota serve` wires it, on o.Addr.
func (e *env) startServer() (stop func(), err error) {
	e.step("fleet server: SQLite and a blob directory in %s", e.path("server"))
	data := e.path("server")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	e.token = "ota_" + hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(data, "admin-token"), []byte(e.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	db, err := sqlite.Open(filepath.Join(data, "fleet.db"))
	if err != nil {
		return nil, err
	}
	blobs, err := blob.Open(filepath.Join(data, "blobs"))
	if err != nil {
		db.Close()
		return nil, err
	}
	logf, err := os.Create(filepath.Join(data, "server.log"))
	if err != nil {
		db.Close()
		return nil, err
	}
	e.registry = prometheus.NewRegistry()
	srv := &fleethttp.Server{Store: db, Blobs: blobs, AdminToken: e.token, Registry: e.registry,
		Logger: slog.New(slog.NewTextHandler(logf, nil)), PollSeconds: 1}
	ln, err := net.Listen("tcp", e.o.Addr)
	if err != nil {
		db.Close()
		logf.Close()
		return nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	e.url = "http://" + ln.Addr().String()
	e.admin = fleethttp.NewClient(e.url, e.token, nil)
	e.printf("listening on %s (dashboard %s/ui/, log %s)\n", e.url, e.url, filepath.Join(data, "server.log"))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
		db.Close()
		logf.Close()
	}, nil
}

// publish uploads both release folders, as `ota publish` does.
func (e *env) publish(ctx context.Context) error {
	e.step("publish: upload both release folders to the server")
	for _, v := range []string{From, To} {
		rel, err := e.admin.Publish(ctx, e.releases[v].Dir)
		if err != nil {
			return err
		}
		var names []string
		for _, a := range rel.Artifacts {
			names = append(names, fmt.Sprintf("%s (%s, %d bytes)", a.Name, a.Kind, a.Size))
		}
		e.printf("release %s: %s\n", rel.Version, strings.Join(names, ", "))
	}
	return nil
}

// bytesServed reads the server's count of artifact bytes sent.
func (e *env) bytesServed() int64 {
	mfs, err := e.registry.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "ota_download_bytes_total" && len(mf.GetMetric()) == 1 {
			return int64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return -1
}

// waitGroup is a sync.WaitGroup with the first error of its goroutines.
type waitGroup struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (g *waitGroup) Go(f func() error) {
	g.wg.Go(func() {
		if err := f(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	})
}

func (g *waitGroup) Wait() error {
	g.wg.Wait()
	return errors.Join(g.errs...)
}
