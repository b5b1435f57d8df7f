package delta

// This file codes the add-difference bytes of layout 2 with a small
// context-mixing model and a binary arithmetic coder. Differences in
// firmware come from relocated pointers and shifted offsets: whether a
// byte changes, and by how much, depends on the source byte under it and
// on the differences just before, which a general-purpose LZ codec cannot
// see. All arithmetic is integer so encoder and decoder agree on every
// platform.

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

const (
	nInputs  = 4
	ctxTable = 1 << 16 // probabilities per context model (context<<8 | node)
)

// diffModel predicts difference bytes bit by bit.
type diffModel struct {
	probs [nInputs][]uint16 // 12-bit P(1), per context model
	w     [][nInputs]int32  // mixer weights (16.16), selected by node
	hist  [4]byte           // last differences, newest first
	idx   [nInputs]int
	st    [nInputs]int32
	pr    int32
}

func newDiffModel() *diffModel {
	m := &diffModel{w: make([][nInputs]int32, 256*2)}
	for i := range m.probs {
		m.probs[i] = make([]uint16, ctxTable*4)
		for j := range m.probs[i] {
			m.probs[i][j] = 2048
		}
	}
	for i := range m.w {
		for j := range m.w[i] {
			m.w[i][j] = 1 << 14
		}
	}
	return m
}

// contexts sets the per-byte contexts from the source byte under it.
func (m *diffModel) contexts(src byte) [nInputs]int {
	d1, d2, d4 := int(m.hist[0]), int(m.hist[1]), int(m.hist[3])
	return [nInputs]int{
		0,
		d1 + 1,
		(int(src)<<1 | b2i(d1 != 0)) + 257,
		((d4<<8 | d2) & 0x3fff) + 1024,
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// predict returns P(next bit = 1) in 12 bits for context set c at node.
func (m *diffModel) predict(c *[nInputs]int, node int) int32 {
	var dot int64
	sel := node
	if m.hist[0] != 0 {
		sel += 256
	}
	w := &m.w[sel]
	for i := 0; i < nInputs; i++ {
		m.idx[i] = (c[i]<<8 | node) & (len(m.probs[i]) - 1)
		m.st[i] = int32(stretchTab[m.probs[i][m.idx[i]]])
		dot += int64(m.st[i]) * int64(w[i])
	}
	m.pr = squash(int32(dot >> 16))
	return m.pr
}

func (m *diffModel) update(bit int, node int) {
	sel := node
	if m.hist[0] != 0 {
		sel += 256
	}
	w := &m.w[sel]
	err := (int32(bit<<12) - m.pr) * 6
	for i := 0; i < nInputs; i++ {
		w[i] += (m.st[i]*err + 512) >> 10
		p := &m.probs[i][m.idx[i]]
		if bit == 1 {
			*p += (4096 - *p) >> 4
		} else {
			*p -= *p >> 4
		}
	}
}

func (m *diffModel) push(d byte) {
	copy(m.hist[1:], m.hist[:3])
	m.hist[0] = d
}

// diffEncoder codes difference bytes into a byte slice.
type diffEncoder struct {
	m      *diffModel
	x1, x2 uint32
	out    []byte
}

func newDiffEncoder() *diffEncoder {
	return &diffEncoder{m: newDiffModel(), x2: 0xffffffff}
}

func (e *diffEncoder) encode(d, src byte) {
	c := e.m.contexts(src)
	node := 1
	for k := 7; k >= 0; k-- {
		bit := int(d>>k) & 1
		p := uint32(e.m.predict(&c, node))
		xmid := e.x1 + (e.x2-e.x1)>>12*p
		if bit == 1 {
			e.x2 = xmid
		} else {
			e.x1 = xmid + 1
		}
		e.m.update(bit, node)
		for (e.x1^e.x2)&0xff000000 == 0 {
			e.out = append(e.out, byte(e.x2>>24))
			e.x1 <<= 8
			e.x2 = e.x2<<8 | 255
		}
		node = node<<1 | bit
	}
	e.m.push(d)
}

func (e *diffEncoder) finish() []byte {
	// Enough bytes to pin a value inside [x1, x2].
	return append(e.out, byte(e.x1>>24), byte(e.x1>>16), byte(e.x1>>8), byte(e.x1))
}

// diffDecoder is the inverse of diffEncoder. Reading past its input yields
// zero bytes; a damaged stream therefore decodes to wrong bytes, which the
// block CRC-32 reports.
type diffDecoder struct {
	m         *diffModel
	x1, x2, x uint32
	in        []byte
	p         int
}

func newDiffDecoder(in []byte) *diffDecoder {
	d := &diffDecoder{m: newDiffModel(), x2: 0xffffffff, in: in}
	for i := 0; i < 4; i++ {
		d.x = d.x<<8 | uint32(d.next())
	}
	return d
}

func (d *diffDecoder) next() byte {
	if d.p < len(d.in) {
		d.p++
		return d.in[d.p-1]
	}
	d.p++
	return 0
}

func (d *diffDecoder) decode(src byte) byte {
	c := d.m.contexts(src)
	node := 1
	for k := 0; k < 8; k++ {
		p := uint32(d.m.predict(&c, node))
		xmid := d.x1 + (d.x2-d.x1)>>12*p
		bit := 0
		if d.x <= xmid {
			bit = 1
			d.x2 = xmid
		} else {
			d.x1 = xmid + 1
		}
		d.m.update(bit, node)
		for (d.x1^d.x2)&0xff000000 == 0 {
			d.x1 <<= 8
			d.x2 = d.x2<<8 | 255
			d.x = d.x<<8 | uint32(d.next())
		}
		node = node<<1 | bit
	}
	b := byte(node)
	d.m.push(b)
	return b
}
