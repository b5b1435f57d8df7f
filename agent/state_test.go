package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestTransitionTable(t *testing.T) {
	legal := map[[2]State]bool{}
	for _, p := range [][2]State{
		{Idle, Downloading}, {Idle, Failed},
		{Downloading, Downloading}, {Downloading, Verifying}, {Downloading, Failed},
		{Verifying, Verifying}, {Verifying, Applying}, {Verifying, Failed},
		{Applying, PendingReboot}, {Applying, Failed}, {Applying, Verifying},
		{PendingReboot, Testing}, {PendingReboot, Reverting}, {PendingReboot, Failed},
		{Testing, Confirmed}, {Testing, Reverting},
		{Confirmed, Idle}, {Confirmed, Downloading}, {Confirmed, Failed},
		{Reverting, Failed},
		{Failed, Idle}, {Failed, Downloading}, {Failed, Failed},
	} {
		legal[p] = true
	}
	for _, from := range States {
		for _, to := range States {
			if got, want := CanTransition(from, to), legal[[2]State{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	// The happy path and the revert path exist end to end.
	for _, path := range [][]State{
		{Idle, Downloading, Verifying, Applying, PendingReboot, Testing, Confirmed, Idle},
		{Idle, Downloading, Verifying, Applying, PendingReboot, Testing, Reverting, Failed, Idle},
	} {
		for i := 1; i < len(path); i++ {
			if !CanTransition(path[i-1], path[i]) {
				t.Errorf("path step %s → %s is illegal", path[i-1], path[i])
			}
		}
	}
	if CanTransition("BOGUS", Idle) || State("BOGUS").Valid() {
		t.Error("an unknown state has transitions")
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s := FileStore{Path: filepath.Join(dir, "state.json")}
	r, err := s.Load()
	if err != nil || r.State != Idle {
		t.Fatalf("fresh Load = %+v, %v; want IDLE", r, err)
	}
	want := Record{State: Downloading, Version: "1.2.0", Offset: 4096, ETag: `"abc"`,
		Artifact: &Artifact{Name: "app.bin", Type: TypeFull, Size: 9000, SHA256: []byte{1, 2, 3}}}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.State != want.State || got.Offset != want.Offset || got.ETag != want.ETag || got.Artifact.Name != "app.bin" || string(got.Artifact.SHA256) != "\x01\x02\x03" {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	for name, body := range map[string]string{
		"truncated": `{"state": "DOWNL`,
		"unknown":   `{"state": "EXPLODED"}`,
		"empty":     ``,
	} {
		os.WriteFile(s.Path, []byte(body), 0o600)
		if _, err := s.Load(); err == nil {
			t.Errorf("%s state file: no error", name)
		} else if name == "unknown" && !errors.Is(err, ErrUnknownState) {
			t.Errorf("%s state file: %v, want ErrUnknownState", name, err)
		}
	}
}
