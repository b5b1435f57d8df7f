package boot

import (
	"fmt"
	"hash/crc32"

	"github.com/otakit/otakit/layout"
)

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// Where the swap status lives (BOOT_STATUS_SOURCE_*).
type source int

const (
	sourceNone source = iota
	sourcePrimary
	sourceScratch
)

// Swap-move's two operations (BOOT_STATUS_OP_*).
const (
	opMove = 1
	opSwap = 2
)

// status is MCUboot's struct boot_status: the next step to perform.
type status struct {
	idx, state int // next step, both from 1 (BOOT_STATUS_IDX_0, _STATE_0)
	op         int // swap-move only
	swapType   SwapType
	swapSize   uint32
	source     source
	useScratch bool
	fresh      bool // no step recorded yet
}

func (l *Loader) statusArea(bs *status) (*area, Trailer) {
	if bs.useScratch {
		return l.scr, l.tScr
	}
	return l.pri, l.tPri
}

// entry returns the status entry index of the step bs describes.
func (l *Loader) entry(bs *status) int {
	if l.cfg.Mode == layout.SwapMove {
		if bs.op == opMove {
			return bs.idx - 1
		}
		return l.cfg.MaxImgSectors + (bs.idx-1)*2 + (bs.state - 1)
	}
	return (bs.idx-1)*StateCount + (bs.state - 1)
}

// writeStatus is boot_write_status: it records that the step bs describes
// is done, writing the state number in the step's entry.
func (l *Loader) writeStatus(bs *status) error {
	a, t := l.statusArea(bs)
	off := t.StatusOff() + l.entry(bs)*t.Align
	if err := l.writeTrailer(a, t, off, []byte{byte(bs.state)}); err != nil {
		return err
	}
	bs.fresh = false
	return nil
}

// statusSource is swap_status_source: the scratch table for
// swap-scratch, the primary slot for swap-move.
func (l *Loader) statusSource() (source, error) {
	ps, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return 0, err
	}
	if l.cfg.Mode == layout.SwapMove {
		if ps.Magic == MagicGood && ps.CopyDone == FlagUnset {
			return sourcePrimary, nil
		}
		return sourceNone, nil
	}
	ss, err := l.readState(l.scr, l.tScr)
	if err != nil {
		return 0, err
	}
	switch {
	case ps.Magic == MagicGood && ss.Magic != MagicGood && ps.CopyDone == FlagSet:
		return sourceNone, nil
	case ps.Magic == MagicGood && ss.Magic != MagicGood && ps.CopyDone == FlagUnset:
		return sourcePrimary, nil
	case ss.Magic == MagicGood:
		return sourceScratch, nil
	case ps.Magic == MagicUnset && ps.CopyDone == FlagUnset:
		return sourcePrimary, nil
	}
	return sourceNone, nil
}

// readStatus is boot_read_status: the source, the next step, and the swap
// type and size recorded when the swap began.
func (l *Loader) readStatus() (*status, error) {
	bs := &status{idx: 1, state: 1, op: opMove, fresh: true}
	src, err := l.statusSource()
	if err != nil || src == sourceNone {
		return bs, err
	}
	if src == sourceScratch {
		// The scratch table prefers the scratch trailer while its magic
		// is good, but a scratch erase cut short can leave a good magic
		// over damaged data after the primary slot already recorded
		// that the step is done: the further-progressed status wins.
		ps, err := l.readState(l.pri, l.tPri)
		if err != nil {
			return nil, err
		}
		if ps.Magic == MagicGood && ps.CopyDone == FlagUnset {
			np, errP := l.lastEntry(l.pri, l.tPri, 0, l.tPri.MaxSectors*StateCount)
			ns, errS := l.lastEntry(l.scr, l.tScr, 0, l.tScr.MaxSectors*StateCount)
			if errP == nil && errS == nil && np > ns {
				src = sourcePrimary
			}
		}
	}
	bs.source = src
	a, t := l.pri, l.tPri
	if src == sourceScratch {
		a, t = l.scr, l.tScr
	}
	if l.cfg.Mode == layout.SwapMove {
		ms := l.cfg.MaxImgSectors
		mv, err := l.lastEntry(a, t, 0, ms)
		if err != nil {
			return nil, err
		}
		sw, err := l.lastEntry(a, t, ms, ms*StateCount)
		if err != nil {
			return nil, err
		}
		switch {
		case sw >= 0:
			j := sw - ms + 1 // next swap step
			bs.op, bs.idx, bs.state, bs.fresh = opSwap, j/2+1, j%2+1, false
		case mv >= 0:
			bs.op, bs.idx, bs.state, bs.fresh = opMove, mv+2, 1, false
		}
	} else {
		n, err := l.lastEntry(a, t, 0, t.MaxSectors*StateCount)
		if err != nil {
			return nil, err
		}
		if n >= 0 {
			j := n + 1
			bs.idx, bs.state, bs.fresh = j/StateCount+1, j%StateCount+1, false
		}
	}
	st, err := l.readState(a, t)
	if err != nil {
		return nil, err
	}
	bs.swapType, bs.swapSize = st.SwapType, st.SwapSize
	if !bs.fresh && bs.swapType != SwapTest && bs.swapType != SwapPerm && bs.swapType != SwapRevert {
		// Progress without a swap type is a stale status left by a
		// trailer erase that power cut short (MCUboot would panic): no
		// swap that wrote this status is under way, so start afresh.
		return &status{idx: 1, state: 1, op: opMove, fresh: true, source: src}, nil
	}
	return bs, nil
}

// lastEntry returns the last written status entry of [from, to) in an
// area's trailer, or -1, and checks that the entries before it are all
// written (MCUboot's "inconsistent status" check).
func (l *Loader) lastEntry(a *area, t Trailer, from, to int) (int, error) {
	raw := make([]byte, t.StatusSize())
	if err := a.read(t.StatusOff(), raw); err != nil {
		return 0, err
	}
	n := from - 1
	for i := from; i < to; i++ {
		if raw[i*t.Align] != l.dev.Erased() {
			if i != n+1 {
				return 0, fmt.Errorf("%w: %s entry %d written after an erased one", ErrBadStatus, a.name, i)
			}
			n = i
		}
	}
	if n < from {
		return -1, nil
	}
	return n, nil
}

// initTrailer is swap_status_init: swap_info, image_ok (when the
// secondary's is set), swap_size, then the magic, so that a trailer with
// a good magic is complete.
func (l *Loader) initTrailer(a *area, t Trailer, bs *status) error {
	ss, err := l.readState(l.sec, l.tSec)
	if err != nil {
		return err
	}
	if err := l.writeSwapInfo(a, t, bs.swapType); err != nil {
		return err
	}
	if ss.ImageOK == FlagSet {
		if err := l.writeImageOK(a, t); err != nil {
			return err
		}
	}
	if err := l.writeSwapSize(a, t, bs.swapSize); err != nil {
		return err
	}
	return l.writeMagic(a, t)
}

func (l *Loader) bootSwap(res *Result) error {
	bs, err := l.readStatus()
	if err != nil {
		return err
	}
	if !bs.fresh {
		// boot_complete_partial_swap
		if bs.swapType != SwapTest && bs.swapType != SwapPerm && bs.swapType != SwapRevert {
			return fmt.Errorf("%w: swap_info holds %v", ErrPanic, bs.swapType)
		}
		res.Resumed = true
	} else {
		var st SwapType
		if bs.source != sourceNone && (bs.swapType == SwapTest || bs.swapType == SwapPerm || bs.swapType == SwapRevert) {
			// A swap began (its trailer says which) but recorded no
			// step: MCUboot restarts it with that type, not the table's.
			st, err = l.revalidate(res, bs.swapType)
		} else {
			st, err = l.validatedSwapType(res)
		}
		if err != nil {
			return err
		}
		res.SwapType = st
		if st != SwapTest && st != SwapPerm && st != SwapRevert {
			return nil
		}
		bs.swapType = st
		bs.swapSize = uint32(max(l.imageSize(l.pri), l.imageSize(l.sec)))
	}
	res.SwapType = bs.swapType
	if l.cfg.Mode == layout.SwapMove {
		err = l.swapMove(bs)
	} else {
		err = l.swapScratch(bs)
	}
	if err != nil {
		return err
	}
	// boot_perform_update's epilogue.
	ps, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return err
	}
	if (bs.swapType == SwapRevert || bs.swapType == SwapPerm) && ps.ImageOK == FlagUnset {
		if err := l.writeImageOK(l.pri, l.tPri); err != nil {
			return err
		}
	}
	if ps.CopyDone == FlagUnset {
		return l.writeCopyDone(l.pri, l.tPri)
	}
	return nil
}

// swapScratch is swap_scratch.c's swap_run: chunks of sectors that fit in
// the scratch area, from the end of the image towards the start.
func (l *Loader) swapScratch(bs *status) error {
	n := l.pri.nsecs()
	lastIdx, sz := 0, 0
	for sz < int(bs.swapSize) && lastIdx < n {
		sz += l.pri.secSize(lastIdx)
		lastIdx++
	}
	lastIdx--
	// An image sharing a sector with the trailer means the trailer
	// sectors are swapped too (through the scratch trailer).
	firstTrailer := l.pri.secIndex(l.tPri.StatusOff())
	if lastIdx >= firstTrailer {
		lastIdx = n - 1
	}
	chunk := 1
	for last := lastIdx; last >= 0; chunk++ {
		first, size := last, l.pri.secSize(last)
		if last == n-1 {
			// The chunk holding the trailer must hold all of it.
			for first > firstTrailer {
				first--
				size += l.pri.secSize(first)
			}
			if size > l.scr.size {
				return fmt.Errorf("%w: the trailer's sectors (%d bytes) do not fit in scratch (%d)", ErrLayout, size, l.scr.size)
			}
		}
		for first > 0 && size+l.pri.secSize(first-1) <= l.scr.size {
			first--
			size += l.pri.secSize(first)
		}
		if chunk >= bs.idx {
			if err := l.swapSectorsScratch(l.pri.secOff[first], size, bs); err != nil {
				return err
			}
		}
		last = first - 1
	}
	return nil
}

// swapSectorsScratch is swap_scratch.c's boot_swap_sectors for one chunk.
func (l *Loader) swapSectorsScratch(off, size int, bs *status) error {
	copySz := size
	if off+size > l.pri.secOff[l.pri.nsecs()-1] {
		copySz = l.pri.size - off - l.tPri.TrailerSize()
	}
	bs.useScratch = bs.idx == 1 && copySz != size
	if bs.state == 1 {
		if err := l.scr.erase(0, l.scr.size); err != nil {
			return err
		}
		if bs.idx == 1 {
			if bs.useScratch {
				if err := l.initTrailer(l.scr, l.tScr, bs); err != nil {
					return err
				}
			} else if bs.fresh {
				if err := l.eraseTrailer(l.pri, l.tPri); err != nil {
					return err
				}
				if err := l.initTrailer(l.pri, l.tPri, bs); err != nil {
					return err
				}
			}
		}
		if err := l.sec.copyTo(l.scr, off, 0, copySz); err != nil {
			return err
		}
		if err := l.writeStatus(bs); err != nil {
			return err
		}
		bs.state = 2
	}
	if bs.state == 2 {
		if err := l.sec.erase(off, size); err != nil {
			return err
		}
		if err := l.pri.copyTo(l.sec, off, off, copySz); err != nil {
			return err
		}
		if bs.idx == 1 && !bs.useScratch {
			if err := l.eraseTrailer(l.sec, l.tSec); err != nil {
				return err
			}
		}
		if err := l.writeStatus(bs); err != nil {
			return err
		}
		bs.state = 3
	}
	if bs.state == 3 {
		if err := l.pri.erase(off, size); err != nil {
			return err
		}
		if err := l.scr.copyTo(l.pri, 0, off, copySz); err != nil {
			return err
		}
		if bs.useScratch {
			// Move the status kept in scratch, then the trailer fields,
			// magic last, into the primary slot.
			n := (StateCount - 1) * l.tScr.Align
			if err := l.scr.copyTo(l.pri, l.tScr.StatusOff(), off+copySz, n); err != nil {
				return err
			}
			ss, err := l.readState(l.scr, l.tScr)
			if err != nil {
				return err
			}
			if ss.ImageOK == FlagSet {
				if err := l.writeImageOK(l.pri, l.tPri); err != nil {
					return err
				}
			}
			if ss.SwapType != SwapNone {
				if err := l.writeSwapInfo(l.pri, l.tPri, ss.SwapType); err != nil {
					return err
				}
			}
			if err := l.writeSwapSize(l.pri, l.tPri, bs.swapSize); err != nil {
				return err
			}
			if err := l.writeMagic(l.pri, l.tPri); err != nil {
				return err
			}
		}
		eraseScratch := bs.useScratch
		bs.useScratch = false
		if err := l.writeStatus(bs); err != nil {
			return err
		}
		bs.idx++
		bs.state = 1
		if eraseScratch {
			// Erased backwards: the scratch trailer goes first, so a
			// stale scratch status is never read.
			if err := l.scr.erase(0, l.scr.size); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveGeometry returns the uniform sector size and the bytes an image
// may use in swap-move: all sectors below the trailer's but one.
func (l *Loader) moveGeometry() (sector, limit int) {
	sector = l.pri.secSize(0)
	trailerSecs := (l.tPri.TrailerSize() + sector - 1) / sector
	firstTrailer := l.pri.nsecs() - trailerSecs
	return sector, (firstTrailer - 1) * sector
}

// swapMove is swap_move.c's swap_run: move the primary image up one
// sector, then swap sector by sector.
func (l *Loader) swapMove(bs *status) error {
	sector, limit := l.moveGeometry()
	if int(bs.swapSize) > limit {
		return fmt.Errorf("%w: swap size %d, swap-move allows %d", ErrTooLarge, bs.swapSize, limit)
	}
	lastIdx := (int(bs.swapSize) + sector - 1) / sector
	if lastIdx == 0 {
		lastIdx = 1
	}
	if bs.op == opMove {
		for idx := lastIdx; idx > 0; idx-- {
			if idx <= lastIdx-bs.idx+1 {
				if err := l.moveSectorUp(idx, sector, bs); err != nil {
					return err
				}
			}
		}
		bs.idx = 1
	}
	bs.op = opSwap
	for idx := 1; idx <= lastIdx; idx++ {
		if idx >= bs.idx {
			if err := l.swapSectorsMove(idx, sector, bs); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Loader) moveSectorUp(idx, sz int, bs *status) error {
	if bs.idx == 1 {
		if bs.fresh {
			if err := l.eraseTrailer(l.pri, l.tPri); err != nil {
				return err
			}
			if err := l.initTrailer(l.pri, l.tPri, bs); err != nil {
				return err
			}
		}
		if err := l.eraseTrailer(l.sec, l.tSec); err != nil {
			return err
		}
	}
	if err := l.pri.erase(idx*sz, sz); err != nil {
		return err
	}
	if err := l.pri.copyTo(l.pri, (idx-1)*sz, idx*sz, sz); err != nil {
		return err
	}
	if err := l.writeStatus(bs); err != nil {
		return err
	}
	bs.idx++
	return nil
}

func (l *Loader) swapSectorsMove(idx, sz int, bs *status) error {
	priOff, priUp, secOff := (idx-1)*sz, idx*sz, (idx-1)*sz
	if bs.state == 1 {
		if err := l.pri.erase(priOff, sz); err != nil {
			return err
		}
		if err := l.sec.copyTo(l.pri, secOff, priOff, sz); err != nil {
			return err
		}
		if err := l.writeStatus(bs); err != nil {
			return err
		}
		bs.state = 2
	}
	if bs.state == 2 {
		if err := l.sec.erase(secOff, sz); err != nil {
			return err
		}
		if err := l.pri.copyTo(l.sec, priUp, secOff, sz); err != nil {
			return err
		}
		if err := l.writeStatus(bs); err != nil {
			return err
		}
		bs.idx++
		bs.state = 1
	}
	return nil
}

// bootOverwrite is MCUboot's overwrite-only upgrade (boot_copy_image):
// erase the primary slot, copy the validated secondary image, then erase
// the secondary's first and trailer sectors so it is not installed again.
func (l *Loader) bootOverwrite(res *Result) error {
	st, err := l.validatedSwapType(res)
	if err != nil {
		return err
	}
	if st == SwapRevert {
		st = SwapNone // nothing to revert to: the old image is gone
	}
	res.SwapType = st
	if st != SwapTest && st != SwapPerm {
		return nil
	}
	size := alignUp(l.imageSize(l.sec), l.dev.Align())
	if err := l.pri.eraseSectorsCovering(0, size); err != nil {
		return err
	}
	if err := l.eraseTrailer(l.pri, l.tPri); err != nil {
		return err
	}
	if err := l.sec.copyTo(l.pri, 0, 0, size); err != nil {
		return err
	}
	if err := l.sec.erase(0, l.sec.secSize(0)); err != nil {
		return err
	}
	return l.eraseTrailer(l.sec, l.tSec)
}
