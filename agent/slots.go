package agent

import "io"

// Slots is the device's pair of firmware slots and its boot switch, seen from
// the agent. The primary slot holds the running image; the secondary slot
// receives the update. Implementations: LinuxSlots (two files or block
// devices and a boot-switch hook) and the MCUboot flash simulator adapter.
type Slots interface {
	// Primary returns the running image's slot for reading (the source of a
	// delta) and the slot's size.
	Primary() (io.ReaderAt, int64, error)
	// Secondary returns the update slot for reading back, and its size.
	Secondary() (io.ReaderAt, int64, error)
	// WriteSecondary erases the update slot and returns a writer that fills
	// it sequentially from offset 0. Close flushes; a write past the slot's
	// end fails.
	WriteSecondary() (io.WriteCloser, error)
	// MarkTest arranges for the secondary image to be booted once, on trial,
	// at the next reset (MCUboot's boot_set_pending(0)).
	MarkTest() error
	// Confirm makes the running image permanent (MCUboot's image_ok).
	Confirm() error
	// CancelTest undoes MarkTest before the reset happened.
	CancelTest() error
	// Reset simulates or requests a device reset: the boot switch decides
	// which image runs, swapping or reverting as the bootloader would.
	Reset() error
	// Boot reports what the boot switch left running.
	Boot() (BootInfo, error)
	// Counter returns the anti-rollback security counter: images whose
	// security counter is below it are refused.
	Counter() (uint32, error)
	// SetCounter raises the security counter; it never goes down.
	SetCounter(uint32) error
}

// BootInfo says what is running after a reset.
type BootInfo struct {
	// Confirmed is false while the running image is on trial: a reset
	// without a confirmation will go back to the previous image.
	Confirmed bool
	// Pending is true when the secondary is marked for a test boot.
	Pending bool
}
