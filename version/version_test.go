package version

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		str  string
	}{
		{"1.2.0+456", Version{1, 2, 0, 456}, "1.2.0+456"},
		{"1.2.3", Version{1, 2, 3, 0}, "1.2.3"},
		{"1", Version{1, 0, 0, 0}, "1.0.0"},
		{"255.255.65535+4294967295", Version{255, 255, 65535, 4294967295}, "255.255.65535+4294967295"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("Parse(%q) = %v (%s), %v; want %v", tt.in, got, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "1.2.3.4", "256.0.0", "1.-2.0", "1.2.0+", "a.b.c", "1.2.0+1+2", " 1.2.0", "1.0.65536"} {
		if _, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) err = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestCompareAndBinary(t *testing.T) {
	a, b := MustParse("1.1.0+9"), MustParse("1.2.0+1")
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
		t.Fatal("Compare order wrong")
	}
	if MustParse("1.2.0+1").CompareCore(MustParse("1.2.0+7")) != 0 {
		t.Fatal("CompareCore should ignore build")
	}
	enc, _ := b.MarshalBinary()
	want := []byte{1, 2, 0, 0, 1, 0, 0, 0}
	if string(enc) != string(want) {
		t.Fatalf("MarshalBinary = % x, want % x", enc, want)
	}
	var back Version
	if err := back.UnmarshalBinary(enc); err != nil || back != b {
		t.Fatalf("round trip = %v, %v", back, err)
	}
}
