package delta

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// opKind is an instruction of the native format.
type opKind uint8

const (
	opCopy   opKind = 0 // copy source bytes unchanged
	opAdd    opKind = 1 // source bytes plus a byte-wise difference
	opInsert opKind = 2 // literal bytes carried in the patch
)

// op is one instruction in target order. For copy and add, src is the
// absolute source offset; the target offset is implicit (ops are contiguous).
type op struct {
	kind opKind
	n    int
	src  int
}

// tuning holds the parser's cost weights. The parser extends an aligned
// region (an add) while matchGain*matches - mismatchCost*mismatches grows:
// a matching byte in an add costs almost nothing after compression, whereas
// a mismatching one costs about as much as a literal would, plus a little.
type tuning struct {
	matchGain    int // bits saved by a matching byte in an add vs a literal
	mismatchCost int // bits lost by a mismatching byte in an add vs a literal
	newMatch     int // bytes a new alignment must beat the current one by
	maxCompare   int // cap on byte comparisons per suffix-array probe
}

// skipKeep is how much of a rejected long match is probed again.
const skipKeep = 16

var defaultTuning = tuning{matchGain: 1, mismatchCost: 1, newMatch: 8, maxCompare: 1 << 12}

// modelTuning is the parser's tuning for layout 2, whose recent alignments
// and zero differences cost little: an add may keep only a third of its
// bytes, and a new alignment wins as soon as it beats the current one by 4
// bytes. Measured on the corpus: 4% smaller than defaultTuning there, but
// 1% larger with layouts 0 and 1.
var modelTuning = tuning{matchGain: 2, mismatchCost: 1, newMatch: 4, maxCompare: 1 << 12}

// matcher finds the longest match of a string in old using old's suffix array.
type matcher struct {
	old []byte
	sa  []int32
	cap int
	// bkt[k].start is the first suffix-array index of the suffixes whose
	// first two bytes are k (as a big-endian uint16) or more, so a search
	// starts in its two-byte bucket: 16 fewer probes in a 64K-entry table.
	bkt []bucket
	// key[j] holds the first 8 bytes (big-endian, zero-padded) of suffix
	// sa[j*keyGap]. A search narrows its bucket over these sorted,
	// contiguous keys before it reads old through sa, whose random
	// accesses are what a probe costs.
	key []uint64
}

// bucket is an entry of matcher.bkt. Once filled (it is 0 until the first
// query of the bucket), third has bit thirdBit(c) set for each byte c that
// follows the bucket's two bytes somewhere in old: a clear bit proves that
// a string starting with those two bytes and c matches at most two bytes,
// which settles many of the parser's queries without a search.
// Beside start, it costs no further cache miss.
type bucket struct {
	start int32
	third uint32
}

// keyGap is the suffix-array stride of matcher.key: a byte of key per
// byte of old.
const keyGap = 8

func newMatcher(old []byte, cap int) *matcher {
	m := &matcher{old: old, sa: suffixArray(old), cap: cap, bkt: make([]bucket, 1<<16+1)}
	m.key = make([]uint64, (len(m.sa)+keyGap-1)/keyGap)
	for j := range m.key {
		m.key[j] = prefix8(old[m.sa[j*keyGap]:])
	}
	// The suffix array is sorted by the first two bytes (the top of each
	// key), so the buckets start where they change. Between two samples
	// with the same two bytes there is no start; the other gaps are
	// bisected through sa. That costs far fewer random reads than
	// counting the two-byte keys of every position would.
	next := 0 // the first bucket whose start is not known yet
	fill := func(i, k int) {
		for ; next <= k; next++ {
			m.bkt[next].start = int32(i)
		}
	}
	// starts fills the starts in (lo, hi], whose ends' keys are klo < khi,
	// bisecting for each.
	starts := func(lo, hi, klo, khi int) {
		for klo < khi {
			a, b := lo+1, hi // first index with a key above klo
			for a < b {
				h := int(uint(a+b) >> 1)
				if key2(old, m.sa[h]) > klo {
					b = h
				} else {
					a = h + 1
				}
			}
			lo, klo = a, key2(old, m.sa[a])
			fill(lo, klo)
		}
	}
	prev := 0
	for j, key := range m.key {
		k := int(key >> 48)
		if j == 0 {
			fill(0, k)
		} else if k > prev {
			starts((j-1)*keyGap, j*keyGap, prev, k)
		}
		prev = k
	}
	if last, j := len(m.sa)-1, (len(m.key)-1)*keyGap; j >= 0 && last > j {
		starts(j, last, prev, key2(old, m.sa[last]))
	}
	fill(len(m.sa), 1<<16)
	return m
}

// thirdBit hashes a byte to a bit of bucket.third; a multiplication
// keeps bytes that differ only in their high bits (0x00, 0x20, 0x40)
// apart, as the low five bits would not.
func thirdBit(c byte) uint32 {
	return uint32(c) * 0x9e3779b1 >> 27
}

// fillThird fills bkt[key].third from the bucket's suffixes, sa[lo:hi],
// on its first query: most buckets are never asked about, and reading
// a bucket's suffixes in order costs fewer cache misses than a scan of old
// writing all over bkt. A bucket whose only suffix is two bytes long stays
// 0 and is scanned again, at the cost of one entry.
func (m *matcher) fillThird(key, lo, hi int) uint32 {
	if hi-lo > 24 {
		// Large buckets set most bits anyway (24 measured best on the
		// corpus), and they would cost the most to scan.
		m.bkt[key].third = ^uint32(0)
		return ^uint32(0)
	}
	var t uint32
	for _, p := range m.sa[lo:hi] {
		if int(p)+2 < len(m.old) {
			t |= 1 << thirdBit(m.old[p+2])
		}
	}
	m.bkt[key].third = t
	return t
}

// short returns the length of the longest match of q in old, if the
// tables prove it is at most 2 bytes without searching; the position is
// left to longest.
func (m *matcher) short(q []byte) (n int, ok bool) {
	if len(q) < 3 {
		return 0, false
	}
	key := int(q[0])<<8 | int(q[1])
	b := m.bkt[key : key+2]
	lo, hi := int(b[0].start), int(b[1].start)
	if lo == hi {
		// No suffix starts with q[:2]: the match is q[0] or nothing.
		if c := int(q[0]) << 8; m.bkt[c].start < m.bkt[c+256].start {
			return 1, true
		}
		return 0, true
	}
	// The bucket holds suffixes that start with q[:2], except that old's
	// last byte alone, zero-padded, sits in the bucket of that byte and 0.
	t := b[0].third
	if t == 0 {
		t = m.fillThird(key, lo, hi)
	}
	if t&(1<<thirdBit(q[2])) == 0 && key != int(m.old[len(m.old)-1])<<8 {
		return 2, true
	}
	return 0, false
}

// key2 returns the bucket of the suffix at p: its first two bytes as a
// big-endian number, padded with a zero.
func key2(old []byte, p int32) int {
	if int(p)+1 < len(old) {
		return int(old[p])<<8 | int(old[p+1])
	}
	return int(old[p]) << 8
}

// prefix8 returns the first 8 bytes of b as a big-endian number, padded
// with zeros. Padding keeps the order of suffixes (a shorter suffix sorts
// first) and a key above or below another string's proves the same order
// of the strings themselves.
func prefix8(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.BigEndian.Uint64(b)
	}
	var k uint64
	for i := 0; i < 8; i++ {
		k <<= 8
		if i < len(b) {
			k |= uint64(b[i])
		}
	}
	return k
}

func commonPrefix(a, b []byte, max int) int {
	if len(a) > len(b) {
		a = a[:len(b)]
	}
	if len(a) > max {
		a = a[:max]
	}
	n := 0
	for n+8 <= len(a) {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)/8
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// longest returns the position and length of a longest match of q in old.
// The binary search skips the prefix that both interval ends already share
// with q. Comparisons are capped at m.cap bytes and the winner is then
// extended linearly, so long runs (0xFF padding) never cost O(run·log n).
func (m *matcher) longest(q []byte) (pos, n int) {
	if len(m.sa) == 0 || len(q) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(m.sa)-1
	if len(q) >= 2 {
		key := int(q[0])<<8 | int(q[1])
		if b, e := int(m.bkt[key].start), int(m.bkt[key+1].start); b < e {
			lo, hi = b, e-1
		}
	}
	done := false
	if len(q) >= 8 && hi-lo > 2*keyGap {
		// Narrow [lo, hi] to the sampled suffixes just below and above q.
		// The search below ends on the same pair of neighbours (q's
		// insertion point) from any interval whose ends are q's bounds or
		// strictly below and above q, so the result is the one the whole
		// bucket gives, unless a probe stopped early at a match of
		// min(cap, len(q)) bytes: that depends on the probes, so such
		// searches are redone over the bucket.
		qk := binary.BigEndian.Uint64(q)
		j0, j1 := (lo+keyGap-1)/keyGap, hi/keyGap+1
		keys := m.key[j0:j1]
		a, b := 0, len(keys) // first key >= qk
		for a < b {
			h := int(uint(a+b) >> 1)
			if keys[h] < qk {
				a = h + 1
			} else {
				b = h
			}
		}
		c, d := a, len(keys) // first key > qk; usually a, as few keys equal qk
		if c < d && keys[c] > qk {
			d = c
		}
		for c < d {
			h := int(uint(c+d) >> 1)
			if keys[h] <= qk {
				c = h + 1
			} else {
				d = h
			}
		}
		// A sampled end's key differs from qk, so it gives the end's
		// common prefix with q without reading old (a suffix shorter than
		// 8 bytes matches no further than its end, whatever its padding).
		nlo, nhi, llo, lhi := lo, hi, -1, -1
		if a > 0 {
			nlo = (j0 + a - 1) * keyGap
			llo = min(bits.LeadingZeros64(keys[a-1]^qk)/8, len(m.old)-int(m.sa[nlo]))
		}
		if c < len(keys) {
			nhi = (j0 + c) * keyGap
			lhi = min(bits.LeadingZeros64(keys[c]^qk)/8, len(m.old)-int(m.sa[nhi]))
		}
		var cut bool
		pos, n, cut = m.search(q, nlo, nhi, llo, lhi)
		done = !cut && n < min(m.cap, len(q))
	}
	if !done {
		pos, n, _ = m.search(q, lo, hi, -1, -1)
	}
	if n == m.cap {
		n += commonPrefix(m.old[pos+n:], q[n:], len(q))
	}
	return pos, n
}

// search is longest's binary search over sa[lo..hi]; llo and lhi are the
// ends' common prefixes with q, or -1 if not known yet. cut reports that
// the search stopped at a match of m.cap or len(q) bytes.
func (m *matcher) search(q []byte, lo, hi, llo, lhi int) (pos, n int, cut bool) {
	sa, old := m.sa, m.old
	// Matching all of q (so capped) ends the search: one bound per probe.
	q = q[:min(len(q), m.cap)]
	if llo < 0 {
		llo = commonPrefix(old[sa[lo]:], q, len(q))
	}
	if lhi < 0 {
		lhi = commonPrefix(old[sa[hi]:], q, len(q))
	}
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		p := int(sa[mid])
		// commonPrefix from min(llo, lhi), written out with indices and
		// fixed-length slices: a call, or slices of old, make the
		// compiler spill the loop's state at every probe.
		k, end := min(llo, lhi), min(len(old)-p, len(q))
		for k+8 <= end {
			x := binary.LittleEndian.Uint64(old[p+k:p+k+8]) ^ binary.LittleEndian.Uint64(q[k:k+8])
			if x != 0 {
				k += bits.TrailingZeros64(x) / 8
				end = k
				break
			}
			k += 8
		}
		for k < end && old[p+k] == q[k] {
			k++
		}
		if k == len(q) {
			return p, k, true
		}
		if p+k == len(old) || old[p+k] < q[k] {
			lo, llo = mid, k
		} else {
			hi, lhi = mid, k
		}
	}
	if llo >= lhi {
		return int(sa[lo]), llo, false
	}
	return int(sa[hi]), lhi, false
}

// diffOps computes the instructions that turn old into new.
func diffOps(old, new []byte, tu tuning) []op {
	m := newMatcher(old, tu.maxCompare)
	var ops []op
	emitInsert := func(n int) {
		if n <= 0 {
			return
		}
		if k := len(ops); k > 0 && ops[k-1].kind == opInsert {
			ops[k-1].n += n
			return
		}
		ops = append(ops, op{kind: opInsert, n: n})
	}
	emitAligned := func(src, dst, n int) {
		if n <= 0 {
			return
		}
		kind := opCopy
		if !bytes.Equal(old[src:src+n], new[dst:dst+n]) {
			kind = opAdd
		}
		ops = append(ops, op{kind: kind, n: n, src: src})
	}
	a, b := tu.matchGain, tu.mismatchCost

	scan, n, lastScan, lastPos, lastOff := 0, 0, 0, 0, 0
	pos := 0
	at := -1 // where short settled n and left pos to longest
	for scan < len(new) {
		oldScore := 0
		scsc := scan + n
		scan = scsc
		for ; scan < len(new); scan++ {
			var ok bool
			if n, ok = m.short(new[scan:]); ok {
				at = scan
			} else {
				pos, n = m.longest(new[scan:])
				at = -1
			}
			if scsc < scan+n {
				oldScore += countEqual(old, scsc+lastOff, new[scsc:scan+n])
				scsc = scan + n
			}
			if (n == oldScore && n != 0) || n > oldScore+tu.newMatch {
				break
			}
			// A long match that the current alignment nearly explains:
			// no new alignment can start inside it and win, so skip most
			// of it instead of probing every position (bsdiff does).
			skip := 1
			if n > 2*skipKeep {
				skip = n - skipKeep
			}
			oldScore -= countEqual(old, scan+lastOff, new[scan:scan+skip])
			scan += skip - 1
		}
		if n == oldScore && scan != len(new) {
			continue
		}
		if at >= 0 {
			pos, _ = m.longest(new[at:])
			at = -1
		}
		// Extend the previous alignment forward.
		lenf := extendForward(old[lastPos:], new[lastScan:scan], a, b)
		// Extend the new match backward.
		lenb := 0
		if scan < len(new) {
			lenb = extendBackward(old[:pos], new[lastScan:scan], a, b)
		}
		if lastScan+lenf > scan-lenb {
			overlap := lastScan + lenf - (scan - lenb)
			lens := splitOverlap(
				old[lastPos+lenf-overlap:lastPos+lenf], new[lastScan+lenf-overlap:lastScan+lenf],
				old[pos-lenb:pos-lenb+overlap], new[scan-lenb:scan-lenb+overlap])
			lenf += lens - overlap
			lenb -= lens
		}
		emitAligned(lastPos, lastScan, lenf)
		emitInsert(scan - lenb - (lastScan + lenf))
		lastScan = scan - lenb
		lastPos = pos - lenb
		lastOff = pos - scan
	}
	return ops
}

// eqBytes returns 0x80 in each byte of x that is zero and 0 elsewhere.
func eqBytes(x uint64) uint64 {
	const lo7 = 0x7f7f7f7f7f7f7f7f
	return ^((x&lo7 + lo7) | x | lo7)
}

// countEqual counts the k for which old[o+k] == q[k]; positions outside
// old never match.
func countEqual(old []byte, o int, q []byte) int {
	if len(q) == 1 { // the common case, inlined
		if uint(o) < uint(len(old)) && old[o] == q[0] {
			return 1
		}
		return 0
	}
	return countEqualWords(old, o, q)
}

func countEqualWords(old []byte, o int, q []byte) int {
	c := 0
	if len(q) < 8 {
		for k, v := range q {
			if i := o + k; uint(i) < uint(len(old)) && old[i] == v {
				c++
			}
		}
		return c
	}
	k0, k1 := max(0, -o), min(len(q), len(old)-o)
	if k0 >= k1 {
		return 0
	}
	x, y := old[o+k0:o+k1], q[k0:k1]
	for len(x) >= 8 {
		c += bits.OnesCount64(eqBytes(binary.LittleEndian.Uint64(x) ^ binary.LittleEndian.Uint64(y)))
		x, y = x[8:], y[8:]
	}
	for i := range x {
		if x[i] == y[i] {
			c++
		}
	}
	return c
}

// splitOverlap returns the i that first maximises (matches of x1 and y1
// in [:i]) - (matches of x2 and y2 in [:i]), all four of one length: where
// the previous alignment (1) hands over to the new one (2). Eight bytes go
// at a time where the first alignment's matches cannot beat the best.
func splitOverlap(x1, y1, x2, y2 []byte) int {
	l := len(x1)
	s, best, n := 0, 0, 0
	i := 0
	for ; i+8 <= l; i += 8 {
		e1 := eqBytes(binary.LittleEndian.Uint64(x1[i:]) ^ binary.LittleEndian.Uint64(y1[i:]))
		e2 := eqBytes(binary.LittleEndian.Uint64(x2[i:]) ^ binary.LittleEndian.Uint64(y2[i:]))
		k1 := bits.OnesCount64(e1)
		if s+k1 <= best {
			s += k1 - bits.OnesCount64(e2)
			continue
		}
		for j := range 8 {
			s += int(e1>>7&1) - int(e2>>7&1)
			e1, e2 = e1>>8, e2>>8
			if s > best {
				best, n = s, i+j+1
			}
		}
	}
	for ; i < l; i++ {
		if x1[i] == y1[i] {
			s++
		}
		if x2[i] == y2[i] {
			s--
		}
		if s > best {
			best, n = s, i+1
		}
	}
	return n
}

// extendForward returns the length i of the common-start stretch of x and
// y that first maximises a*matches - b*mismatches over x[:i] (0 if no
// length scores above 0), eight bytes at a time.
func extendForward(x, y []byte, a, b int) int {
	l := min(len(x), len(y))
	s, best, n := 0, 0, 0 // s is the score of x[:i]
	i := 0
	for ; i+8 <= l; i += 8 {
		d := binary.LittleEndian.Uint64(x[i:]) ^ binary.LittleEndian.Uint64(y[i:])
		s, best, n = scoreWord(d, i, s, best, n, a, b)
	}
	for ; i < l; i++ {
		if x[i] == y[i] {
			s += a
		} else {
			s -= b
		}
		if s > best {
			best, n = s, i+1
		}
	}
	return n
}

// scoreWord adds to an extension's score s (best so far: best, at length
// n) the eight bytes after its first i, whose XOR is d in scan order from
// the low byte, so a zero byte is a match. A word whose matches cannot
// lift the score above best needs no byte-wise scan.
func scoreWord(d uint64, i, s, best, n, a, b int) (int, int, int) {
	k := bits.OnesCount64(eqBytes(d))
	if s+a*k <= best {
		return s + a*k - b*(8-k), best, n
	}
	if d == 0 { // the score rises at each byte
		s += 8 * a
		return s, s, i + 8
	}
	for j := range 8 {
		if d&0xff == 0 {
			s += a
		} else {
			s -= b
		}
		d >>= 8
		if s > best {
			best, n = s, i+j+1
		}
	}
	return s, best, n
}

// extendBackward is extendForward over the ends of x and y, read backwards.
func extendBackward(x, y []byte, a, b int) int {
	l := min(len(x), len(y))
	x, y = x[len(x)-l:], y[len(y)-l:]
	s, best, n := 0, 0, 0
	i := 0 // bytes consumed from the end
	for ; i+8 <= l; i += 8 {
		// Big-endian: the last byte lands lowest, so d goes in scan order.
		d := binary.BigEndian.Uint64(x[l-i-8:]) ^ binary.BigEndian.Uint64(y[l-i-8:])
		s, best, n = scoreWord(d, i, s, best, n, a, b)
	}
	for ; i < l; i++ {
		if x[l-1-i] == y[l-1-i] {
			s += a
		} else {
			s -= b
		}
		if s > best {
			best, n = s, i+1
		}
	}
	return n
}

// splitAdds rewrites each add so that stretches of at least minRun
// unchanged bytes become copies. Without compression (and with the small
// MCU codec) carrying those zero differences would cost a byte each.
func splitAdds(old, new []byte, ops []op, minRun int) []op {
	var out []op
	t := 0
	for _, o := range ops {
		if o.kind != opAdd {
			out = append(out, o)
			t += o.n
			continue
		}
		segStart, segKind := 0, opKind(255)
		push := func(end int, kind opKind) {
			if end <= segStart {
				return
			}
			if k := len(out); k > 0 && segKind == kind && out[k-1].kind == kind && out[k-1].src+out[k-1].n == o.src+segStart {
				out[k-1].n += end - segStart
			} else {
				out = append(out, op{kind: kind, n: end - segStart, src: o.src + segStart})
			}
			segStart, segKind = end, kind
		}
		i := 0
		for i < o.n {
			j := i
			for j < o.n && old[o.src+j] == new[t+j] {
				j++
			}
			if j-i >= minRun {
				push(i, opAdd)
				push(j, opCopy)
			}
			for j < o.n && old[o.src+j] != new[t+j] {
				j++
			}
			i = j
		}
		if segStart < o.n {
			kind := opAdd
			if bytes.Equal(old[o.src+segStart:o.src+o.n], new[t+segStart:t+o.n]) {
				kind = opCopy
			}
			push(o.n, kind)
		}
		t += o.n
	}
	return out
}
