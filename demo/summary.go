package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/otakit/otakit/agent"
	"github.com/otakit/otakit/fleet"
)

// ErrMismatch is returned when the devices and the server disagree about
// the outcome of the rollout.
var ErrMismatch = errors.New("demo: devices and server disagree")

// Summary is the outcome of a run, from both sides: what each device's
// agent ended with and what the server recorded.
type Summary struct {
	URL        string // the server's base URL
	AdminToken string
	Dir        string
	// Deployment is the server's view at the end, with its statistics.
	Deployment *fleet.Deployment
	Phases     []string // phase names
	Devices    []DeviceResult
	// FullPackage is the size of To's full update package, DeltaPackage
	// that of the From → To delta package.
	FullPackage, DeltaPackage int64
	// BytesReceived is what the agents downloaded; BytesServed what the
	// server counted as sent (its ota_download_bytes_total).
	BytesReceived, BytesServed int64
	Elapsed                    time.Duration
}

// DeviceResult is one device at the end of the run.
type DeviceResult struct {
	ID    string
	Phase int
	// HealthFails is whether the demo made its health check fail.
	HealthFails bool
	// Running is the version in the primary slot; State the agent's
	// lifecycle state, Error its last error.
	Running string
	State   agent.State
	Error   string
	// Artifact is what the device downloaded ("" when nothing was
	// offered), Delta whether it was a delta, Bytes how many bytes the
	// agent received.
	Artifact string
	Delta    bool
	Bytes    int64
	// Execution is the server's execution state for this device.
	Execution string
}

// Count returns how many devices run version in agent state st.
func (s *Summary) Count(version string, st agent.State) int {
	n := 0
	for _, d := range s.Devices {
		if d.Running == version && d.State == st {
			n++
		}
	}
	return n
}

// Downloads counts devices that downloaded a delta and a full image.
func (s *Summary) Downloads() (deltas, full int) {
	for _, d := range s.Devices {
		switch {
		case d.Artifact == "":
		case d.Delta:
			deltas++
		default:
			full++
		}
	}
	return
}

// Savings is the share of bytes the deltas saved against sending every
// device that downloaded the full package.
func (s *Summary) Savings() float64 {
	deltas, full := s.Downloads()
	all := int64(deltas+full) * s.FullPackage
	if all == 0 {
		return 0
	}
	return 1 - float64(s.BytesReceived)/float64(all)
}

// Check compares the devices with the server: every device the server
// counts a success runs To, confirmed; every failure was rolled back to
// From; the bytes the agents received are the bytes the server sent.
func (s *Summary) Check() error {
	var errs []error
	for _, d := range s.Devices {
		switch d.Execution {
		case fleet.ExecSuccess:
			if d.Running != To || d.State != agent.Confirmed {
				errs = append(errs, fmt.Errorf("%s: server says success, device runs %s in %s", d.ID, d.Running, d.State))
			}
		case fleet.ExecFailure:
			if d.Running != From || d.State != agent.Failed {
				errs = append(errs, fmt.Errorf("%s: server says failure, device runs %s in %s", d.ID, d.Running, d.State))
			}
		}
	}
	if s.BytesServed >= 0 && s.BytesServed != s.BytesReceived {
		errs = append(errs, fmt.Errorf("server sent %d bytes, devices received %d", s.BytesServed, s.BytesReceived))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return nil
}

// summarize collects the devices' and the server's views.
func (e *env) summarize(ctx context.Context, fl *simFleet, d *fleet.Deployment) (*Summary, error) {
	s := &Summary{URL: e.url, AdminToken: e.token, Dir: e.dir, Deployment: d, Phases: phaseNames(e.o.Phases),
		FullPackage: e.releases[To].Summary.UpdateImage.Size}
	for _, p := range e.releases[To].Summary.DeltaPatches {
		if p.FromVersion == From {
			s.DeltaPackage = p.Size
		}
	}
	execs, err := e.admin.DeploymentExecutions(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	byDevice := map[string]*fleet.Execution{}
	for _, x := range execs {
		byDevice[x.DeviceID] = x
	}
	for _, dev := range fl.devices {
		r := DeviceResult{ID: dev.id, HealthFails: fl.failing[dev.id], State: dev.agent.State(), Bytes: dev.agent.BytesReceived()}
		info, err := dev.agent.Running()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dev.id, err)
		}
		r.Running = info.Version
		rec := dev.agent.Record()
		r.Error = rec.Error
		if rec.Artifact != nil && rec.Deployment == d.ID {
			r.Artifact, r.Delta = rec.Artifact.Name, rec.Artifact.Type == agent.TypeDelta
		}
		if x := byDevice[dev.id]; x != nil {
			r.Phase, r.Execution = x.Phase, x.State
		}
		s.BytesReceived += r.Bytes
		s.Devices = append(s.Devices, r)
	}
	s.BytesServed = e.bytesServed()
	s.Elapsed = time.Since(e.started)
	return s, nil
}

// Print writes the summary for people.
func (s *Summary) Print(w io.Writer) {
	d := s.Deployment
	fmt.Fprintf(w, "\n== summary\n")
	fmt.Fprintf(w, "deployment %s: %s (%s)\n", d.ID, d.State, d.Reason)
	if d.Stats != nil {
		for i, p := range d.Stats.Phases {
			name := ""
			if i < len(s.Phases) {
				name = " (" + s.Phases[i] + ")"
			}
			fmt.Fprintf(w, "  phase %d%s: %d devices: %d updated, %d failed, %d in progress, %d not started\n",
				i+1, name, p.Total, p.Success, p.Failure, p.InProgress, p.Pending)
		}
	}
	var rolledBack []string
	other := map[string][]string{} // "1.1.0, IDLE" → ids
	var otherKeys []string
	for _, r := range s.Devices {
		switch {
		case r.Running == To && r.State == agent.Confirmed:
		case r.Running == From && r.State == agent.Failed && r.Artifact != "":
			rolledBack = append(rolledBack, r.ID)
		default:
			k := fmt.Sprintf("%s, %s", r.Running, r.State)
			if r.Error != "" {
				k += ": " + r.Error
			}
			if other[k] == nil {
				otherKeys = append(otherKeys, k)
			}
			other[k] = append(other[k], r.ID)
		}
	}
	fmt.Fprintf(w, "devices: %d of %d run %s, confirmed; %d rolled back to %s after a failed health check (%s)\n",
		s.Count(To, agent.Confirmed), len(s.Devices), To, len(rolledBack), From, joinIDs(rolledBack))
	for _, k := range otherKeys {
		ids := other[k]
		list := joinIDs(ids)
		if len(ids) > 6 {
			list = joinIDs(ids[:3]) + ", …, " + ids[len(ids)-1]
		}
		fmt.Fprintf(w, "  %d not updated (%s): %s\n", len(ids), k, list)
	}
	if d.State == fleet.DeploymentPaused {
		fmt.Fprintf(w, "  the rollout paused itself; with --keep: ota deployments resume %s --server %s --token %s\n", d.ID, s.URL, s.AdminToken)
	}
	deltas, full := s.Downloads()
	fmt.Fprintf(w, "downloads: %d deltas, %d full images; %d bytes received by the devices, %d sent by the server\n",
		deltas, full, s.BytesReceived, s.BytesServed)
	fmt.Fprintf(w, "  full images would have been %d × %d = %d bytes: the delta (%d bytes) saved %.1f%%\n",
		deltas+full, s.FullPackage, int64(deltas+full)*s.FullPackage, s.DeltaPackage, 100*s.Savings())
	fmt.Fprintf(w, "dashboard: %s/ui/ (admin token %s)\n", s.URL, s.AdminToken)
	fmt.Fprintf(w, "took %.1fs\n", s.Elapsed.Seconds())
}
