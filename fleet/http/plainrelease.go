package http

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/otakit/otakit/fleet"
)

// plainManifest lets a release be a single arbitrary file, such as a
// SWUpdate .swu, for clients that verify the artifact themselves (DDI and
// other foreign clients): uploading exactly one file with ?version=V and
// no manifest.json stores a generated, unsigned manifest naming that file
// as the full image. Without ?version it returns nil and the upload must
// carry its own manifest.json as before.
func plainManifest(r *http.Request, files map[string]fleet.UploadedFile) ([]byte, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return nil, nil
	}
	if len(files) != 1 {
		return nil, fmt.Errorf("%w: a release with ?version and no %s must have exactly one file, got %d",
			fleet.ErrInvalid, fleet.ManifestFile, len(files))
	}
	type image struct {
		Type string `json:"type"`
		File string `json:"file"`
		Size int64  `json:"size"`
		Hash string `json:"hash"`
	}
	var m struct {
		Version string  `json:"version"`
		Images  []image `json:"images"`
	}
	m.Version = v
	for name, f := range files {
		m.Images = append(m.Images, image{Type: "full", File: name, Size: f.Size, Hash: "sha256:" + f.SHA256})
	}
	return json.Marshal(m)
}
