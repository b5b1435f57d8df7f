package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/otakit/otakit/fleet"
)

type rawMessage = json.RawMessage

func strictUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: malformed JSON: %v", fleet.ErrInvalid, err)
	}
	return nil
}

// CheckInResponse answers a device check-in. Update is false when there is
// nothing to install; otherwise the manifest is the release's signed
// manifest, verbatim, and Artifact the file the device should fetch.
type CheckInResponse struct {
	Update      bool            `json:"update"`
	PollSeconds int             `json:"pollSeconds"`
	Deployment  string          `json:"deployment,omitempty"`
	Execution   int64           `json:"execution,omitempty"`
	Version     string          `json:"version,omitempty"`
	Manifest    json.RawMessage `json:"manifest,omitempty"`
	ManifestURL string          `json:"manifestUrl,omitempty"`
	Artifact    *OfferedFile    `json:"artifact,omitempty"`
	// State is the execution's state, so a device that restarted knows
	// where it was.
	State string `json:"state,omitempty"`
}

// OfferedFile is the artifact chosen for a device.
type OfferedFile struct {
	fleet.Artifact
	URL string `json:"url"`
}

// DeploymentPath is the device API path of a deployment.
func DeploymentPath(deploymentID string) string {
	return "/api/v1/device/deployments/" + url.PathEscape(deploymentID)
}

// ArtifactPath is where a device downloads an artifact of a deployment.
func ArtifactPath(deploymentID, name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return DeploymentPath(deploymentID) + "/artifacts/" + strings.Join(parts, "/")
}

func (s *Server) checkIn(w http.ResponseWriter, r *http.Request, id string) {
	var c fleet.CheckIn
	if err := s.decode(w, r, &c); err != nil {
		writeError(w, err)
		return
	}
	off, err := s.Store.CheckIn(r.Context(), id, c)
	if err != nil {
		writeError(w, err)
		return
	}
	resp := CheckInResponse{PollSeconds: s.PollSeconds}
	if off == nil {
		s.metrics.checkins.WithLabelValues("none").Inc()
		writeJSON(w, http.StatusOK, resp)
		return
	}
	s.metrics.checkins.WithLabelValues("offer").Inc()
	resp.Update = true
	resp.Deployment = off.Deployment.ID
	resp.Execution = off.Execution.ID
	resp.State = off.Execution.State
	resp.Version = off.Release.Version
	resp.Manifest = off.Release.Manifest
	resp.ManifestURL = DeploymentPath(off.Deployment.ID) + "/manifest"
	resp.Artifact = &OfferedFile{Artifact: off.Artifact, URL: ArtifactPath(off.Deployment.ID, off.Artifact.Name)}
	writeJSON(w, http.StatusOK, resp)
}

// ownRelease returns the release of a deployment the device takes part in;
// ErrNotFound for anyone else's deployment.
func (s *Server) ownRelease(r *http.Request, deviceID, depID string) (*fleet.Release, *fleet.Execution, error) {
	e, err := s.Store.DeviceExecution(r.Context(), deviceID, depID)
	if err != nil {
		return nil, nil, err
	}
	switch e.State {
	case fleet.ExecPending, fleet.ExecSkipped:
		return nil, nil, fmt.Errorf("%w: nothing offered to this device in deployment %q", fleet.ErrNotFound, depID)
	case fleet.ExecCanceled:
		return nil, nil, fmt.Errorf("%w: deployment %q was canceled for this device", fleet.ErrConflict, depID)
	}
	d, err := s.Store.Deployment(r.Context(), depID)
	if err != nil {
		return nil, nil, err
	}
	rel, err := s.Store.Release(r.Context(), d.ReleaseID)
	return rel, e, err
}

func (s *Server) deviceManifest(w http.ResponseWriter, r *http.Request, id string) {
	rel, _, err := s.ownRelease(r, id, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(rel.Manifest)
}

// download serves an artifact with Range, If-Range and ETag (the quoted
// SHA-256), through sendfile when the blob is a local file.
func (s *Server) download(w http.ResponseWriter, r *http.Request, id string) {
	rel, _, err := s.ownRelease(r, id, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("name")
	if err := fleet.ValidName(name); err != nil {
		writeError(w, err)
		return
	}
	a, ok := rel.Artifact(name)
	if !ok {
		writeError(w, fmt.Errorf("%w: release %s has no artifact %q", fleet.ErrNotFound, rel.ID, name))
		return
	}
	b, err := s.Blobs.Open(a.SHA256)
	if err != nil {
		if errors.Is(err, fleet.ErrNotFound) {
			// A committed release lost a blob: a server fault, not the
			// device's.
			s.Logger.Error("artifact missing from blob store", "release", rel.ID, "name", name, "sha256", a.SHA256)
			writeJSON(w, http.StatusInternalServerError, apiError{"artifact unavailable"})
			return
		}
		writeError(w, err)
		return
	}
	defer b.Close()
	h := w.Header()
	h.Set("ETag", `"`+a.SHA256+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("Digest", "sha-256="+a.SHA256)
	var content io.ReadSeeker = b
	if f, ok := b.(osFiler); ok {
		content = f.OSFile()
	}
	rec, _ := w.(*recorder)
	before := int64(0)
	if rec != nil {
		before = rec.bytes
	}
	http.ServeContent(w, r, "", b.ModTime(), content)
	if rec != nil {
		s.metrics.downloads.Add(float64(rec.bytes - before))
	}
}

func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request, id string) {
	var st fleet.Status
	if err := s.decode(w, r, &st); err != nil {
		writeError(w, err)
		return
	}
	e, err := s.Store.ReportStatus(r.Context(), id, r.PathValue("id"), st)
	if err != nil {
		writeError(w, err)
		return
	}
	s.metrics.reports.WithLabelValues(strings.ToUpper(st.State)).Inc()
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) ownExecutions(w http.ResponseWriter, r *http.Request, id string) {
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeviceID: id, Limit: 100})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}
