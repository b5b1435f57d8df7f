package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/nvs"
)

// FlashSlots is the MCUboot flash simulator (package boot) as the agent's
// Slots: updates go into the secondary slot, MCUboot's trailer marks them
// for a test boot or confirms them, and Reset runs the simulated boot
// loader, which swaps, reverts or resumes an interrupted swap. The
// security counter lives in the device's config partition.
type FlashSlots struct {
	Device *boot.Device
}

// Primary returns the primary slot.
func (f *FlashSlots) Primary() (io.ReaderAt, int64, error) {
	r, n := f.Device.Loader.SlotReader(boot.Primary)
	return r, n, nil
}

// Secondary returns the secondary slot.
func (f *FlashSlots) Secondary() (io.ReaderAt, int64, error) {
	r, n := f.Device.Loader.SlotReader(boot.Secondary)
	return r, n, nil
}

// WriteSecondary erases the secondary slot and writes it from offset 0.
func (f *FlashSlots) WriteSecondary() (io.WriteCloser, error) {
	return f.Device.Loader.SecondaryWriter()
}

// MarkTest is boot_set_pending(0).
func (f *FlashSlots) MarkTest() error { return f.Device.Loader.SetPending(false) }

// Confirm is boot_set_confirmed.
func (f *FlashSlots) Confirm() error { return f.Device.Loader.Confirm() }

// CancelTest erases the secondary trailer so nothing is swapped.
func (f *FlashSlots) CancelTest() error { return f.Device.Loader.CancelPending() }

// Reset runs the boot loader once.
func (f *FlashSlots) Reset() error {
	_, err := f.Device.Loader.Boot()
	return err
}

// Boot reports whether the running image is on trial and whether a swap
// is pending, from the trailers.
func (f *FlashSlots) Boot() (BootInfo, error) {
	trial, err := f.Device.Loader.Trial()
	if err != nil {
		return BootInfo{}, err
	}
	pending, err := f.Device.Loader.Pending()
	return BootInfo{Confirmed: !trial, Pending: pending}, err
}

// Counter returns the security counter.
func (f *FlashSlots) Counter() (uint32, error) { return f.Device.SecurityCounter() }

// SetCounter raises the security counter; lower values are ignored.
func (f *FlashSlots) SetCounter(c uint32) error { return f.Device.RaiseSecurityCounter(c) }

var _ Slots = (*FlashSlots)(nil)

// ConfigStore is a StateStore in the device's config partition (package
// nvs), beside the security counter: the record survives power cuts as
// the store's writes do, old or new, never torn.
type ConfigStore struct {
	Store *nvs.Store
	Key   string // "agent/state" when empty
}

func (s ConfigStore) key() string {
	if s.Key == "" {
		return "agent/state"
	}
	return s.Key
}

// Load returns the stored record, or IDLE when there is none.
func (s ConfigStore) Load() (Record, error) {
	b, err := s.Store.Get(s.key())
	if errors.Is(err, nvs.ErrNotFound) {
		return Record{State: Idle}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("agent: load state: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("agent: state in the config partition is corrupt: %w", err)
	}
	if !r.State.Valid() {
		return Record{}, fmt.Errorf("%w %q in the config partition", ErrUnknownState, r.State)
	}
	return r, nil
}

// Save replaces the record.
func (s ConfigStore) Save(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	if err := s.Store.Put(s.key(), b); err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	return nil
}
