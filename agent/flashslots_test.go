package agent

import (
	"crypto"
	"testing"

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
