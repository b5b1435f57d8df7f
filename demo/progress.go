package demo

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/release"
)

// isTerminal reports whether w is a terminal, where progress shows as
// bars; elsewhere (logs, CI, tests) it shows as plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, max int, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions(max, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionSetWidth(20), progressbar.OptionSetPredictTime(false))
}

// stepBar shows the release pipeline's steps, as `ota release` does.
type stepBar struct {
	w    io.Writer
	name string
	tty  bool
	bar  *progressbar.ProgressBar
}

func newStepBar(w io.Writer, name string) *stepBar {
	return &stepBar{w: w, name: name, tty: isTerminal(w)}
}

func (b *stepBar) step(s release.Step) {
	if !b.tty {
		fmt.Fprintf(b.w, "%s: [%d/%d] %s\n", b.name, s.Index, s.Total, s.Name)
		return
	}
	if b.bar == nil {
		b.bar = newBar(b.w, s.Total, b.name)
	}
	b.bar.Describe(b.name + ": " + s.Name)
	b.bar.Set(s.Index - 1)
}

func (b *stepBar) done() {
	if b.bar != nil {
		b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}

// rolloutView shows a deployment's progress: on a terminal, one bar per
// phase (finished devices of the phase), the next one starting when a
// phase is through; elsewhere a line whenever the counts change.
type rolloutView struct {
	w      io.Writer
	names  []string
	tty    bool
	bar    *progressbar.ProgressBar
	phase  int // the phase the bar shows
	last   string
	reason string
}

func newRolloutView(w io.Writer, names []string) *rolloutView {
	return &rolloutView{w: w, names: names, tty: isTerminal(w)}
}

func (v *rolloutView) describe(i int, p fleet.PhaseStats) string {
	name := fmt.Sprintf("phase %d", i+1)
	if i < len(v.names) {
		name += " (" + v.names[i] + ")"
	}
	if v.tty { // short enough for a bar on 80 columns
		return fmt.Sprintf("%s  ok %d  failed %d  busy %d", name, p.Success, p.Failure, p.InProgress)
	}
	return fmt.Sprintf("%s: %d updated, %d failed, %d in progress, %d waiting", name, p.Success, p.Failure, p.InProgress, p.Pending)
}

func (v *rolloutView) update(d *fleet.Deployment) {
	if d.Stats == nil || len(d.Stats.Phases) == 0 {
		return
	}
	phases := d.Stats.Phases
	if !v.tty {
		line := fmt.Sprintf("rollout: %s, phase %d of %d", d.State, d.CurrentPhase+1, len(phases))
		for i, p := range phases {
			line += "; " + v.describe(i, p)
		}
		if line != v.last {
			fmt.Fprintln(v.w, line)
			v.last = line
		}
		if d.Reason != v.reason && d.Reason != "" {
			fmt.Fprintf(v.w, "rollout: %s\n", d.Reason)
		}
		v.reason = d.Reason
		return
	}
	for v.phase < len(phases) {
		p := phases[v.phase]
		if v.bar == nil {
			v.bar = newBar(v.w, p.Total, "")
			v.last = ""
		}
		if desc := v.describe(v.phase, p); desc != v.last { // redraw on change only
			v.bar.Describe(desc)
			v.bar.Set(p.Success + p.Failure + p.Canceled + p.Skipped)
			v.last = desc
		}
		if p.Pending+p.InProgress > 0 || v.phase == len(phases)-1 {
			return
		}
		v.bar.Finish()
		fmt.Fprintln(v.w)
		v.bar = nil
		v.phase++
	}
}

func (v *rolloutView) done() {
	if v.bar != nil {
		v.bar.Finish()
		fmt.Fprintln(v.w)
		v.bar = nil
	}
}
