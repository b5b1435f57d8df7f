package delta

import "math/bits"

// Layout 2 codes each block's instructions, ADD differences and (with codec
// none) INSERT literals with context models and one binary arithmetic
// coder: this file holds what they share (probability slots, mixing, the
// coder and the block-level encoder and decoder); model_ctrl.go,
// model_diff.go and model_lit.go hold the three models. All arithmetic is
// integer so encoder and decoder agree on every platform. The format is
// summarised in docs/delta-format.md; these files are its definition.

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

// slotTables are a model's context tables of probability slots (see
// adaptSlot). Their slots start at zero, which is P = 1/2, so fresh tables
// cost nothing until a context touches them; the next block clears only
// the tables' extent for the last block, which is proportional to it.
type slotTables struct {
	t [][]uint16
}

// alloc makes the tables fresh: table 0 of n0 slots, the others of n.
func (s *slotTables) alloc(tables, n0, n int) {
	s.t = make([][]uint16, tables)
	s.t[0] = make([]uint16, n0)
	for i := 1; i < tables; i++ {
		s.t[i] = make([]uint16, n)
	}
}

// reset clears the slots and sizes the tables after table 0 to n slots (at
// most their allocated size).
func (s *slotTables) reset(n int) {
	for i, t := range s.t {
		clear(t)
		if i > 0 {
			s.t[i] = t[:n]
		}
	}
}

// lowNibbleSlot returns the slot within its group of bit-tree node 16..255
// (the low nibble): the node's bits below its top five, with a leading one,
// so 1, 2–3, 4–7 and 8–15 as the nibble's bits arrive.
func lowNibbleSlot(node int) uint32 {
	k := uint(bits.Len(uint(node)) - 5)
	return uint32(node)&(1<<k-1) | 1<<k
}

func hashCtx(a, b uint32) uint32 { return (a*0x9E3779B1 ^ b) * 0x85EBCA77 }

// binCoder is a carry-less binary arithmetic coder over 12-bit
// probabilities that either encodes or decodes. One concrete type for both
// directions, rather than an interface the models call, because the models
// call it for every bit: a predictable branch costs less than an indirect
// call.
type binCoder struct {
	x1, x2 uint32
	dec    bool   // decoding
	out    []byte // encoding: the stream so far
	x      uint32 // decoding: the code value
	in     []byte // decoding: the stream
	p      int    // decoding: bytes of in read; past its end they read as zero
}

// codeBit codes bit at probability p (of a one); decoding, it ignores bit
// and returns the decoded one. A damaged stream decodes to wrong bytes,
// which the block CRC-32 reports.
func (c *binCoder) codeBit(bit int, p int32) int {
	xmid := c.x1 + (c.x2-c.x1)>>12*uint32(p)
	if c.dec {
		bit = b2i(c.x <= xmid)
	}
	if bit == 1 {
		c.x2 = xmid
	} else {
		c.x1 = xmid + 1
	}
	for (c.x1^c.x2)&0xff000000 == 0 {
		if c.dec {
			c.x = c.x<<8 | uint32(c.next())
		} else {
			c.out = append(c.out, byte(c.x2>>24))
		}
		c.x1 <<= 8
		c.x2 = c.x2<<8 | 255
	}
	return bit
}

// ended reports whether a decoder stands exactly where its encoder
// finished: every byte read, none past the end, and the code value equal to
// the 4 bytes of x1 the encoder ended with. The last bytes of an arithmetic
// code are otherwise slack (many values decode alike), so without this a
// damaged or extended tail would go unnoticed.
func (c *binCoder) ended() bool { return c.p == len(c.in) && c.x == c.x1 }

// overrun reports whether a decoder has read well past the end of its
// stream: the stream is damaged or hostile. Past the end it reads zeros,
// which a model soon predicts almost for free, so a long instruction would
// otherwise decode garbage up to the block size before anyone looked.
func (c *binCoder) overrun() bool { return c.p > len(c.in)+8 }

func (c *binCoder) next() byte {
	c.p++
	if c.p <= len(c.in) {
		return c.in[c.p-1]
	}
	return 0
}

// modelEncoder codes a layout-2 block's instructions, difference bytes
// and, with codec none, literal bytes into its model stream.
type modelEncoder struct {
	blockModels
	binCoder
}

// blockModels are the models of a layout-2 block.
type blockModels struct {
	m    *diffModel
	lit  *litModel // nil when literals go through the codec
	ctrl ctrlModel
}

// reset readies the models for a block of n target bytes whose source
// pointer starts at align bytes from its first target byte, reusing prev's
// tables when prev is not nil.
func (b *blockModels) reset(n int, align int64, literals bool, prev *blockModels) {
	var pm *diffModel
	var pl *litModel
	if prev != nil {
		pm, pl, b.ctrl = prev.m, prev.lit, prev.ctrl
	}
	b.m = newDiffModel(n, pm)
	if literals {
		b.lit = newLitModel(n, pl)
	}
	b.ctrl.reset(align)
}

// newModelEncoder returns an encoder for a block of n target bytes whose
// source pointer starts at align bytes from its first target byte; it
// reuses prev's model tables when prev is not nil.
func newModelEncoder(n int, align int64, literals bool, prev *modelEncoder) *modelEncoder {
	e := &modelEncoder{binCoder: binCoder{x2: 0xffffffff}}
	var pb *blockModels
	if prev != nil {
		pb = &prev.blockModels
	}
	e.reset(n, align, literals, pb)
	return e
}

// encodeLiteral codes literal b at absolute target offset tp after out, the
// block's target bytes so far.
func (e *modelEncoder) encodeLiteral(out []byte, tp int, b byte) {
	e.lit.setContexts(out, tp)
	e.lit.code(&e.binCoder, b)
}

// encodeOp codes an instruction of n bytes; align is its source offset
// minus its target offset for copies and adds.
func (e *modelEncoder) encodeOp(kind opKind, n int, align int64) {
	e.ctrl.op(&e.binCoder, kind, n, align)
}

// encodeAdd codes the difference bytes d of an add at source offset sp and
// target offset tp.
func (e *modelEncoder) encodeAdd(d []byte, src srcBytes, sp, tp int) {
	e.m.codeAdd(&e.binCoder, d, src, sp, tp)
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

// modelDecoder is the inverse of modelEncoder.
type modelDecoder struct {
	blockModels
	binCoder
}

// newModelDecoder returns a decoder of in for a block of n target bytes
// whose source pointer starts at align bytes from its first target byte;
// it reuses prev's model tables when prev is not nil.
func newModelDecoder(in []byte, n int, align int64, literals bool, prev *modelDecoder) *modelDecoder {
	d := &modelDecoder{binCoder: binCoder{x2: 0xffffffff, dec: true, in: in}}
	var pb *blockModels
	if prev != nil {
		pb = &prev.blockModels
	}
	d.reset(n, align, literals, pb)
	for i := 0; i < 4; i++ {
		d.x = d.x<<8 | uint32(d.next())
	}
	return d
}

// decodeLiteral returns the literal at absolute target offset tp after
// out, the block's target bytes so far.
func (d *modelDecoder) decodeLiteral(out []byte, tp int) byte {
	d.lit.setContexts(out, tp)
	return d.lit.code(&d.binCoder, 0)
}

// decodeOp reads an instruction: its kind, length and, for copies and
// adds, its source offset minus its target offset.
func (d *modelDecoder) decodeOp() (opKind, int, int64, error) {
	return d.ctrl.op(&d.binCoder, 0, 0, 0)
}

// decodeAdd decodes the len(d) difference bytes of an add at source offset
// sp and target offset tp into d.
func (d *modelDecoder) decodeAdd(dst []byte, src srcBytes, sp, tp int) {
	d.m.codeAdd(&d.binCoder, dst, src, sp, tp)
}

// A slot is a 16-bit P(1) stored XOR slotInit, so that zero, which fresh
// memory already holds, is P = 1/2. The control model's slots and the
// difference model's skip slots instead pack a 12-bit P(1) over a 4-bit
// count (see updateSlot); both forms read through slotP.
const slotInit = 2048 << 4

// slotP returns the 12-bit P(1) of slot v.
func slotP(v uint16) int32 { return int32((v ^ slotInit) >> 4) }

// slotRate is how far, of 65536, a difference or literal slot moves
// towards each bit: 1/4.5, a fixed rate, because firmware's contexts drift
// (a relocation delta holds for one region, then another). On the corpus a
// count-driven rate that starts faster and settles at this one coded no
// smaller and cost a fifth of the models' time.
const slotRate = 65536 * 2 / 9

// adaptSlot moves slot v of a difference or literal table towards bit.
func adaptSlot(v *uint16, bit int) {
	p := int32(*v ^ slotInit)
	// Never reaches 65536 or goes below 0: a step moves less than all the
	// way, and the shift rounds towards the start.
	p += (int32(bit)<<16 - p) * slotRate >> 16
	*v = uint16(p) ^ slotInit
}

// updateSlot moves counted slot v towards bit: a slot seen n times moves
// 1/(n+1.5) of the way, n saturating at 15. (Counts that stopped lower
// coded larger on the corpus.)
func updateSlot(v *uint16, bit int) {
	x := *v ^ slotInit
	n := x & 15
	p := int32(x >> 4)
	// No clamp: a step moves at most 2/3 of the way to 0 or 4096, so
	// rounding down keeps p in 0..4095.
	p += (int32(bit)<<12 - p) * rateTab[n] >> 16
	*v = (uint16(p)<<4 | (n + uint16(b2i(n < 15)))) ^ slotInit
}

// modelRAM returns the bytes of model state a layout-2 applier holds for
// blocks of n target bytes, with or without the literal model; it mirrors
// the allocations above and goes into the header's applier_ram.
func modelRAM(n int, literals bool) int {
	bits := tableBits(n)
	ram := 512*2 + (nInputs-1)<<bits*2 + // diff slots
		mixerSets*nInputs*4 + 1<<ctrlTableBits*2
	if literals {
		lb := min(bits+2, litMaxBits)
		ram += 256*2 + (litInputs-1)<<lb*2 +
			litSets*(litInputs+1)*4 + 1<<lastBits*4 + 8*256*33*2
	}
	return ram
}
