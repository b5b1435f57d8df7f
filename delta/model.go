package delta

import "math/bits"

// This file codes the add-difference bytes of layout 2 with a
// context-mixing model and a binary arithmetic coder. Differences in
// firmware come from relocated pointers and shifted branch offsets:
// whether a byte changes, and by how much, depends on the source word
// around it (a Thumb BL, a pointer into moved code), on its byte lane and
// on the differences just before, which a general-purpose LZ codec cannot
// see. Most difference bytes are zero, so each byte first codes one
// "changed?" decision and only changed bytes code their value. All
// arithmetic is integer so encoder and decoder agree on every platform.

var squashTab = [33]int32{1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546,
	2047, 2549, 2994, 3348, 3607, 3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094}

// squash maps a stretched probability (-2047..2047) to 12 bits.
func squash(d int32) int32 {
	if d > 2047 {
		return 4095
	}
	if d < -2047 {
		return 1
	}
	w := d & 127
	i := (d >> 7) + 16
	return (squashTab[i]*(128-w) + squashTab[i+1]*w + 64) >> 7
}

// stretchTab inverts squash: ln(p/(1-p)) scaled like squash's input.
var stretchTab = func() (t [4096]int16) {
	pi := int32(0)
	for x := int32(-2047); x <= 2047; x++ {
		v := squash(x)
		for j := pi; j <= v; j++ {
			t[j] = int16(x)
		}
		pi = v + 1
	}
	for j := pi; j < 4096; j++ {
		t[j] = 2047
	}
	return
}()

// rateTab[n] is 65536/(n+1.5): a slot seen n times moves that fraction of
// the way to each new bit, so a new context learns from its first bits.
var rateTab = func() (t [16]int32) {
	for i := range t {
		t[i] = int32(131072 / (2*i + 3))
	}
	return
}()

const (
	nInputs      = 9
	maxTableBits = 16 // hashed context tables hold at most 2^19 slots of 4 bytes
	minTableBits = 10
	// slotLimit caps the count of a difference or literal slot, so it
	// keeps moving 1/5.5 of the way to each bit: firmware's contexts drift
	// (a relocation delta holds for one region, then another), and on the
	// corpus slots that settled (limit 255) coded 5% larger.
	slotLimit = 4
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
	idx   [nInputs]uint32
	st    [nInputs]int32
	sel   int
	pr    int32
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

// slotTables are a model's context tables. Their slots start at zero (P =
// 1/2, count 0); a model that codes one block after another clears only the
// slots the last block touched, so a small block costs little however
// large the tables.
type slotTables struct {
	t     [][]uint16
	dirty []uint32 // table<<24 | index of each slot touched, up to cap
	full  bool     // more were touched than dirty holds: clear everything
}

// alloc makes the tables fresh: table 0 of n0 slots, the others of n.
func (s *slotTables) alloc(tables, n0, n int) {
	s.t = make([][]uint16, tables)
	s.t[0] = make([]uint16, n0)
	for i := 1; i < tables; i++ {
		s.t[i] = make([]uint16, n)
	}
	s.dirty = make([]uint32, 0, n/2)
}

// reset clears the touched slots and sizes the tables after table 0 to n
// slots (at most their allocated size).
func (s *slotTables) reset(n int) {
	if s.full {
		for _, t := range s.t {
			clear(t[:cap(t)])
		}
	} else {
		for _, d := range s.dirty {
			s.t[d>>24][:cap(s.t[d>>24])][d&(1<<24-1)] = 0
		}
	}
	s.dirty, s.full = s.dirty[:0], false
	for i := 1; i < len(s.t); i++ {
		s.t[i] = s.t[i][:n]
	}
}

// touch records that slot idx of table i leaves its initial state.
func (s *slotTables) touch(i int, idx uint32) {
	if len(s.dirty) < cap(s.dirty) {
		s.dirty = append(s.dirty, uint32(i)<<24|idx)
	} else {
		s.full = true
	}
}

func hashCtx(a, b uint32) uint32 { return (a*0x9E3779B1 ^ b) * 0x85EBCA77 }

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
	s := src.at(sp)
	w := sp - int(lane)
	word := src.at(w) | src.at(w+1)<<8 | src.at(w+2)<<16 | src.at(w+3)<<24
	h := sp - tp&1
	half := src.at(h) | src.at(h+1)<<8 | src.at(h+2)<<16 | src.at(h+3)<<24
	m.ctx = [nInputs]uint32{
		0,
		hashCtx(1, d1),
		hashCtx(2, s<<1|changed),
		hashCtx(3, d4<<8|d2),
		hashCtx(4, lane<<24|word>>8),
		hashCtx(5, lane<<24|word>>12<<4|d1&15),
		hashCtx(6, lane<<16|d4<<8|s),
		hashCtx(7, uint32(tp&1)<<24|half&0xf800f800|d1<<16|d2),
		hashCtx(8, lane<<16|m.quiet<<8|src.at(sp+1)),
	}
	m.sel = int(changed|lane<<1) << 8
	for i := 1; i < nInputs; i++ {
		m.base[i] = hashCtx(m.ctx[i], 0) >> m.shift &^ 15
	}
}

// predict returns P(next bit = 1) in 12 bits at node.
// predict returns P(next bit = 1) in 12 bits at node. A context's slots
// for nodes 0 to 15 (the "changed?" decision and the value's high nibble)
// share one group of 16, those of each low nibble another, so a byte costs
// each table one or two cache lines.
func (m *diffModel) predict(node int) int32 {
	var dot int64
	w := &m.w[m.sel|node]
	m.idx[0] = uint32(node)
	switch {
	case node < 16:
		for i := 1; i < nInputs; i++ {
			m.idx[i] = m.base[i] | uint32(node)
		}
	default:
		if node < 32 {
			for i := 1; i < nInputs; i++ {
				m.base[i] = hashCtx(m.ctx[i], uint32(node)) >> m.shift &^ 15
			}
		}
		k := uint(bits.Len(uint(node)) - 5)
		sub := uint32(node)&(1<<k-1) | 1<<k
		for i := 1; i < nInputs; i++ {
			m.idx[i] = m.base[i] | sub
		}
	}
	for i := 0; i < nInputs; i++ {
		m.st[i] = int32(stretchTab[slotP(m.tab.t[i][m.idx[i]])])
		dot += int64(m.st[i]) * int64(w[i])
	}
	m.pr = squash(int32(dot >> 16))
	return m.pr
}

func (m *diffModel) update(bit int, node int) {
	w := &m.w[m.sel|node]
	err := int32(bit<<12) - m.pr
	for i := 0; i < nInputs; i++ {
		w[i] += (m.st[i]*err + 512) >> 10
		if updateSlot(&m.tab.t[i][m.idx[i]], bit, slotLimit) {
			m.tab.touch(i, m.idx[i])
		}
	}
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
func (m *diffModel) codeAdd(bc bitCoder, d []byte, src srcBytes, sp, tp int) {
	for i := 0; i < len(d); {
		if m.quiet >= quietRun && len(d)-i >= skipLen {
			zero := 1
			for _, b := range d[i : i+skipLen] {
				if b != 0 {
					zero = 0
				}
			}
			v := &m.skip[(min(m.quiet, 32)-quietRun)>>2|uint32(tp+i)&3<<3]
			zero = bc.codeBit(zero, min(max(slotP(*v), 1), 4095))
			updateSlot(v, zero, 30)
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
func (m *diffModel) codeByte(bc bitCoder, b byte, src srcBytes, sp, tp int) byte {
	m.setContexts(src, sp, tp)
	nz := bc.codeBit(b2i(b != 0), m.predict(0))
	m.update(nz, 0)
	v := byte(0)
	if nz == 1 {
		node := 1
		for k := 7; k >= 0; k-- {
			bit := bc.codeBit(int(b>>k)&1, m.predict(node))
			m.update(bit, node)
			node = node<<1 | bit
		}
		v = byte(node)
	}
	m.push(v)
	return v
}

// arithEncoder is a carry-less binary arithmetic coder over 12-bit
// probabilities.
type arithEncoder struct {
	x1, x2 uint32
	out    []byte
}

func (e *arithEncoder) code(bit int, p int32) {
	xmid := e.x1 + (e.x2-e.x1)>>12*uint32(p)
	if bit == 1 {
		e.x2 = xmid
	} else {
		e.x1 = xmid + 1
	}
	for (e.x1^e.x2)&0xff000000 == 0 {
		e.out = append(e.out, byte(e.x2>>24))
		e.x1 <<= 8
		e.x2 = e.x2<<8 | 255
	}
}

func (e *arithEncoder) codeBit(bit int, p int32) int {
	e.code(bit, p)
	return bit
}

// modelEncoder codes a layout-2 block's instructions, difference bytes
// and, with codec none, literal bytes into its model stream.
type modelEncoder struct {
	m    *diffModel
	lit  *litModel // nil when literals go through the codec
	ctrl ctrlModel
	arithEncoder
}

// newModelEncoder returns an encoder for a block of n target bytes whose
// source pointer starts at align bytes from its first target byte; it
// reuses prev's model tables when prev is not nil.
func newModelEncoder(n int, align int64, literals bool, prev *modelEncoder) *modelEncoder {
	e := &modelEncoder{arithEncoder: arithEncoder{x2: 0xffffffff}}
	var pm *diffModel
	var pl *litModel
	if prev != nil {
		pm, pl, e.ctrl = prev.m, prev.lit, prev.ctrl
	}
	e.m = newDiffModel(n, pm)
	if literals {
		e.lit = newLitModel(n, pl)
	}
	e.ctrl.reset(align)
	return e
}

// encodeLiteral codes literal b at absolute target offset tp after out, the
// block's target bytes so far; src reads the source (0 outside).
func (e *modelEncoder) encodeLiteral(out []byte, tp int, src func(int64) uint32, b byte) {
	e.lit.setContexts(out, tp, src(int64(tp)+e.ctrl.reps[0]))
	e.lit.code(&e.arithEncoder, b)
}

// encodeOp codes an instruction of n bytes; align is its source offset
// minus its target offset for copies and adds.
func (e *modelEncoder) encodeOp(kind opKind, n int, align int64) {
	e.ctrl.op(&e.arithEncoder, kind, n, align)
}

// encodeAdd codes the difference bytes d of an add at source offset sp and
// target offset tp.
func (e *modelEncoder) encodeAdd(d []byte, src srcBytes, sp, tp int) {
	e.m.codeAdd(&e.arithEncoder, d, src, sp, tp)
}

func (e *modelEncoder) finish() []byte {
	// Enough bytes to pin a value inside [x1, x2].
	return append(e.out, byte(e.x1>>24), byte(e.x1>>16), byte(e.x1>>8), byte(e.x1))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// modelDecoder is the inverse of modelEncoder. Reading past its input yields
// zero bytes; a damaged stream therefore decodes to wrong bytes, which the
// block CRC-32 reports.
type modelDecoder struct {
	m         *diffModel
	lit       *litModel // nil when literals come from the codec
	ctrl      ctrlModel
	x1, x2, x uint32
	in        []byte
	p         int
}

// newModelDecoder returns a decoder of in for a block of n target bytes
// whose source pointer starts at align bytes from its first target byte;
// it reuses prev's model tables when prev is not nil.
func newModelDecoder(in []byte, n int, align int64, literals bool, prev *modelDecoder) *modelDecoder {
	d := &modelDecoder{x2: 0xffffffff, in: in}
	var pm *diffModel
	var pl *litModel
	if prev != nil {
		pm, pl, d.ctrl = prev.m, prev.lit, prev.ctrl
	}
	d.m = newDiffModel(n, pm)
	if literals {
		d.lit = newLitModel(n, pl)
	}
	d.ctrl.reset(align)
	for i := 0; i < 4; i++ {
		d.x = d.x<<8 | uint32(d.next())
	}
	return d
}

func (d *modelDecoder) next() byte {
	if d.p < len(d.in) {
		d.p++
		return d.in[d.p-1]
	}
	d.p++
	return 0
}

func (d *modelDecoder) bit(p int32) int {
	xmid := d.x1 + (d.x2-d.x1)>>12*uint32(p)
	bit := 0
	if d.x <= xmid {
		bit = 1
		d.x2 = xmid
	} else {
		d.x1 = xmid + 1
	}
	for (d.x1^d.x2)&0xff000000 == 0 {
		d.x1 <<= 8
		d.x2 = d.x2<<8 | 255
		d.x = d.x<<8 | uint32(d.next())
	}
	return bit
}

func (d *modelDecoder) codeBit(_ int, p int32) int { return d.bit(p) }

// decodeLiteral returns the literal at absolute target offset tp after
// out, the block's target bytes so far; src reads the source (0 outside).
func (d *modelDecoder) decodeLiteral(out []byte, tp int, src func(int64) (uint32, error)) (byte, error) {
	s0, err := src(int64(tp) + d.ctrl.reps[0])
	if err != nil {
		return 0, err
	}
	d.lit.setContexts(out, tp, s0)
	return d.lit.code(d, 0), nil
}

// decodeOp reads an instruction: its kind, length and, for copies and
// adds, its source offset minus its target offset.
func (d *modelDecoder) decodeOp() (opKind, int, int64, error) {
	return d.ctrl.op(d, 0, 0, 0)
}

// decodeAdd decodes the len(d) difference bytes of an add at source offset
// sp and target offset tp into d.
func (d *modelDecoder) decodeAdd(dst []byte, src srcBytes, sp, tp int) {
	d.m.codeAdd(d, dst, src, sp, tp)
}

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

// A slot packs a 12-bit P(1) over a 4-bit count, stored XOR slotInit so
// that zero, which fresh memory already holds, is P = 1/2 and count 0: a
// model's large tables cost nothing until a context touches them, and two
// bytes a slot keep more of them in the cache.
const slotInit = 2048 << 4

// slotP returns the 12-bit P(1) of slot v.
func slotP(v uint16) int32 { return int32((v ^ slotInit) >> 4) }

// updateSlot moves slot v towards bit and reports whether v was fresh.
func updateSlot(v *uint16, bit int, limit uint16) bool {
	x := *v ^ slotInit
	n := x & 15
	p := int32(x >> 4)
	p += (int32(bit)<<12 - p) * rateTab[n] >> 16
	p = min(max(p, 0), 4095)
	if n < limit {
		x = uint16(p)<<4 | (n + 1)
	} else {
		x = uint16(p)<<4 | n
	}
	*v = x ^ slotInit
	return n == 0
}

// bitCoder is the side of the arithmetic coder a model drives: it codes
// (or decodes, ignoring the argument) one bit at probability p.
type bitCoder interface {
	codeBit(bit int, p int32) int
}

// bit codes one decision in context ctx.
func (c *ctrlModel) bit(bc bitCoder, ctx uint32, bit int) int {
	v, p := c.slot(ctx)
	bit = bc.codeBit(bit, p)
	updateSlot(v, bit, 15)
	return bit
}

// num codes v: its bit length in unary, then the bits below the leading
// one, the first three in the context of those above them.
func (c *ctrlModel) num(bc bitCoder, ctx uint32, v uint64) (uint64, error) {
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
func (c *ctrlModel) op(bc bitCoder, kind opKind, n int, align int64) (opKind, int, int64, error) {
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
	var out []op
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

// litModel predicts INSERT bytes. Inserted code resembles the code around
// it: the model sees the target bytes before it (orders 1 to 3), the
// source byte the most recent alignment puts under it, and the byte that
// followed the last occurrence of its 5-byte context in the block. (Orders
// 4 and 6 and a second alignment's byte were tried: with tables small
// enough to stay in the cache they cost time and saved nothing.)
type litModel struct {
	tab    slotTables
	w      [][litInputs + 1]int32
	ctx    [litInputs]uint32
	base   [litInputs]uint32
	idx    [litInputs]uint32
	st     [litInputs + 1]int32
	sel    int
	pr     int32
	shift  uint32
	last   []int32  // hash of the 5 bytes before a block offset -> that offset
	mpos   int      // block offset of the byte the match model predicts
	mlen   int      // bytes the match has held, 0 if none
	expect int      // predicted byte, or -1
	apm    []uint16 // (previous byte>>5, node) -> 33 interpolated 12-bit probabilities
	apmIdx int
	apmW   int32
	c1     uint32
	pmix   int32
}

const (
	litInputs  = 5
	litSets    = 16 * 256
	lastBits   = 16
	litMaxBits = 18
)

func newLitModel(n int, prev *litModel) *litModel {
	bits := min(tableBits(n)+2, litMaxBits)
	m := prev
	if m == nil || cap(m.tab.t[1]) < 1<<bits {
		m = &litModel{w: make([][litInputs + 1]int32, litSets), last: make([]int32, 1<<lastBits), apm: make([]uint16, 8*256*33)}
		m.tab.alloc(litInputs, 256, 1<<bits)
	} else {
		m.tab.reset(1 << bits)
		clear(m.last)
	}
	*m = litModel{tab: m.tab, w: m.w, last: m.last, apm: m.apm, shift: uint32(32 - bits)}
	for i := 0; i < 33; i++ {
		m.apm[i] = uint16(squash(int32(i-16)*128) * 16)
	}
	for i := 33; i < len(m.apm); i += i {
		copy(m.apm[i:], m.apm[:i])
	}
	for i := range m.w {
		for j := range m.w[i] {
			m.w[i][j] = (1 << 16) / litInputs
		}
	}
	return m
}

// see records the block's newest target byte, out[len(out)-1], for the
// match model; it is called for every target byte, not only literals.
func (m *litModel) see(out []byte) {
	k := len(out)
	if m.mlen > 0 {
		if m.expect == int(out[k-1]) {
			m.mlen++
			m.mpos++
		} else {
			m.mlen = 0
		}
	}
	if k >= 5 {
		h := hash5(out[k-5:]) >> (32 - lastBits)
		if m.mlen == 0 {
			if p := m.last[h]; p > 0 {
				m.mpos, m.mlen = int(p), 1
			}
		}
		m.last[h] = int32(k)
	}
}

func hash5(b []byte) uint32 {
	return (uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24)*0x9E3779B1 ^ uint32(b[4])*0x85EBCA77
}

// setContexts computes the contexts of the literal after out (the block's
// target bytes so far) at absolute target offset tp; s0 is the source byte
// the most recent alignment puts under it (0 outside the source).
func (m *litModel) setContexts(out []byte, tp int, s0 uint32) {
	var c [3]uint32
	for i := range c {
		if k := len(out) - 1 - i; k >= 0 {
			c[i] = uint32(out[k])
		}
	}
	lane := uint32(tp & 3)
	m.c1 = c[0]
	m.expect = -1
	if m.mlen > 0 && m.mpos < len(out) {
		m.expect = int(out[m.mpos])
	}
	m.ctx = [litInputs]uint32{
		0,
		hashCtx(11, c[0]),
		hashCtx(12, c[0]|c[1]<<8),
		hashCtx(13, c[0]|c[1]<<8|c[2]<<16),
		hashCtx(16, s0<<8|lane),
	}
	ml := 0
	if m.expect >= 0 {
		ml = 1 + min(m.mlen, 14)/5
	}
	m.sel = (ml | int(lane)<<2) << 8
}

// nibble sets the slot groups of the nibble starting at node (1, or
// 16..31 for the low nibble): each context's 15 decisions of a nibble sit in
// one group of 16 slots, one cache line, so a literal costs each table two
// cache misses instead of eight.
func (m *litModel) nibble(node int) {
	for i := 1; i < litInputs; i++ {
		m.base[i] = hashCtx(m.ctx[i], uint32(node)) >> m.shift &^ 15
	}
}

func (m *litModel) predict(node int) int32 {
	var dot int64
	w := &m.w[m.sel|node]
	m.idx[0] = uint32(node)
	sub := uint32(node)
	if node >= 16 {
		k := uint(bits.Len(uint(node)) - 5)
		sub = uint32(node)&(1<<k-1) | 1<<k
	}
	for i := 1; i < litInputs; i++ {
		m.idx[i] = m.base[i] | sub
	}
	for i := 0; i < litInputs; i++ {
		m.st[i] = int32(stretchTab[slotP(m.tab.t[i][m.idx[i]])])
		dot += int64(m.st[i]) * int64(w[i])
	}
	// The match input: the predicted bit, the surer the longer the match,
	// while the bits so far agree with the predicted byte.
	m.st[litInputs] = 0
	if m.expect >= 0 {
		k := bits.Len(uint(node)) - 1 // bits of the byte known so far
		if (m.expect|256)>>(8-k) == node {
			s := int32(min(m.mlen, 32)) * 64
			if m.expect>>(7-k)&1 == 0 {
				s = -s
			}
			m.st[litInputs] = s
		}
	}
	dot += int64(m.st[litInputs]) * int64(w[litInputs])
	m.pr = squash(int32(dot >> 16))
	// Refine by the previous byte and node: interpolate between the two
	// nearest of 33 buckets of the stretched prediction.
	st := int32(stretchTab[m.pr]) + 2048
	m.apmW = st & 127
	m.apmIdx = (int(m.c1>>5)<<8|node)*33 + int(st>>7)
	pa := (int32(m.apm[m.apmIdx])*(128-m.apmW) + int32(m.apm[m.apmIdx+1])*m.apmW) >> 11
	return min(max((m.pr+3*pa)/4, 1), 4095)
}

func (m *litModel) update(bit int, node int) {
	g := int32(bit) << 16
	a := &m.apm[m.apmIdx]
	*a = uint16(int32(*a) + (g-int32(*a))>>6)
	a = &m.apm[m.apmIdx+1]
	*a = uint16(int32(*a) + (g-int32(*a))>>6)
	w := &m.w[m.sel|node]
	err := int32(bit<<12) - m.pr
	for i := 0; i <= litInputs; i++ {
		w[i] += (m.st[i]*err + 512) >> 10
	}
	for i := 0; i < litInputs; i++ {
		if updateSlot(&m.tab.t[i][m.idx[i]], bit, slotLimit) {
			m.tab.touch(i, m.idx[i])
		}
	}
}

// code codes (or decodes) one literal byte after setContexts.
func (m *litModel) code(bc bitCoder, b byte) byte {
	node := 1
	for k := 7; k >= 0; k-- {
		if k == 7 || k == 3 {
			m.nibble(node)
		}
		bit := bc.codeBit(int(b>>k)&1, m.predict(node))
		m.update(bit, node)
		node = node<<1 | bit
	}
	return byte(node)
}

// modelRAM returns the bytes of model state a layout-2 applier holds for
// blocks of n target bytes, with or without the literal model; it mirrors
// the allocations above and goes into the header's applier_ram.
func modelRAM(n int, literals bool) int {
	bits := tableBits(n)
	ram := 512*2 + (nInputs-1)<<bits*2 + 4*(1<<bits)/2 + // diff slots and touched list
		mixerSets*nInputs*4 + 1<<ctrlTableBits*2
	if literals {
		lb := min(bits+2, litMaxBits)
		ram += 256*2 + (litInputs-1)<<lb*2 + 4*(1<<lb)/2 +
			litSets*(litInputs+1)*4 + 1<<lastBits*4 + 8*256*33*2
	}
	return ram
}
