package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Heatshrink stream parameters. The window is 2^W bytes of history and the
// decoder needs exactly that much RAM plus a few words of state, which is what
// makes the codec usable on microcontrollers. docs/heatshrink.md describes the
// bit format.
const (
	HeatshrinkMinWindow    = 8
	HeatshrinkMaxWindow    = 15
	HeatshrinkMinLookahead = 3
	HeatshrinkMaxLookahead = 8

	// HeatshrinkAutoLookahead asks the writer to pick the lookahead width
	// (4..8 bits) that codes the stream's first block (up to 256 KiB) best.
	HeatshrinkAutoLookahead = 0

	// Defaults used by the registered codec: a 2 KiB decoder window and an
	// automatic lookahead.
	HeatshrinkDefaultWindow    = 11
	HeatshrinkDefaultLookahead = HeatshrinkAutoLookahead
)

// ErrCorrupt is returned (wrapped with the reason) when a compressed stream
// does not decode.
var ErrCorrupt = errors.New("codec: corrupt stream")

func init() {
	Register(heatshrinkCodec{})
}

type heatshrinkCodec struct{}

func (heatshrinkCodec) ID() ID       { return Heatshrink }
func (heatshrinkCodec) Name() string { return "heatshrink" }
func (heatshrinkCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return NewHeatshrinkWriter(w, HeatshrinkDefaultWindow, HeatshrinkDefaultLookahead)
}
func (heatshrinkCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return NewHeatshrinkReader(r)
}

// hsParams are the values derived from the window and lookahead bits.
type hsParams struct {
	window, lookahead uint // W and L
	minMatch          int  // shortest back-reference length
	maxMatch          int  // longest back-reference length
	maxDist           int  // largest distance (distance 0 marks the end)
	refBits           int  // bits of one back-reference item
}

func newHSParams(window, lookahead int) (hsParams, error) {
	if window < HeatshrinkMinWindow || window > HeatshrinkMaxWindow ||
		lookahead < HeatshrinkMinLookahead || lookahead > HeatshrinkMaxLookahead ||
		lookahead >= window {
		return hsParams{}, fmt.Errorf("%w: heatshrink window %d / lookahead %d bits out of range", ErrCorrupt, window, lookahead)
	}
	p := hsParams{window: uint(window), lookahead: uint(lookahead)}
	p.refBits = 1 + window + lookahead
	// A reference must be cheaper than the literals it replaces (9 bits each).
	p.minMatch = p.refBits/9 + 1
	p.maxMatch = p.minMatch + 1<<lookahead - 1
	p.maxDist = 1<<window - 1
	return p, nil
}

// header is the stream's first byte: W in the high nibble, L in the low one.
func (p hsParams) header() byte { return byte(p.window<<4 | p.lookahead) }

// NewHeatshrinkWriter returns a writer that compresses into w with a window of
// 2^window bytes and a count field of lookahead bits, or
// HeatshrinkAutoLookahead to let the writer choose. The encoder buffers up to
// 256 KiB and chooses matches by a minimum-cost parse, so it is meant for
// servers; the decoder is the cheap side.
func NewHeatshrinkWriter(w io.Writer, window, lookahead int) (io.WriteCloser, error) {
	auto := lookahead == HeatshrinkAutoLookahead
	if auto {
		lookahead = HeatshrinkMinLookahead + 1
	}
	p, err := newHSParams(window, lookahead)
	if err != nil {
		return nil, fmt.Errorf("codec: heatshrink window %d / lookahead %d bits out of range", window, lookahead)
	}
	return &hsWriter{p: p, w: w, auto: auto}, nil
}

const (
	hsBlock    = 1 << 18 // bytes parsed at once
	hsMaxChain = 256     // hash-chain candidates tried per position
	hsHashBits = 16
)

type hsWriter struct {
	p       hsParams
	w       io.Writer
	data    []byte // history (≤ maxDist bytes) followed by unparsed input
	hist    int    // len of the history prefix of data
	auto    bool   // choose the lookahead on the first block
	wroteHd bool
	closed  bool
	err     error

	bits  uint64 // pending output bits, right-aligned
	nbits uint
	out   []byte

	// scratch reused across blocks
	head  []int32
	prev  []int32
	mlen  []int32
	mdist []int32
	cost  []uint32
	pick  []int32
	rmq   []uint64
}

func (z *hsWriter) Write(b []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.closed {
		return 0, errors.New("codec: heatshrink write after close")
	}
	z.data = append(z.data, b...)
	for len(z.data)-z.hist >= hsBlock+z.p.maxMatch {
		z.block(z.hist+hsBlock, false)
		if z.err != nil {
			return 0, z.err
		}
	}
	return len(b), nil
}

// Close parses what is buffered, writes the end marker and flushes. It does
// not close the underlying writer.
func (z *hsWriter) Close() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	if z.err != nil {
		return z.err
	}
	z.block(len(z.data), true)
	return z.err
}

func (z *hsWriter) putBits(v uint32, n uint) {
	z.bits = z.bits<<n | uint64(v)
	z.nbits += n
	for z.nbits >= 8 {
		z.nbits -= 8
		z.out = append(z.out, byte(z.bits>>z.nbits))
	}
	z.bits &= 1<<z.nbits - 1
}

// block encodes data[hist:end]; with last it also ends the stream.
func (z *hsWriter) block(end int, last bool) {
	data := z.data[:end]
	start := z.hist
	if !z.wroteHd {
		if z.auto {
			z.chooseLookahead(data, start)
		}
		z.out = append(z.out, z.p.header())
		z.wroteHd = true
	}
	p := z.p
	n := end - start
	z.parse(data, start)
	mlen, mdist := z.pick[:n], z.mdist[:n]
	for i := 0; i < n; {
		if l := int(mlen[i]); l > 0 {
			z.putBits(0, 1)
			z.putBits(uint32(mdist[i]), p.window)
			z.putBits(uint32(l-p.minMatch), p.lookahead)
			i += l
		} else {
			z.putBits(1<<8|uint32(data[start+i]), 9)
			i++
		}
	}
	if last {
		z.putBits(0, 1)
		z.putBits(0, p.window)
		z.putBits(0, p.lookahead)
		if z.nbits > 0 {
			z.putBits(0, 8-z.nbits)
		}
	}
	if _, err := z.w.Write(z.out); err != nil {
		z.err = err
		return
	}
	z.out = z.out[:0]

	// Keep the last maxDist bytes as history for the next block.
	keep := min(end, p.maxDist)
	m := copy(z.data, z.data[end-keep:])
	z.data = z.data[:m]
	z.hist = keep
}

// chooseLookahead sets the lookahead width that codes the stream's first
// block in the fewest bits. Runs of zeros in delta patches favour long
// matches, code favours short count fields. One match search (for the
// shortest and longest lengths of all candidates) serves every trial.
func (z *hsWriter) chooseLookahead(data []byte, start int) {
	var cands []hsParams
	for l := HeatshrinkMinLookahead + 1; l <= HeatshrinkMaxLookahead && l < int(z.p.window); l++ {
		if p, err := newHSParams(int(z.p.window), l); err == nil {
			cands = append(cands, p)
		}
	}
	lo, hi := cands[0].minMatch, cands[0].maxMatch
	for _, p := range cands {
		lo, hi = min(lo, p.minMatch), max(hi, p.maxMatch)
	}
	z.findMatches(data, start, lo, hi)
	best, bestBits := z.p, uint32(1<<32-1)
	for _, p := range cands {
		if bits := z.choose(p, len(data)-start); bits < bestBits {
			best, bestBits = p, bits
		}
	}
	z.p = best
}

// parse chooses literals and references for data[start:] with z.p and
// returns their cost in bits; see choose.
func (z *hsWriter) parse(data []byte, start int) uint32 {
	z.findMatches(data, start, z.p.minMatch, z.p.maxMatch)
	return z.choose(z.p, len(data)-start)
}

// choose runs a backward minimum-cost parse over the n positions whose
// longest matches are in mlen/mdist, for parameters p. Every reference costs
// refBits whatever its length, so any length from minMatch to the longest
// match (capped at maxMatch) is usable, and the best one ends where the
// remaining cost is least: a range minimum, answered in O(1) from a sparse
// table that is built backwards along with the costs. Afterwards pick[i] is
// the length of the reference starting at position i, 0 for a literal.
func (z *hsWriter) choose(p hsParams, n int) uint32 {
	mlen := z.mlen[:n]
	levels := bits.Len(uint(p.maxMatch - p.minMatch + 1))
	if cap(z.cost) < n+1 {
		z.cost = make([]uint32, n+1)
		z.pick = make([]int32, n+1)
	}
	if cap(z.rmq) < levels*(n+1) {
		z.rmq = make([]uint64, levels*(n+1))
	}
	cost, pick := z.cost[:n+1], z.pick[:n]
	// st[k][i] is the least (cost[j]<<32 | j) for j in [i, i+2^k).
	st := make([][]uint64, levels)
	for k := range st {
		st[k] = z.rmq[k*(n+1) : (k+1)*(n+1)]
	}
	set := func(i int) {
		st[0][i] = uint64(cost[i])<<32 | uint64(i)
		for k := 1; k < levels && i+1<<k <= n+1; k++ {
			st[k][i] = min(st[k-1][i], st[k-1][i+1<<(k-1)])
		}
	}
	cost[n] = 0
	set(n)
	ref := uint32(p.refBits)
	for i := n - 1; i >= 0; i-- {
		best := 9 + cost[i+1]
		bestLen := int32(0)
		if l := min(int(mlen[i]), p.maxMatch); l >= p.minMatch {
			x, y := i+p.minMatch, i+l
			k := bits.Len(uint(y-x+1)) - 1
			m := min(st[k][x], st[k][y-1<<k+1])
			if c := ref + uint32(m>>32); c < best {
				best, bestLen = c, int32(int(uint32(m))-i)
			}
		}
		cost[i] = best
		pick[i] = bestLen
		set(i)
	}
	return cost[0]
}

// findMatches fills mlen/mdist for data[start:] with the longest match (of
// minMatch to maxMatch bytes, else 0) found within maxDist, using hash chains
// over data (history included).
func (z *hsWriter) findMatches(data []byte, start, minMatch, maxMatch int) {
	p := z.p
	n := len(data) - start
	if cap(z.mlen) < n {
		z.mlen = make([]int32, n)
		z.mdist = make([]int32, n)
	}
	mlen, mdist := z.mlen[:n], z.mdist[:n]
	if z.head == nil {
		z.head = make([]int32, 1<<hsHashBits)
	}
	head := z.head
	for i := range head {
		head[i] = -1
	}
	if cap(z.prev) < len(data) {
		z.prev = make([]int32, len(data))
	}
	prev := z.prev[:len(data)]
	keyLen := min(minMatch, 3)
	hash := func(i int) uint32 {
		if keyLen == 2 {
			return uint32(data[i])<<8 | uint32(data[i+1])
		}
		v := uint32(data[i])<<16 | uint32(data[i+1])<<8 | uint32(data[i+2])
		return v * 2654435761 >> (32 - hsHashBits)
	}
	for i := 0; i < len(data); i++ {
		if i+keyLen > len(data) {
			if i >= start {
				mlen[i-start] = 0
			}
			continue
		}
		h := hash(i)
		if i >= start {
			best, bestD := 0, 0
			limit := min(maxMatch, len(data)-i)
			if limit >= minMatch {
				for j, depth := head[h], 0; j >= 0 && i-int(j) <= p.maxDist && depth < hsMaxChain; j, depth = prev[j], depth+1 {
					a, b := data[int(j):], data[i:i+limit]
					if a[best] != b[best] { // cannot beat best
						continue
					}
					l := 0
					for l < limit && a[l] == b[l] {
						l++
					}
					if l > best {
						best, bestD = l, i-int(j)
						if l == limit {
							break
						}
					}
				}
			}
			if best < minMatch {
				best = 0
			}
			mlen[i-start], mdist[i-start] = int32(best), int32(bestD)
		}
		prev[i] = head[h]
		head[h] = int32(i)
	}
}

// NewHeatshrinkReader returns a reader that decompresses a heatshrink stream
// from r. It reads the one-byte parameter header at once and fails with
// ErrCorrupt if the parameters are out of range.
func NewHeatshrinkReader(r io.Reader) (io.ReadCloser, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	hd, err := br.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("codec: heatshrink header: %w", err)
	}
	p, err := newHSParams(int(hd>>4), int(hd&15))
	if err != nil {
		return nil, err
	}
	return &hsReader{p: p, r: br, win: make([]byte, 1<<p.window)}, nil
}

type hsReader struct {
	p     hsParams
	r     io.ByteReader
	win   []byte // ring of the last 2^W output bytes
	pos   int64  // bytes output so far
	bits  uint32
	nbits uint
	dist  int // pending copy
	left  int
	done  bool
	err   error
}

func (z *hsReader) getBits(n uint) (uint32, error) {
	for z.nbits < n {
		b, err := z.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("%w: heatshrink stream truncated: %w", ErrCorrupt, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		z.bits = z.bits<<8 | uint32(b)
		z.nbits += 8
	}
	z.nbits -= n
	v := z.bits >> z.nbits & (1<<n - 1)
	z.bits &= 1<<z.nbits - 1
	return v, nil
}

func (z *hsReader) Read(p []byte) (int, error) {
	mask := int64(len(z.win) - 1)
	n := 0
	for n < len(p) {
		if z.left > 0 {
			b := z.win[(z.pos-int64(z.dist))&mask]
			z.win[z.pos&mask] = b
			z.pos++
			p[n] = b
			n++
			z.left--
			continue
		}
		if z.err != nil {
			return n, z.err
		}
		if z.done {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		z.err = z.item()
	}
	return n, nil
}

// item decodes one item into a pending copy for Read to emit.
func (z *hsReader) item() error {
	tag, err := z.getBits(1)
	if err != nil {
		return err
	}
	if tag == 1 {
		lit, err := z.getBits(8)
		if err != nil {
			return err
		}
		// A literal is staged in the window and emitted as a one-byte
		// copy from distance 0, so Read has a single path.
		z.win[z.pos&int64(len(z.win)-1)] = byte(lit)
		z.dist, z.left = 0, 1
		return nil
	}
	d, err := z.getBits(z.p.window)
	if err != nil {
		return err
	}
	c, err := z.getBits(z.p.lookahead)
	if err != nil {
		return err
	}
	if d == 0 {
		if c != 0 {
			return fmt.Errorf("%w: heatshrink end marker with count %d", ErrCorrupt, c)
		}
		if z.bits != 0 {
			return fmt.Errorf("%w: heatshrink padding bits not zero", ErrCorrupt)
		}
		z.nbits, z.done = 0, true
		return nil
	}
	if int64(d) > z.pos {
		return fmt.Errorf("%w: heatshrink reference %d bytes back at offset %d", ErrCorrupt, d, z.pos)
	}
	z.dist, z.left = int(d), int(c)+z.p.minMatch
	return nil
}

func (z *hsReader) Close() error { return nil }
