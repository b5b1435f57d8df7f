package main

import (
	"strings"
	"testing"
)

// TestDemo runs ota demo with a small fleet: every device gets the delta,
// the one whose health check fails rolls back, and the summary says so.
func TestDemo(t *testing.T) {
	code, stdout, stderr := runOTA(t, "demo", "--devices", "4", "--fail-rate", "0.25", "--dir", t.TempDir())
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"delta from 1.1.0: app-1.1.0-to-1.2.0.update",
		"4 devices provisioned with their own tokens",
		"the health check will fail on 1 of them",
		"deployment dep-",
		"completed (all phases finished)",
		"devices: 3 of 4 run 1.2.0, confirmed; 1 rolled back to 1.1.0 after a failed health check",
		"downloads: 4 deltas, 0 full images",
		"dashboard: http://127.0.0.1:",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "rollout: completed") || !strings.Contains(stderr, "release 1.2.0: [3/6] delta from 1.1.0") {
		t.Errorf("progress lines:\n%s", stderr)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", stdout)
	}
}

func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--devices", "0"},
		{"demo", "--fail-rate", "1.5"},
		{"demo", "--addr", "no-such-host:x"},
	} {
		if code, _, stderr := runOTA(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}
