package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/nvs"
)

// MCUSlots implements Slots on the MCUboot flash simulator (packages
// flash, boot and nvs): the primary and secondary slots of the device's
// partition map, trailers written as MCUboot's boot_set_pending and
// boot_set_confirmed do, and a reset that runs the simulated boot loader,
// which validates, swaps and reverts as MCUboot does. The security counter
// is the boot loader's, in the config partition.
type MCUSlots struct {
	Device *boot.Device
	// SecCounter is the anti-rollback counter the boot loader checks; nil
	// means the one in the device's config store.
	SecCounter boot.Counter
	// LastBoot is what the last Reset did.
	LastBoot *boot.Result
}

// NewMCUSlots returns the slots of a simulated device.
func NewMCUSlots(d *boot.Device) *MCUSlots {
	s := &MCUSlots{Device: d}
	if d.Store != nil {
		s.SecCounter = nvs.SecurityCounter{Store: d.Store, Key: boot.SecurityCounterKey}
	}
	return s
}

func (s *MCUSlots) part(name string) (off, size int, err error) {
	p, ok := s.Device.Map.Find(name)
	if !ok {
		return 0, 0, fmt.Errorf("agent: partition map has no %s", name)
	}
	return s.Device.Map.Rel(p), int(p.Size), nil
}

// flashReader reads a partition of the flash.
type flashReader struct {
	dev       *flash.Device
	off, size int
}

func (r flashReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(r.size) {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(r.size)-off)
	if err := r.dev.Read(r.off+int(off), p[:n]); err != nil {
		return 0, err
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

func (s *MCUSlots) reader(name string) (io.ReaderAt, int64, error) {
	off, size, err := s.part(name)
	if err != nil {
		return nil, 0, err
	}
	return flashReader{s.Device.Flash, off, size}, int64(size), nil
}

// Primary reads slot A, where the running image is.
func (s *MCUSlots) Primary() (io.ReaderAt, int64, error) { return s.reader(layout.SlotA) }

// Secondary reads slot B.
func (s *MCUSlots) Secondary() (io.ReaderAt, int64, error) { return s.reader(layout.SlotB) }

// mcuWriter collects the image and programs slot B on Close, erasing it
// first, as an update agent writing through the flash driver does.
type mcuWriter struct {
	s     *MCUSlots
	buf   bytes.Buffer
	limit int
}

func (w *mcuWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, fmt.Errorf("%w (%d bytes)", ErrSlotFull, w.limit)
	}
	return w.buf.Write(p)
}

func (w *mcuWriter) Close() error { return w.s.Device.Loader.WriteSecondary(&w.buf) }

// WriteSecondary returns a writer whose Close erases and programs slot B.
func (s *MCUSlots) WriteSecondary() (io.WriteCloser, error) {
	_, size, err := s.part(layout.SlotB)
	if err != nil {
		return nil, err
	}
	return &mcuWriter{s: s, limit: size}, nil
}

// MarkTest is boot_set_pending(0).
func (s *MCUSlots) MarkTest() error { return s.Device.Loader.SetPending(false) }

// Confirm is boot_set_confirmed.
func (s *MCUSlots) Confirm() error { return s.Device.Loader.Confirm() }

// CancelTest erases slot B, so nothing is pending.
func (s *MCUSlots) CancelTest() error {
	off, size, err := s.part(layout.SlotB)
	if err != nil {
		return err
	}
	return s.Device.Flash.Erase(off, size)
}

// Reset runs the simulated bootloader.
func (s *MCUSlots) Reset() error {
	res, err := s.Device.Loader.Boot()
	if err != nil {
		return err
	}
	s.LastBoot = res
	return nil
}

// Boot reads the trailers: whether the running image is confirmed and
// whether a swap is pending.
func (s *MCUSlots) Boot() (BootInfo, error) {
	st, err := s.Device.Loader.Status()
	if err != nil {
		return BootInfo{}, err
	}
	p, q := st[boot.Primary].State, st[boot.Secondary].State
	sw := boot.DecideSwap(p, q)
	return BootInfo{
		Confirmed: p.Magic != boot.MagicGood || p.ImageOK != boot.FlagUnset,
		Pending:   sw == boot.SwapTest || sw == boot.SwapPerm,
	}, nil
}

// Counter returns the bootloader's security counter.
func (s *MCUSlots) Counter() (uint32, error) {
	if s.SecCounter == nil {
		return 0, nil
	}
	return s.SecCounter.SecurityCounter()
}

// SetCounter raises the security counter.
func (s *MCUSlots) SetCounter(c uint32) error {
	if s.SecCounter == nil {
		return nil
	}
	cur, err := s.SecCounter.SecurityCounter()
	if err != nil || c <= cur {
		return err
	}
	return s.SecCounter.SetSecurityCounter(c)
}

// NVSStore keeps the agent's record in the config partition's key/value
// store (package nvs), where a simulated device keeps its state.
type NVSStore struct {
	Store *nvs.Store
	// Key names the record; "ota/agent" when empty.
	Key string
}

func (s NVSStore) key() string {
	if s.Key == "" {
		return "ota/agent"
	}
	return s.Key
}

// Load reads the record; none gives a fresh IDLE record.
func (s NVSStore) Load() (Record, error) {
	b, err := s.Store.Get(s.key())
	if errors.Is(err, nvs.ErrNotFound) {
		return Record{State: Idle}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("agent: load state: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("agent: stored state is corrupt: %w", err)
	}
	if !r.State.Valid() {
		return Record{}, fmt.Errorf("%w %q", ErrUnknownState, r.State)
	}
	return r, nil
}

// Save writes the record; the store's append-only log makes it atomic.
func (s NVSStore) Save(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	if err := s.Store.Put(s.key(), b); err != nil {
		return fmt.Errorf("agent: save state: %w", err)
	}
	return nil
}
