package demo

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otakit/otakit/agent"
	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/manifest"
)

// Group is the fleet group the demo devices are provisioned in.
const Group = "demo"

// simDevice is one simulated device: an MCUboot flash simulator on the
// layout preset, the update agent driving it, and its own HTTP client and
// device token.
type simDevice struct {
	id     string
	agent  *agent.Agent
	server *agent.FleetServer
	log    *os.File
	first  sync.Once
	seen   chan struct{} // closed at the first check-in
}

// simFleet is the demo's devices and which of them fail their health
// check on the new image.
type simFleet struct {
	devices []*simDevice
	planned chan struct{} // closed once failing is decided
	failing map[string]bool
	wg      waitGroup
}

// watched is the device's server, noting the first check-in that went
// through.
type watched struct {
	agent.Server
	dev *simDevice
}

func (w watched) CheckIn(ctx context.Context, d agent.Device) (*agent.Offer, error) {
	off, err := w.Server.CheckIn(ctx, d)
	if err == nil {
		w.dev.first.Do(func() { close(w.dev.seen) })
	}
	return off, err
}

func deviceID(i int) string { return fmt.Sprintf("dev-%02d", i+1) }

// startFleet provisions the devices on the server, gives each a flash
// with the signed From image confirmed in slot A, and starts their agents;
// it returns once every device has checked in. The fleet it returns, even
// with an error, must be waited for after ctx ends.
func (e *env) startFleet(ctx context.Context) (*simFleet, error) {
	n := e.o.Devices
	e.step("devices: %d simulated MCUboot devices (swap-scratch, layout preset) running %s", n, From)
	var nds []fleethttp.NewDevice
	for i := range n {
		nds = append(nds, fleethttp.NewDevice{ID: deviceID(i), Group: Group, Tags: []string{[]string{"eu", "us"}[i%2]},
			HardwareRevision: HardwareRevision, BootloaderVersion: BootloaderVersion, CurrentVersion: From})
	}
	prov, err := e.admin.CreateDevices(ctx, nds)
	if err != nil {
		return nil, err
	}
	if len(prov) != n {
		return nil, fmt.Errorf("provisioned %d devices, want %d", len(prov), n)
	}
	from := e.releases[From]
	signed, err := os.ReadFile(filepath.Join(from.Dir, from.Summary.UpdateImage.SignedImage))
	if err != nil {
		return nil, err
	}
	imageKeys := []crypto.PublicKey{e.imageKey.Public()}
	manifestKeys, err := manifest.NewKeySet(1, e.manifestKey.Public())
	if err != nil {
		return nil, err
	}
	fl := &simFleet{planned: make(chan struct{}), failing: map[string]bool{}}
	for _, p := range prov {
		d, err := e.newDevice(p, signed, imageKeys, manifestKeys, fl)
		if err != nil {
			return fl, fmt.Errorf("%s: %w", p.ID, err)
		}
		fl.devices = append(fl.devices, d)
		l := &agent.Loop{Agent: d.agent, Log: d.log, Healthy: fl.healthCheck(ctx, d),
			Poll: func() time.Duration { return time.Duration(d.server.PollSeconds) * time.Second }}
		fl.wg.Go(func() error {
			if err := l.Run(ctx, false); err != nil {
				return fmt.Errorf("%s: %w", d.id, err)
			}
			return nil
		})
	}
	for _, d := range fl.devices {
		select {
		case <-d.seen:
		case <-ctx.Done():
			return fl, ctx.Err()
		case <-time.After(30 * time.Second):
			return fl, fmt.Errorf("%s did not check in (see %s)", d.id, d.log.Name())
		}
	}
	e.printf("%d devices provisioned with their own tokens; all checked in over HTTP: %s, no update (logs in %s)\n",
		n, From, e.path("devices"))
	return fl, nil
}

func (e *env) newDevice(p fleethttp.ProvisionedDevice, signed []byte, imageKeys []crypto.PublicKey, mk *manifest.KeySet, fl *simFleet) (*simDevice, error) {
	m := layout.Preset()
	fd, err := flash.New(m.Flash)
	if err != nil {
		return nil, err
	}
	bd, err := boot.OpenDevice(fd, m, boot.Config{Mode: layout.SwapScratch, Keys: imageKeys})
	if err != nil {
		return nil, err
	}
	// Factory programming: the From image, confirmed, then power-on.
	if err := bd.Loader.WritePrimary(signed); err != nil {
		return nil, err
	}
	if err := bd.Loader.MarkPrimaryConfirmed(); err != nil {
		return nil, err
	}
	if _, err := bd.Loader.Boot(); err != nil {
		return nil, err
	}
	work := e.path("devices", p.ID)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(work + ".log")
	if err != nil {
		return nil, err
	}
	d := &simDevice{id: p.ID, log: logf, seen: make(chan struct{}),
		server: &agent.FleetServer{URL: e.url, Token: p.Token,
			Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: time.Minute}}}
	d.agent, err = agent.New(agent.Config{
		Device:         agent.Device{ID: p.ID, HardwareRevision: HardwareRevision, BootloaderVersion: BootloaderVersion},
		Slots:          &agent.FlashSlots{Device: bd},
		Store:          agent.ConfigStore{Store: bd.Store},
		Images:         agent.MCUbootImages{Keys: imageKeys},
		Manifests:      agent.ManifestKeys{Keys: mk},
		Server:         watched{d.server, d},
		Patcher:        agent.DeltaPatches{},
		Unpacker:       agent.Packages{Key: e.packageKey},
		WorkDir:        work,
		ConfirmTimeout: e.o.ConfirmTimeout,
		RetryDelay:     200 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(logf, nil)),
	})
	if err != nil {
		logf.Close()
		return nil, err
	}
	return d, nil
}

// healthCheck is d's self-test on a new image: it fails on the devices
// the plan picked. It waits for the plan, which is made as soon as the
// deployment exists.
func (fl *simFleet) healthCheck(ctx context.Context, d *simDevice) func() bool {
	return func() bool {
		select {
		case <-fl.planned:
		case <-ctx.Done():
			return false
		}
		if fl.failing[d.id] {
			fmt.Fprintln(d.log, "health check: sensor self-test FAILED on the new image")
			return false
		}
		fmt.Fprintln(d.log, "health check: passed")
		return true
	}
}

// plan picks round(rate × devices) devices to fail, spread over the
// phases in proportion to their size and evenly within each, so that a
// run's outcome does not depend on how the server ordered the phases.
func (fl *simFleet) plan(execs []*fleet.Execution, rate float64) []string {
	byPhase := map[int][]string{}
	var phases []int
	for _, x := range execs {
		if _, ok := byPhase[x.Phase]; !ok {
			phases = append(phases, x.Phase)
		}
		byPhase[x.Phase] = append(byPhase[x.Phase], x.DeviceID)
	}
	slices.Sort(phases)
	var out []string
	seen := 0
	for _, p := range phases {
		ids := byPhase[p]
		slices.Sort(ids)
		seen += len(ids)
		k := min(int(math.Round(rate*float64(seen)))-len(out), len(ids))
		for j := range ids {
			if k > 0 && (j+1)*k/len(ids) > j*k/len(ids) {
				out = append(out, ids[j])
			}
		}
	}
	for _, id := range out {
		fl.failing[id] = true
	}
	close(fl.planned)
	return out
}

// wait waits for the devices' loops to end and releases their files.
func (fl *simFleet) wait() error {
	err := fl.wg.Wait()
	for _, d := range fl.devices {
		d.server.Client.CloseIdleConnections()
		d.log.Close()
	}
	return err
}

func joinIDs(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
