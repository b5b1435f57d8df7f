package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 100-199/*", "bytes 5-4/3", "bytes -1-2/3", "items 0-1/2", "bytes 1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, err := parseContentRange(s)
		if err == nil && (start < 0 || (total >= 0 && total < start)) {
			t.Fatalf("%q accepted as start %d total %d", s, start, total)
		}
	})
}

// FuzzStateFiles feeds arbitrary bytes to the agent's and the Linux slots'
// state file readers: they must fail cleanly or give a valid state.
func FuzzStateFiles(f *testing.F) {
	for _, s := range []string{`{"state":"TESTING","version":"1.2.0","deadline":"2026-11-24T12:00:00Z"}`,
		`{"active":"B","trial":true,"previous":"A","counter":3}`, `{"state":"X"}`, `{"active":"A","pending":"A"}`, `[]`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "s.json")
		os.WriteFile(p, b, 0o600)
		if r, err := (FileStore{Path: p}).Load(); err == nil && !r.State.Valid() {
			t.Fatalf("invalid state %q accepted", r.State)
		}
		ls := &LinuxSlots{A: "a", B: "b", StatePath: p}
		if s, err := ls.load(); err == nil && s.Active != "A" && s.Active != "B" {
			t.Fatalf("active slot %q accepted", s.Active)
		}
	})
}
