package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
)

// phaseNames describes the rollout phases: "20%", "the rest".
func phaseNames(ps []fleet.Phase) []string {
	var out []string
	for i, p := range ps {
		switch {
		case i == len(ps)-1:
			out = append(out, "the rest")
		case p.Percent > 0:
			out = append(out, fmt.Sprintf("%g%%", p.Percent))
		default:
			out = append(out, fmt.Sprintf("%d devices", p.Count))
		}
	}
	return out
}

// rollout creates the deployment of To to the demo group, decides which
// devices fail their health check, and follows the rollout until it has
// settled: completed, or paused with nothing left in progress.
func (e *env) rollout(ctx context.Context, fl *simFleet) (*fleet.Deployment, error) {
	o := e.o
	e.step("deploy %s: phases %s; the next phase starts at %.0f%% success, the rollout pauses above %.0f%% failures",
		To, strings.Join(phaseNames(o.Phases), ", then "), o.AdvanceAt*100, o.PauseAt*100)
	d, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Name: "demo " + From + " → " + To, Release: To,
		Target: fleet.Target{Group: Group}, Phases: o.Phases, AdvanceAt: o.AdvanceAt, PauseAt: o.PauseAt})
	if err != nil {
		return nil, err
	}
	execs, err := e.admin.DeploymentExecutions(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	failing := fl.plan(execs, o.FailRate)
	slices.Sort(failing)
	e.printf("deployment %s: %d devices; the health check will fail on %d of them (%s)\n",
		d.ID, len(execs), len(failing), joinIDs(failing))
	view := newRolloutView(o.Status, phaseNames(o.Phases))
	defer view.done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("deployment %s did not settle: %w (state %s, phase %d)", d.ID, ctx.Err(), d.State, d.CurrentPhase+1)
		case <-tick.C:
		}
		if d, err = e.admin.Deployment(ctx, d.ID); err != nil {
			return nil, err
		}
		view.update(d)
		if settled(d) {
			return d, nil
		}
	}
}

// settled reports whether a deployment will not move without an operator:
// finished, or paused with no device still in the middle of an update.
func settled(d *fleet.Deployment) bool {
	if d.Finished() {
		return true
	}
	if d.State != fleet.DeploymentPaused || d.Stats == nil {
		return false
	}
	for _, p := range d.Stats.Phases {
		if p.InProgress > 0 {
			return false
		}
	}
	return true
}
