package delta

// litModel predicts INSERT bytes. Inserted code resembles the code around
// it: the model sees the target bytes before it (orders 1 and 2) and the
// byte that followed the last occurrence of its 5-byte context in the
// block. (Order 3 and the source byte under the current alignment saved
// 0.2% on the corpus for 7% more diff time; orders 4 and 6 and a second
// alignment's byte saved nothing.)
type litModel struct {
	tab    slotTables
	w      [][litInputs + 1]int32
	ctx    [litInputs]uint32
	base   [litInputs]uint32
	sel    int
	shift  uint32
	last   []int32  // hash of the 5 bytes before a block offset -> that offset
	mpos   int      // block offset of the byte the match model predicts
	mlen   int      // bytes the match has held, 0 if none
	seen   int      // block bytes the match model has seen
	expect int      // predicted byte, or -1
	apm    []uint16 // (previous byte>>5, node) -> 33 interpolated 12-bit probabilities
	c1     uint32   // the previous byte
}

const (
	litInputs  = 3
	litSets    = 16 * 256
	lastBits   = 12 // match table entries: 16 KiB stays in L1; 2^16 saved 0.04%
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

// see records the block's target bytes out[from:] for the match model, in
// order, following or dropping the match it holds.
func (m *litModel) see(out []byte, from int) {
	for k := from + 1; k <= len(out); k++ {
		if m.mlen > 0 {
			if m.mpos < k-1 && out[m.mpos] == out[k-1] {
				m.mlen++
				m.mpos++
			} else {
				m.mlen = 0
			}
		}
		if k >= 5 {
			h := hash5(out[k-5:k]) >> (32 - lastBits)
			if m.mlen == 0 {
				if p := m.last[h]; p > 0 {
					m.mpos, m.mlen = int(p), 1
				}
			}
			m.last[h] = int32(k)
		}
	}
}

// catchUp shows the match model the block's target bytes since it last
// looked, out[m.seen:], or only the last seeWindow of them. Literals come in
// bursts, so the bytes just before one are the ones whose repeats matter;
// indexing every byte of a long copy or add cost 3% of the diff time and,
// on the corpus, saved nothing.
func (m *litModel) catchUp(out []byte) {
	from := m.seen
	if len(out)-from > seeWindow {
		from = len(out) - seeWindow
		m.mlen = 0
	}
	m.see(out, from)
	m.seen = len(out)
}

// seeWindow is how many bytes before a literal the match model indexes.
const seeWindow = 1 << 10

func hash5(b []byte) uint32 {
	return (uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24)*0x9E3779B1 ^ uint32(b[4])*0x85EBCA77
}

// setContexts computes the contexts of the literal after out (the block's
// target bytes so far) at absolute target offset tp.
func (m *litModel) setContexts(out []byte, tp int) {
	m.catchUp(out)
	var c [2]uint32
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

// code codes (or decodes) one literal byte after setContexts: eight
// decisions along the bit tree, each mixing the inputs' slots and the match
// input, refined by SSE. Prediction and update share one loop body, so the
// slots' addresses and stretches stay in locals between them.
func (m *litModel) code(bc *binCoder, b byte) byte {
	t := m.tab.t[:litInputs]
	var slot [litInputs]*uint16
	var st [litInputs + 1]int32
	node := 1
	for k := 7; k >= 0; k-- {
		if k == 7 || k == 3 {
			m.nibble(node)
		}
		sub := uint32(node)
		if node >= 16 {
			sub = lowNibbleSlot(node)
		}
		w := &m.w[m.sel|node]
		slot[0] = &t[0][node]
		st[0] = int32(stretchTab[slotP(*slot[0])])
		dot := int64(st[0]) * int64(w[0])
		for i := 1; i < litInputs; i++ {
			v := &t[i][m.base[i]|sub]
			slot[i] = v
			st[i] = int32(stretchTab[slotP(*v)])
			dot += int64(st[i]) * int64(w[i])
		}
		// The match input: the predicted bit, the surer the longer the
		// match, while the bits so far agree with the predicted byte.
		st[litInputs] = 0
		if m.expect >= 0 && (m.expect|256)>>(k+1) == node {
			s := int32(min(m.mlen, 32)) * 64
			if m.expect>>k&1 == 0 {
				s = -s
			}
			st[litInputs] = s
		}
		dot += int64(st[litInputs]) * int64(w[litInputs])
		pr := squash(int32(dot >> 16))
		// Refine by the previous byte and node: interpolate between the
		// two nearest of 33 buckets of the stretched prediction.
		sp := int32(stretchTab[pr]) + 2048
		aw := sp & 127
		a := m.apm[(int(m.c1>>5)<<8|node)*33+int(sp>>7):]
		a = a[:2]
		pa := (int32(a[0])*(128-aw) + int32(a[1])*aw) >> 11
		// pr and pa are both in 0..4095, so no clamp above and no sign fix.
		bit := bc.codeBit(int(b>>k)&1, max((pr+3*pa)>>2, 1))

		g := int32(bit) << 16
		a[0] = uint16(int32(a[0]) + (g-int32(a[0]))>>6)
		a[1] = uint16(int32(a[1]) + (g-int32(a[1]))>>6)
		err := int32(bit<<12) - pr
		for i, v := range slot {
			w[i] += (st[i]*err + 512) >> 10
			adaptSlot(v, bit)
		}
		w[litInputs] += (st[litInputs]*err + 512) >> 10
		node = node<<1 | bit
	}
	return byte(node)
}
