package http_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otakit/otakit/fleet"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/internal/testutil"
)

func TestHealthzAndMetrics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	get := func(path string) (int, string) {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	e.publish(testutil.FleetRelease{Version: "1.2.0", Image: image(3000, 1)})
	d := e.devices(2, "m", "1.1.0", nil)
	if _, err := e.admin.CreateDeployment(ctx, fleethttp.NewDeployment{Release: "1.2.0", Target: fleet.Target{Devices: []string{d[0].id}}}); err != nil {
		t.Fatal(err)
	}
	d[0].update(t, true)
	d[1].checkIn(t)
	_, body := get("/metrics")
	for _, want := range []string{
		`ota_checkins_total{answer="offer"} 1`,
		`ota_checkins_total{answer="none"} 1`,
		`ota_status_reports_total{state="CONFIRMED"} 1`,
		`ota_download_bytes_total 3000`,
		`ota_http_requests_total{code="201",route="POST /api/v1/releases"} 1`,
		`ota_http_request_duration_seconds_count{route="POST /api/v1/device/checkin"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
