package main

import (
	"fmt"
	"strings"

	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/spf13/pflag"
)

// addDDIFlags adds the hawkBit DDI flags to `ota serve`.
func addDDIFlags(f *pflag.FlagSet) {
	f.String("ddi-tenants", fleethttp.DefaultTenant,
		"hawkBit DDI tenants, comma-separated NAME or NAME=GATEWAYTOKEN (a gateway token lets a gateway act for any device)")
	f.String("ddi-type", "forced", "hawkBit DDI download/update type announced to devices: forced, attempt or skip")
}

// ddiConfig reads the DDI flags.
func ddiConfig(f *pflag.FlagSet) (fleethttp.DDIConfig, error) {
	var c fleethttp.DDIConfig
	typ, _ := f.GetString("ddi-type")
	switch typ {
	case "forced", "attempt", "skip":
		c.Type = typ
	default:
		return c, fmt.Errorf("--ddi-type must be forced, attempt or skip, not %q", typ)
	}
	list, _ := f.GetString("ddi-tenants")
	c.Tenants = map[string]string{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, tok, _ := strings.Cut(item, "=")
		if name == "" || strings.ContainsAny(name, "/ ") {
			return c, fmt.Errorf("--ddi-tenants: bad tenant %q", name)
		}
		c.Tenants[name] = tok
	}
	return c, nil
}
