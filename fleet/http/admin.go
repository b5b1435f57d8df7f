package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"

	"github.com/otakit/otakit/fleet"
)

// MaxReleaseFiles caps the number of files in one release upload.
const MaxReleaseFiles = 256

// createRelease receives a release folder as multipart/form-data: one part
// per file, its relative name in the Content-Disposition filename (or the
// form field name). Files stream into the blob store; the release row is
// written only after every name, size and digest checked out, so a failed
// or interrupted upload leaves nothing visible.
func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, fmt.Errorf("%w: want multipart/form-data: %v", fleet.ErrInvalid, err))
		return
	}
	ctx := r.Context()
	var created []string // blobs this upload added, removed again on failure
	ok := false
	defer func() {
		if ok {
			return
		}
		for _, sum := range created {
			if ref, err := s.Store.BlobReferenced(context.WithoutCancel(ctx), sum); err == nil && !ref {
				s.Blobs.Delete(sum)
			}
		}
	}()
	files := map[string]fleet.UploadedFile{}
	var summary, manifest []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, uploadErr(err))
			return
		}
		name := partName(part)
		if err := fleet.ValidName(name); err != nil {
			writeError(w, err)
			return
		}
		if _, dup := files[name]; dup || (name == fleet.ManifestFile && manifest != nil) || (name == fleet.SummaryFile && summary != nil) {
			writeError(w, fmt.Errorf("%w: file %q uploaded twice", fleet.ErrInvalid, name))
			return
		}
		if len(files) >= MaxReleaseFiles {
			writeError(w, fmt.Errorf("%w: more than %d files", fleet.ErrInvalid, MaxReleaseFiles))
			return
		}
		if name == fleet.ManifestFile || name == fleet.SummaryFile {
			var buf bytes.Buffer
			n, err := io.Copy(&buf, io.LimitReader(part, fleet.MaxReleaseJSON+1))
			if err != nil {
				writeError(w, uploadErr(err))
				return
			}
			if n > fleet.MaxReleaseJSON {
				writeError(w, fmt.Errorf("%w: %s larger than %d bytes", fleet.ErrInvalid, name, fleet.MaxReleaseJSON))
				return
			}
			if name == fleet.ManifestFile {
				manifest = buf.Bytes()
			} else {
				summary = buf.Bytes()
			}
			continue
		}
		sum, size, isNew, err := s.Blobs.Put(ctx, part, 0)
		if err != nil {
			writeError(w, uploadErr(err))
			return
		}
		if isNew {
			created = append(created, sum)
		}
		files[name] = fleet.UploadedFile{Size: size, SHA256: sum}
	}
	if s.Mender != nil {
		if manifest, err = s.menderManifest(ctx, files, manifest); err != nil {
			writeError(w, err)
			return
		}
	}
	if manifest == nil && summary == nil {
		if manifest, err = plainManifest(r, files); err != nil {
			writeError(w, err)
			return
		}
	}
	rel, err := fleet.ParseRelease(summary, manifest, files)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.Store.CreateRelease(ctx, rel); err != nil {
		writeError(w, err)
		return
	}
	ok = true
	s.Logger.Info("release published", "version", rel.Version, "artifacts", len(rel.Artifacts))
	writeJSON(w, http.StatusCreated, rel)
}

// partName returns the raw file name of a part, unlike Part.FileName,
// which strips directories and would hide a hostile "../" name.
func partName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return p.FormName()
}

func uploadErr(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) || errors.Is(err, fleet.ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: reading upload: %v", fleet.ErrInvalid, err)
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	rs, err := s.Store.Releases(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if rs == nil {
		rs = []*fleet.Release{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) {
	rel, err := s.Store.Release(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rel)
}

func (s *Server) getReleaseManifest(w http.ResponseWriter, r *http.Request) {
	rel, err := s.Store.Release(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(rel.Manifest)
}

// NewDevice is the body of POST /api/v1/devices (one object or an array).
type NewDevice struct {
	ID                string            `json:"id"`
	HardwareRevision  string            `json:"hardwareRevision,omitempty"`
	BootloaderVersion string            `json:"bootloaderVersion,omitempty"`
	CurrentVersion    string            `json:"currentVersion,omitempty"`
	Group             string            `json:"group,omitempty"`
	Tags              []string          `json:"tags,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// ProvisionedDevice is a created device with its token, shown only once.
type ProvisionedDevice struct {
	*fleet.Device
	Token string `json:"token"`
}

func (s *Server) createDevices(w http.ResponseWriter, r *http.Request) {
	var raw rawMessage
	if err := s.decode(w, r, &raw); err != nil {
		writeError(w, err)
		return
	}
	var list []NewDevice
	single := len(raw) > 0 && raw[0] == '{'
	var err error
	if single {
		var one NewDevice
		err = strictUnmarshal(raw, &one)
		list = []NewDevice{one}
	} else {
		err = strictUnmarshal(raw, &list)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if len(list) == 0 || len(list) > 10000 {
		writeError(w, fmt.Errorf("%w: give 1 to 10000 devices", fleet.ErrInvalid))
		return
	}
	ds := make([]*fleet.Device, len(list))
	for i, n := range list {
		ds[i] = &fleet.Device{ID: n.ID, HardwareRevision: n.HardwareRevision, BootloaderVersion: n.BootloaderVersion,
			CurrentVersion: n.CurrentVersion, Group: n.Group, Tags: n.Tags, Attributes: n.Attributes}
	}
	toks, err := s.Store.CreateDevices(r.Context(), ds)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]ProvisionedDevice, len(ds))
	for i := range ds {
		out[i] = ProvisionedDevice{ds[i], toks[i]}
	}
	if single {
		writeJSON(w, http.StatusCreated, out[0])
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fleet.DeviceFilter{Group: q.Get("group"), Tag: q.Get("tag")}
	f.Offset, _ = strconv.Atoi(q.Get("offset"))
	f.Limit, _ = strconv.Atoi(q.Get("limit"))
	ds, err := s.Store.Devices(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []*fleet.Device{}
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) patchDevice(w http.ResponseWriter, r *http.Request) {
	var u fleet.DeviceUpdate
	if err := s.decode(w, r, &u); err != nil {
		writeError(w, err)
		return
	}
	d, err := s.Store.UpdateDevice(r.Context(), r.PathValue("id"), u)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deviceExecutions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Device(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeviceID: id, Limit: 100})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}

// NewDeployment is the body of POST /api/v1/deployments.
type NewDeployment struct {
	Name      string        `json:"name,omitempty"`
	Release   string        `json:"release"`
	Target    fleet.Target  `json:"target"`
	Phases    []fleet.Phase `json:"phases,omitempty"`
	AdvanceAt float64       `json:"advanceAt,omitempty"`
	PauseAt   float64       `json:"pauseAt,omitempty"`
	StartAt   time.Time     `json:"startAt,omitzero"`
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	var n NewDeployment
	if err := s.decode(w, r, &n); err != nil {
		writeError(w, err)
		return
	}
	d := &fleet.Deployment{Name: n.Name, ReleaseID: n.Release, Target: n.Target, Phases: n.Phases,
		AdvanceAt: n.AdvanceAt, PauseAt: n.PauseAt, StartAt: n.StartAt}
	if err := s.Store.CreateDeployment(r.Context(), d); err != nil {
		if errors.Is(err, fleet.ErrNotFound) {
			err = fmt.Errorf("%w: %v", fleet.ErrInvalid, err) // an unknown release is a bad request
		}
		writeError(w, err)
		return
	}
	d, err := s.Store.Deployment(r.Context(), d.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	s.Logger.Info("deployment created", "id", d.ID, "release", d.ReleaseID, "devices", d.Stats.Total)
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Store.Deployments(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Deployment(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deploymentAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var d *fleet.Deployment
	var err error
	switch r.PathValue("action") {
	case "pause":
		d, err = s.Store.PauseDeployment(r.Context(), id)
	case "resume":
		d, err = s.Store.ResumeDeployment(r.Context(), id)
	case "cancel":
		d, err = s.Store.CancelDeployment(r.Context(), id)
	default:
		err = fmt.Errorf("%w: unknown action %q", fleet.ErrNotFound, r.PathValue("action"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.Logger.Info("deployment "+r.PathValue("action"), "id", id, "state", d.State)
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deploymentExecutions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Store.Deployment(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	es, err := s.Store.Executions(r.Context(), fleet.ExecutionFilter{DeploymentID: id, Limit: limit})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(es))
}

func (s *Server) getExecution(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, fmt.Errorf("%w: execution id", fleet.ErrNotFound))
		return
	}
	e, err := s.Store.Execution(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
