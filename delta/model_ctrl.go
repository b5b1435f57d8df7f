package delta

import "math/bits"

// ctrlModel codes layout 2's instructions: kind, length and, for copies and
// adds, the alignment (source offset minus target offset). Alignments recur:
// after an insert the old alignment usually resumes, and code that moved
// comes back to an alignment seen a few instructions before, so the last four
// are kept (as LZMA keeps its last four distances) and coded by index.
type ctrlModel struct {
	slots []uint16 // P(1) and count, as diffModel's, hashed by context
	dirty []uint32 // slots updated since the reset
	last  [2]opKind
	reps  [nReps]int64
}

const ctrlTableBits = 16

// nReps is how many recent alignments an instruction can name by index.
const nReps = 4

// maxNumBits bounds the bit length of a coded number: a hostile stream
// cannot make the decoder loop.
const maxNumBits = 40

func (c *ctrlModel) reset(align int64) {
	if c.slots == nil {
		c.slots = make([]uint16, 1<<ctrlTableBits)
	}
	for _, d := range c.dirty {
		c.slots[d] = 0
	}
	c.dirty = c.dirty[:0]
	c.last = [2]opKind{3, 3}
	for i := range c.reps {
		c.reps[i] = align
	}
}

// slot returns the slot of context ctx and its 12-bit prediction.
func (c *ctrlModel) slot(ctx uint32) (*uint16, int32) {
	i := hashCtx(ctx, 0x5bd1e995) >> (32 - ctrlTableBits)
	v := &c.slots[i]
	if *v == 0 {
		c.dirty = append(c.dirty, i)
	}
	return v, min(max(slotP(*v), 1), 4095)
}

// bit codes one decision in context ctx.
func (c *ctrlModel) bit(bc *binCoder, ctx uint32, bit int) int {
	v, p := c.slot(ctx)
	bit = bc.codeBit(bit, p)
	updateSlot(v, bit)
	return bit
}

// num codes v: its bit length in unary, then the bits below the leading
// one, the first three in the context of those above them.
func (c *ctrlModel) num(bc *binCoder, ctx uint32, v uint64) (uint64, error) {
	nb := 0
	for {
		more := b2i(nb < bits.Len64(v))
		if c.bit(bc, hashCtx(ctx, uint32(nb)), more) == 0 {
			break
		}
		if nb++; nb > maxNumBits {
			return 0, formatErr("coded number longer than %d bits", maxNumBits)
		}
	}
	if nb == 0 {
		return 0, nil
	}
	r := uint64(1)
	for i := nb - 2; i >= 0; i-- {
		k := nb - 2 - i
		var cx uint32
		if k < 3 {
			cx = hashCtx(ctx^0x1234567, uint32(nb)<<8|uint32(k)<<4|uint32(r&7))
		} else {
			cx = hashCtx(0x777, uint32(nb)<<8|uint32(i))
		}
		r = r<<1 | uint64(c.bit(bc, cx, int(v>>i)&1))
	}
	return r, nil
}

// op codes one instruction; align is its source offset minus its target
// offset for copies and adds. Decoding, it returns what it read.
func (c *ctrlModel) op(bc *binCoder, kind opKind, n int, align int64) (opKind, int, int64, error) {
	kctx := uint32(c.last[0]) | uint32(c.last[1])<<2
	if c.bit(bc, 1000+kctx, b2i(kind == opInsert)) == 1 {
		kind = opInsert
	} else if c.bit(bc, 1100+kctx, b2i(kind == opAdd)) == 1 {
		kind = opAdd
	} else {
		kind = opCopy
	}
	n64, err := c.num(bc, 2000+uint32(kind)<<4|uint32(c.last[0]), uint64(n))
	if err != nil {
		return 0, 0, 0, err
	}
	c.last[1], c.last[0] = c.last[0], kind
	if kind == opInsert {
		return kind, int(min(n64, 1<<31)), 0, nil
	}
	want := nReps // encoding: the index of align among the last alignments
	for j, r := range c.reps {
		if r == align {
			want = j
			break
		}
	}
	ri := nReps - 1 // a new alignment pushes out the oldest
	if c.bit(bc, 3000+uint32(c.last[1]), b2i(want < nReps)) == 1 {
		ri = 0
		for ri < nReps-1 && c.bit(bc, 3100+uint32(ri), b2i(want > ri)) == 1 {
			ri++
		}
		align = c.reps[ri]
	} else {
		d := align - c.reps[0]
		neg := c.bit(bc, 3400, b2i(d < 0))
		if d < 0 {
			d = -d
		}
		m, err := c.num(bc, 4000+uint32(neg), uint64(d))
		if err != nil {
			return 0, 0, 0, err
		}
		if m > 1<<33 {
			return 0, 0, 0, formatErr("alignment change %d too large", m)
		}
		if d = int64(m); neg == 1 {
			d = -d
		}
		align = c.reps[0] + d
	}
	copy(c.reps[1:ri+1], c.reps[:ri])
	c.reps[0] = align
	return kind, int(min(n64, 1<<31)), align, nil
}

// minNewAlignment is the shortest copy or add worth a new alignment in
// layout 2: a new alignment costs about 27 bits, a recent one a few, so a
// shorter stretch is cheaper as literal bytes. Measured on the corpus: 1.3%
// smaller than keeping every alignment the parser finds.
const minNewAlignment = 10

// dropShortAlignments turns copies and adds shorter than minLen whose
// alignment is not among the last nReps into inserts, merging neighbouring
// inserts; it follows the recent-alignment list as ctrlModel keeps it.
func dropShortAlignments(ops []op, minLen int) []op {
	out := make([]op, 0, len(ops)) // one allocation: growing it faults more pages
	var reps [nReps]int
	t := 0
	for _, o := range ops {
		if o.kind != opInsert {
			align := o.src - t
			ri := nReps - 1
			recent := false
			for j, r := range reps {
				if r == align {
					ri, recent = j, true
					break
				}
			}
			if recent || o.n >= minLen {
				copy(reps[1:ri+1], reps[:ri])
				reps[0] = align
				out = append(out, o)
				t += o.n
				continue
			}
		}
		if k := len(out); k > 0 && out[k-1].kind == opInsert {
			out[k-1].n += o.n
		} else {
			out = append(out, op{kind: opInsert, n: o.n})
		}
		t += o.n
	}
	return out
}
