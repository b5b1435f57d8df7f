package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/otakit/otakit/internal/atomicfile"
)

// State is one of the nine states of the update lifecycle.
type State string

// The lifecycle states, spelled as in the updateStatus messages.
const (
	Idle          State = "IDLE"           // no update in progress
	Downloading   State = "DOWNLOADING"    // fetching the artifact, resumable
	Verifying     State = "VERIFYING"      // checking digests, signature, anti-rollback
	Applying      State = "APPLYING"       // writing the secondary slot
	PendingReboot State = "PENDING_REBOOT" // secondary marked for a test boot
	Testing       State = "TESTING"        // new image running, not yet confirmed
	Confirmed     State = "CONFIRMED"      // new image made permanent
	Reverting     State = "REVERTING"      // going back to the previous image
	Failed        State = "FAILED"         // the attempt ended without an update
)

// States lists every state in lifecycle order.
var States = []State{Idle, Downloading, Verifying, Applying, PendingReboot, Testing, Confirmed, Reverting, Failed}

// transitions is the table of legal moves. Self-transitions and the step
// back from APPLYING to VERIFYING exist only for resuming after a reset: a
// download continues where it stopped, and an interrupted apply is redone
// from a fresh verification of the downloaded artifact.
var transitions = map[State][]State{
	Idle:          {Downloading, Failed},
	Downloading:   {Downloading, Verifying, Failed},
	Verifying:     {Verifying, Applying, Failed},
	Applying:      {PendingReboot, Failed, Verifying},
	PendingReboot: {Testing, Reverting, Failed},
	Testing:       {Confirmed, Reverting},
	Confirmed:     {Idle, Downloading, Failed},
	Reverting:     {Failed},
	Failed:        {Idle, Downloading, Failed},
}

// ErrIllegalTransition is returned for a move that the lifecycle table does
// not allow, such as IDLE → TESTING.
var ErrIllegalTransition = errors.New("agent: illegal state transition")

// ErrUnknownState is returned when a stored record names no known state.
var ErrUnknownState = errors.New("agent: unknown state")

// CanTransition reports whether the lifecycle allows moving from one state to
// another.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Valid reports whether s is one of the nine states.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Record is what the agent persists: enough to continue after a reset at
// any point, including the position of a partial download.
type Record struct {
	State State `json:"state"`
	// Version is the version being installed (the target).
	Version string `json:"version,omitempty"`
	// Previous is the version that ran when the update started.
	Previous string `json:"previous,omitempty"`
	// Artifact is the file being downloaded and applied.
	Artifact *Artifact `json:"artifact,omitempty"`
	// Offset is how many bytes of the artifact are durably stored.
	Offset int64 `json:"offset,omitempty"`
	// ETag is the entity tag of the partial download, sent back in If-Range
	// so that a changed file restarts instead of being spliced.
	ETag string `json:"etag,omitempty"`
	// TestingSince is when the new image was first seen running.
	TestingSince time.Time `json:"testingSince,omitzero"`
	// Deadline is when an unconfirmed image is reverted.
	Deadline time.Time `json:"deadline,omitzero"`
	// Sequence is the highest manifest sequence number accepted, so that a
	// replayed or older manifest is refused.
	Sequence uint64 `json:"sequence,omitempty"`
	// Deployment is the server's name for the rollout this update belongs
	// to, for status reports.
	Deployment string `json:"deployment,omitempty"`
	// Error says why the last attempt failed or was reverted.
	Error string `json:"error,omitempty"`
}

// StateStore persists the agent's Record. Save must be durable when it
// returns: the agent relies on it to record a state before acting on it.
type StateStore interface {
	// Load returns the stored record, or a zero Record in state IDLE when
	// nothing was stored yet.
	Load() (Record, error)
	// Save replaces the stored record atomically.
	Save(Record) error
}

// FileStore is a StateStore kept as a JSON file, replaced atomically by
// writing a temporary file, syncing it and renaming it over the old one.
type FileStore struct {
	Path string
}

// Load reads the record; a missing file gives a fresh IDLE record.
func (s FileStore) Load() (Record, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Record{State: Idle}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("agent: load state: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("agent: state file %s is corrupt: %w", s.Path, err)
	}
	if !r.State.Valid() {
		return Record{}, fmt.Errorf("%w %q in %s", ErrUnknownState, r.State, s.Path)
	}
	return r, nil
}

// Save writes the record durably.
func (s FileStore) Save(r Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	if err := atomicfile.WriteFile(s.Path, b, 0o600); err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	return nil
}

// MemStore is a StateStore held in memory, for simulated devices whose state
// lives with the simulator rather than on disk. It counts saves so callers can
// observe that every transition was persisted.
type MemStore struct {
	rec   Record
	set   bool
	Saves []Record
}

// Load returns the last saved record.
func (m *MemStore) Load() (Record, error) {
	if !m.set {
		return Record{State: Idle}, nil
	}
	return m.rec, nil
}

// Save keeps r.
func (m *MemStore) Save(r Record) error {
	m.rec, m.set = r, true
	m.Saves = append(m.Saves, r)
	return nil
}
