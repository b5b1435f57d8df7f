package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

func TestDDIConfigFlags(t *testing.T) {
	for _, c := range []struct {
		tenants, typ string
		want         map[string]string
		bad          bool
	}{
		{"DEFAULT", "forced", map[string]string{"DEFAULT": ""}, false},
		{"DEFAULT=gw1, acme=gw2,plain", "attempt", map[string]string{"DEFAULT": "gw1", "acme": "gw2", "plain": ""}, false},
		{"a/b", "forced", nil, true},
		{"DEFAULT", "sometimes", nil, true},
	} {
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		addDDIFlags(f)
		f.Set("ddi-tenants", c.tenants)
		f.Set("ddi-type", c.typ)
		got, err := ddiConfig(f)
		if (err != nil) != c.bad {
			t.Errorf("%q %q: err %v", c.tenants, c.typ, err)
			continue
		}
		if !c.bad && (!reflect.DeepEqual(got.Tenants, c.want) || got.Type != c.typ) {
			t.Errorf("%q %q: %+v", c.tenants, c.typ, got)
		}
	}
}
