package agent

import (
	"context"
	"encoding/json"
	"testing"
)

func TestStatusJSONShape(t *testing.T) {
	st := Status{State: Downloading, Progress: 42, Version: "1.2.0",
		Details: Details{BytesReceived: 4200, TotalBytes: 10000, DownloadSpeed: 5120}}
	b, _ := json.Marshal(st)
	want := `{"state":"DOWNLOADING","progress":42,"version":"1.2.0","details":{"bytesReceived":4200,"totalBytes":10000,"downloadSpeed":5120}}`
	if string(b) != want {
		t.Errorf("Status JSON\n got %s\nwant %s", b, want)
	}
}

// Progress reports rise monotonically through the download and carry the
// byte counts.
func TestProgressReports(t *testing.T) {
	d := newLinuxDevice(t)
	var reports []Status
	d.cfg.Progress = func(st Status) { reports = append(reports, st) }
	d.cfg.CheckpointBytes = 4 << 10
	a := d.agent()
	img := d.ti.make("1.2.0", 1, randomBytes(4, 100<<10))
	if err := a.InstallFile(context.Background(), d.file("img", img)); err != nil {
		t.Fatal(err)
	}
	last := -1
	sawPartial := false
	for _, st := range reports {
		if st.Progress < last {
			t.Errorf("progress went back: %d after %d (%s)", st.Progress, last, st.State)
		}
		last = st.Progress
		if st.State == Downloading && st.Details.TotalBytes != int64(len(img)) {
			t.Errorf("totalBytes %d, want %d", st.Details.TotalBytes, len(img))
		}
		if st.State == Downloading && st.Details.BytesReceived > 0 && st.Details.BytesReceived < int64(len(img)) {
			sawPartial = true
		}
	}
	if !sawPartial || last != progressOf(PendingReboot, 0, 0) {
		t.Errorf("reports %+v", reports)
	}
}
