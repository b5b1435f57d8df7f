package delta

// This file builds suffix arrays with SA-IS (Nong, Zhang and Chan, 2009):
// linear time whatever the input, so 0xFF-padded or highly repetitive images
// cost no more than random ones. Entries are int32; the extra memory besides
// the array itself is, per level, one symbol and one bit per position and a
// bucket table.
// The reduced string is first tried with bounded prefix doubling, which is
// faster when its names are almost all distinct (the common case).

import (
	"math/bits"
	"slices"
)

// suffixArray returns the suffix array of text: sa[i] is the start of the
// i-th smallest suffix. text must be shorter than 2^31 bytes.
func suffixArray(text []byte) []int32 {
	sa := make([]int32, len(text))
	if len(text) == 0 {
		return sa
	}
	sais(text, sa, 256)
	return sa
}

type symbol interface{ ~byte | ~int32 }

// sais sorts the suffixes of s (symbols in [0,k)) into sa, which has len(s)
// entries. The end of s acts as a unique smallest sentinel.
//
// No type array is kept: the induction passes carry each suffix's type
// information in the sign of its entry and the symbol before it in pre,
// so a suffix costs one random read of s when it is placed and none when
// it is scanned. One scan finds the types, keeping only a bit set of the
// LMS positions for the later steps.
func sais[T symbol](s []T, sa []int32, k int) {
	n := len(s)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	bkt := make([]int32, k)
	cnt := make([]int32, k)
	for _, c := range s {
		cnt[c]++
	}
	pre := make([]T, n)

	// Step 1: sort the LMS substrings by induction, seeding the LMS
	// suffixes (S-type, L-type before them) in any order at their bucket
	// ends. Types go right to left: s[n-1] is L-type because the virtual
	// sentinel after it is smaller.
	clear(sa)
	bucketEnds(cnt, bkt)
	// The LMS positions also go into a bit set, which later steps walk
	// far faster than they could recompute the types.
	set := make([]uint64, n/64+1)
	// Branch-free: on firmware the comparisons are close to random, and
	// mispredicted branches cost more than the arithmetic.
	var next uint8 // type of i+1 (1 = S)
	c1 := s[n-1]
	for i := n - 2; i >= 0; i-- {
		c0 := s[i]
		var lt, eq uint8
		if c0 < c1 {
			lt = 1
		}
		if c0 == c1 {
			eq = 1
		}
		cur := lt | eq&next
		if cur < next {
			p := i + 1
			set[p>>6] |= 1 << (p & 63)
			j := bkt[c1] - 1
			bkt[c1] = j
			sa[j] = int32(p)
			pre[j] = c0
		}
		next, c1 = cur, c0
	}
	// lms yields the LMS positions from right to left.
	lms := func(yield func(int) bool) {
		for w := len(set) - 1; w >= 0; w-- {
			for x := set[w]; x != 0; {
				b := 63 - bits.LeadingZeros64(x)
				if !yield(w<<6 | b) {
					return
				}
				x &^= 1 << b
			}
		}
	}
	top := induce(s, sa, pre, cnt, bkt, true)

	// Step 2: name the sorted LMS substrings; equal substrings share a
	// name. The slot sa[m+pos/2] first holds the length of the substring
	// at pos (up to and including the next LMS position; 0 for the last,
	// which ends at the sentinel and so is unique), then its name.
	m := n - top
	copy(sa, sa[top:])
	for i := m; i < n; i++ {
		sa[i] = -1
	}
	last := n
	for i := range lms {
		if last == n {
			sa[m+i/2] = 0
		} else {
			sa[m+i/2] = int32(last - i + 1)
		}
		last = i
	}
	name, prev, prevLen := 0, 0, int32(-1)
	for i := 0; i < m; i++ {
		pos := int(sa[i])
		l := sa[m+pos/2]
		if l == 0 || l != prevLen || !slices.Equal(s[pos:pos+int(l)], s[prev:prev+int(l)]) {
			name++
			prev, prevLen = pos, l
		}
		sa[m+pos/2] = int32(name - 1)
	}
	for i, j := n-1, n-1; i >= m; i-- {
		if sa[i] >= 0 {
			sa[j] = sa[i]
			j--
		}
	}

	// Step 3: sort the LMS suffixes, recursing when names repeat.
	s1 := sa[n-m:]
	sa1 := sa[:m]
	if name < m {
		// sa between sa1 and s1 is free until step 4.
		if !sortByDoubling(s1, sa1, name, sa[m:n-m]) {
			sais(s1, sa1, name)
		}
	} else {
		for i := 0; i < m; i++ {
			sa1[s1[i]] = int32(i)
		}
	}
	j := m
	for i := range lms {
		j--
		s1[j] = int32(i)
	}
	for i := 0; i < m; i++ {
		sa1[i] = s1[sa1[i]]
	}

	// Step 4: induce the full order from the sorted LMS suffixes.
	clear(sa[m:])
	bucketEnds(cnt, bkt)
	for i := m - 1; i >= 0; i-- {
		p := sa[i]
		sa[i] = 0
		c := s[p]
		j := bkt[c] - 1
		bkt[c] = j
		sa[j] = p
		pre[j] = s[p-1]
	}
	induce(s, sa, pre, cnt, bkt, false)
}

// bucketEnds sets bkt[c] to the end of the bucket of symbol c.
func bucketEnds(cnt, bkt []int32) {
	var sum int32
	for i, c := range cnt {
		sum += c
		bkt[i] = sum
	}
}

// induce sorts the L-type suffixes from the seeds in sa, then the S-type
// ones. An entry q > 0 stands for suffix q with an L-type suffix q-1
// before it, -q for one with an S-type q-1, and 0 for suffix 0 or an empty
// slot; pre holds s[q-1] beside each entry, so only placing q-1 (which
// needs s[q-2]) reads s at random.
//
// With sub set (step 1) it keeps only the order of the LMS suffixes, which
// it returns in sa[top:]; otherwise it leaves the suffix array in sa.
func induce[T symbol](s []T, sa []int32, pre []T, cnt, bkt []int32, sub bool) (top int) {
	n := len(s)
	var sum int32
	for i, c := range cnt {
		bkt[i] = sum
		sum += c
	}
	// Suffix n-1 follows the sentinel, the smallest suffix.
	{
		c, b := s[n-1], s[n-2]
		v := int32(n - 1)
		if b < c {
			v = -v
		}
		j := bkt[c]
		sa[j] = v
		pre[j] = b
		bkt[c] = j + 1
	}
	// L pass: an entry q > 0 puts q-1 (L-type) in its bucket; it lands
	// further right, so one scan sees every L-type suffix.
	for i := 0; i < n; i++ {
		q := sa[i]
		if q <= 0 {
			continue
		}
		if sub {
			sa[i] = 0 // only the entries before S-type suffixes matter below
		}
		p, c := q-1, pre[i]
		v, b := int32(0), T(0)
		if p > 0 {
			// p is L-type, so p-1 is too unless it is smaller.
			b = s[p-1]
			v = p
			if b < c {
				v = -p
			}
		}
		j := bkt[c]
		sa[j] = v
		pre[j] = b
		bkt[c] = j + 1
	}
	// S pass, right to left: an entry -q puts q-1 (S-type) at the end of
	// its bucket, which fills the buckets' S-type parts exactly.
	bucketEnds(cnt, bkt)
	top = n
	for i := n - 1; i >= 0; i-- {
		q := sa[i]
		if q >= 0 {
			if sub && q > 0 {
				// Only S-type entries made by this pass are still
				// positive here: LMS suffixes, in sorted order.
				top--
				sa[top] = q
			}
			continue
		}
		q = -q
		if !sub {
			sa[i] = q
		}
		p, c := q-1, pre[i]
		v, b := int32(0), T(0)
		if p > 0 {
			// p is S-type, so p-1 is too unless it is larger.
			b = s[p-1]
			v = -p
			if b > c {
				v = p
			}
		}
		j := bkt[c] - 1
		sa[j] = v
		pre[j] = b
		bkt[c] = j
	}
	return top
}

// sortByDoubling sorts the suffixes of s (symbols in [0,k)) into sa by
// prefix doubling (Larsson and Sadakane): bucket by the first symbol, then
// sort each group of equal prefixes by the rank h symbols on, doubling h.
// On firmware almost all names of the reduced string are distinct, and
// this settles the few ties faster than SA-IS's recursion would. It gives
// up (returning false, s untouched) once its work passes a few times
// len(s), as on periodic data, so the caller's linear bound holds. Its
// tables go in free, if large enough: fresh memory costs page faults.
func sortByDoubling(s []int32, sa []int32, k int, free []int32) bool {
	m := len(s)
	alloc := func(n int) []int32 {
		if len(free) < n {
			return make([]int32, n)
		}
		b := free[:n:n]
		free = free[n:]
		clear(b)
		return b
	}
	// rank[i] is the last sa index of the group holding suffix i.
	rank := alloc(m)
	end := alloc(k + 1)
	for _, c := range s {
		end[c+1]++
	}
	for c := 1; c <= k; c++ {
		end[c] += end[c-1]
	}
	// groups holds lo, hi (inclusive) of the groups not yet sorted; a
	// round's groups hold at most as many entries as the first round's
	// groups have suffixes, so two buffers of that size take turns.
	size := 0
	for c := 0; c < k; c++ {
		if g := int(end[c+1] - end[c]); g > 1 {
			size += g
		}
	}
	groups, spare := alloc(size)[:0], alloc(size)[:0]
	for c := 0; c < k; c++ {
		if end[c+1]-end[c] > 1 {
			groups = append(groups, end[c], end[c+1]-1)
		}
	}
	for i, c := range s {
		sa[end[c]] = int32(i)
		end[c]++
	}
	for i, c := range s {
		rank[i] = end[c] - 1
	}
	// An entry packs a key (the rank h symbols on, plus one) above the
	// suffix, so groups sort as plain integers, with no comparison calls.
	// Ties break by suffix, which later rounds overwrite anyway.
	var tmp []uint64
	work := 0
	for h := 1; len(groups) > 0; h *= 2 {
		next := spare[:0]
		for g := 0; g < len(groups); g += 2 {
			lo, hi := groups[g], groups[g+1]
			// Sorting a group costs g·log g; past 8m in all, give up.
			if g := int(hi - lo + 1); g <= 16 {
				work += g
			} else {
				work += g * bits.Len(uint(g))
			}
			if work > 8*m {
				return false
			}
			// Keys first: ranks change as the group splits.
			tmp = tmp[:0]
			for _, i := range sa[lo : hi+1] {
				var key uint64 // the suffix ends first
				if int(i)+h < m {
					key = uint64(rank[int(i)+h]) + 1
				}
				tmp = append(tmp, key<<32|uint64(i))
			}
			if len(tmp) <= 16 {
				for x := 1; x < len(tmp); x++ {
					for y := x; y > 0 && tmp[y] < tmp[y-1]; y-- {
						tmp[y], tmp[y-1] = tmp[y-1], tmp[y]
					}
				}
			} else {
				slices.Sort(tmp)
			}
			for x, e := range tmp {
				sa[int(lo)+x] = int32(uint32(e))
			}
			for x := len(tmp) - 1; x >= 0; {
				y := x
				for y > 0 && tmp[y-1]>>32 == tmp[x]>>32 {
					y--
				}
				for z := y; z <= x; z++ {
					rank[uint32(tmp[z])] = lo + int32(x)
				}
				if x > y {
					next = append(next, lo+int32(y), lo+int32(x))
				}
				x = y - 1
			}
		}
		groups, spare = next, groups
	}
	return true
}
