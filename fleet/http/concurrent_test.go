package http_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/internal/testutil"
)

// TestConcurrentRollout lets 30 devices poll and update at once through
// three phases: every device must get its offer when its phase starts
// (no stale "no update" answer survives a phase advance) and the
// counters must add up.
func TestConcurrentRollout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(2000, 3)})
	devs := e.devices(30, "conc", "1.1.0", nil)
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Group: "conc"},
		Phases: []fleet.Phase{{Count: 5}, {Count: 10}, {Percent: 50}}, AdvanceAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(40 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, len(devs))
	for _, d := range devs {
		wg.Add(1)
		go func(d *device) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				r, err := d.c.CheckIn(ctx, fleet.CheckIn{CurrentVersion: d.version})
				if err != nil {
					errs <- err
					return
				}
				if !r.Update {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				var buf bytes.Buffer
				if _, _, err := d.c.Download(ctx, r.Artifact.URL, 0, "", &buf); err != nil {
					errs <- err
					return
				}
				for _, st := range []string{"DOWNLOADING", "VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "CONFIRMED"} {
					if _, err := d.c.Report(ctx, r.Deployment, fleet.Status{State: st, Progress: 100, Version: r.Version}); err != nil {
						errs <- err
						return
					}
				}
				return
			}
			errs <- context.DeadlineExceeded
		}(d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d := e.deployment(dep.ID)
	if d.State != fleet.DeploymentCompleted || d.Stats.States[fleet.ExecSuccess] != 30 || d.Stats.Total != 30 {
		t.Fatalf("end: %s phase %d %v", d.State, d.CurrentPhase, d.Stats.States)
	}
	for _, p := range d.Stats.Phases {
		if p.Success != p.Total {
			t.Fatalf("phase %+v", p)
		}
	}
}
