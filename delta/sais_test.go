package delta

import (
	"bytes"
	"math/rand"
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
