package release

import (
	"bytes"
	"fmt"

	"github.com/otakit/otakit/delta"
	"github.com/otakit/otakit/version"
)

// makePatch makes the native delta patch from the old signed image to the
// new one, then applies it once and compares, so a release never ships a
// patch that does not rebuild its target exactly.
func makePatch(old, new []byte, from, to version.Version) ([]byte, error) {
	patch, err := delta.Create(old, new, &delta.Options{
		Layout: delta.LayoutModel, SourceVersion: from.String(), TargetVersion: to.String(),
	})
	if err != nil {
		return nil, err
	}
	pt, err := delta.Parse(patch)
	if err != nil {
		return nil, fmt.Errorf("patch self-check: %w", err)
	}
	var got bytes.Buffer
	if err := pt.Apply(old, &got); err != nil {
		return nil, fmt.Errorf("patch self-check: %w", err)
	}
	if !bytes.Equal(got.Bytes(), new) {
		return nil, fmt.Errorf("patch self-check: the patch does not rebuild %s", to)
	}
	return patch, nil
}
