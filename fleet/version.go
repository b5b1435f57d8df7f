package fleet

import (
	"strconv"
	"strings"
)

// CompareVersions orders dotted versions such as "1.2.0", "1.10.0+3" or
// "2.0.0-rc1" numerically field by field; it returns -1, 0 or +1. Build
// metadata after "+" is ignored, as in SemVer; a pre-release ("-rc1") sorts
// before the release. Non-numeric fields compare as strings.
func CompareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	a, apre, _ := strings.Cut(a, "-")
	b, bpre, _ := strings.Cut(b, "-")
	af, bf := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(af) || i < len(bf); i++ {
		x, y := "0", "0"
		if i < len(af) {
			x = af[i]
		}
		if i < len(bf) {
			y = bf[i]
		}
		if c := compareField(x, y); c != 0 {
			return c
		}
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	return compareField(apre, bpre)
}

func compareField(x, y string) int {
	xn, xerr := strconv.ParseUint(x, 10, 64)
	yn, yerr := strconv.ParseUint(y, 10, 64)
	if xerr == nil && yerr == nil {
		switch {
		case xn < yn:
			return -1
		case xn > yn:
			return 1
		}
		return 0
	}
	return strings.Compare(x, y)
}
