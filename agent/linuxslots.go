package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/otakit/otakit/internal/atomicfile"
)

// ErrSlotState is returned when the slot state file is unreadable or says
// something impossible.
var ErrSlotState = errors.New("agent: bad slot state")

// ErrSlotFull is returned when an image does not fit its slot.
var ErrSlotFull = errors.New("agent: image larger than the slot")

// LinuxSlots implements Slots for Linux gateways: two slot files or block
// devices, A and B, a small JSON state file saying which one is active, and
// a hook command that tells the real bootloader (U-Boot, GRUB, …) about each
// switch.
//
// The hook runs as `Hook[0] Hook[1:]... SLOT` with OTA_ACTION set to
// "test" (boot SLOT once on trial), "confirm" (make SLOT the default),
// "revert" (go back to SLOT) or "cancel" (drop a pending trial of SLOT).
// Reset applies the boot decision that such a bootloader makes (a one-shot
// trial boot, and a revert when the trial was not confirmed) to the state
// file and then runs RebootCommand, if any; a simulated gateway leaves it
// empty.
type LinuxSlots struct {
	// A and B are the slot paths (files or block devices).
	A, B string
	// StatePath is the JSON file recording the active slot.
	StatePath string
	// Hook is the boot-switch command; empty means none.
	Hook []string
	// RebootCommand, when set, is run by Reset after the state is saved.
	RebootCommand []string
	// SlotSize bounds what is written to a slot; 0 means no bound (files).
	SlotSize int64

	mu sync.Mutex
}

// linuxState is the slot state file's content.
type linuxState struct {
	Active   string `json:"active"`             // "A" or "B": the running slot
	Pending  string `json:"pending,omitempty"`  // slot to boot on trial at the next reset
	Trial    bool   `json:"trial,omitempty"`    // the active slot runs on trial
	Previous string `json:"previous,omitempty"` // slot to revert to from a trial
	Counter  uint32 `json:"counter,omitempty"`  // anti-rollback security counter
}

func (l *LinuxSlots) load() (linuxState, error) {
	b, err := os.ReadFile(l.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return linuxState{Active: "A"}, nil
	}
	if err != nil {
		return linuxState{}, fmt.Errorf("%w: %v", ErrSlotState, err)
	}
	var s linuxState
	if err := json.Unmarshal(b, &s); err != nil {
		return linuxState{}, fmt.Errorf("%w: %s: %v", ErrSlotState, l.StatePath, err)
	}
	okSlot := func(n string, empty bool) bool { return n == "A" || n == "B" || (empty && n == "") }
	if !okSlot(s.Active, false) || !okSlot(s.Pending, true) || !okSlot(s.Previous, true) ||
		(s.Trial && (s.Previous == "" || s.Previous == s.Active)) || s.Pending == s.Active && s.Pending != "" {
		return linuxState{}, fmt.Errorf("%w: %s: inconsistent %+v", ErrSlotState, l.StatePath, s)
	}
	return s, nil
}

func (l *LinuxSlots) save(s linuxState) error {
	b, _ := json.Marshal(s)
	if err := atomicfile.WriteFile(l.StatePath, b, 0o600); err != nil {
		return fmt.Errorf("agent: save slot state: %w", err)
	}
	return nil
}

func other(slot string) string {
	if slot == "A" {
		return "B"
	}
	return "A"
}

func (l *LinuxSlots) path(slot string) string {
	if slot == "A" {
		return l.A
	}
	return l.B
}

func (l *LinuxSlots) hook(action, slot string) error {
	if len(l.Hook) == 0 {
		return nil
	}
	cmd := exec.CommandContext(context.Background(), l.Hook[0], append(l.Hook[1:], slot)...)
	cmd.Env = append(os.Environ(), "OTA_ACTION="+action, "OTA_SLOT_PATH="+l.path(slot))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("agent: boot hook %s %s: %w: %s", action, slot, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// slotFile is an open slot with its usable size.
type slotFile struct {
	*os.File
	size int64
}

func openSlot(path string) (*slotFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent: open slot: %w", err)
	}
	// Seeking to the end gives the size of block devices as well as files.
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: open slot: %w", err)
	}
	return &slotFile{f, n}, nil
}

// Primary opens the active slot.
func (l *LinuxSlots) Primary() (io.ReaderAt, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return nil, 0, err
	}
	f, err := openSlot(l.path(s.Active))
	if err != nil {
		return nil, 0, err
	}
	return f, f.size, nil
}

// Secondary opens the inactive slot.
func (l *LinuxSlots) Secondary() (io.ReaderAt, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return nil, 0, err
	}
	f, err := openSlot(l.path(other(s.Active)))
	if err != nil {
		return nil, 0, err
	}
	return f, f.size, nil
}

// slotWriter writes a slot sequentially and syncs on Close.
type slotWriter struct {
	f     *os.File
	n     int64
	limit int64
}

func (w *slotWriter) Write(p []byte) (int, error) {
	if w.limit > 0 && w.n+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w (%d bytes)", ErrSlotFull, w.limit)
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *slotWriter) Close() error {
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteSecondary empties the inactive slot (truncating a regular file) and
// returns a sequential writer to it. A pending trial of that slot is
// cancelled first, so a half-written slot is never marked for boot.
func (l *LinuxSlots) WriteSecondary() (io.WriteCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return nil, err
	}
	if s.Trial {
		return nil, fmt.Errorf("%w: the running slot %s is on trial; confirm or revert it first", ErrSlotState, s.Active)
	}
	if s.Pending != "" {
		s.Pending = ""
		if err := l.save(s); err != nil {
			return nil, err
		}
		if err := l.hook("cancel", other(s.Active)); err != nil {
			return nil, err
		}
	}
	p := l.path(other(s.Active))
	flags := os.O_WRONLY | os.O_CREATE
	if fi, err := os.Stat(p); err != nil || fi.Mode().IsRegular() {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("agent: open slot for writing: %w", err)
	}
	return &slotWriter{f: f, limit: l.SlotSize}, nil
}

// MarkTest marks the inactive slot for a trial boot and tells the hook.
func (l *LinuxSlots) MarkTest() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return err
	}
	if s.Trial {
		return fmt.Errorf("%w: the running slot %s is on trial", ErrSlotState, s.Active)
	}
	s.Pending = other(s.Active)
	if err := l.save(s); err != nil {
		return err
	}
	return l.hook("test", s.Pending)
}

// CancelTest drops a pending trial.
func (l *LinuxSlots) CancelTest() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return err
	}
	if s.Pending == "" {
		return nil
	}
	p := s.Pending
	s.Pending = ""
	if err := l.save(s); err != nil {
		return err
	}
	return l.hook("cancel", p)
}

// Confirm ends the trial of the running slot.
func (l *LinuxSlots) Confirm() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return err
	}
	if !s.Trial {
		return nil
	}
	s.Trial, s.Previous = false, ""
	if err := l.save(s); err != nil {
		return err
	}
	return l.hook("confirm", s.Active)
}

// Reset applies the boot decision: an unconfirmed trial reverts to the
// previous slot; otherwise a pending slot starts its trial.
func (l *LinuxSlots) Reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return err
	}
	switch {
	case s.Trial:
		s.Active, s.Previous, s.Trial, s.Pending = s.Previous, "", false, ""
		if err := l.save(s); err != nil {
			return err
		}
		if err := l.hook("revert", s.Active); err != nil {
			return err
		}
	case s.Pending != "":
		s.Previous, s.Active, s.Pending, s.Trial = s.Active, s.Pending, "", true
		if err := l.save(s); err != nil {
			return err
		}
	}
	if len(l.RebootCommand) > 0 {
		if out, err := exec.Command(l.RebootCommand[0], l.RebootCommand[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("agent: reboot command: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Boot reports the running slot's trial status.
func (l *LinuxSlots) Boot() (BootInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return BootInfo{}, err
	}
	return BootInfo{Confirmed: !s.Trial, Pending: s.Pending != ""}, nil
}

// Active returns the name of the running slot, "A" or "B".
func (l *LinuxSlots) Active() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	return s.Active, err
}

// Counter returns the stored security counter.
func (l *LinuxSlots) Counter() (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	return s.Counter, err
}

// SetCounter raises the security counter; lower values are ignored.
func (l *LinuxSlots) SetCounter(c uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.load()
	if err != nil {
		return err
	}
	if c <= s.Counter {
		return nil
	}
	s.Counter = c
	return l.save(s)
}
