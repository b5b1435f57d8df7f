package main

import (
	"errors"

	"github.com/otakit/otakit/agent"
)

// openFlashDevice opens a simulated MCUboot device; it needs the flash and
// boot packages.
func openFlashDevice(path string, d *device) error {
	return errors.New("--flash: the MCUboot flash simulator is not wired yet")
}

// deltaPatcher returns the delta applier, or nil while there is none.
func deltaPatcher() agent.Patcher { return nil }
