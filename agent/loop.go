package agent

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Loop is the main loop of a device around its agent: after each boot it
// finishes what was in progress, then checks in periodically; an installed
// update is followed by a reset, a health check and a confirmation, or by
// a revert at the deadline when the check fails. Simulated devices (ota
// device run, ota demo) use it as is.
type Loop struct {
	Agent *Agent
	// Healthy is the application's self-test on a new image; nil means
	// always healthy.
	Healthy func() bool
	// Poll is the pause between check-ins; nil or zero means 30s.
	Poll func() time.Duration
	// Log, if set, receives one line per reboot, health decision and
	// check-in result.
	Log io.Writer
}

func (l *Loop) logf(format string, args ...any) {
	if l.Log != nil {
		fmt.Fprintf(l.Log, format+"\n", args...)
	}
}

// Settle finishes what a boot left in progress: a download resumes, a
// pending update is rebooted into, and a trial image is confirmed when
// healthy or left to revert at its deadline.
func (l *Loop) Settle(ctx context.Context) error {
	a := l.Agent
	switch a.State() {
	case Downloading:
		if err := a.Resume(ctx); err != nil {
			return err
		}
		return l.reboot(ctx)
	case PendingReboot:
		return l.reboot(ctx)
	case Testing:
		if l.Healthy == nil || l.Healthy() {
			l.logf("health check passed: confirming")
			return a.Confirm(0)
		}
		deadline, _ := a.Deadline()
		l.logf("health check failed: not confirming; reverting at %s", deadline.Format(time.RFC3339))
		for a.State() == Testing {
			deadline, _ := a.Deadline()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-a.cfg.Clock.After(deadline.Sub(a.cfg.Clock.Now())):
			}
			if _, err := a.CheckDeadline(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Loop) reboot(ctx context.Context) error {
	l.logf("rebooting")
	if err := l.Agent.Reboot(); err != nil {
		return err
	}
	return l.Settle(ctx)
}

// Run starts the agent (as after power-on) and loops until ctx ends; with
// once, it returns after the first check-in and whatever update it
// brought. A failed check-in is logged and retried at the next poll, or
// returned when once is set.
func (l *Loop) Run(ctx context.Context, once bool) error {
	a := l.Agent
	if err := a.Start(); err != nil {
		return err
	}
	if err := l.Settle(ctx); err != nil {
		return err
	}
	for {
		ok, err := a.CheckIn(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && once:
			return err
		case err != nil:
			l.logf("%v", err)
		case ok:
			if err := l.reboot(ctx); err != nil {
				return err
			}
		}
		if info, err := a.Running(); err == nil {
			l.logf("state %s, running %s", a.State(), info.Version)
		}
		if once {
			return nil
		}
		poll := 30 * time.Second
		if l.Poll != nil && l.Poll() > 0 {
			poll = l.Poll()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.cfg.Clock.After(poll):
		}
	}
}
