package main

import (
	"github.com/otakit/otakit/agent"
)

// openFlashDevice opens a simulated MCUboot device created by ota device
// init (the flash file and its FLASH.json description) as the agent's
// slots; the agent's state lives in the device's config partition.
func openFlashDevice(path string, d *device) error {
	sd, err := openSimDevice(path)
	if err != nil {
		return err
	}
	d.cfg.Slots = &agent.FlashSlots{Device: sd.Device}
	if sd.Store != nil {
		d.cfg.Store = agent.ConfigStore{Store: sd.Store}
	}
	d.close = sd.Close
	return nil
}

// deltaPatcher returns the delta applier (package delta).
func deltaPatcher() agent.Patcher { return agent.DeltaPatches{} }
