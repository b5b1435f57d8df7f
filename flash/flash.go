// Package flash simulates NOR flash for testing boot loaders and update
// agents against power loss.
//
// A Device has sectors of possibly different sizes, a write alignment and
// an erased value (0xFF or 0x00). Like real NOR flash it refuses to program
// bytes that are not erased and refuses misaligned writes. Every write and
// every sector erase is one operation; a power cut can be armed to strike
// during operation N, which then leaves torn contents chosen
// deterministically from a seed, and fails every later operation until the
// device is powered on again. This is what the power-loss matrices of
// package boot and package nvs drive.
//
// A Device may be backed by a file (see Create and Open), so that a
// simulated device survives process restarts.
package flash

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Errors returned by Device methods. They are wrapped with context.
var (
	ErrPowerCut   = errors.New("flash: power cut")
	ErrNotErased  = errors.New("flash: write over bytes that are not erased")
	ErrAlignment  = errors.New("flash: misaligned access")
	ErrRange      = errors.New("flash: access out of range")
	ErrGeometry   = errors.New("flash: invalid geometry")
	ErrFileFormat = errors.New("flash: invalid flash file")
	ErrTruncated  = errors.New("flash: flash file truncated")
)

// Geometry describes a flash part.
type Geometry struct {
	// Sectors lists the erase-sector sizes in address order.
	Sectors []uint32
	// Align is the write alignment and minimum write size in bytes:
	// 1, 2, 4, 8, 16 or 32.
	Align int
	// Erased is the value of an erased byte: 0xFF or 0x00.
	Erased byte
}

// Uniform returns the sector list of n sectors of size bytes each.
func Uniform(n int, size uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// Size is the total size of the part in bytes.
func (g Geometry) Size() int {
	n := 0
	for _, s := range g.Sectors {
		n += int(s)
	}
	return n
}

// Validate reports whether g describes a part this package can simulate.
func (g Geometry) Validate() error {
	switch g.Align {
	case 1, 2, 4, 8, 16, 32:
	default:
		return fmt.Errorf("%w: write alignment %d (want 1, 2, 4, 8, 16 or 32)", ErrGeometry, g.Align)
	}
	if g.Erased != 0xFF && g.Erased != 0x00 {
		return fmt.Errorf("%w: erased value %#x (want 0xff or 0x00)", ErrGeometry, g.Erased)
	}
	if len(g.Sectors) == 0 {
		return fmt.Errorf("%w: no sectors", ErrGeometry)
	}
	total := uint64(0)
	for i, s := range g.Sectors {
		if s == 0 || s%uint32(g.Align) != 0 {
			return fmt.Errorf("%w: sector %d size %d is not a positive multiple of the alignment %d", ErrGeometry, i, s, g.Align)
		}
		total += uint64(s)
	}
	if total > 1<<31 {
		return fmt.Errorf("%w: total size %d exceeds 2 GiB", ErrGeometry, total)
	}
	return nil
}

// Device is a simulated NOR flash part. It is not safe for concurrent use.
type Device struct {
	geo    Geometry
	starts []int // start offset of each sector, plus the total size
	data   []byte
	erases []int // erase count per sector

	ops    int // operations started since New/Open
	cutAt  int // operation number that loses power, 0 for none
	seed   uint64
	dead   bool
	back   backing // nil unless file backed
	hdrLen int

	tearBits bool // torn erases flip random bits instead of erasing a suffix
}

// New returns an erased device with geometry g.
func New(g Geometry) (*Device, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	d := &Device{geo: g}
	d.geo.Sectors = append([]uint32(nil), g.Sectors...)
	d.layout()
	d.data = make([]byte, g.Size())
	for i := range d.data {
		d.data[i] = g.Erased
	}
	return d, nil
}

func (d *Device) layout() {
	d.starts = make([]int, len(d.geo.Sectors)+1)
	for i, s := range d.geo.Sectors {
		d.starts[i+1] = d.starts[i] + int(s)
	}
	d.erases = make([]int, len(d.geo.Sectors))
}

// Geometry returns the device's geometry.
func (d *Device) Geometry() Geometry {
	g := d.geo
	g.Sectors = append([]uint32(nil), d.geo.Sectors...)
	return g
}

// Size is the device size in bytes.
func (d *Device) Size() int { return len(d.data) }

// Align is the write alignment in bytes.
func (d *Device) Align() int { return d.geo.Align }

// Erased is the value of an erased byte.
func (d *Device) Erased() byte { return d.geo.Erased }

// SectorAt returns the index, start offset and size of the sector holding
// offset off.
func (d *Device) SectorAt(off int) (index, start, size int, err error) {
	if off < 0 || off >= len(d.data) {
		return 0, 0, 0, fmt.Errorf("%w: offset %#x (size %#x)", ErrRange, off, len(d.data))
	}
	lo, hi := 0, len(d.geo.Sectors)-1
	for lo < hi {
		m := (lo + hi + 1) / 2
		if d.starts[m] <= off {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return lo, d.starts[lo], int(d.geo.Sectors[lo]), nil
}

// EraseCounts returns how often each sector has been erased, for wear tests.
func (d *Device) EraseCounts() []int { return append([]int(nil), d.erases...) }

// Ops returns the number of operations (writes and sector erases) started
// since the device was created, opened or last had ResetOps called.
func (d *Device) Ops() int { return d.ops }

// ResetOps sets the operation counter to zero.
func (d *Device) ResetOps() { d.ops = 0 }

// CutPowerAt arms a power cut during operation n (counted by Ops, so the
// next operation is Ops()+1). The interrupted operation leaves torn
// contents derived from seed; it and every later operation return
// ErrPowerCut until PowerOn. n <= 0 disarms.
func (d *Device) CutPowerAt(n int, seed uint64) {
	d.cutAt = n
	d.seed = seed
}

// TearBits selects the model of an interrupted erase. By default (false)
// the erase has progressed from the end of the sector: a suffix is erased.
// With TearBits(true) every bit that still differs from the erased value
// has flipped with one probability, drawn per cut, anywhere in the
// sector: the model of a NOR erase whose cells drift together.
func (d *Device) TearBits(on bool) { d.tearBits = on }

// PowerOn restores power after a cut and disarms any pending cut.
func (d *Device) PowerOn() {
	d.dead = false
	d.cutAt = 0
}

// PoweredOff reports whether a power cut has happened and PowerOn has not
// been called since.
func (d *Device) PoweredOff() bool { return d.dead }

// Read copies len(p) bytes at offset off into p. Reads are not operations
// and have no alignment requirement.
func (d *Device) Read(off int, p []byte) error {
	if d.dead {
		return ErrPowerCut
	}
	if off < 0 || off+len(p) > len(d.data) || off+len(p) < off {
		return fmt.Errorf("%w: read %d bytes at %#x (size %#x)", ErrRange, len(p), off, len(d.data))
	}
	copy(p, d.data[off:])
	return nil
}

// begin counts an operation and reports whether it is the one that loses
// power, with a random source for the torn contents.
func (d *Device) begin() (cut bool, rng *rand.Rand, err error) {
	if d.dead {
		return false, nil, ErrPowerCut
	}
	d.ops++
	if d.cutAt > 0 && d.ops == d.cutAt {
		d.dead = true
		return true, rand.New(rand.NewPCG(d.seed, uint64(d.ops))), nil
	}
	return false, nil, nil
}

// Write programs p at offset off. Both off and len(p) must be multiples of
// the alignment and every target byte must be erased. If power is cut
// during the write, a random prefix of p is programmed, the byte after it
// holds a mix of its erased and target bits, and the rest stays erased.
func (d *Device) Write(off int, p []byte) error {
	a := d.geo.Align
	if off < 0 || off+len(p) > len(d.data) || off+len(p) < off {
		return fmt.Errorf("%w: write %d bytes at %#x (size %#x)", ErrRange, len(p), off, len(d.data))
	}
	if off%a != 0 || len(p)%a != 0 {
		return fmt.Errorf("%w: write %d bytes at %#x with alignment %d", ErrAlignment, len(p), off, a)
	}
	for i := range p {
		if d.data[off+i] != d.geo.Erased {
			return fmt.Errorf("%w: byte at %#x", ErrNotErased, off+i)
		}
	}
	cut, rng, err := d.begin()
	if err != nil {
		return err
	}
	if !cut {
		copy(d.data[off:], p)
		return d.sync(off, len(p))
	}
	n := 0
	if len(p) > 0 {
		n = rng.IntN(len(p))
		copy(d.data[off:], p[:n])
		// Programming moves bits from the erased value towards the
		// target; a torn byte has only some of those bits moved.
		mask := byte(rng.Uint32())
		e := d.geo.Erased
		d.data[off+n] = e ^ ((e ^ p[n]) & mask)
	}
	if err := d.sync(off, len(p)); err != nil {
		return err
	}
	return fmt.Errorf("%w: during write of %d bytes at %#x (operation %d)", ErrPowerCut, len(p), off, d.ops)
}

// Erase erases every sector in [off, off+n); the range must start and end
// on sector boundaries. Each sector is one operation, erased from the last
// to the first so that data at the end of a range (such as an MCUboot
// trailer) is destroyed before data before it. If power is cut during a
// sector's erase, a random suffix of that sector is erased, the byte before
// it is partly erased, and the rest keeps its old contents.
func (d *Device) Erase(off, n int) error {
	if n == 0 {
		return nil
	}
	if off < 0 || n < 0 || off+n > len(d.data) {
		return fmt.Errorf("%w: erase %d bytes at %#x (size %#x)", ErrRange, n, off, len(d.data))
	}
	first, start, _, _ := d.SectorAt(off)
	last, lstart, lsize, _ := d.SectorAt(off + n - 1)
	if start != off || lstart+lsize != off+n {
		return fmt.Errorf("%w: erase %d bytes at %#x is not on sector boundaries", ErrAlignment, n, off)
	}
	for i := last; i >= first; i-- {
		if err := d.eraseSector(i); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) eraseSector(i int) error {
	cut, rng, err := d.begin()
	if err != nil {
		return err
	}
	s, e := d.starts[i], d.starts[i+1]
	ev := d.geo.Erased
	if !cut {
		for j := s; j < e; j++ {
			d.data[j] = ev
		}
		d.erases[i]++
		return d.sync(s, e-s)
	}
	if d.tearBits {
		q := rng.Float64()
		for j := s; j < e; j++ {
			var m byte
			for b := 0; b < 8; b++ {
				if rng.Float64() < q {
					m |= 1 << b
				}
			}
			d.data[j] ^= (d.data[j] ^ ev) & m
		}
	} else {
		k := s + 1 + rng.IntN(e-s) // bytes [k, e) are erased
		for j := k; j < e; j++ {
			d.data[j] = ev
		}
		mask := byte(rng.Uint32())
		d.data[k-1] ^= (d.data[k-1] ^ ev) & mask
	}
	if err := d.sync(s, e-s); err != nil {
		return err
	}
	return fmt.Errorf("%w: during erase of sector %d at %#x (operation %d)", ErrPowerCut, i, s, d.ops)
}

// IsErased reports whether every byte of [off, off+n) holds the erased value.
func (d *Device) IsErased(off, n int) (bool, error) {
	if d.dead {
		return false, ErrPowerCut
	}
	if off < 0 || n < 0 || off+n > len(d.data) {
		return false, fmt.Errorf("%w: %d bytes at %#x (size %#x)", ErrRange, n, off, len(d.data))
	}
	for _, b := range d.data[off : off+n] {
		if b != d.geo.Erased {
			return false, nil
		}
	}
	return true, nil
}

// Snapshot returns a copy of the whole contents, for tests and dumps.
func (d *Device) Snapshot() []byte { return append([]byte(nil), d.data...) }

// Clone returns an independent in-memory copy of d with the same contents
// and no armed power cut.
func (d *Device) Clone() *Device {
	c := &Device{geo: d.Geometry()}
	c.layout()
	copy(c.erases, d.erases)
	c.data = d.Snapshot()
	c.tearBits = d.tearBits
	return c
}
