package delta

import "encoding/binary"

// Differences in firmware come from relocated pointers and shifted branch
// offsets: whether a byte changes, and by how much, depends on the source
// word around it (a Thumb BL, a pointer into moved code), on its byte lane
// and on the differences just before, which a general-purpose LZ codec
// cannot see. Most difference bytes are zero, so each byte first codes one
// "changed?" decision and only changed bytes code their value.

const (
	nInputs      = 7
	maxTableBits = 16 // hashed context tables hold at most 2^19 slots of 4 bytes
	minTableBits = 10
	// The mixer's weight set is chosen by node, byte lane and whether the
	// previous difference was non-zero.
	mixerSets = 256 * 8
)

// diffModel predicts difference bytes: a "changed?" decision (node 0),
// then, for changed bytes, the value MSB first along a bit tree (node 1,
// then node*2+bit).
type diffModel struct {
	// tab holds, per context, slots (see slotInit).
	tab   slotTables
	w     [][nInputs]int32 // mixer weights (16.16)
	ctx   [nInputs]uint32  // per-byte context hashes
	base  [nInputs]uint32  // slot group of the current nibble, per context
	sel   int
	hist  [4]byte    // last differences, newest first
	quiet uint32     // bytes since the last non-zero difference, capped
	skip  [32]uint16 // "next skipLen unchanged?" by quiet and lane
	shift uint32     // 32 - table bits
}

// tableBits sizes the hashed tables to a block of n target bytes: half a
// slot per byte, so a small block does not pay for clearing a large model.
func tableBits(n int) int {
	b := minTableBits
	for b < maxTableBits && 1<<(b+1) < n {
		b++
	}
	return b
}

// newDiffModel returns a model for a block of n target bytes, reusing the
// tables of prev (which may be nil) when they are large enough.
func newDiffModel(n int, prev *diffModel) *diffModel {
	bits := tableBits(n)
	m := prev
	if m == nil || cap(m.tab.t[1]) < 1<<bits {
		m = &diffModel{w: make([][nInputs]int32, mixerSets)}
		m.tab.alloc(nInputs, 512, 1<<bits)
	} else {
		m.tab.reset(1 << bits)
	}
	*m = diffModel{tab: m.tab, w: m.w, shift: uint32(32 - bits)}
	for i := range m.w {
		for j := range m.w[i] {
			m.w[i][j] = (1 << 16) / nInputs
		}
	}
	return m
}

// srcBytes is a view of the source around the byte being coded: b holds
// source bytes [off, off+len(b)), which must cover every in-range
// position within 3 bytes of it; positions outside the source read as 0.
type srcBytes struct {
	b   []byte
	off int
}

func (s srcBytes) at(i int) uint32 {
	if i -= s.off; i >= 0 && i < len(s.b) {
		return uint32(s.b[i])
	}
	return 0
}

// setContexts computes the contexts of the difference at source position
// sp and absolute target position tp.
func (m *diffModel) setContexts(src srcBytes, sp, tp int) {
	d1, d2, d4 := uint32(m.hist[0]), uint32(m.hist[1]), uint32(m.hist[3])
	changed := uint32(0)
	if d1 != 0 {
		changed = 1
	}
	lane := uint32(tp & 3)
	w := sp - int(lane)
	h := sp - tp&1
	var s, word, half, next uint32
	if i := sp - src.off; i >= 3 && i+4 <= len(src.b) {
		// The usual case: all of sp-3..sp+3 is in the source.
		s, next = uint32(src.b[i]), uint32(src.b[i+1])
		word = binary.LittleEndian.Uint32(src.b[w-src.off:])
		half = binary.LittleEndian.Uint32(src.b[h-src.off:])
	} else {
		s, next = src.at(sp), src.at(sp+1)
		word = src.at(w) | src.at(w+1)<<8 | src.at(w+2)<<16 | src.at(w+3)<<24
		half = src.at(h) | src.at(h+1)<<8 | src.at(h+2)<<16 | src.at(h+3)<<24
	}
	// The first changedInputs contexts also predict the "changed?" decision;
	// the rest only a changed byte's value.
	m.ctx = [nInputs]uint32{
		0,
		hashCtx(1, d1),
		hashCtx(2, s<<1|changed),
		hashCtx(5, lane<<24|word>>12<<4|d1&15),
		hashCtx(7, uint32(tp&1)<<24|half&0xf800f800|d1<<16|d2),
		hashCtx(8, lane<<16|m.quiet<<8|next),
		hashCtx(3, d4<<8|d2),
	}
	m.sel = int(changed|lane<<1) << 8
	for i := 1; i < changedInputs; i++ {
		m.base[i] = hashCtx(m.ctx[i], 0) >> m.shift &^ 15
	}
}

// changedInputs is how many of the inputs (the first ones) predict the
// "changed?" decision. The last, the older differences, adds nothing to it
// on the corpus, and leaving it out saves most bytes, which are unchanged,
// a cache miss. (Two more inputs for values, the source word's upper bytes
// and the source byte with d4, saved 0.04% for 3% more diff time.)
const changedInputs = 6

// decide codes one decision at node (decoding, it ignores bit and returns
// the decoded one), mixing the first n inputs. A context's slots for nodes
// 0 to 15 (the "changed?" decision and the value's high nibble) share one
// group of 16, those of each low nibble another, so a byte costs each table
// one or two cache lines.
func (m *diffModel) decide(bc *binCoder, bit, node, n int) int {
	sub := uint32(node)
	switch {
	case node == 1:
		for i := changedInputs; i < nInputs; i++ {
			m.base[i] = hashCtx(m.ctx[i], 0) >> m.shift &^ 15
		}
	case node >= 16:
		if node < 32 {
			for i := 1; i < nInputs; i++ {
				m.base[i] = hashCtx(m.ctx[i], uint32(node)) >> m.shift &^ 15
			}
		}
		sub = lowNibbleSlot(node)
	}
	t := m.tab.t[:nInputs]
	w := &m.w[m.sel|node]
	var slot [nInputs]*uint16
	var st [nInputs]int32
	slot[0] = &t[0][node]
	st[0] = int32(stretchTab[slotP(*slot[0])])
	dot := int64(st[0]) * int64(w[0])
	for i := 1; i < n; i++ {
		v := &t[i][m.base[i]|sub]
		slot[i] = v
		st[i] = int32(stretchTab[slotP(*v)])
		dot += int64(st[i]) * int64(w[i])
	}
	pr := squash(int32(dot >> 16))
	bit = bc.codeBit(bit, pr)
	err := int32(bit<<12) - pr
	for i, v := range slot[:n] {
		w[i] += (st[i]*err + 512) >> 10
		adaptSlot(v, bit)
	}
	return bit
}

func (m *diffModel) push(d byte) {
	copy(m.hist[1:], m.hist[:3])
	m.hist[0] = d
	if d != 0 {
		m.quiet = 0
	} else if m.quiet < 32 {
		m.quiet++
	}
}

const (
	// After quietRun unchanged bytes, the model asks once whether the next
	// skipLen are unchanged too: most of an add is, and one decision for
	// eight bytes codes as well as eight and costs an eighth of the time.
	quietRun = 16
	skipLen  = 8
)

// codeAdd codes (encoding, from d) or decodes (into d) the difference
// bytes of an add at source offset sp and target offset tp.
func (m *diffModel) codeAdd(bc *binCoder, d []byte, src srcBytes, sp, tp int) {
	for i := 0; i < len(d) && !bc.overrun(); {
		if m.quiet >= quietRun && len(d)-i >= skipLen {
			zero := 1
			for _, b := range d[i : i+skipLen] {
				if b != 0 {
					zero = 0
				}
			}
			v := &m.skip[(min(m.quiet, 32)-quietRun)>>2|uint32(tp+i)&3<<3]
			zero = bc.codeBit(zero, min(max(slotP(*v), 1), 4095))
			updateSlot(v, zero)
			if zero == 1 {
				clear(d[i : i+skipLen])
				m.quiet = min(m.quiet+skipLen, 32)
				i += skipLen
				continue
			}
			for end := i + skipLen; i < end; i++ {
				d[i] = m.codeByte(bc, d[i], src, sp+i, tp+i)
			}
			continue
		}
		d[i] = m.codeByte(bc, d[i], src, sp+i, tp+i)
		i++
	}
}

// codeByte codes difference b of the byte at source offset sp and target
// offset tp; decoding, b is ignored and the decoded byte returned.
func (m *diffModel) codeByte(bc *binCoder, b byte, src srcBytes, sp, tp int) byte {
	m.setContexts(src, sp, tp)
	v := byte(0)
	if m.decide(bc, b2i(b != 0), 0, changedInputs) == 1 {
		node := 1
		for k := 7; k >= 0; k-- {
			node = node<<1 | m.decide(bc, int(b>>k)&1, node, nInputs)
		}
		v = byte(node)
	}
	m.push(v)
	return v
}
