package boot

import (
	"fmt"

	"github.com/otakit/otakit/flash"
)

// area is a flash partition seen as an MCUboot flash area: offsets are
// relative to its start.
type area struct {
	name   string
	dev    *flash.Device
	off    int
	size   int
	secOff []int // sector start offsets within the area, plus size
}

func newArea(name string, dev *flash.Device, off, size int) (*area, error) {
	a := &area{name: name, dev: dev, off: off, size: size}
	for p := off; p < off+size; {
		_, st, n, err := dev.SectorAt(p)
		if err != nil || st != p || p+n > off+size {
			return nil, fmt.Errorf("%w: %s [%#x, %#x) is not made of whole sectors", ErrLayout, name, off, off+size)
		}
		a.secOff = append(a.secOff, p-off)
		p += n
	}
	a.secOff = append(a.secOff, size)
	return a, nil
}

func (a *area) nsecs() int        { return len(a.secOff) - 1 }
func (a *area) secSize(i int) int { return a.secOff[i+1] - a.secOff[i] }
func (a *area) secIndex(off int) int {
	for i := 0; i < a.nsecs(); i++ {
		if off < a.secOff[i+1] {
			return i
		}
	}
	return a.nsecs() - 1
}

func (a *area) read(off int, p []byte) error {
	if off < 0 || off+len(p) > a.size {
		return fmt.Errorf("boot: read %d bytes at %#x beyond %s (%d bytes)", len(p), off, a.name, a.size)
	}
	return a.dev.Read(a.off+off, p)
}

// ReadAt makes an area an io.ReaderAt for the image parser.
func (a *area) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(a.size) {
		return 0, fmt.Errorf("boot: read beyond %s", a.name)
	}
	if err := a.dev.Read(a.off+int(off), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (a *area) write(off int, p []byte) error { return a.dev.Write(a.off+off, p) }

func (a *area) erase(off, n int) error { return a.dev.Erase(a.off+off, n) }

// eraseSectorsCovering erases every sector that holds a byte of [off, off+n).
func (a *area) eraseSectorsCovering(off, n int) error {
	if n <= 0 {
		return nil
	}
	first, last := a.secIndex(off), a.secIndex(off+n-1)
	return a.erase(a.secOff[first], a.secOff[last+1]-a.secOff[first])
}

func (a *area) isErased(off, n int) (bool, error) { return a.dev.IsErased(a.off+off, n) }

// copyTo copies n bytes from a at srcOff to dst at dstOff, one write per
// destination sector piece; n must be a multiple of the write alignment.
// Pieces that are entirely erased are skipped, as a flash driver would
// skip programming erased data.
func (a *area) copyTo(dst *area, srcOff, dstOff, n int) error {
	for n > 0 {
		i := dst.secIndex(dstOff)
		chunk := min(n, dst.secOff[i+1]-dstOff)
		buf := make([]byte, chunk)
		if err := a.read(srcOff, buf); err != nil {
			return err
		}
		if !allErased(buf, a.dev.Erased()) {
			if err := dst.write(dstOff, buf); err != nil {
				return err
			}
		}
		srcOff, dstOff, n = srcOff+chunk, dstOff+chunk, n-chunk
	}
	return nil
}

func allErased(b []byte, e byte) bool {
	for _, c := range b {
		if c != e {
			return false
		}
	}
	return true
}
