package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
)

// RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
func TestFormatNumberRFC8785(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		got, err := formatNumber(math.Float64frombits(tt.bits))
		if err != nil || got != tt.want {
			t.Errorf("%016x: got %q, %v; want %q", tt.bits, got, err, tt.want)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := formatNumber(bad); err == nil {
			t.Errorf("%v formatted", bad)
		}
	}
}

// The examples of RFC 8785 §3.2.2 and §3.2.3.
func TestCanonicalizeRFC8785(t *testing.T) {
	in := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	if got, err := Canonicalize([]byte(in)); err != nil || string(got) != want {
		t.Errorf("§3.2.2 example:\n got %s (%v)\nwant %s", got, err, want)
	}
	sortIn := `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`
	got, err := Canonicalize([]byte(sortIn))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, part := range strings.Split(string(got), `","`) {
		_, v, _ := strings.Cut(part, `":"`)
		order = append(order, strings.Trim(v, `"}`))
	}
	wantOrder := []string{"Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis", "Euro Sign", "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh"}
	if fmt.Sprint(order) != fmt.Sprint(wantOrder) {
		t.Errorf("§3.2.3 order:\n got %v\nwant %v", order, wantOrder)
	}
}

func TestParseLimits(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"depth 32", deep(32), true},
		{"depth 33", deep(33), false},
		{"object depth 33", strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), false},
		{"duplicate key", `{"a":1,"a":2}`, false},
		{"duplicate via escape", `{"a":1,"\u0061":2}`, false},
		{"trailing data", `{} {}`, false},
		{"bad utf8", "\"\xff\"", false},
		{"lone high surrogate", `"\ud83d"`, false},
		{"lone low surrogate", `"\ude00"`, false},
		{"leading zero", `01`, false},
		{"bare minus", `-`, false},
		{"huge number", `1e999`, false},
		{"control char", "\"a\x01\"", false},
		{"trailing comma", `[1,]`, false},
		{"empty", ``, false},
		{"ok", ` {"a": [1, 2.5, "x", true, null, {}]} `, true},
	}
	for _, tt := range tests {
		_, err := Canonicalize([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if err != nil && !errors.Is(err, ErrJSON) {
			t.Errorf("%s: %v is not ErrJSON", tt.name, err)
		}
	}
	big := `"` + strings.Repeat("a", MaxSize) + `"`
	if _, err := Canonicalize([]byte(big)); !errors.Is(err, ErrJSON) {
		t.Errorf("oversized input: %v", err)
	}
}

// randomJSON builds a random document with awkward keys, strings and numbers.
func randomJSON(rng *rand.Rand, depth int) any {
	strs := []string{"", "a", "é", "€", "\U0001F600", "\ufb33", "\u0080", "\r\n\t", "\x01\x1f", `"\/`, "\u2028", "z"}
	switch k := rng.Intn(7); {
	case depth > 3 || k == 0:
		switch rng.Intn(4) {
		case 0:
			return rng.NormFloat64() * math.Pow(10, float64(rng.Intn(60)-30))
		case 1:
			return float64(rng.Int63n(1 << 53))
		case 2:
			return strs[rng.Intn(len(strs))] + strs[rng.Intn(len(strs))]
		default:
			return rng.Intn(2) == 0
		}
	case k < 4:
		m := map[string]any{}
		for i := rng.Intn(6); i > 0; i-- {
			m[strs[rng.Intn(len(strs))]+strs[rng.Intn(len(strs))]] = randomJSON(rng, depth+1)
		}
		return m
	default:
		var a []any
		for i := rng.Intn(5); i > 0; i-- {
			a = append(a, randomJSON(rng, depth+1))
		}
		return a
	}
}

// TestCanonicalizeNode compares with ECMAScript itself: JSON.stringify with
// keys sorted by JavaScript's (UTF-16 code unit) order is RFC 8785 for
// documents without lone surrogates.
func TestCanonicalizeNode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not installed (make deps installs nodejs): %v", err)
	}
	rng := rand.New(rand.NewSource(8785))
	var docs []string
	for i := 0; i < 200; i++ {
		b, err := json.Marshal(randomJSON(rng, 0))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	input, _ := json.Marshal(docs)
	script := `
const docs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const canon = v => Array.isArray(v) ? '[' + v.map(canon).join(',') + ']'
  : (v !== null && typeof v === 'object')
    ? '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}'
    : JSON.stringify(v);
process.stdout.write(JSON.stringify(docs.map(d => canon(JSON.parse(d)))));`
	cmd := exec.Command("node", "-e", script)
	cmd.Stdin = strings.NewReader(string(input))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, d := range docs {
		got, err := Canonicalize([]byte(d))
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if string(got) != want[i] {
			t.Fatalf("doc %d differs from ECMAScript:\n in   %s\n got  %s\n node %s", i, d, got, want[i])
		}
	}
}
