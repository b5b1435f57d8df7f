package boot

import (
	"fmt"

	"github.com/otakit/otakit/flash"
	"github.com/otakit/otakit/layout"
	"github.com/otakit/otakit/nvs"
)

// SecurityCounterKey is the config-store key of the anti-rollback counter.
const SecurityCounterKey = "boot/sec_cnt"

// Device is a simulated MCUboot device: a flash part cut by a partition
// map, the boot loader for its image pair and the config store (in the
// map's config partition) that keeps the security counter. Open it again
// after every power cut, as the hardware would start over.
type Device struct {
	Flash  *flash.Device
	Map    *layout.Map
	Store  *nvs.Store
	Loader *Loader
}

// OpenDevice mounts the config partition (formatting a blank one) and
// builds the loader. If cfg.Counter is nil the counter lives in the config
// store under SecurityCounterKey.
func OpenDevice(dev *flash.Device, m *layout.Map, cfg Config) (*Device, error) {
	d := &Device{Flash: dev, Map: m}
	if p, ok := m.Find(layout.Config); ok {
		s, err := nvs.Mount(dev, m.Rel(p), int(p.Size))
		if err != nil {
			return nil, fmt.Errorf("boot: config partition: %w", err)
		}
		d.Store = s
		if cfg.Counter == nil {
			cfg.Counter = nvs.SecurityCounter{Store: s, Key: SecurityCounterKey}
		}
	}
	l, err := New(dev, m, cfg)
	if err != nil {
		return nil, err
	}
	d.Loader = l
	return d, nil
}

// SecurityCounter returns the stored anti-rollback counter (0 without a
// config partition).
func (d *Device) SecurityCounter() (uint32, error) {
	if d.Loader.cfg.Counter == nil {
		return 0, nil
	}
	return d.Loader.cfg.Counter.SecurityCounter()
}

// RaiseSecurityCounter sets the counter to v if v is higher; lower values
// are ignored, so the counter never goes down.
func (d *Device) RaiseSecurityCounter(v uint32) error {
	if d.Loader.cfg.Counter == nil {
		return fmt.Errorf("%w: no config partition holds a security counter", ErrState)
	}
	cur, err := d.Loader.cfg.Counter.SecurityCounter()
	if err != nil || v <= cur {
		return err
	}
	return d.Loader.cfg.Counter.SetSecurityCounter(v)
}
