package delta

// This file builds suffix arrays with SA-IS (Nong, Zhang and Chan, 2009):
// linear time whatever the input, so 0xFF-padded or highly repetitive images
// cost no more than random ones. Entries are int32; the extra memory besides
// the array itself is one type flag per symbol and one bucket table per level.
// The reduced string is first tried with bounded prefix doubling, which is
// faster when its names are almost all distinct (the common case).

import (
	"cmp"
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
func sais[T symbol](s []T, sa []int32, k int) {
	n := len(s)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}
	// S-type (true) or L-type (false) per position; s[n-1] is L-type
	// because the virtual sentinel after it is smaller.
	t := make([]bool, n)
	// Branch-free: on firmware the comparisons are close to random, and
	// mispredicted branches cost more than the arithmetic.
	var cur uint8
	for i := n - 2; i >= 0; i-- {
		var lt, eq uint8
		if s[i] < s[i+1] {
			lt = 1
		}
		if s[i] == s[i+1] {
			eq = 1
		}
		cur = lt | eq&cur
		t[i] = cur != 0
	}
	isLMS := func(i int) bool { return i > 0 && t[i] && !t[i-1] }

	bkt := make([]int32, k)
	cnt := make([]int32, k)
	for _, c := range s {
		cnt[c]++
	}
	ends := func() {
		var sum int32
		for i := range cnt {
			sum += cnt[i]
			bkt[i] = sum
		}
	}
	starts := func() {
		var sum int32
		for i := range cnt {
			bkt[i] = sum
			sum += cnt[i]
		}
	}
	induce := func() {
		starts()
		sa[bkt[s[n-1]]] = int32(n - 1)
		bkt[s[n-1]]++
		// Only L-type suffixes and LMS seeds are in sa during this pass, so
		// j = p-1 is L-type exactly when s[j] >= s[p]: a cheaper test than
		// a random read of t.
		for i := 0; i < n; i++ {
			p := sa[i]
			if p > 0 {
				if c := s[p-1]; c >= s[p] {
					sa[bkt[c]] = p - 1
					bkt[c]++
				}
			}
		}
		ends()
		for i := n - 1; i >= 0; i-- {
			p := sa[i]
			if p > 0 {
				// p-1 is S-type if it is smaller than p, L-type if larger;
				// only a tie needs the type array.
				if c, d := s[p-1], s[p]; c < d || c == d && t[p-1] {
					bkt[c]--
					sa[bkt[c]] = p - 1
				}
			}
		}
	}

	// Step 1: sort the LMS substrings by induction.
	for i := range sa {
		sa[i] = -1
	}
	ends()
	for i := 1; i < n; i++ {
		if isLMS(i) {
			bkt[s[i]]--
			sa[bkt[s[i]]] = int32(i)
		}
	}
	induce()

	// Step 2: name the sorted LMS substrings; equal substrings share a name.
	m := 0
	for i := 0; i < n; i++ {
		if isLMS(int(sa[i])) {
			sa[m] = sa[i]
			m++
		}
	}
	for i := m; i < n; i++ {
		sa[i] = -1
	}
	name, prev := 0, -1
	for i := 0; i < m; i++ {
		pos := int(sa[i])
		diff := false
		for d := 0; ; d++ {
			if prev < 0 || pos+d == n || prev+d == n || s[pos+d] != s[prev+d] || t[pos+d] != t[prev+d] {
				diff = true
				break
			}
			if d > 0 && (isLMS(pos+d) || isLMS(prev+d)) {
				break
			}
		}
		if diff {
			name++
			prev = pos
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
	j := 0
	for i := 1; i < n; i++ {
		if isLMS(i) {
			s1[j] = int32(i)
			j++
		}
	}
	for i := 0; i < m; i++ {
		sa1[i] = s1[sa1[i]]
	}

	// Step 4: induce the full order from the sorted LMS suffixes.
	for i := m; i < n; i++ {
		sa[i] = -1
	}
	ends()
	for i := m - 1; i >= 0; i-- {
		p := sa[i]
		sa[i] = -1
		bkt[s[p]]--
		sa[bkt[s[p]]] = p
	}
	induce()
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
	type entry struct{ key, i int32 }
	var tmp []entry
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
				key := int32(-1) // the suffix ends first
				if int(i)+h < m {
					key = rank[int(i)+h]
				}
				tmp = append(tmp, entry{key, i})
			}
			if len(tmp) <= 16 {
				for x := 1; x < len(tmp); x++ {
					for y := x; y > 0 && tmp[y].key < tmp[y-1].key; y-- {
						tmp[y], tmp[y-1] = tmp[y-1], tmp[y]
					}
				}
			} else {
				slices.SortFunc(tmp, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
			}
			for x, e := range tmp {
				sa[int(lo)+x] = e.i
			}
			for x := len(tmp) - 1; x >= 0; {
				y := x
				for y > 0 && tmp[y-1].key == tmp[x].key {
					y--
				}
				for z := y; z <= x; z++ {
					rank[tmp[z].i] = lo + int32(x)
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
