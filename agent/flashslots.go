package agent

import (
	"io"

	"github.com/otakit/otakit/boot"
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
