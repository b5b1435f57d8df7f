package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

var errPowerCut = errors.New("power cut")

// cuttingStore saves records and then loses power after the cut-th save:
// the record is durable but nothing after it happens.
type cuttingStore struct {
	StateStore
	saves, cut int
}

func (s *cuttingStore) Save(r Record) error {
	if s.saves >= s.cut {
		return errPowerCut
	}
	if err := s.StateStore.Save(r); err != nil {
		return err
	}
	s.saves++
	if s.saves == s.cut {
		return errPowerCut
	}
	return nil
}

// Power is cut right after each persisted transition of a full update;
// the device reboots and the agent carries on. It must end confirmed on
// 1.2.0, or failed on 1.1.0 when the cut fell in the trial (an
// unconfirmed image is reverted by a reset, as MCUboot does), and never
// in a state that contradicts what runs.
func TestPowerCutAtEveryTransition(t *testing.T) {
	k := newRealKit(t)
	img110, img120 := k.sign("1.1.0", 1, k.imgKey), k.sign("1.2.0", 2, k.imgKey)
	man := k.publish("1.2.0", 2, img120, nil)
	cs := k.fileServer(0)
	outcomes := map[string]int{}
	for cut := 1; ; cut++ {
		d := k.linuxDevice(img110)
		store := &cuttingStore{StateStore: d.cfg.Store, cut: cut}
		cfg := d.cfg
		cfg.Store, cfg.Server = store, d.server(cs, man)
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		ok, err := a.CheckIn(context.Background())
		if err == nil {
			err = a.Reboot()
		}
		if err == nil {
			err = a.Confirm(0)
		}
		if err == nil {
			if store.saves >= cut {
				t.Fatalf("cut %d: power was cut but the update went on", cut)
			}
			t.Logf("%d cut points covered: %v", cut-1, outcomes)
			break
		}
		if !errors.Is(err, errPowerCut) {
			t.Fatalf("cut %d: %v (checked in: %v)", cut, err, ok)
		}
		// Power comes back: the bootloader decides, the agent restarts.
		if err := d.slots.Reset(); err != nil {
			t.Fatal(err)
		}
		a = d.boot(d.server(cs, man))
		for step := 0; step < 10; step++ {
			err = nil
			switch a.State() {
			case Downloading:
				err = a.Resume(context.Background())
			case PendingReboot:
				err = a.Reboot()
			case Testing:
				err = a.Confirm(0)
			case Idle:
				_, err = a.CheckIn(context.Background())
			default:
				step = 10
			}
			if err != nil {
				t.Fatalf("cut %d: after reboot, %s: %v", cut, a.State(), err)
			}
		}
		info, _ := a.Running()
		bi, _ := d.slots.Boot()
		outcome := fmt.Sprintf("%s/%s", a.State(), info.Version)
		switch outcome {
		case "CONFIRMED/1.2.0":
			if !bi.Confirmed {
				t.Errorf("cut %d: CONFIRMED but the slot is on trial", cut)
			}
		case "FAILED/1.1.0":
			if bi.Pending {
				t.Errorf("cut %d: FAILED with a pending image", cut)
			}
		default:
			t.Errorf("cut %d: ended %s (%s)", cut, outcome, a.Record().Error)
		}
		outcomes[outcome]++
	}
}
