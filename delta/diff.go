package delta

import "bytes"

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

var defaultTuning = tuning{matchGain: 1, mismatchCost: 1, newMatch: 8, maxCompare: 1 << 12}

// matcher finds the longest match of a string in old using old's suffix array.
type matcher struct {
	old []byte
	sa  []int32
	cap int
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
		if !bytes.Equal(a[n:n+8], b[n:n+8]) {
			break
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// longest returns the position and length of a longest match of q in old.
// Comparisons are capped at m.cap bytes; the match is then extended
// linearly, so long runs (0xFF padding) cost O(run) and never O(run·log n).
func (m *matcher) longest(q []byte) (pos, n int) {
	sa, old := m.sa, m.old
	if len(sa) == 0 || len(q) == 0 {
		return 0, 0
	}
	lo, hi := 0, len(sa)-1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		s := old[sa[mid]:]
		k := commonPrefix(s, q, m.cap)
		if k == m.cap || k == len(q) {
			lo, hi = mid, mid
			break
		}
		if k < len(s) && s[k] < q[k] || k == len(s) {
			lo = mid
		} else {
			hi = mid
		}
	}
	a := commonPrefix(old[sa[lo]:], q, m.cap)
	b := commonPrefix(old[sa[hi]:], q, m.cap)
	if a >= b {
		pos, n = int(sa[lo]), a
	} else {
		pos, n = int(sa[hi]), b
	}
	if n == m.cap {
		n += commonPrefix(old[pos+n:], q[n:], len(q))
	}
	return pos, n
}

// diffOps computes the instructions that turn old into new.
func diffOps(old, new []byte, tu tuning) []op {
	m := &matcher{old: old, sa: suffixArray(old), cap: tu.maxCompare}
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
	oldAt := func(i int) int {
		if i >= 0 && i < len(old) {
			return int(old[i])
		}
		return -1
	}

	scan, n, lastScan, lastPos, lastOff := 0, 0, 0, 0, 0
	pos := 0
	for scan < len(new) {
		oldScore := 0
		scsc := scan + n
		scan = scsc
		for ; scan < len(new); scan++ {
			pos, n = m.longest(new[scan:])
			for ; scsc < scan+n; scsc++ {
				if oldAt(scsc+lastOff) == int(new[scsc]) {
					oldScore++
				}
			}
			if (n == oldScore && n != 0) || n > oldScore+tu.newMatch {
				break
			}
			if oldAt(scan+lastOff) == int(new[scan]) {
				oldScore--
			}
		}
		if n == oldScore && scan != len(new) {
			continue
		}
		// Extend the previous alignment forward.
		s, best, lenf := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < len(old); {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if sc := a*s - b*(i-s); sc > best {
				best, lenf = sc, i
			}
		}
		// Extend the new match backward.
		lenb := 0
		if scan < len(new) {
			s, best = 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if sc := a*s - b*(i-s); sc > best {
					best, lenb = sc, i
				}
			}
		}
		if lastScan+lenf > scan-lenb {
			overlap := lastScan + lenf - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if new[lastScan+lenf-overlap+i] == old[lastPos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
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
