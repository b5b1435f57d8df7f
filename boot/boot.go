// Package boot is an MCUboot-compatible boot loader for the simulated
// flash of package flash: it reads and writes image trailers byte for
// byte as MCUboot lays them out, decides what to do with MCUboot's
// swap-type table, validates images (hash, signature with trusted keys,
// security counter) before touching the primary slot, and swaps with
// swap-using-scratch, swap-using-move or overwrite-only, recording its
// progress in the trailers' swap status area so that a swap cut short by
// power loss resumes on the next boot.
//
// The application side of MCUboot's API (boot_set_pending,
// boot_set_confirmed, boot_read_swap_state) is here too: SetPending,
// Confirm and Status.
package boot

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/mcuboot"
)

// Errors returned by the loader, wrapped with detail.
var (
	ErrLayout     = errors.New("boot: unusable partition layout")
	ErrTrailer    = errors.New("boot: malformed trailer")
	ErrBadStatus  = errors.New("boot: inconsistent swap status")
	ErrNoBootable = errors.New("boot: no bootable image")
	ErrInvalid    = errors.New("boot: image invalid")
	ErrRollback   = errors.New("boot: security counter below the stored counter")
	ErrTooLarge   = errors.New("boot: image too large for the slot")
	ErrPanic      = errors.New("boot: panic: resumed swap has no valid swap type")
	ErrState      = errors.New("boot: operation not possible in this state")
)

// Counter stores the anti-rollback security counter (MCUboot keeps it in
// hardware; here it usually lives in the config partition, see package
// nvs).
type Counter interface {
	SecurityCounter() (uint32, error)
	SetSecurityCounter(uint32) error
}

// Config selects the upgrade strategy and the trust anchors.
type Config struct {
	Mode layout.Mode
	// MaxImgSectors is BOOT_MAX_IMG_SECTORS; 0 means 128.
	MaxImgSectors int
	// Keys are the trusted public keys; with none, only the hash is checked.
	Keys []crypto.PublicKey
	// Counter, if set, enforces SEC_CNT: images below it are invalid,
	// and it is raised to the running image's SEC_CNT on a boot with
	// swap type none (after a test image was confirmed), as MCUboot does.
	Counter Counter
}

// Loader boots one image pair on a flash device.
type Loader struct {
	dev           *flash.Device
	cfg           Config
	pri, sec, scr *area
	tPri, tSec    Trailer
	tScr          Trailer
}

// New returns a loader for the slots of m on dev. dev must hold the map's
// whole flash (offset 0 is m.Base).
func New(dev *flash.Device, m *layout.Map, cfg Config) (*Loader, error) {
	if cfg.MaxImgSectors == 0 {
		cfg.MaxImgSectors = 128
	}
	if cfg.Mode == "" {
		cfg.Mode = layout.SwapScratch
	}
	if err := m.Check(layout.CheckOptions{Mode: cfg.Mode, MaxImgSectors: cfg.MaxImgSectors, HeaderSize: 32}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	if dev.Size() != m.Flash.Size() || dev.Align() != m.Flash.Align || dev.Erased() != m.Flash.Erased {
		return nil, fmt.Errorf("%w: device geometry differs from the map's flash", ErrLayout)
	}
	l := &Loader{dev: dev, cfg: cfg}
	mk := func(name string) (*area, error) {
		p, ok := m.Find(name)
		if !ok {
			return nil, fmt.Errorf("%w: no %s partition", ErrLayout, name)
		}
		return newArea(name, dev, m.Rel(p), int(p.Size))
	}
	var err error
	if l.pri, err = mk(layout.SlotA); err != nil {
		return nil, err
	}
	if l.sec, err = mk(layout.SlotB); err != nil {
		return nil, err
	}
	if cfg.Mode == layout.SwapScratch {
		if l.scr, err = mk(layout.Scratch); err != nil {
			return nil, err
		}
		l.tScr = NewTrailer(l.scr.size, dev.Align(), cfg.MaxImgSectors, 0)
	}
	l.tPri = NewTrailer(l.pri.size, dev.Align(), cfg.MaxImgSectors, 0)
	l.tSec = NewTrailer(l.sec.size, dev.Align(), cfg.MaxImgSectors, 0)
	return l, nil
}

// Slot names a slot of the image pair.
type Slot int

// The two slots.
const (
	Primary   Slot = 0
	Secondary Slot = 1
)

// String names the slot.
func (s Slot) String() string {
	if s == Primary {
		return "primary"
	}
	return "secondary"
}

func (l *Loader) slot(s Slot) (*area, Trailer) {
	if s == Primary {
		return l.pri, l.tPri
	}
	return l.sec, l.tSec
}

// readState is boot_read_swap_state.
func (l *Loader) readState(a *area, t Trailer) (State, error) {
	n := t.InfoSize()
	tail := make([]byte, n)
	if err := a.read(a.size-n, tail); err != nil {
		return State{}, err
	}
	return t.ParseState(tail, l.dev.Erased())
}

// writeTrailer is boot_write_trailer: data padded with the erased value
// to the write alignment.
func (l *Loader) writeTrailer(a *area, t Trailer, off int, data []byte) error {
	n := alignUp(len(data), l.dev.Align())
	if n > t.MaxAlign {
		return fmt.Errorf("%w: %d-byte trailer write exceeds BOOT_MAX_ALIGN", ErrTrailer, n)
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = l.dev.Erased()
	}
	copy(buf, data)
	return a.write(off, buf)
}

func (l *Loader) writeMagic(a *area, t Trailer) error {
	buf := make([]byte, t.magicAlignSize())
	for i := range buf {
		buf[i] = l.dev.Erased()
	}
	m := MagicBytes(t.MaxAlign)
	copy(buf[len(buf)-16:], m[:])
	return a.write(t.MagicBlockOff(), buf)
}

func (l *Loader) writeImageOK(a *area, t Trailer) error {
	return l.writeTrailer(a, t, t.ImageOKOff(), []byte{1})
}

func (l *Loader) writeCopyDone(a *area, t Trailer) error {
	return l.writeTrailer(a, t, t.CopyDoneOff(), []byte{1})
}

func (l *Loader) writeSwapInfo(a *area, t Trailer, st SwapType) error {
	return l.writeTrailer(a, t, t.SwapInfoOff(), []byte{byte(st)})
}

func (l *Loader) writeSwapSize(a *area, t Trailer, n uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], n)
	return l.writeTrailer(a, t, t.SwapSizeOff(), b[:])
}

// eraseTrailer is swap_erase_trailer_sectors.
func (l *Loader) eraseTrailer(a *area, t Trailer) error {
	return a.eraseSectorsCovering(t.StatusOff(), t.TrailerSize())
}

// Image describes a validated image.
type Image struct {
	Version         mcuboot.Version
	SecurityCounter uint32
	Size            int    // header, payload and TLVs
	Digest          []byte // the image hash TLV
	CRC32           uint32 // IEEE CRC of the Size bytes, for the partition_header_t view
	SHA256          []byte // SHA-256 of the Size bytes, to tell images apart
}

// noBootable reports whether the slot holds no bootable image: its
// header is erased, or flagged non-bootable (MCUboot's
// FIH_NO_BOOTABLE_IMAGE, which leaves the slot alone).
func (l *Loader) noBootable(a *area) bool {
	if ok, err := a.isErased(0, 32); err == nil && ok {
		return true
	}
	img, err := mcuboot.Parse(a, int64(a.size))
	return err == nil && img.Header.Flags&mcuboot.FlagNonBootable != 0
}

// validate is boot_validate_slot: structure, hash, signature, security
// counter and fit in the slot.
func (l *Loader) validate(a *area, t Trailer) (*Image, error) { return l.check(a, t, true) }

// check validates a slot, with or without the security counter.
func (l *Loader) check(a *area, t Trailer, counter bool) (*Image, error) {
	img, err := mcuboot.Parse(a, int64(a.size))
	if err != nil {
		return nil, fmt.Errorf("%w: %s slot: %v", ErrInvalid, a.name, err)
	}
	end := int(img.End())
	if lim := l.imageLimit(t); end > lim {
		return nil, fmt.Errorf("%w: %s slot: image of %d bytes overlaps the trailer at %#x", ErrTooLarge, a.name, end, lim)
	}
	if l.cfg.Mode == layout.SwapMove {
		if _, last := l.moveGeometry(); end > last {
			return nil, fmt.Errorf("%w: %s slot: swap-move needs the image within %d bytes, it has %d", ErrTooLarge, a.name, last, end)
		}
	}
	if img.Header.Flags.Encrypted() {
		return nil, fmt.Errorf("%w: %s slot: encrypted images are not supported by the simulator", ErrInvalid, a.name)
	}
	res, err := img.Verify(&mcuboot.VerifyOptions{Keys: l.cfg.Keys})
	if err != nil {
		return nil, fmt.Errorf("%w: %s slot: %v", ErrInvalid, a.name, err)
	}
	if len(l.cfg.Keys) > 0 && !res.Signed {
		return nil, fmt.Errorf("%w: %s slot: not signed by a trusted key", ErrInvalid, a.name)
	}
	sc, _ := img.SecurityCounter()
	if counter && l.cfg.Counter != nil {
		stored, err := l.cfg.Counter.SecurityCounter()
		if err != nil {
			return nil, err
		}
		if sc < stored {
			return nil, fmt.Errorf("%w: %s slot: image SEC_CNT %d, stored %d", ErrRollback, a.name, sc, stored)
		}
	}
	body := make([]byte, end)
	if err := a.read(0, body); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return &Image{Version: img.Header.Version, SecurityCounter: sc, Size: end, Digest: res.Digest, CRC32: crc32IEEE(body), SHA256: sum[:]}, nil
}

// imageLimit is where the trailer begins: the whole trailer in the swap
// modes; in overwrite-only, only image_ok, copy_done and the magic, as
// imgtool --overwrite-only pads.
func (l *Loader) imageLimit(t Trailer) int {
	if l.cfg.Mode == layout.OverwriteOnly {
		return t.Size - 2*t.MaxAlign - t.magicAlignSize()
	}
	return t.StatusOff()
}

// imageSize is boot_read_image_size for a slot: 0 when there is no image.
func (l *Loader) imageSize(a *area) int {
	img, err := mcuboot.Parse(a, int64(a.size))
	if err != nil {
		return 0
	}
	return int(img.End())
}

// SlotStatus is the partition_header_t view of a slot.
type SlotStatus struct {
	Slot  Slot
	State State
	// Image describes the slot's image when it is intact (structure, hash
	// and signature check out), nil otherwise.
	Image *Image
	// Err says why the image would not boot or be swapped in (including a
	// security counter below the stored one); nil when it would.
	Err error
}

// Status reads both slots' trailers and images without changing anything.
func (l *Loader) Status() ([2]SlotStatus, error) {
	var out [2]SlotStatus
	for _, s := range []Slot{Primary, Secondary} {
		a, t := l.slot(s)
		st, err := l.readState(a, t)
		if err != nil {
			return out, err
		}
		out[s] = SlotStatus{Slot: s, State: st}
		out[s].Image, out[s].Err = l.check(a, t, false)
		if out[s].Err == nil {
			_, out[s].Err = l.validate(a, t)
		}
	}
	return out, nil
}

// SetPending is boot_set_pending: it marks the secondary image for a test
// swap on the next boot, or a permanent one. It writes the magic, then
// image_ok (permanent only), then swap_info, exactly as MCUboot does.
func (l *Loader) SetPending(permanent bool) error {
	st, err := l.readState(l.sec, l.tSec)
	if err != nil {
		return err
	}
	switch st.Magic {
	case MagicGood:
		return nil // already scheduled
	case MagicBad:
		// MCUboot erases a corrupt trailer so a later attempt can work.
		if err := l.eraseTrailer(l.sec, l.tSec); err != nil {
			return err
		}
		return fmt.Errorf("%w: secondary trailer was corrupt and has been erased", ErrTrailer)
	}
	if err := l.writeMagic(l.sec, l.tSec); err != nil {
		return err
	}
	typ := SwapTest
	if permanent {
		if err := l.writeImageOK(l.sec, l.tSec); err != nil {
			return err
		}
		typ = SwapPerm
	}
	return l.writeSwapInfo(l.sec, l.tSec, typ)
}

// Confirm is boot_set_confirmed: it sets image_ok in the primary slot so
// that a test image stays.
func (l *Loader) Confirm() error {
	st, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return err
	}
	switch st.Magic {
	case MagicUnset:
		return nil // nothing to confirm: a permanent image
	case MagicBad:
		return fmt.Errorf("%w: primary trailer magic is corrupt", ErrTrailer)
	}
	if st.ImageOK != FlagUnset {
		return nil
	}
	return l.writeImageOK(l.pri, l.tPri)
}

// WriteSecondary erases the secondary slot and writes an image (or a
// padded image with its trailer) into it, as an update agent does. The
// data must fit in the slot; with a trailer it must be exactly slot-sized.
func (l *Loader) WriteSecondary(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, int64(l.sec.size)+1))
	if err != nil {
		return err
	}
	if len(data) > l.sec.size {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.sec.size)
	}
	if lim := l.imageLimit(l.tSec); len(data) != l.sec.size && len(data) > lim {
		return fmt.Errorf("%w: %d bytes reach into the trailer (at %#x)", ErrTooLarge, len(data), lim)
	}
	if err := l.sec.erase(0, l.sec.size); err != nil {
		return err
	}
	a := l.dev.Align()
	for len(data)%a != 0 {
		data = append(data, l.dev.Erased())
	}
	for i := 0; i < l.sec.nsecs(); i++ {
		s, e := l.sec.secOff[i], min(l.sec.secOff[i+1], len(data))
		if s >= e {
			break
		}
		if allErased(data[s:e], l.dev.Erased()) {
			continue
		}
		if err := l.sec.write(s, data[s:e]); err != nil {
			return err
		}
	}
	return nil
}

// WritePrimary programs an image into the primary slot as a factory
// programmer would (erasing it first).
func (l *Loader) WritePrimary(data []byte) error {
	if len(data) > l.pri.size {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.pri.size)
	}
	if err := l.pri.erase(0, l.pri.size); err != nil {
		return err
	}
	buf := append([]byte(nil), data...)
	for len(buf)%l.dev.Align() != 0 {
		buf = append(buf, l.dev.Erased())
	}
	for i := 0; i < l.pri.nsecs(); i++ {
		s, e := l.pri.secOff[i], min(l.pri.secOff[i+1], len(buf))
		if s >= e {
			break
		}
		if !allErased(buf[s:e], l.dev.Erased()) {
			if err := l.pri.write(s, buf[s:e]); err != nil {
				return err
			}
		}
	}
	return nil
}

// MarkPrimaryConfirmed writes magic and image_ok to the primary trailer,
// the state of an image signed with --pad --confirm.
func (l *Loader) MarkPrimaryConfirmed() error {
	if err := l.writeMagic(l.pri, l.tPri); err != nil {
		return err
	}
	return l.writeImageOK(l.pri, l.tPri)
}

// Result is what a boot did and what it boots.
type Result struct {
	// SwapType is the operation this boot performed (none, test, perm,
	// revert) or fail when the secondary image was rejected.
	SwapType SwapType
	// Resumed is true when the boot finished a swap cut short by a reset.
	Resumed bool
	// Image is the image that runs: the primary slot's.
	Image *Image
	// Confirmed is false while the running image is on trial: the next
	// reset reverts it unless it is confirmed (Trial).
	Confirmed bool
	// Rejected says why the secondary image was refused, when SwapType is
	// fail.
	Rejected error
}

// Boot runs the boot loader once: it finishes an interrupted swap or
// decides and performs a new one, then validates the primary image and
// returns it. A flash error (including a power cut) is returned as is;
// calling Boot again after power returns resumes the work.
func (l *Loader) Boot() (*Result, error) {
	res := &Result{SwapType: SwapNone}
	var err error
	if l.cfg.Mode == layout.OverwriteOnly {
		err = l.bootOverwrite(res)
	} else {
		err = l.bootSwap(res)
	}
	if err != nil {
		return nil, err
	}
	img, err := l.validate(l.pri, l.tPri)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBootable, err)
	}
	res.Image = img
	trial, err := l.Trial()
	if err != nil {
		return nil, err
	}
	res.Confirmed = !trial
	if res.SwapType == SwapNone && l.cfg.Counter != nil {
		cur, err := l.cfg.Counter.SecurityCounter()
		if err != nil {
			return nil, err
		}
		if img.SecurityCounter > cur {
			if err := l.cfg.Counter.SetSecurityCounter(img.SecurityCounter); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// validatedSwapType is boot_validated_swap_type: the table's decision,
// downgraded to none (no image) or fail (invalid image, slot erased) when
// the secondary image does not validate.
func (l *Loader) validatedSwapType(res *Result) (SwapType, error) {
	ps, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return 0, err
	}
	ss, err := l.readState(l.sec, l.tSec)
	if err != nil {
		return 0, err
	}
	return l.revalidate(res, DecideSwap(ps, ss))
}

// revalidate checks the secondary image for swap type st.
func (l *Loader) revalidate(res *Result, st SwapType) (SwapType, error) {
	if st != SwapTest && st != SwapPerm && st != SwapRevert {
		return SwapNone, nil
	}
	if l.noBootable(l.sec) {
		return SwapNone, nil
	}
	if _, err := l.validate(l.sec, l.tSec); err != nil {
		if errors.Is(err, flash.ErrPowerCut) {
			return 0, err
		}
		res.Rejected = err
		// The image is bad: erase it so it is never tried again.
		if err := l.sec.erase(0, l.sec.size); err != nil {
			return 0, err
		}
		return SwapFail, nil
	}
	return st, nil
}
