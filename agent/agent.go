package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Errors of the agent's public calls.
var (
	ErrBusy            = errors.New("agent: an update is already in progress")
	ErrNotTesting      = errors.New("agent: no update is on trial")
	ErrConfirmTimeout  = errors.New("agent: confirmation came after the deadline")
	ErrNothingToRevert = errors.New("agent: nothing to roll back")
	ErrNotPackage      = errors.New("agent: not an update package")
	ErrBadDownload     = errors.New("agent: download failed")
)

// DefaultConfirmTimeout is how long a new image may run unconfirmed when the
// configuration does not say.
const DefaultConfirmTimeout = 5 * time.Minute

// Config wires an Agent to its device and server.
type Config struct {
	// Device identifies the device; Version is filled from the running image.
	Device Device
	// Slots are the firmware slots and boot switch. Required.
	Slots Slots
	// Store persists the lifecycle record. Required.
	Store StateStore
	// Images verifies firmware images. Required.
	Images ImageVerifier
	// Manifests verifies signed manifests; required for server updates.
	Manifests ManifestVerifier
	// Server is the update server; nil for local installs only.
	Server Server
	// Patcher applies deltas; without one, only full images are used.
	Patcher Patcher
	// Unpacker opens update packages; without one, artifacts are raw
	// images or patches.
	Unpacker Unpacker
	// WorkDir holds the partial download and unpacked payloads. Required.
	WorkDir string
	// Clock defaults to the system clock.
	Clock Clock
	// ConfirmTimeout is how long a new image may run before it must be
	// confirmed; DefaultConfirmTimeout when zero.
	ConfirmTimeout time.Duration
	// Progress, if set, receives every status change and download progress.
	Progress func(Status)
	// MaxRetries bounds consecutive download attempts that make no progress
	// (8 when zero); RetryDelay is the pause between them.
	MaxRetries int
	RetryDelay time.Duration
	// StallTimeout cuts a download that receives nothing for this long, so
	// that it is resumed on a fresh connection (60s when zero).
	StallTimeout time.Duration
	// CheckpointBytes is how often the download offset is persisted (64 KiB
	// when zero).
	CheckpointBytes int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Agent drives the update lifecycle of one device. Its methods are safe for
// concurrent use; they run one at a time.
type Agent struct {
	cfg Config
	mu  sync.Mutex
	rec Record

	// Download statistics of this process, for progress and tests.
	received    int64 // bytes received over the network since New
	lastPercent int
	speedStart  time.Time
	speedBytes  int64
}

// New returns an agent in the state its store holds. Call Start after every
// boot to reconcile that state with what the boot switch did.
func New(cfg Config) (*Agent, error) {
	if cfg.Slots == nil || cfg.Store == nil || cfg.Images == nil || cfg.WorkDir == "" {
		return nil, errors.New("agent: Config needs Slots, Store, Images and WorkDir")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = DefaultConfirmTimeout
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 8
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = time.Minute
	}
	if cfg.CheckpointBytes <= 0 {
		cfg.CheckpointBytes = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: work dir: %w", err)
	}
	rec, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	if !rec.State.Valid() {
		return nil, fmt.Errorf("%w %q", ErrUnknownState, rec.State)
	}
	return &Agent{cfg: cfg, rec: rec}, nil
}

// State returns the current lifecycle state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.State
}

// Record returns a copy of the persisted record.
func (a *Agent) Record() Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec
}

// BytesReceived returns how many artifact bytes this agent fetched over
// the network since it was created (retries included).
func (a *Agent) BytesReceived() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.received
}

// transition persists the move to state to, with mutate applied to the
// record, and only then makes it the agent's state.
func (a *Agent) transition(to State, mutate func(*Record)) error {
	from := a.rec.State
	if !CanTransition(from, to) {
		return fmt.Errorf("%w: %s → %s", ErrIllegalTransition, from, to)
	}
	r := a.rec
	if r.Artifact != nil {
		art := *r.Artifact
		r.Artifact = &art
	}
	r.State = to
	if mutate != nil {
		mutate(&r)
	}
	if err := a.cfg.Store.Save(r); err != nil {
		return fmt.Errorf("agent: persist %s: %w", to, err)
	}
	a.rec = r
	if from != to {
		a.cfg.Logger.Info("ota state", "from", from, "to", to, "version", r.Version, "error", r.Error)
		a.report(true)
	}
	return nil
}

// fail moves to FAILED recording cause, and returns cause.
func (a *Agent) fail(cause error) error {
	if err := a.transition(Failed, func(r *Record) { r.Error = cause.Error() }); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// record moves to FAILED recording cause, an outcome rather than an error
// of the call: it returns only a failure to persist.
func (a *Agent) record(cause error) error {
	return a.transition(Failed, func(r *Record) { r.Error = cause.Error() })
}

// status builds the updateStatus of the current record.
func (a *Agent) status() Status {
	st := Status{State: a.rec.State, Version: a.rec.Version}
	if art := a.rec.Artifact; art != nil {
		st.Details.TotalBytes = art.Size
		st.Details.BytesReceived = a.rec.Offset
	}
	st.Progress = progressOf(st.State, st.Details.BytesReceived, st.Details.TotalBytes)
	if el := a.cfg.Clock.Now().Sub(a.speedStart).Seconds(); a.rec.State == Downloading && el > 0 {
		st.Details.DownloadSpeed = int64(float64(a.speedBytes) / el)
	}
	if a.rec.State == Failed {
		st.Error = a.rec.Error
	}
	return st
}

// report sends the current status to the progress callback and, for state
// changes, to the server.
func (a *Agent) report(toServer bool) {
	st := a.status()
	if a.cfg.Progress != nil {
		a.cfg.Progress(st)
	}
	if toServer && a.cfg.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.cfg.Server.Report(ctx, a.device(), a.rec.Deployment, st); err != nil {
			a.cfg.Logger.Warn("ota report", "error", err)
		}
	}
}

func (a *Agent) device() Device {
	d := a.cfg.Device
	if a.rec.Previous != "" && (a.rec.State != Confirmed) {
		d.Version = a.rec.Previous
	}
	return d
}

// closeReader closes r if it holds a resource.
func closeReader(r any) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// running verifies the image in the primary slot and returns what it is.
func (a *Agent) running() (ImageInfo, error) {
	r, size, err := a.cfg.Slots.Primary()
	if err != nil {
		return ImageInfo{}, err
	}
	defer closeReader(r)
	info, err := a.cfg.Images.VerifyImage(r, size)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("agent: running image: %w", err)
	}
	return info, nil
}

// Running returns the version and security counter of the running image.
func (a *Agent) Running() (ImageInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running()
}

// sameVersion compares versions as MCUboot does (major.minor.revision
// and build), treating a missing build as +0; strings that are not
// versions compare as text.
func sameVersion(x, y string) bool {
	vx, okx := versionOrZero(x)
	vy, oky := versionOrZero(y)
	if okx && oky {
		return vx.Compare(vy) == 0
	}
	return strings.TrimSpace(x) == strings.TrimSpace(y)
}

func (a *Agent) partialPath() string { return filepath.Join(a.cfg.WorkDir, "download.part") }
func (a *Agent) payloadPath() string { return filepath.Join(a.cfg.WorkDir, "payload.bin") }

// Start reconciles the persisted state with what runs after a boot: an
// update pending a reboot becomes TESTING when the new image runs; a test
// that the bootloader reverted ends in FAILED; an interrupted verify or
// apply is redone; an expired test is rolled back. Call it once after
// every boot, before Confirm.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.start()
}

func (a *Agent) start() error {
	running, err := a.running()
	if err != nil {
		return err
	}
	a.cfg.Device.Version = running.Version
	boot, err := a.cfg.Slots.Boot()
	if err != nil {
		return err
	}
	now := a.cfg.Clock.Now()
	switch a.rec.State {
	case PendingReboot:
		switch {
		case sameVersion(running.Version, a.rec.Version):
			if err := a.transition(Testing, func(r *Record) {
				r.TestingSince, r.Deadline = now, now.Add(a.cfg.ConfirmTimeout)
			}); err != nil {
				return err
			}
			if boot.Confirmed { // installed as permanent: nothing to test
				return a.confirm()
			}
		case boot.Pending:
			// Not rebooted yet.
		default:
			return a.record(fmt.Errorf("%w: the bootloader did not start %s; %s still runs", ErrImage, a.rec.Version, running.Version))
		}
	case Testing:
		switch {
		case !sameVersion(running.Version, a.rec.Version):
			if err := a.transition(Reverting, nil); err != nil {
				return err
			}
			return a.record(fmt.Errorf("reverted to %s: %s was reset before it was confirmed", running.Version, a.rec.Version))
		case boot.Confirmed:
			return a.confirm()
		case !now.Before(a.rec.Deadline):
			return a.rollback(fmt.Errorf("%w: %s not confirmed by %s", ErrConfirmTimeout, a.rec.Version, a.rec.Deadline.Format(time.RFC3339)))
		}
	case Reverting:
		if sameVersion(running.Version, a.rec.Version) && !boot.Confirmed {
			// The reset that reverts did not happen yet.
			if err := a.cfg.Slots.Reset(); err != nil {
				return err
			}
			if running, err = a.running(); err != nil {
				return err
			}
		}
		if sameVersion(running.Version, a.rec.Version) {
			return fmt.Errorf("agent: revert of %s did not take effect", a.rec.Version)
		}
		a.cfg.Device.Version = running.Version
		msg := a.rec.Error
		if msg == "" {
			msg = "rolled back"
		}
		return a.record(fmt.Errorf("%s; %s runs again", msg, running.Version))
	case Confirmed:
		if !sameVersion(running.Version, a.rec.Version) {
			return a.record(fmt.Errorf("%s was reverted to %s before its confirmation was written", a.rec.Version, running.Version))
		}
		if !boot.Confirmed {
			if err := a.cfg.Slots.Confirm(); err != nil {
				return err
			}
		}
	case Verifying, Applying:
		// Interrupted by a reset: the artifact is complete on disk; verify
		// it again and redo the apply.
		if err := a.transition(Verifying, nil); err != nil {
			return err
		}
		return a.finish(running)
	}
	return nil
}

// Reboot simulates a device reset: the boot switch runs, then Start.
func (a *Agent) Reboot() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.cfg.Slots.Reset(); err != nil {
		return err
	}
	return a.start()
}

// Confirm is ota_confirm_update(timeout): the application calls it when
// its health checks pass on the new image. It makes the image permanent if
// it is called within timeout of the first boot of the image (and before
// the agent's own deadline); later, the image is rolled back and
// ErrConfirmTimeout is returned. timeout ≤ 0 means only the agent's
// deadline applies. Confirming an already confirmed image is a no-op.
func (a *Agent) Confirm(timeout time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.rec.State {
	case Confirmed:
		return nil
	case Testing:
	default:
		return fmt.Errorf("%w (state %s)", ErrNotTesting, a.rec.State)
	}
	now := a.cfg.Clock.Now()
	deadline := a.rec.Deadline
	if timeout > 0 && a.rec.TestingSince.Add(timeout).Before(deadline) {
		deadline = a.rec.TestingSince.Add(timeout)
	}
	if now.After(deadline) {
		err := fmt.Errorf("%w: %s ran unconfirmed since %s", ErrConfirmTimeout, a.rec.Version, a.rec.TestingSince.Format(time.RFC3339))
		return errors.Join(err, a.rollback(err))
	}
	return a.confirm()
}

func (a *Agent) confirm() error {
	if err := a.transition(Confirmed, func(r *Record) { r.Error = "" }); err != nil {
		return err
	}
	if err := a.cfg.Slots.Confirm(); err != nil {
		return err
	}
	info, err := a.running()
	if err != nil {
		return err
	}
	a.cfg.Device.Version = info.Version
	return a.cfg.Slots.SetCounter(info.SecurityCounter)
}

// Rollback is ota_rollback(): it abandons the update on trial (resetting to
// the previous image) or the one waiting for its reboot.
func (a *Agent) Rollback() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rollback(errors.New("rolled back on request"))
}

func (a *Agent) rollback(cause error) error {
	switch a.rec.State {
	case PendingReboot:
		if err := a.transition(Reverting, func(r *Record) { r.Error = cause.Error() }); err != nil {
			return err
		}
		if err := a.cfg.Slots.CancelTest(); err != nil {
			return err
		}
		return a.fail(cause)
	case Testing:
		if err := a.transition(Reverting, func(r *Record) { r.Error = cause.Error() }); err != nil {
			return err
		}
		if err := a.cfg.Slots.Reset(); err != nil {
			return err
		}
		return a.start()
	}
	return fmt.Errorf("%w (state %s)", ErrNothingToRevert, a.rec.State)
}

// CheckDeadline rolls back an update that ran unconfirmed past its
// deadline. It reports whether it did.
func (a *Agent) CheckDeadline() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec.State != Testing || a.cfg.Clock.Now().Before(a.rec.Deadline) {
		return false, nil
	}
	return true, a.rollback(fmt.Errorf("%w: %s not confirmed by %s", ErrConfirmTimeout, a.rec.Version, a.rec.Deadline.Format(time.RFC3339)))
}

// Deadline returns when the update on trial will be reverted, and false
// when nothing is on trial.
func (a *Agent) Deadline() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.Deadline, a.rec.State == Testing
}

// WatchDeadline blocks until ctx ends, rolling back an update that is not
// confirmed in time. It uses the agent's Clock, so a ManualClock drives it.
func (a *Agent) WatchDeadline(ctx context.Context) error {
	for {
		deadline, testing := a.Deadline()
		var fire <-chan time.Time
		if testing {
			fire = a.cfg.Clock.After(deadline.Sub(a.cfg.Clock.Now()))
		} else {
			fire = a.cfg.Clock.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fire:
			if _, err := a.CheckDeadline(); err != nil {
				return err
			}
		}
	}
}
