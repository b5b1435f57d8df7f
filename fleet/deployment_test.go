package fleet

import (
	"fmt"
	"testing"
)

func TestAssignPhases(t *testing.T) {
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("d%d", i))
	}
	for _, c := range []struct {
		phases []Phase
		want   []int
	}{
		{nil, []int{10}},
		{[]Phase{{Percent: 10}, {Percent: 40}, {Percent: 50}}, []int{1, 4, 5}},
		{[]Phase{{Count: 3}, {Percent: 100}}, []int{3, 7}},
		{[]Phase{{Percent: 1}, {Percent: 1}}, []int{1, 9}}, // a share never rounds to nothing; the last takes the rest
		{[]Phase{{Count: 8}, {Count: 8}, {Count: 8}}, []int{8, 2}},
	} {
		got := AssignPhases("dep-1", ids, c.phases)
		counts := make([]int, len(c.want))
		for _, p := range got {
			if p >= len(counts) {
				t.Fatalf("%v: phase %d out of range", c.phases, p)
			}
			counts[p]++
		}
		if fmt.Sprint(counts) != fmt.Sprint(c.want) || len(got) != 10 {
			t.Errorf("%v: counts %v, want %v", c.phases, counts, c.want)
		}
	}
	a, b := AssignPhases("dep-1", ids, []Phase{{Count: 3}, {Count: 7}}), AssignPhases("dep-2", ids, []Phase{{Count: 3}, {Count: 7}})
	if fmt.Sprint(a) == fmt.Sprint(b) {
		t.Error("phase 1 is the same devices for every deployment")
	}
	if fmt.Sprint(a) != fmt.Sprint(AssignPhases("dep-1", ids, []Phase{{Count: 3}, {Count: 7}})) {
		t.Error("assignment not deterministic")
	}
}

func stats(phases ...PhaseStats) *Stats {
	s := &Stats{States: map[string]int{}}
	for i, p := range phases {
		p.Phase = i
		p.Total = p.Pending + p.InProgress + p.Success + p.Failure + p.Canceled + p.Skipped
		s.Phases = append(s.Phases, p)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	run := func(cur int, adv, pause float64) *Deployment {
		return &Deployment{State: DeploymentRunning, CurrentPhase: cur, AdvanceAt: adv, PauseAt: pause}
	}
	cases := []struct {
		name  string
		d     *Deployment
		s     *Stats
		state string
		phase int
	}{
		{"waiting", run(0, 1, 0), stats(PhaseStats{Success: 1, InProgress: 1}, PhaseStats{Pending: 5}), DeploymentRunning, 0},
		{"advance at 100%", run(0, 0, 0), stats(PhaseStats{Success: 2}, PhaseStats{Pending: 5}), DeploymentRunning, 1},
		{"advance at 80%", run(0, 0.8, 0), stats(PhaseStats{Success: 4, InProgress: 1}, PhaseStats{Pending: 5}), DeploymentRunning, 1},
		{"skipped do not count", run(0, 1, 0), stats(PhaseStats{Success: 2, Skipped: 3}, PhaseStats{Pending: 5}), DeploymentRunning, 1},
		{"all skipped", run(0, 1, 0), stats(PhaseStats{Skipped: 3}, PhaseStats{Pending: 5}), DeploymentRunning, 1},
		{"advance twice", run(0, 1, 0), stats(PhaseStats{Success: 2}, PhaseStats{Skipped: 2}, PhaseStats{Pending: 5}), DeploymentRunning, 2},
		{"pause on failures", run(0, 1, 0.2), stats(PhaseStats{Success: 3, Failure: 1, InProgress: 1}, PhaseStats{Pending: 5}), DeploymentRunning, 0},
		{"pause above rate", run(0, 1, 0.2), stats(PhaseStats{Success: 2, Failure: 2, InProgress: 1}, PhaseStats{Pending: 5}), DeploymentPaused, 0},
		{"finished below threshold", run(0, 1, 0), stats(PhaseStats{Success: 2, Failure: 1}, PhaseStats{Pending: 5}), DeploymentPaused, 0},
		{"complete", run(1, 1, 0), stats(PhaseStats{Success: 2}, PhaseStats{Success: 4, Failure: 1}), DeploymentCompleted, 1},
		{"last phase running", run(1, 1, 0), stats(PhaseStats{Success: 2}, PhaseStats{Success: 4, InProgress: 1}), DeploymentRunning, 1},
		{"paused stays", &Deployment{State: DeploymentPaused}, stats(PhaseStats{Success: 2}, PhaseStats{Pending: 1}), DeploymentPaused, 0},
	}
	for _, c := range cases {
		dec := Evaluate(c.d, c.s)
		if dec.State != c.state || dec.CurrentPhase != c.phase {
			t.Errorf("%s: got %s phase %d (%s), want %s phase %d", c.name, dec.State, dec.CurrentPhase, dec.Reason, c.state, c.phase)
		}
	}
}

func TestStatusValidate(t *testing.T) {
	for _, s := range []Status{{State: "BOOM"}, {State: "DOWNLOADING", Progress: -1}, {State: "DOWNLOADING", Progress: 101},
		{State: "DOWNLOADING", Details: StatusDetails{BytesReceived: -5}}} {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	for _, st := range []string{"IDLE", "DOWNLOADING", "VERIFYING", "APPLYING", "PENDING_REBOOT", "TESTING", "CONFIRMED", "REVERTING", "FAILED", "downloading"} {
		if err := (&Status{State: st}).Validate(); err != nil {
			t.Errorf("%s: %v", st, err)
		}
	}
}
