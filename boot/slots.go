package boot

import (
	"errors"
	"fmt"
	"io"
)

// SlotReader returns a reader over a whole slot and the slot's size.
func (l *Loader) SlotReader(s Slot) (io.ReaderAt, int64) {
	a, _ := l.slot(s)
	return a, int64(a.size)
}

// SecondaryWriter erases the secondary slot and returns a writer that
// fills it sequentially from offset 0, one flash write per sector. Close
// writes the last partial sector, padded with the erased value to the
// write alignment. Writing past the slot's end fails with ErrTooLarge.
func (l *Loader) SecondaryWriter() (io.WriteCloser, error) {
	if err := l.sec.erase(0, l.sec.size); err != nil {
		return nil, err
	}
	return &slotWriter{l: l, a: l.sec}, nil
}

type slotWriter struct {
	l      *Loader
	a      *area
	off    int // flushed bytes
	buf    []byte
	closed bool
}

func (w *slotWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("boot: write to a closed slot writer")
	}
	if w.off+len(w.buf)+len(p) > w.a.size {
		return 0, fmt.Errorf("%w: more than the %d-byte slot", ErrTooLarge, w.a.size)
	}
	n := len(p)
	for len(p) > 0 {
		i := w.a.secIndex(w.off)
		room := w.a.secOff[i+1] - w.off - len(w.buf)
		k := min(room, len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == w.a.secOff[i+1]-w.off {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *slotWriter) flush() error {
	for len(w.buf)%w.l.dev.Align() != 0 {
		w.buf = append(w.buf, w.l.dev.Erased())
	}
	if len(w.buf) > 0 && !allErased(w.buf, w.l.dev.Erased()) {
		if err := w.a.write(w.off, w.buf); err != nil {
			return err
		}
	}
	w.off += len(w.buf)
	w.buf = w.buf[:0]
	return nil
}

func (w *slotWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.flush()
}

// CancelPending undoes SetPending before a reset: it erases the secondary
// slot's trailer sectors, so the table finds nothing to swap.
func (l *Loader) CancelPending() error {
	return l.eraseTrailer(l.sec, l.tSec)
}

// Trial reports whether the running image is on trial: a reset without a
// confirmation reverts it (MCUboot's table would say revert).
func (l *Loader) Trial() (bool, error) {
	p, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return false, err
	}
	return p.Magic == MagicGood && p.ImageOK == FlagUnset && p.CopyDone == FlagSet, nil
}

// Pending reports whether the next boot swaps in the secondary image (the
// table says test or perm).
func (l *Loader) Pending() (bool, error) {
	p, err := l.readState(l.pri, l.tPri)
	if err != nil {
		return false, err
	}
	s, err := l.readState(l.sec, l.tSec)
	if err != nil {
		return false, err
	}
	t := DecideSwap(p, s)
	return t == SwapTest || t == SwapPerm, nil
}
