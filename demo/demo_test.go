package demo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otakit/otakit/agent"
	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
)

func TestFirmware(t *testing.T) {
	a, b := Firmware(From), Firmware(To)
	if !bytes.Equal(a, Firmware(From)) {
		t.Fatal("Firmware is not deterministic")
	}
	if bytes.Equal(a, b) {
		t.Fatal("versions are identical")
	}
	for _, fw := range [][]byte{a, b} {
		// Fits slot A of the preset (240 KiB) with header and trailer.
		if len(fw) < 64<<10 || len(fw) > 200<<10 {
			t.Errorf("size %d", len(fw))
		}
		le := binary.LittleEndian
		if sp := le.Uint32(fw); sp != 0x20010000 {
			t.Errorf("initial stack pointer %#x", sp)
		}
		reset := le.Uint32(fw[4:])
		if reset&1 != 1 || reset < FirmwareBase || reset >= FirmwareBase+uint32(len(fw)) {
			t.Errorf("reset vector %#x outside the image or not Thumb", reset)
		}
		// The handler starts with push {r4-r7, lr}.
		if op := le.Uint16(fw[reset&^1-FirmwareBase:]); op != 0xB5F0 {
			t.Errorf("reset handler starts with %#04x", op)
		}
	}
	if !bytes.Contains(b, []byte("otakit-demo "+To+"\x00")) {
		t.Error("no version string")
	}
}

// The failures are spread over the phases in proportion, evenly within a
// phase, and add up to round(rate × devices).
func TestPlan(t *testing.T) {
	execs := func(sizes ...int) []*fleet.Execution {
		var out []*fleet.Execution
		n := 0
		for p, size := range sizes {
			for range size {
				out = append(out, &fleet.Execution{DeviceID: deviceID(n), Phase: p})
				n++
			}
		}
		return out
	}
	for _, tc := range []struct {
		sizes []int
		rate  float64
		want  []string
	}{
		{[]int{4, 16}, 0.1, []string{"dev-12", "dev-20"}},
		{[]int{4, 16}, 0, nil},
		{[]int{4, 16}, 0.25, []string{"dev-04", "dev-08", "dev-12", "dev-16", "dev-20"}},
		{[]int{1, 4}, 1, []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-05"}},
		{[]int{1, 4}, 0.4, []string{"dev-03", "dev-05"}},
	} {
		fl := &simFleet{planned: make(chan struct{}), failing: map[string]bool{}}
		got := fl.plan(execs(tc.sizes...), tc.rate)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("phases %v rate %g: %v, want %v", tc.sizes, tc.rate, got, tc.want)
		}
		if len(fl.failing) != len(tc.want) {
			t.Errorf("failing %v", fl.failing)
		}
	}
}

func TestRunNeedsEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if _, err := Run(context.Background(), Options{Dir: dir}); !errors.Is(err, ErrOptions) {
		t.Fatalf("Run in a used folder: %v", err)
	}
	if _, err := Run(context.Background(), Options{Devices: -3}); !errors.Is(err, ErrOptions) {
		t.Fatalf("Run with -3 devices: %v", err)
	}
}

// TestRun runs the demo with five devices, two of which fail their health
// check, and checks the outcome from the devices' side (the summary) and
// from the server's (its admin API, while the server is kept up).
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, status bytes.Buffer
	var served *Summary
	sum, err := Run(ctx, Options{Devices: 5, FailRate: 0.4, Dir: t.TempDir(), Keep: true, Out: &out, Status: &status,
		ConfirmTimeout: time.Second,
		Ready: func(s *Summary) {
			defer cancel() // --keep ends here
			served = s
			checkServer(t, s)
		}})
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), status.String())
	}
	if served != sum {
		t.Fatal("Ready was not called with the summary")
	}
	if sum.Deployment.State != fleet.DeploymentCompleted {
		t.Errorf("deployment %s (%s)", sum.Deployment.State, sum.Deployment.Reason)
	}
	if n := sum.Count(To, agent.Confirmed); n != 3 {
		t.Errorf("%d devices confirmed %s, want 3", n, To)
	}
	if n := sum.Count(From, agent.Failed); n != 2 {
		t.Errorf("%d devices rolled back to %s, want 2", n, From)
	}
	for _, d := range sum.Devices {
		if !d.Delta || d.Bytes != sum.DeltaPackage {
			t.Errorf("%s downloaded %s (%d bytes), want the %d-byte delta", d.ID, d.Artifact, d.Bytes, sum.DeltaPackage)
		}
		if d.HealthFails != (d.Running == From) {
			t.Errorf("%s: health check fails %v, runs %s", d.ID, d.HealthFails, d.Running)
		}
		if d.HealthFails && !strings.Contains(d.Error, "not confirmed") {
			t.Errorf("%s: error %q", d.ID, d.Error)
		}
	}
	if deltas, full := sum.Downloads(); deltas != 5 || full != 0 {
		t.Errorf("downloads: %d deltas, %d full", deltas, full)
	}
	if sum.BytesServed != 5*sum.DeltaPackage || sum.Savings() < 0.8 {
		t.Errorf("served %d bytes, savings %.2f", sum.BytesServed, sum.Savings())
	}
	for _, want := range []string{
		"devices: 3 of 5 run 1.2.0, confirmed; 2 rolled back to 1.1.0 after a failed health check",
		"downloads: 5 deltas, 0 full images",
		"dashboard: http://127.0.0.1:",
		"phase 1 (20%): 1 devices: 1 updated",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(status.String(), "rollout: completed") {
		t.Errorf("progress lines:\n%s", status.String())
	}
}

// checkServer asks the kept-up server for its view of the rollout.
func checkServer(t *testing.T, s *Summary) {
	t.Helper()
	ctx := context.Background()
	c := fleethttp.NewClient(s.URL, s.AdminToken, nil)
	d, err := c.Deployment(ctx, s.Deployment.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := d.Stats
	if st.Total != 5 || st.States[fleet.ExecSuccess] != 3 || st.States[fleet.ExecFailure] != 2 || len(st.Phases) != 2 {
		t.Errorf("server stats %+v", st)
	}
	for _, dev := range s.Devices {
		es, err := c.DeviceExecutions(ctx, dev.ID)
		if err != nil || len(es) != 1 {
			t.Fatalf("%s: executions %v, %v", dev.ID, es, err)
		}
		want := fleet.ExecSuccess
		if dev.HealthFails {
			want = fleet.ExecFailure
		}
		if e := es[0]; e.State != want || e.Artifact != dev.Artifact || e.Phase != dev.Phase {
			t.Errorf("%s: server has %s %s phase %d, device %s phase %d", dev.ID, e.State, e.Artifact, e.Phase, dev.Artifact, dev.Phase)
		}
	}
	// The devices check in every second: the server learns their versions.
	deadline := time.Now().Add(10 * time.Second)
	for {
		devs, err := c.Devices(ctx, Group, "")
		if err != nil {
			t.Fatal(err)
		}
		var mismatch []string
		for _, sd := range devs {
			for _, dev := range s.Devices {
				if sd.ID == dev.ID && sd.CurrentVersion != dev.Running {
					mismatch = append(mismatch, fmt.Sprintf("%s: server %s, device %s", sd.ID, sd.CurrentVersion, dev.Running))
				}
			}
		}
		if len(devs) == 5 && len(mismatch) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server's device versions: %v (%d devices)", mismatch, len(devs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
