package agent

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
)

// flashDevice is a simulated MCUboot device on the spec's preset layout,
// running img (confirmed, as a factory-programmed device).
func (k *realKit) flashDevice(mode layout.Mode, img []byte) *realDevice {
	k.t.Helper()
	m := layout.Preset()
	dev, err := flash.New(m.Flash)
	if err != nil {
		k.t.Fatal(err)
	}
	d, err := boot.OpenDevice(dev, m, boot.Config{Mode: mode, Keys: []crypto.PublicKey{k.imgKey.Public()}})
	if err != nil {
		k.t.Fatal(err)
	}
	if err := d.Loader.WritePrimary(img); err != nil {
		k.t.Fatal(err)
	}
	if err := d.Loader.MarkPrimaryConfirmed(); err != nil {
		k.t.Fatal(err)
	}
	if _, err := d.Loader.Boot(); err != nil {
		k.t.Fatal(err)
	}
	return k.device(&FlashSlots{Device: d})
}

// TestLifecycleFlash runs the lifecycle acceptance on the MCUboot flash
// simulator, in each swap mode that can revert.
func TestLifecycleFlash(t *testing.T) {
	for _, mode := range []layout.Mode{layout.SwapScratch, layout.SwapMove} {
		t.Run(string(mode), func(t *testing.T) {
			lifecycleSuite(t, func(k *realKit, running []byte) *realDevice { return k.flashDevice(mode, running) }, realPatcher)
		})
	}
}

// TestFlashPowerCutEveryOperation cuts power at every flash operation of
// an agent-driven update on the simulator (state saves in the config
// partition, writing slot B, marking it, the swap at reboot, the
// confirmation) and lets the device power up and carry on. Every boot must
// run 1.1.0 or 1.2.0, the security counter never goes down, and the
// device ends confirmed on 1.2.0.
func TestFlashPowerCutEveryOperation(t *testing.T) {
	modes := []layout.Mode{layout.SwapMove}
	if os.Getenv("OTA_LONG") != "" {
		modes = []layout.Mode{layout.SwapScratch, layout.SwapMove, layout.OverwriteOnly}
	}
	total := 0
	for _, mode := range modes {
		k := newRealKit(t)
		k.firmwareSize = 12 << 10
		img110, img120 := k.sign("1.1.0", 1, k.imgKey), k.sign("1.2.0", 2, k.imgKey)
		path := filepath.Join(t.TempDir(), "1.2.0.img")
		os.WriteFile(path, img120, 0o644)
		m := layout.Preset()
		cfg := boot.Config{Mode: mode, Keys: []crypto.PublicKey{k.imgKey.Public()}}
		factory := k.flashDevice(mode, img110).slots.(*FlashSlots).Device.Flash
		factory.ResetOps()
		work := t.TempDir()
		drive := func(dev *flash.Device, counter *uint32) (string, error) {
			d, err := boot.OpenDevice(dev, m, cfg)
			if err != nil {
				return "", err
			}
			slots := &FlashSlots{Device: d}
			if err := slots.Reset(); err != nil { // power-on: the boot loader runs
				return "", err
			}
			for i := 0; i < 12; i++ {
				a, err := New(Config{Slots: slots, Store: ConfigStore{Store: d.Store}, Images: k.images,
					WorkDir: work, Clock: NewManualClock(k.now), ConfirmTimeout: time.Minute, Logger: quiet})
				if err != nil {
					return "", err
				}
				if err := a.Start(); err != nil {
					return "", err
				}
				info, err := a.Running()
				if err != nil {
					t.Fatalf("%s: running image unreadable: %v", mode, err)
				}
				if !sameVersion(info.Version, "1.1.0") && !sameVersion(info.Version, "1.2.0") {
					t.Fatalf("%s: running %s", mode, info.Version)
				}
				c, err := slots.Counter()
				if err != nil {
					return "", err
				}
				if c < *counter {
					t.Fatalf("%s: security counter went from %d to %d", mode, *counter, c)
				}
				*counter = c
				switch st := a.State(); {
				case st == PendingReboot:
					err = a.Reboot()
				case st == Testing:
					err = a.Confirm(0)
				case st == Downloading:
					err = a.Resume(context.Background())
				case st == Confirmed && sameVersion(info.Version, "1.2.0"):
					return string(st), nil
				default:
					err = a.InstallFile(context.Background(), path)
				}
				if err != nil {
					return "", err
				}
			}
			t.Fatalf("%s: the update did not settle", mode)
			return "", nil
		}
		dev := factory.Clone()
		var c uint32
		if _, err := drive(dev, &c); err != nil {
			t.Fatal(err)
		}
		ops := dev.Ops()
		for cut := 1; cut <= ops; cut++ {
			total++
			dev := factory.Clone()
			dev.CutPowerAt(cut, uint64(cut))
			var counter uint32
			if _, err := drive(dev, &counter); !errors.Is(err, flash.ErrPowerCut) {
				t.Fatalf("%s cut %d: %v", mode, cut, err)
			}
			dev.PowerOn()
			if st, err := drive(dev, &counter); err != nil || st != string(Confirmed) || counter != 2 {
				t.Fatalf("%s cut %d: after reboot: %s counter %d, %v", mode, cut, st, counter, err)
			}
		}
	}
	t.Logf("agent on flash: %d cut points covered", total)
}
