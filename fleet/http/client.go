package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/otakit/otakit/fleet"
)

// APIError is an error answer from the server. It unwraps to the fleet
// error matching its status code, so errors.Is(err, fleet.ErrConflict)
// works on the client side too.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("server: %d %s", e.Code, e.Message) }

// Unwrap maps the status code back to a fleet error.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case http.StatusUnauthorized:
		return fleet.ErrUnauthorized
	case http.StatusForbidden:
		return fleet.ErrForbidden
	case http.StatusNotFound:
		return fleet.ErrNotFound
	case http.StatusConflict:
		return fleet.ErrConflict
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return fleet.ErrInvalid
	}
	return nil
}

type base struct {
	URL   string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client // nil means http.DefaultClient
}

func (b *base) client() *http.Client {
	if b.HTTP != nil {
		return b.HTTP
	}
	return http.DefaultClient
}

func (b *base) do(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(b.URL, "/")+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+b.Token)
	resp, err := b.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s answer: %w", method, path, err)
	}
	return nil
}

func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e apiError
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &APIError{Code: resp.StatusCode, Message: e.Error}
}

func (b *base) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(buf)
	}
	return b.do(ctx, method, path, "application/json", body, out)
}

// Client calls the admin API with an API token.
type Client struct{ base }

// NewClient returns an admin client for the server at baseURL.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	return &Client{base{URL: baseURL, Token: token, HTTP: hc}}
}

// Publish uploads the release folder dir (release.json, manifest.json and
// every file beside them, recursively) as one multipart stream.
func (c *Client) Publish(ctx context.Context, dir string) (*fleet.Release, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading release folder: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, fleet.ManifestFile)); err != nil && !hasMenderArtifact(names) {
		return nil, fmt.Errorf("%w: %s has no %s", fleet.ErrInvalid, dir, fleet.ManifestFile)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeFolder(mw, dir, names))
	}()
	var rel fleet.Release
	err = c.do(ctx, http.MethodPost, "/api/v1/releases", mw.FormDataContentType(), pr, &rel)
	pr.Close()
	if err != nil {
		return nil, err
	}
	return &rel, nil
}

func writeFolder(mw *multipart.Writer, dir string, names []string) error {
	for _, name := range names {
		if err := WritePart(mw, name, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	return mw.Close()
}

// WritePart adds the file at path to a release upload under name.
func WritePart(mw *multipart.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(pw, f)
	return err
}

// Releases lists releases.
func (c *Client) Releases(ctx context.Context) ([]*fleet.Release, error) {
	var out []*fleet.Release
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/releases", nil, &out)
}

// CreateDevice provisions one device and returns it with its token.
func (c *Client) CreateDevice(ctx context.Context, d NewDevice) (*ProvisionedDevice, error) {
	var out ProvisionedDevice
	return &out, c.doJSON(ctx, http.MethodPost, "/api/v1/devices", d, &out)
}

// CreateDevices provisions up to 10000 devices in one call.
func (c *Client) CreateDevices(ctx context.Context, ds []NewDevice) ([]ProvisionedDevice, error) {
	var out []ProvisionedDevice
	return out, c.doJSON(ctx, http.MethodPost, "/api/v1/devices", ds, &out)
}

// Devices lists devices, optionally by group or tag.
func (c *Client) Devices(ctx context.Context, group, tag string) ([]*fleet.Device, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if tag != "" {
		q.Set("tag", tag)
	}
	var out []*fleet.Device
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), nil, &out)
}

// Device returns one device.
func (c *Client) Device(ctx context.Context, id string) (*fleet.Device, error) {
	var out fleet.Device
	return &out, c.doJSON(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id), nil, &out)
}

// DeviceExecutions returns a device's executions with their history.
func (c *Client) DeviceExecutions(ctx context.Context, id string) ([]*fleet.Execution, error) {
	var out []*fleet.Execution
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id)+"/executions", nil, &out)
}

// CreateDeployment starts a deployment.
func (c *Client) CreateDeployment(ctx context.Context, d NewDeployment) (*fleet.Deployment, error) {
	var out fleet.Deployment
	return &out, c.doJSON(ctx, http.MethodPost, "/api/v1/deployments", d, &out)
}

// Deployments lists deployments.
func (c *Client) Deployments(ctx context.Context) ([]*fleet.Deployment, error) {
	var out []*fleet.Deployment
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/deployments", nil, &out)
}

// Deployment returns a deployment with statistics.
func (c *Client) Deployment(ctx context.Context, id string) (*fleet.Deployment, error) {
	var out fleet.Deployment
	return &out, c.doJSON(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), nil, &out)
}

// DeploymentAction pauses, resumes or cancels a deployment.
func (c *Client) DeploymentAction(ctx context.Context, id, action string) (*fleet.Deployment, error) {
	var out fleet.Deployment
	return &out, c.doJSON(ctx, http.MethodPost, "/api/v1/deployments/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, &out)
}

// DeploymentExecutions lists a deployment's executions.
func (c *Client) DeploymentExecutions(ctx context.Context, id string) ([]*fleet.Execution, error) {
	var out []*fleet.Execution
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id)+"/executions?limit=100000", nil, &out)
}

// DeviceClient calls the device API with a device token. The device agent
// uses it.
type DeviceClient struct{ base }

// NewDeviceClient returns a device client for the server at baseURL.
func NewDeviceClient(baseURL, token string, hc *http.Client) *DeviceClient {
	return &DeviceClient{base{URL: baseURL, Token: token, HTTP: hc}}
}

// CheckIn reports what the device runs and returns the server's answer.
func (c *DeviceClient) CheckIn(ctx context.Context, in fleet.CheckIn) (*CheckInResponse, error) {
	var out CheckInResponse
	return &out, c.doJSON(ctx, http.MethodPost, "/api/v1/device/checkin", in, &out)
}

// Report sends a status report for a deployment. A canceled deployment
// answers an error that matches fleet.ErrConflict.
func (c *DeviceClient) Report(ctx context.Context, deploymentID string, s fleet.Status) (*fleet.Execution, error) {
	var out fleet.Execution
	return &out, c.doJSON(ctx, http.MethodPost, DeploymentPath(deploymentID)+"/status", s, &out)
}

// Executions returns the device's own executions and their history.
func (c *DeviceClient) Executions(ctx context.Context) ([]*fleet.Execution, error) {
	var out []*fleet.Execution
	return out, c.doJSON(ctx, http.MethodGet, "/api/v1/device/executions", nil, &out)
}

// Download writes the artifact at path (as given in the offer) to w,
// starting at offset: a cut download resumes with a Range request tied to
// etag by If-Range (pass the ETag of the first attempt, or ""). It returns
// the bytes written and the ETag.
func (c *DeviceClient) Download(ctx context.Context, path string, offset int64, etag string, w io.Writer) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		if etag != "" {
			req.Header.Set("If-Range", etag)
		}
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	switch {
	case offset > 0 && resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			return 0, "", fmt.Errorf("server ignored the range (artifact changed?): %w", fleet.ErrConflict)
		}
	default:
		return 0, "", readAPIError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	return n, resp.Header.Get("ETag"), err
}
