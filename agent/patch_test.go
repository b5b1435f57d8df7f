package agent

import (
	"testing"

	"github.com/otakit/otakit/delta"
)

// realPatcher is the delta applier the lifecycle suite uses.
func realPatcher() Patcher { return DeltaPatches{} }

func makePatch(t *testing.T, old, new []byte) []byte {
	t.Helper()
	p, err := delta.Create(old, new, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
