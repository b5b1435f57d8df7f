package fleet

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Deployment states.
const (
	DeploymentScheduled = "scheduled"
	DeploymentRunning   = "running"
	DeploymentPaused    = "paused"
	DeploymentCanceled  = "canceled"
	DeploymentCompleted = "completed"
)

// Target selects the devices of a deployment. It is resolved once, when the
// deployment is created: devices that join the group later are not added.
// Devices lists ids; otherwise a device matches when it is in Group (if
// set) and carries every tag of Tags.
type Target struct {
	Group   string   `json:"group,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	Devices []string `json:"devices,omitempty"`
}

// Phase is one step of a rollout: either a share of the target in percent
// or a batch of Count devices. The last phase takes whatever remains.
type Phase struct {
	Percent float64 `json:"percent,omitempty"`
	Count   int     `json:"count,omitempty"`
}

// Deployment rolls a release out to a target in phases.
type Deployment struct {
	ID        string  `json:"id"`
	Name      string  `json:"name,omitempty"`
	ReleaseID string  `json:"release"`
	Target    Target  `json:"target"`
	Phases    []Phase `json:"phases,omitempty"`
	// AdvanceAt is the success rate (0..1] of the current phase at which
	// the next phase starts. Zero means 1: every device must succeed.
	AdvanceAt float64 `json:"advanceAt,omitempty"`
	// PauseAt pauses the rollout when the failure rate over all released
	// phases exceeds it (0..1). Zero disables auto-pause.
	PauseAt      float64   `json:"pauseAt,omitempty"`
	StartAt      time.Time `json:"startAt,omitzero"`
	State        string    `json:"state"`
	CurrentPhase int       `json:"currentPhase"`
	// Reason says why the deployment was last paused or completed.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	Stats     *Stats    `json:"stats,omitempty"`
}

// Finished reports whether the deployment can no longer change.
func (d *Deployment) Finished() bool {
	return d.State == DeploymentCanceled || d.State == DeploymentCompleted
}

// Validate checks the fields an admin supplies.
func (d *Deployment) Validate() error {
	if d.ReleaseID == "" {
		return fmt.Errorf("%w: deployment needs a release", ErrInvalid)
	}
	if d.Target.Group == "" && len(d.Target.Tags) == 0 && len(d.Target.Devices) == 0 {
		return fmt.Errorf("%w: deployment needs a target (group, tags or devices)", ErrInvalid)
	}
	if d.AdvanceAt < 0 || d.AdvanceAt > 1 || d.PauseAt < 0 || d.PauseAt > 1 {
		return fmt.Errorf("%w: advanceAt and pauseAt are rates between 0 and 1", ErrInvalid)
	}
	if len(d.Phases) > 100 {
		return fmt.Errorf("%w: at most 100 phases", ErrInvalid)
	}
	for i, p := range d.Phases {
		if (p.Percent > 0) == (p.Count > 0) || p.Percent < 0 || p.Count < 0 || p.Percent > 100 {
			return fmt.Errorf("%w: phase %d: give either percent (0,100] or count > 0", ErrInvalid, i+1)
		}
	}
	if len(d.Name) > 200 {
		return fmt.Errorf("%w: name too long", ErrInvalid)
	}
	return nil
}

// AssignPhases orders the target's devices deterministically but spread
// (by a hash of deployment and device id, so phase 1 is not always the
// same devices) and returns each device's phase index.
func AssignPhases(deploymentID string, devices []string, phases []Phase) map[string]int {
	type dv struct {
		id string
		h  [32]byte
	}
	list := make([]dv, len(devices))
	for i, id := range devices {
		list[i] = dv{id, sha256.Sum256([]byte(deploymentID + "\x00" + id))}
	}
	sort.Slice(list, func(i, j int) bool { return string(list[i].h[:]) < string(list[j].h[:]) })
	if len(phases) == 0 {
		phases = []Phase{{Percent: 100}}
	}
	n := len(list)
	out := make(map[string]int, n)
	pos := 0
	for pi, p := range phases {
		size := p.Count
		if p.Percent > 0 {
			size = int(float64(n)*p.Percent/100 + 0.5)
			if size == 0 {
				size = 1
			}
		}
		if pi == len(phases)-1 {
			size = n - pos
		}
		for k := 0; k < size && pos < n; k++ {
			out[list[pos].id] = pi
			pos++
		}
	}
	return out
}

// Execution states. Pending executions have not been offered yet; the
// in-progress states follow the device agent's state machine; success,
// failure, canceled and skipped are final.
const (
	ExecPending       = "pending"
	ExecOffered       = "offered"
	ExecDownloading   = "downloading"
	ExecVerifying     = "verifying"
	ExecApplying      = "applying"
	ExecPendingReboot = "pending_reboot"
	ExecTesting       = "testing"
	ExecSuccess       = "success"
	ExecFailure       = "failure"
	ExecCanceled      = "canceled"
	ExecSkipped       = "skipped" // device incompatible with the release
)

// ExecFinal reports whether an execution state is final.
func ExecFinal(state string) bool {
	switch state {
	case ExecSuccess, ExecFailure, ExecCanceled, ExecSkipped:
		return true
	}
	return false
}

// Execution is one device's part in one deployment.
type Execution struct {
	ID           int64     `json:"id"`
	DeploymentID string    `json:"deployment"`
	DeviceID     string    `json:"device"`
	Phase        int       `json:"phase"`
	State        string    `json:"state"`
	DeviceState  string    `json:"deviceState,omitempty"` // as the device reported it
	Progress     int       `json:"progress"`
	Bytes        int64     `json:"bytesReceived"`
	TotalBytes   int64     `json:"totalBytes"`
	Speed        int64     `json:"downloadSpeed"`
	Artifact     string    `json:"artifact,omitempty"`
	Error        string    `json:"error,omitempty"`
	UpdatedAt    time.Time `json:"updatedAt"`
	History      []Event   `json:"history,omitempty"`
}

// Event is one entry of an execution's history: a state change.
type Event struct {
	Time     time.Time `json:"time"`
	State    string    `json:"state"`
	Progress int       `json:"progress"`
	Message  string    `json:"message,omitempty"`
}

// ExecutionFilter selects executions by deployment and/or device.
type ExecutionFilter struct {
	DeploymentID string
	DeviceID     string
	Limit        int
}

// Status is a device's report in the spec's updateStatus shape.
type Status struct {
	State    string        `json:"state"`
	Progress int           `json:"progress"`
	Version  string        `json:"version,omitempty"`
	Details  StatusDetails `json:"details"`
	// Error is an optional human-readable reason for a failure.
	Error string `json:"error,omitempty"`
}

// StatusDetails carries download progress.
type StatusDetails struct {
	BytesReceived int64 `json:"bytesReceived"`
	TotalBytes    int64 `json:"totalBytes"`
	DownloadSpeed int64 `json:"downloadSpeed"`
}

// ExecStateOf maps the agent state machine's states (IDLE, DOWNLOADING,
// VERIFYING, APPLYING, PENDING_REBOOT, TESTING, CONFIRMED, REVERTING,
// FAILED) to execution states. IDLE maps to "" (no change).
func ExecStateOf(deviceState string) (string, error) {
	switch strings.ToUpper(deviceState) {
	case "IDLE":
		return "", nil
	case "DOWNLOADING":
		return ExecDownloading, nil
	case "VERIFYING":
		return ExecVerifying, nil
	case "APPLYING":
		return ExecApplying, nil
	case "PENDING_REBOOT":
		return ExecPendingReboot, nil
	case "TESTING":
		return ExecTesting, nil
	case "CONFIRMED":
		return ExecSuccess, nil
	case "REVERTING", "FAILED":
		return ExecFailure, nil
	}
	return "", fmt.Errorf("%w: unknown state %q", ErrInvalid, deviceState)
}

// Validate checks a status report's ranges.
func (s *Status) Validate() error {
	if _, err := ExecStateOf(s.State); err != nil {
		return err
	}
	if s.Progress < 0 || s.Progress > 100 {
		return fmt.Errorf("%w: progress %d outside 0..100", ErrInvalid, s.Progress)
	}
	d := s.Details
	if d.BytesReceived < 0 || d.TotalBytes < 0 || d.DownloadSpeed < 0 {
		return fmt.Errorf("%w: negative byte counts", ErrInvalid)
	}
	if len(s.Error) > 4096 || len(s.Version) > 64 {
		return fmt.Errorf("%w: error or version too long", ErrInvalid)
	}
	return nil
}

// Stats counts a deployment's executions per state, overall and per phase.
type Stats struct {
	Total  int            `json:"total"`
	States map[string]int `json:"states"`
	Phases []PhaseStats   `json:"phases"`
}

// PhaseStats counts one phase's executions.
type PhaseStats struct {
	Phase      int `json:"phase"`
	Total      int `json:"total"`
	Pending    int `json:"pending"`
	InProgress int `json:"inProgress"`
	Success    int `json:"success"`
	Failure    int `json:"failure"`
	Canceled   int `json:"canceled"`
	Skipped    int `json:"skipped"`
}

// Add counts n executions of phase in state.
func (s *Stats) Add(phase int, state string, n int) {
	if s.States == nil {
		s.States = map[string]int{}
	}
	for len(s.Phases) <= phase {
		s.Phases = append(s.Phases, PhaseStats{Phase: len(s.Phases)})
	}
	p := &s.Phases[phase]
	s.Total += n
	s.States[state] += n
	p.Total += n
	switch state {
	case ExecPending:
		p.Pending += n
	case ExecSuccess:
		p.Success += n
	case ExecFailure:
		p.Failure += n
	case ExecCanceled:
		p.Canceled += n
	case ExecSkipped:
		p.Skipped += n
	default:
		p.InProgress += n
	}
}

// Decision is what Evaluate tells a store to do with a running deployment.
type Decision struct {
	State        string // new deployment state
	CurrentPhase int
	Reason       string
}

// Evaluate applies the rollout rules to a running deployment given its
// statistics:
//   - pause when failures over all released phases exceed PauseAt;
//   - advance when the current phase's success rate reaches AdvanceAt
//     (skipped, incompatible devices do not count);
//   - pause when the current phase finished below AdvanceAt;
//   - complete when the last phase has no unfinished execution.
//
// Rates are over the devices of the phase, not only those that answered,
// so a phase does not advance on its first success.
func Evaluate(d *Deployment, s *Stats) Decision {
	dec := Decision{State: d.State, CurrentPhase: d.CurrentPhase, Reason: d.Reason}
	if d.State != DeploymentRunning || s == nil {
		return dec
	}
	last := len(s.Phases) - 1
	for {
		released, failed := 0, 0
		for i := 0; i <= dec.CurrentPhase && i < len(s.Phases); i++ {
			p := s.Phases[i]
			released += p.Total - p.Skipped - p.Canceled
			failed += p.Failure
		}
		if d.PauseAt > 0 && released > 0 && float64(failed)/float64(released) > d.PauseAt {
			dec.State = DeploymentPaused
			dec.Reason = fmt.Sprintf("failure rate %d/%d exceeds %.0f%%", failed, released, d.PauseAt*100)
			return dec
		}
		if dec.CurrentPhase > last {
			dec.State, dec.Reason = DeploymentCompleted, "all phases finished"
			return dec
		}
		p := s.Phases[dec.CurrentPhase]
		counted := p.Total - p.Skipped - p.Canceled
		unfinished := p.Pending + p.InProgress
		advanceAt := d.AdvanceAt
		if advanceAt == 0 {
			advanceAt = 1
		}
		reached := counted == 0 || float64(p.Success)/float64(counted) >= advanceAt-1e-9
		if dec.CurrentPhase == last {
			if unfinished == 0 {
				dec.State, dec.Reason = DeploymentCompleted, "all phases finished"
			}
			return dec
		}
		if reached {
			dec.CurrentPhase++
			dec.Reason = fmt.Sprintf("phase %d reached %d/%d successes", dec.CurrentPhase, p.Success, counted)
			continue
		}
		if unfinished == 0 {
			dec.State = DeploymentPaused
			dec.Reason = fmt.Sprintf("phase %d finished with %d/%d successes, below %.0f%%", dec.CurrentPhase+1, p.Success, counted, advanceAt*100)
		}
		return dec
	}
}
