package main

import (
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	code, stdout, stderr := runOTA(t, "demo")
	if code != 0 || !strings.Contains(stdout, "demo finished") || strings.Count(stdout, "Image was correctly validated") != 3 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
