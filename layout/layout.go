// Package layout describes how a flash part is cut into partitions for an
// MCUboot-style A/B update scheme (bootloader, primary and secondary image
// slots, scratch, config) and checks that a cut is usable.
//
// Maps come from the built-in preset of the project spec, from JSON or
// YAML files, or from a Zephyr devicetree fixed-partitions node.
package layout

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/otakit/otakit/flash"
)

// Errors returned by the parsers and by Check, wrapped with detail.
var (
	ErrSyntax    = errors.New("layout: syntax error")
	ErrOverlap   = errors.New("layout: partitions overlap")
	ErrBounds    = errors.New("layout: partition outside the flash")
	ErrAlignment = errors.New("layout: partition not on sector boundaries")
	ErrSlots     = errors.New("layout: image slots do not match")
	ErrTrailer   = errors.New("layout: image trailer does not fit")
	ErrScratch   = errors.New("layout: scratch partition unusable")
	ErrMissing   = errors.New("layout: required partition missing")
)

// Well-known partition names. Other names are allowed and only checked for
// bounds, alignment and overlap.
const (
	Bootloader = "bootloader"
	SlotA      = "slot-a" // MCUboot primary slot (slot0_partition, image-0)
	SlotB      = "slot-b" // MCUboot secondary slot (slot1_partition, image-1)
	Scratch    = "scratch"
	Config     = "config"
)

// Partition is a named address range of the flash.
type Partition struct {
	Name   string `json:"name"`
	Offset uint32 `json:"offset"` // absolute address, as in the spec's table
	Size   uint32 `json:"size"`
}

// End is the address one past the partition's last byte.
func (p Partition) End() uint64 { return uint64(p.Offset) + uint64(p.Size) }

// Map is a flash part and its partitions.
type Map struct {
	// Base is the address of the flash's first byte (0x08000000 on STM32).
	Base uint32
	// Flash is the part's geometry.
	Flash flash.Geometry
	// Partitions in address order.
	Partitions []Partition
}

// Preset returns the spec's layout on a 592 KiB flash at 0x08000000 with
// 4 KiB sectors, 8-byte write alignment and 0xFF erased value.
func Preset() *Map {
	const k = 1024
	return &Map{
		Base:  0x08000000,
		Flash: flash.Geometry{Sectors: flash.Uniform(148, 4*k), Align: 8, Erased: 0xFF},
		Partitions: []Partition{
			{Bootloader, 0x08000000, 32 * k},
			{SlotA, 0x08008000, 240 * k},
			{SlotB, 0x08044000, 240 * k},
			{Scratch, 0x08080000, 64 * k},
			{Config, 0x08090000, 16 * k},
		},
	}
}

// Find returns the partition called name.
func (m *Map) Find(name string) (Partition, bool) {
	for _, p := range m.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// Rel returns p's offset relative to the start of the flash.
func (m *Map) Rel(p Partition) int { return int(p.Offset - m.Base) }

// sectorsOf returns the sector sizes covering p, which must be aligned.
func (m *Map) sectorsOf(p Partition) []uint32 {
	var out []uint32
	addr := uint64(m.Base)
	for _, s := range m.Flash.Sectors {
		if addr >= uint64(p.Offset) && addr+uint64(s) <= p.End() {
			out = append(out, s)
		}
		addr += uint64(s)
	}
	return out
}

// SectorsOf returns the sector sizes that make up partition p.
func (m *Map) SectorsOf(p Partition) []uint32 { return m.sectorsOf(p) }

// Mode is an MCUboot upgrade strategy; it decides what Check demands.
type Mode string

// The upgrade strategies supported by package boot.
const (
	SwapScratch   Mode = "swap-scratch"
	SwapMove      Mode = "swap-move"
	OverwriteOnly Mode = "overwrite-only"
)

// ParseMode accepts the mode names and common aliases (scratch, move,
// overwrite).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "swap-scratch", "scratch", "swap-using-scratch":
		return SwapScratch, nil
	case "swap-move", "move", "swap-using-move":
		return SwapMove, nil
	case "overwrite-only", "overwrite":
		return OverwriteOnly, nil
	}
	return "", fmt.Errorf("layout: unknown swap mode %q (swap-scratch, swap-move, overwrite-only)", s)
}

// CheckOptions tunes Check.
type CheckOptions struct {
	Mode Mode
	// MaxImgSectors is MCUboot's BOOT_MAX_IMG_SECTORS; 0 means 128.
	MaxImgSectors int
	// HeaderSize is the image header size to reserve; 0 means 0x200.
	HeaderSize int
}

// TrailerSize is MCUboot's boot_trailer_sz for a write alignment, with
// BOOT_MAX_ALIGN = max(8, align) and no encryption keys:
// status entries (maxSectors × 3 states × align) plus swap_size, swap_info,
// copy_done and image_ok (one BOOT_MAX_ALIGN each) and the padded magic.
func TrailerSize(align, maxSectors int) int {
	maxAlign := max(8, align)
	return maxSectors*3*align + 4*maxAlign + max(16, maxAlign)
}

// Check validates m: partitions inside the flash, on sector boundaries,
// not overlapping; both slots present, of equal size and sector layout,
// with room for a header and the trailer; and, per mode, a scratch
// partition at least as large as the largest slot sector and the trailer
// (swap-scratch) or a spare sector (swap-move). It returns every problem
// found, joined.
func (m *Map) Check(o CheckOptions) error {
	if o.MaxImgSectors == 0 {
		o.MaxImgSectors = 128
	}
	if o.HeaderSize == 0 {
		o.HeaderSize = 0x200
	}
	var errs []error
	if err := m.Flash.Validate(); err != nil {
		return err
	}
	size := uint64(m.Flash.Size())
	// Sector boundaries as absolute addresses.
	bounds := map[uint64]bool{}
	a := uint64(m.Base)
	bounds[a] = true
	for _, s := range m.Flash.Sectors {
		a += uint64(s)
		bounds[a] = true
	}
	names := map[string]bool{}
	for _, p := range m.Partitions {
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("%w: duplicate partition %q", ErrSyntax, p.Name))
		}
		names[p.Name] = true
		switch {
		case p.Size == 0:
			errs = append(errs, fmt.Errorf("%w: %s has size 0", ErrBounds, p.Name))
		case uint64(p.Offset) < uint64(m.Base) || p.End() > uint64(m.Base)+size:
			errs = append(errs, fmt.Errorf("%w: %s [%#x, %#x) not within flash [%#x, %#x)", ErrBounds, p.Name, p.Offset, p.End(), m.Base, uint64(m.Base)+size))
		case !bounds[uint64(p.Offset)] || !bounds[p.End()]:
			errs = append(errs, fmt.Errorf("%w: %s [%#x, %#x)", ErrAlignment, p.Name, p.Offset, p.End()))
		}
	}
	ps := append([]Partition(nil), m.Partitions...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Offset < ps[j].Offset })
	for i := 1; i < len(ps); i++ {
		if uint64(ps[i].Offset) < ps[i-1].End() {
			errs = append(errs, fmt.Errorf("%w: %s [%#x, %#x) and %s [%#x, %#x)", ErrOverlap,
				ps[i-1].Name, ps[i-1].Offset, ps[i-1].End(), ps[i].Name, ps[i].Offset, ps[i].End()))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	sa, okA := m.Find(SlotA)
	sb, okB := m.Find(SlotB)
	if !okA || !okB {
		return fmt.Errorf("%w: need both %q and %q", ErrMissing, SlotA, SlotB)
	}
	secA, secB := m.sectorsOf(sa), m.sectorsOf(sb)
	if sa.Size != sb.Size {
		errs = append(errs, fmt.Errorf("%w: %s is %d bytes, %s is %d", ErrSlots, SlotA, sa.Size, SlotB, sb.Size))
	} else if o.Mode != OverwriteOnly && !equalU32(secA, secB) {
		errs = append(errs, fmt.Errorf("%w: sector layouts differ", ErrSlots))
	}
	if len(secA) > o.MaxImgSectors {
		errs = append(errs, fmt.Errorf("%w: %s has %d sectors, more than BOOT_MAX_IMG_SECTORS %d", ErrTrailer, SlotA, len(secA), o.MaxImgSectors))
	}
	tsz := TrailerSize(m.Flash.Align, o.MaxImgSectors)
	minSlot := o.HeaderSize + tsz
	if o.Mode == SwapMove && len(secA) > 0 {
		minSlot += int(secA[len(secA)-1])
	}
	if int(sa.Size) < minSlot {
		errs = append(errs, fmt.Errorf("%w: %s is %d bytes, needs at least %d (header %d + trailer %d)", ErrTrailer, SlotA, sa.Size, minSlot, o.HeaderSize, tsz))
	}
	switch o.Mode {
	case SwapScratch:
		sc, ok := m.Find(Scratch)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: swap-scratch needs %q", ErrMissing, Scratch))
			break
		}
		largest := uint32(0)
		for _, s := range append(secA, secB...) {
			largest = max(largest, s)
		}
		if sc.Size < largest {
			errs = append(errs, fmt.Errorf("%w: %d bytes, smaller than the largest slot sector %d", ErrScratch, sc.Size, largest))
		}
		if int(sc.Size) < tsz {
			errs = append(errs, fmt.Errorf("%w: %d bytes, smaller than the trailer %d", ErrScratch, sc.Size, tsz))
		}
	case SwapMove:
		for i := 1; i < len(secA); i++ {
			if secA[i] != secA[0] {
				errs = append(errs, fmt.Errorf("%w: swap-move needs uniform sectors in %s", ErrSlots, SlotA))
				break
			}
		}
	case OverwriteOnly, "":
	default:
		errs = append(errs, fmt.Errorf("layout: unknown mode %q", o.Mode))
	}
	return errors.Join(errs...)
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
