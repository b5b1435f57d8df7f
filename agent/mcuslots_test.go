package agent

import (
	"testing"

	"github.com/otakit/otakit/boot"
	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
)

// mcuDevice is a simulated MCUboot device on the spec's partition map,
// with running programmed into the primary slot, confirmed, as a factory
// would, and the agent's state in the config partition.
func (k *realKit) mcuDevice(running []byte, mode layout.Mode) *realDevice {
	k.t.Helper()
	m := layout.Preset()
	fd, err := flash.New(m.Flash)
	if err != nil {
		k.t.Fatal(err)
	}
	d, err := boot.OpenDevice(fd, m, boot.Config{Mode: mode, Keys: k.images.Keys})
	if err != nil {
		k.t.Fatal(err)
	}
	if err := d.Loader.WritePrimary(running); err != nil {
		k.t.Fatal(err)
	}
	if err := d.Loader.MarkPrimaryConfirmed(); err != nil {
		k.t.Fatal(err)
	}
	rd := k.device(NewMCUSlots(d))
	rd.cfg.Store = NVSStore{Store: d.Store}
	return rd
}

func TestLifecycleMCUboot(t *testing.T) {
	for _, mode := range []layout.Mode{layout.SwapScratch, layout.SwapMove} {
		t.Run(string(mode), func(t *testing.T) {
			lifecycleSuite(t, func(k *realKit, running []byte) *realDevice { return k.mcuDevice(running, mode) }, realPatcher)
		})
	}
}
