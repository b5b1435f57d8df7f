package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testManifests is a stand-in manifest format for the Linux-slot tests:
// a JSON Release followed by an Ed25519 signature.
type testManifests struct{ ti *testImages }

func (tm testManifests) sign(rel Release) []byte {
	b, _ := json.Marshal(rel)
	return append(b, ed25519.Sign(tm.ti.priv, b)...)
}

func (tm testManifests) VerifyManifest(raw []byte, dev Device, last uint64) (*Release, error) {
	if len(raw) < ed25519.SignatureSize {
		return nil, errors.New("too short")
	}
	body, sig := raw[:len(raw)-ed25519.SignatureSize], raw[len(raw)-ed25519.SignatureSize:]
	if !ed25519.Verify(tm.ti.pub, body, sig) {
		return nil, errors.New("bad manifest signature")
	}
	var rel Release
	if err := json.Unmarshal(body, &rel); err != nil {
		return nil, err
	}
	if rel.Sequence < last {
		return nil, fmt.Errorf("sequence %d is older than %d", rel.Sequence, last)
	}
	return &rel, nil
}

// linuxDevice is a gateway with two slot files, running 1.1.0.
type linuxDevice struct {
	t      *testing.T
	dir    string
	slots  *LinuxSlots
	hook   string
	ti     *testImages
	clock  *ManualClock
	states []State
	cfg    Config
}

func newLinuxDevice(t *testing.T) *linuxDevice {
	ti := newTestImages()
	ls, hook := newLinuxSlots(t, ti.make("1.1.0", 1, []byte("firmware 1.1.0")))
	d := &linuxDevice{t: t, dir: t.TempDir(), slots: ls, hook: hook, ti: ti,
		clock: NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))}
	d.cfg = Config{Slots: ls, Images: ti, Manifests: testManifests{ti},
		Store: FileStore{Path: filepath.Join(d.dir, "state.json")}, WorkDir: filepath.Join(d.dir, "work"),
		Clock: d.clock, ConfirmTimeout: time.Minute, Logger: quiet,
		Progress: func(st Status) {
			if n := len(d.states); n == 0 || d.states[n-1] != st.State {
				d.states = append(d.states, st.State)
			}
		}}
	return d
}

// agent starts the agent process, as after a boot.
func (d *linuxDevice) agent() *Agent {
	a, err := New(d.cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		d.t.Fatal(err)
	}
	return a
}

func (d *linuxDevice) running(a *Agent) string {
	info, err := a.Running()
	if err != nil {
		d.t.Fatal(err)
	}
	return info.Version
}

func (d *linuxDevice) file(name string, b []byte) string {
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		d.t.Fatal(err)
	}
	return p
}

func wantState(t *testing.T, a *Agent, want State) {
	t.Helper()
	if got := a.State(); got != want {
		t.Fatalf("state %s, want %s (error: %s)", got, want, a.Record().Error)
	}
}

func TestLinuxLifecycleConfirm(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	img := d.file("app-1.2.0.img", d.ti.make("1.2.0", 1, []byte("firmware 1.2.0")))
	if err := a.InstallFile(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	wantState(t, a, PendingReboot)
	if v := d.running(a); v != "1.1.0" {
		t.Fatalf("running %s before the reboot", v)
	}
	// The reset is a new process: a fresh agent reads the persisted state.
	if err := d.slots.Reset(); err != nil {
		t.Fatal(err)
	}
	a = d.agent()
	wantState(t, a, Testing)
	if v := d.running(a); v != "1.2.0" {
		t.Fatalf("running %s on trial", v)
	}
	d.clock.Advance(30 * time.Second)
	if err := a.Confirm(time.Minute); err != nil {
		t.Fatal(err)
	}
	wantState(t, a, Confirmed)
	// Confirmed survives resets.
	if err := a.Reboot(); err != nil {
		t.Fatal(err)
	}
	wantState(t, a, Confirmed)
	if v := d.running(a); v != "1.2.0" {
		t.Fatalf("running %s after confirm and reset", v)
	}
	want := []State{Downloading, Verifying, Applying, PendingReboot, Testing, Confirmed}
	if fmt.Sprint(d.states) != fmt.Sprint(want) {
		t.Errorf("states %v, want %v", d.states, want)
	}
	// Every transition was persisted: the store holds the last one.
	if r, _ := d.cfg.Store.Load(); r.State != Confirmed {
		t.Errorf("stored state %s", r.State)
	}
}

func TestLinuxLifecycleRevertsWithoutConfirm(t *testing.T) {
	for _, how := range []string{"deadline", "late confirm", "rollback", "reset"} {
		t.Run(how, func(t *testing.T) {
			d := newLinuxDevice(t)
			a := d.agent()
			img := d.file("app-1.2.0.img", d.ti.make("1.2.0", 1, []byte("firmware 1.2.0")))
			if err := a.InstallFile(context.Background(), img); err != nil {
				t.Fatal(err)
			}
			if err := a.Reboot(); err != nil {
				t.Fatal(err)
			}
			wantState(t, a, Testing)
			switch how {
			case "deadline":
				d.clock.Advance(59 * time.Second)
				if done, _ := a.CheckDeadline(); done {
					t.Fatal("reverted before the deadline")
				}
				d.clock.Advance(time.Second)
				if done, err := a.CheckDeadline(); !done || err != nil {
					t.Fatalf("CheckDeadline = %v, %v", done, err)
				}
			case "late confirm":
				d.clock.Advance(11 * time.Second)
				if err := a.Confirm(10 * time.Second); !errors.Is(err, ErrConfirmTimeout) {
					t.Fatalf("late Confirm = %v", err)
				}
			case "rollback":
				if err := a.Rollback(); err != nil {
					t.Fatal(err)
				}
			case "reset":
				// Power lost before the confirmation: the boot switch reverts
				// and the agent learns it at start-up.
				d.slots.Reset()
				a = d.agent()
			}
			wantState(t, a, Failed)
			if v := d.running(a); v != "1.1.0" {
				t.Fatalf("running %s after revert", v)
			}
			if err := a.Confirm(0); !errors.Is(err, ErrNotTesting) {
				t.Errorf("Confirm after revert = %v", err)
			}
		})
	}
}

func TestWatchDeadlineRevertsByItself(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	img := d.file("app-1.2.0.img", d.ti.make("1.2.0", 1, []byte("firmware 1.2.0")))
	if err := a.InstallFile(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	a.Reboot()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.WatchDeadline(ctx) }()
	for a.State() == Testing {
		d.clock.Advance(10 * time.Second)
		time.Sleep(time.Millisecond) // let the watcher take its timer
	}
	cancel()
	<-done
	wantState(t, a, Failed)
	if v := d.running(a); v != "1.1.0" {
		t.Fatalf("running %s", v)
	}
	if !d.clock.Now().After(a.Record().Deadline.Add(-time.Nanosecond)) {
		t.Errorf("reverted at %s, before the deadline %s", d.clock.Now(), a.Record().Deadline)
	}
}

func TestLinuxRefusals(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	bad := d.ti.make("1.2.0", 1, []byte("firmware 1.2.0"))
	bad[12] ^= 1
	// Downgrade: the device's counter is 3, the image says 2.
	d.slots.SetCounter(3)
	for name, tc := range map[string]struct {
		img  []byte
		want error
	}{
		"bad signature": {bad, ErrImage},
		"downgrade":     {d.ti.make("1.2.0", 2, []byte("firmware 1.2.0")), ErrDowngrade},
	} {
		if err := a.InstallFile(context.Background(), d.file(name, tc.img)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		wantState(t, a, Failed)
		if sec := readSlot(t, d.slots.Secondary); len(sec) != 0 {
			t.Errorf("%s: %d bytes were written to the secondary slot", name, len(sec))
		}
		if bi, _ := d.slots.Boot(); bi.Pending {
			t.Errorf("%s: the image was marked for boot", name)
		}
		a.Reboot()
		if v := d.running(a); v != "1.1.0" {
			t.Errorf("%s: running %s", name, v)
		}
	}
}

// An agent reset in APPLYING redoes the verification and the apply.
func TestResumeInterruptedApply(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	img := d.ti.make("1.2.0", 1, []byte("firmware 1.2.0"))
	os.MkdirAll(d.cfg.WorkDir, 0o700)
	os.WriteFile(a.partialPath(), img, 0o600)
	sum := sha256.Sum256(img)
	for _, s := range []State{Downloading, Verifying, Applying} {
		if err := a.transition(s, func(r *Record) {
			r.Version = "1.2.0"
			r.Artifact = &Artifact{Name: "x", Size: int64(len(img)), SHA256: sum[:], Type: TypeFull}
		}); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := d.slots.WriteSecondary()
	w.Write(img[:10]) // torn write
	w.Close()
	a = d.agent()
	wantState(t, a, PendingReboot)
	a.Reboot()
	wantState(t, a, Testing)
}

func TestIllegalCalls(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	if err := a.Confirm(0); !errors.Is(err, ErrNotTesting) {
		t.Errorf("Confirm in IDLE = %v", err)
	}
	if err := a.Rollback(); !errors.Is(err, ErrNothingToRevert) {
		t.Errorf("Rollback in IDLE = %v", err)
	}
	if err := a.transition(Testing, nil); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("IDLE → TESTING = %v", err)
	}
	if r, _ := d.cfg.Store.Load(); r.State != Idle {
		t.Errorf("an illegal transition was persisted: %s", r.State)
	}
}

// A gateway checks in with a plain HTTP file server that drops connections,
// downloads with resume, and installs the update.
func TestLinuxCheckInOverFlakyHTTP(t *testing.T) {
	d := newLinuxDevice(t)
	img := d.ti.make("1.2.0", 1, randomBytes(3, 200<<10))
	sum := sha256.Sum256(img)
	tm := testManifests{d.ti}
	man := tm.sign(Release{Version: "1.2.0", Sequence: 7, Artifacts: []Artifact{
		{Name: "app-1.2.0.img", Type: TypeFull, Size: int64(len(img)), SHA256: sum[:]},
	}})
	cs := newCuttingServer(t, 0, map[string][]byte{"manifest.json": man})
	cs.set("app-1.2.0.img", img)
	d.cfg.Server = &HTTPServer{ManifestURL: cs.srv.URL + "/manifest.json"}
	a := d.agent()
	cs.mu.Lock()
	cs.cuts = 5
	cs.mu.Unlock()
	// The manifest request is cut too, first: check-in fails and is retried.
	var ok bool
	var err error
	for range 6 {
		if ok, err = a.CheckIn(context.Background()); err == nil {
			break
		}
	}
	if !ok || err != nil {
		t.Fatalf("CheckIn = %v, %v", ok, err)
	}
	wantState(t, a, PendingReboot)
	if a.BytesReceived() >= 2*int64(len(img)) {
		t.Errorf("received %d bytes for a %d-byte image", a.BytesReceived(), len(img))
	}
	a.Reboot()
	wantState(t, a, Testing)
	if err := a.Confirm(0); err != nil {
		t.Fatal(err)
	}
	wantState(t, a, Confirmed)
	// Checking in again finds nothing new.
	if ok, err := a.CheckIn(context.Background()); ok || err != nil {
		t.Errorf("second CheckIn = %v, %v", ok, err)
	}
	if a.Record().Sequence != 7 {
		t.Errorf("sequence %d not kept", a.Record().Sequence)
	}
}

// The device loop installs, reboots and confirms a healthy update, and
// lets an unhealthy one revert at its deadline.
func TestLoop(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprint("healthy=", healthy), func(t *testing.T) {
			k := newRealKit(t)
			d := k.linuxDevice(k.sign("1.1.0", 1, k.imgKey))
			man := k.publish("1.2.0", 2, k.sign("1.2.0", 2, k.imgKey), nil)
			cs := k.fileServer(0)
			cfg := d.cfg
			cfg.Server = d.server(cs, man)
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l := &Loop{Agent: a, Healthy: func() bool { return healthy }}
			done := make(chan error, 1)
			go func() { done <- l.Run(context.Background(), true) }()
			for {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					want, ver := Confirmed, "1.2.0"
					if !healthy {
						want, ver = Failed, "1.1.0"
					}
					wantState(t, a, want)
					wantRunning(t, a, ver)
					return
				default:
					d.clock.Advance(10 * time.Second) // time passes only when the test says
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
}

// A refused manifest is not an update attempt: the state stays and
// nothing is persisted.
func TestRefusedManifestChangesNothing(t *testing.T) {
	d := newLinuxDevice(t)
	a := d.agent()
	saves := 0
	tm := testManifests{d.ti}
	good := tm.sign(Release{Version: "1.2.0", Sequence: 3})
	bad := append([]byte(nil), good...)
	bad[5] ^= 1
	for name, raw := range map[string][]byte{"tampered": bad, "garbage": []byte("{"), "empty": nil} {
		before, _ := d.cfg.Store.Load()
		if ok, err := a.Install(context.Background(), &Offer{Manifest: raw}); ok || !errors.Is(err, ErrManifest) {
			t.Errorf("%s: Install = %v, %v", name, ok, err)
		}
		after, _ := d.cfg.Store.Load()
		if fmt.Sprint(before) != fmt.Sprint(after) {
			saves++
		}
		wantState(t, a, Idle)
	}
	if saves != 0 {
		t.Errorf("%d refused manifests changed the stored record", saves)
	}
}
