package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

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

// PublishFile uploads the file at path as release version: a one-file
// release whose full image is that file (see docs/api.md, "One-file
// releases"), for artifacts that carry their own signature, such as
// SWUpdate .swu files served over hawkBit DDI.
func (c *Client) PublishFile(ctx context.Context, version, path string) (*fleet.Release, error) {
	if version == "" {
		return nil, fmt.Errorf("%w: a one-file release needs a version", fleet.ErrInvalid)
	}
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", fleet.ErrInvalid, path)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := WritePart(mw, filepath.Base(path), path)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var rel fleet.Release
	err := c.do(ctx, http.MethodPost, "/api/v1/releases?version="+url.QueryEscape(version), mw.FormDataContentType(), pr, &rel)
	pr.Close()
	if err != nil {
		return nil, err
	}
	return &rel, nil
}
