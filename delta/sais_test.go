package delta

import (
	"bytes"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

func naiveSA(b []byte) []int32 {
	sa := make([]int32, len(b))
	for i := range sa {
		sa[i] = int32(i)
	}
	sort.Slice(sa, func(i, j int) bool { return bytes.Compare(b[sa[i]:], b[sa[j]:]) < 0 })
	return sa
}

func TestSuffixArray(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cases := [][]byte{nil, {0}, {5, 5}, []byte("banana"), []byte("mississippi"), bytes.Repeat([]byte{0xff}, 1000),
		bytes.Repeat([]byte("abcab"), 300)}
	for i := 0; i < 300; i++ {
		b := make([]byte, rng.Intn(400))
		alpha := 1 + rng.Intn(4)
		if i%5 == 0 {
			alpha = 256
		}
		for j := range b {
			b[j] = byte(rng.Intn(alpha))
		}
		cases = append(cases, b)
	}
	for _, c := range cases {
		got, want := suffixArray(c), naiveSA(c)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("suffixArray(%x)[%d] = %d, want %d", c, i, got[i], want[i])
			}
		}
	}
}

func naiveSA32(s []int32) []int32 {
	sa := make([]int32, len(s))
	for i := range sa {
		sa[i] = int32(i)
	}
	sort.Slice(sa, func(i, j int) bool { return slices.Compare(s[sa[i]:], s[sa[j]:]) < 0 })
	return sa
}

// TestSortByDoubling checks the doubling sort of reduced strings, both when
// it finishes and when periodic input makes it give up to SA-IS.
func TestSortByDoubling(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	gaveUp, done := 0, 0
	for i := 0; i < 400; i++ {
		n := 1 + rng.Intn(300)
		k := 1 + rng.Intn(n)
		s := make([]int32, n)
		period := 0
		if i%3 == 0 {
			period = 1 + rng.Intn(4)
		}
		for j := range s {
			if period > 0 && j >= period {
				s[j] = s[j-period]
			} else {
				s[j] = int32(rng.Intn(k))
			}
		}
		sa := make([]int32, n)
		// Scratch of any size, holding garbage as the caller's does.
		free := make([]int32, rng.Intn(2*n+k+2))
		for j := range free {
			free[j] = rng.Int31()
		}
		if !sortByDoubling(s, sa, k, free) {
			gaveUp++
			continue
		}
		done++
		if want := naiveSA32(s); !slices.Equal(sa, want) {
			t.Fatalf("sortByDoubling(%v) = %v, want %v", s, sa, want)
		}
	}
	if gaveUp == 0 || done == 0 {
		t.Errorf("gave up %d times, finished %d: want both paths exercised", gaveUp, done)
	}
}
