package http_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/internal/testutil"
)

// browser starts Debian's headless chromium; its absence fails the test
// (scripts/test-deps.sh installs it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (Debian package chromium; run scripts/test-deps.sh)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// A hang guard only: the test takes ~10 s, far longer on a loaded machine.
	ctx, cancel3 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

func TestDashboardInChromium(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(2000, 9), Deltas: map[string][]byte{"1.1.0": image(100, 10)}})
	devs := e.devices(4, "web", "1.1.0", nil)
	dep, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Name: "spring-rollout", Release: "1.2.0",
		Target: fleet.Target{Group: "web"}, Phases: []fleet.Phase{{Percent: 50}, {Percent: 50}}, AdvanceAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(b, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// Unauthenticated: the login form; a wrong token is refused.
	do(chromedp.Navigate(e.url+"/ui/deployments"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "nope"),
		chromedp.Click("#login"),
		chromedp.WaitVisible("#login-error"),
		chromedp.SendKeys("#token", adminToken),
		chromedp.Click("#login"),
		chromedp.WaitVisible("#deployments"))
	if body := text("#deployments"); !strings.Contains(body, "spring-rollout") || !strings.Contains(body, "running") {
		t.Fatalf("deployments page: %q", body)
	}
	// The deployment page updates live while devices report.
	do(chromedp.Navigate(e.url+"/ui/deployments/"+dep.ID), chromedp.WaitVisible("#phases"))
	if state, success := text("#state"), text("#phase-0 .success"); state != "running" || success != "0" {
		t.Fatalf("initial: state %q, phase 1 successes %q", state, success)
	}
	// Phase 1's devices update; phase 2 starts but its devices stay put, so
	// the deployment is still running when the pause button is clicked.
	var updated []*device
	for _, d := range devs {
		if d.checkIn(t).Update {
			updated = append(updated, d)
		}
	}
	if len(updated) != 2 {
		t.Fatalf("%d offers in phase 1, want 2", len(updated))
	}
	for _, d := range updated {
		d.update(t, true)
	}
	if _, err := chromedp.Run(b, chromedp.Poll[bool](`document.querySelector("#phase-0 .success").textContent === "2" && document.getElementById("phase").textContent === "2"`,
		chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("page did not update live: %v", err)
	}
	// Pause from the dashboard.
	do(chromedp.Click("#pause"), chromedp.WaitVisible("#resume"))
	if state, d := text("#state"), e.deployment(dep.ID); state != "paused" || d.State != fleet.DeploymentPaused {
		t.Fatalf("after pause click: page %q, server %q", state, d.State)
	}
	// Devices and per-device history.
	do(chromedp.Navigate(e.url + "/ui/devices"))
	devices := text("#devices")
	do(chromedp.Navigate(e.url + "/ui/devices/" + updated[0].id))
	history := text(".history")
	do(chromedp.Navigate(e.url + "/ui/releases"))
	releases := text("#releases")
	if !strings.Contains(devices, updated[0].id) || !strings.Contains(devices, "1.2.0") || !strings.Contains(devices, "CONFIRMED") {
		t.Fatalf("devices page: %q", devices)
	}
	for _, s := range []string{"offered", "downloading", "testing", "success"} {
		if !strings.Contains(history, s) {
			t.Fatalf("history lacks %q: %q", s, history)
		}
	}
	if !strings.Contains(releases, "1.2.0") || !strings.Contains(releases, "from 1.1.0") {
		t.Fatalf("releases page: %q", releases)
	}
}
