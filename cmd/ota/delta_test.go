package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func deltaImages(t *testing.T) (dir, old, new string, newBytes []byte) {
	t.Helper()
	rng := rand.New(rand.NewSource(9))
	o := make([]byte, 100000)
	rng.Read(o)
	n := append([]byte(nil), o...)
	for i := 0; i < 50; i++ {
		n[rng.Intn(len(n))]++
	}
	n = append(n, "version 2"...)
	dir = t.TempDir()
	old, new = filepath.Join(dir, "old.bin"), filepath.Join(dir, "new.bin")
	if err := os.WriteFile(old, o, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(new, n, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, old, new, n
}

func runOta(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != want {
		t.Fatalf("ota %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func TestDeltaCreateApplyFormats(t *testing.T) {
	dir, old, new, nb := deltaImages(t)
	for _, args := range [][]string{
		{"--format", "native"},
		{"--format", "native", "--compression", "heatshrink"},
		{"--format", "native", "--compression", "none", "--block-size", "4096"},
		{"--format", "native", "--compression", "zstd", "--layout", "stream"},
		{"--format", "bsdiff"},
		{"--format", "vcdiff"},
	} {
		patch := filepath.Join(dir, "p")
		out := runOta(t, 0, append(append([]string{"delta", "create"}, args...), old, new, patch)...)
		if !strings.Contains(out, "saved:") || !strings.Contains(out, "full size:  100009 bytes") {
			t.Fatalf("%v: output %q", args, out)
		}
		res := filepath.Join(dir, "out")
		runOta(t, 0, "delta", "apply", old, patch, res)
		if b, _ := os.ReadFile(res); !bytes.Equal(b, nb) {
			t.Fatalf("%v: applied result differs", args)
		}
		runOta(t, 0, "delta", "info", patch)
	}
}

func TestDeltaJSONAndConfig(t *testing.T) {
	dir, old, new, nb := deltaImages(t)
	patch := filepath.Join(dir, "app.patch")
	out := runOta(t, 0, "delta", "create", "--json", "--source-version", "1.0.0", "--target-version", "1.1.0", old, new, patch)
	var e struct {
		FromVersion string  `json:"fromVersion"`
		File        string  `json:"file"`
		Size        int64   `json:"size"`
		Savings     float64 `json:"savings"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fi, _ := os.Stat(patch)
	if e.FromVersion != "1.0.0" || e.File != "app.patch" || e.Size != fi.Size() || e.Savings < 90 {
		t.Fatalf("json entry %+v", e)
	}
	if info := runOta(t, 0, "delta", "info", patch); !strings.Contains(info, "target version: 1.1.0") {
		t.Fatalf("info: %s", info)
	}
	cfg := filepath.Join(dir, "delta.json")
	os.WriteFile(cfg, []byte(`{"baseVersion":"1.0.0","baseImage":"old.bin","targetImage":"new.bin","algorithm":"xdelta",
		"output":"cfg.patch","metadata":{"sourceVersion":"1.0.0","targetVersion":"1.1.0"}}`), 0o644)
	runOta(t, 0, "delta", "create", "--config", cfg)
	if info := runOta(t, 0, "delta", "info", filepath.Join(dir, "cfg.patch")); !strings.Contains(info, "vcdiff") {
		t.Fatalf("config algorithm xdelta did not give VCDIFF: %s", info)
	}
	res := filepath.Join(dir, "res")
	runOta(t, 0, "delta", "apply", old, filepath.Join(dir, "cfg.patch"), res)
	if b, _ := os.ReadFile(res); !bytes.Equal(b, nb) {
		t.Fatal("config patch result differs")
	}
	os.WriteFile(cfg, []byte(`{"baseImage":"old.bin","targetImage":"new.bin","output":"x.patch","metadata":{"sourceHash":"sha256:00"}}`), 0o644)
	runOta(t, 1, "delta", "create", "--config", cfg)
}

func TestDeltaApplyMismatchLeavesNoOutput(t *testing.T) {
	dir, old, new, _ := deltaImages(t)
	patch := filepath.Join(dir, "p")
	runOta(t, 0, "delta", "create", old, new, patch)
	res := filepath.Join(dir, "res")
	// The wrong source: verification failure, exit 1, nothing written.
	runOta(t, 1, "delta", "apply", new, patch, res)
	if _, err := os.Stat(res); !os.IsNotExist(err) {
		t.Fatal("OUT exists after a source mismatch")
	}
	// A truncated patch: input error, exit 2, nothing written.
	b, _ := os.ReadFile(patch)
	os.WriteFile(patch, b[:len(b)-3], 0o644)
	runOta(t, 2, "delta", "apply", old, patch, res)
	if _, err := os.Stat(res); !os.IsNotExist(err) {
		t.Fatal("OUT exists after a corrupt patch")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	runOta(t, 2, "delta", "apply", old, old, res)
	runOta(t, 2, "delta", "create", old, new)
}
