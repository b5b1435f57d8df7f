package http

import "testing"

// TestUIPagesParse checks the dashboard's templates without a browser:
// they parse on first use, so a broken template would otherwise surface
// only when a page is served.
func TestUIPagesParse(t *testing.T) {
	for _, p := range []string{"login", "releases", "deployments", "deployment", "devices", "device"} {
		if tp := uiPages()[p]; tp == nil || tp.Lookup("layout") == nil {
			t.Errorf("page %q: no layout template", p)
		}
	}
}
