// Package fleet holds the fleet server's domain: devices, releases,
// deployments and executions, and the service interfaces that stores
// implement. Implementations live in packages named after their dependency
// (fleet/sqlite, fleet/blob, fleet/http); cmd/ota wires them together.
//
// The rules that do not depend on storage — which artifact a device gets,
// whether a device is compatible with a release, how a rollout advances —
// are plain functions here so every store and transport shares them.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Errors returned by services. Implementations wrap them with context;
// callers test with errors.Is. Transports map them to status codes.
var (
	ErrNotFound     = errors.New("fleet: not found")
	ErrConflict     = errors.New("fleet: conflict")
	ErrInvalid      = errors.New("fleet: invalid input")
	ErrUnauthorized = errors.New("fleet: unauthorized")
	ErrForbidden    = errors.New("fleet: forbidden")
)

// Device is one provisioned device. Its credential is a bearer token of
// which the server keeps only the SHA-256 hash.
type Device struct {
	ID                string            `json:"id"`
	HardwareRevision  string            `json:"hardwareRevision,omitempty"`
	BootloaderVersion string            `json:"bootloaderVersion,omitempty"`
	CurrentVersion    string            `json:"currentVersion,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
	Group             string            `json:"group,omitempty"`
	Tags              []string          `json:"tags,omitempty"`
	// State is the device's last reported update state (IDLE, DOWNLOADING…).
	State     string    `json:"state,omitempty"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	CreatedAt time.Time `json:"createdAt"`
}

// DeviceUpdate changes a device's group and tags; nil fields are left alone.
type DeviceUpdate struct {
	Group *string   `json:"group,omitempty"`
	Tags  *[]string `json:"tags,omitempty"`
}

// DeviceFilter selects devices in listings.
type DeviceFilter struct {
	Group  string
	Tag    string
	Offset int
	Limit  int // 0 means a default page
}

// CheckIn is what a device sends when it asks for an update.
type CheckIn struct {
	CurrentVersion    string            `json:"currentVersion"`
	HardwareRevision  string            `json:"hardwareRevision,omitempty"`
	BootloaderVersion string            `json:"bootloaderVersion,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// Offer is the answer to a check-in when an update is due: the deployment
// and execution it belongs to, the release, and the artifact chosen for
// this device (a delta from its exact version, or the full image).
type Offer struct {
	Deployment *Deployment
	Execution  *Execution
	Release    *Release
	Artifact   Artifact
}

// DeviceService manages devices. Provisioning, listing and updating are
// admin operations; Authenticate and CheckIn are called on behalf of a
// device after its token was checked.
type DeviceService interface {
	// CreateDevice provisions d and returns its token, shown only once.
	// ErrConflict if the id exists, ErrInvalid for a bad id.
	CreateDevice(ctx context.Context, d *Device) (token string, err error)
	// CreateDevices provisions many devices in one transaction.
	CreateDevices(ctx context.Context, ds []*Device) (tokens []string, err error)
	// Device returns one device or ErrNotFound.
	Device(ctx context.Context, id string) (*Device, error)
	// Devices lists devices ordered by id.
	Devices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// UpdateDevice sets group and tags. ErrNotFound, ErrInvalid.
	UpdateDevice(ctx context.Context, id string, u DeviceUpdate) (*Device, error)
	// AuthenticateDevice maps a device token to its device id, or
	// ErrUnauthorized.
	AuthenticateDevice(ctx context.Context, token string) (string, error)
	// CheckIn records what device id runs and returns the update it should
	// install, or nil when there is none.
	CheckIn(ctx context.Context, id string, c CheckIn) (*Offer, error)
}

// ReleaseService stores releases. Releases are immutable once created.
type ReleaseService interface {
	// CreateRelease stores r, whose artifacts must already be in the blob
	// store. ErrConflict if the version exists.
	CreateRelease(ctx context.Context, r *Release) error
	// Release returns a release by id (its version) or ErrNotFound.
	Release(ctx context.Context, id string) (*Release, error)
	// Releases lists releases, newest first.
	Releases(ctx context.Context) ([]*Release, error)
	// BlobReferenced reports whether any release uses the blob with this
	// SHA-256, so a failed upload can remove only its own new blobs.
	BlobReferenced(ctx context.Context, sha256 string) (bool, error)
}

// DeploymentService runs rollouts. All methods but ReportStatus and
// DeviceExecutions are admin operations.
type DeploymentService interface {
	// CreateDeployment resolves d.Target to devices, assigns them to phases
	// and stores the deployment. ErrInvalid (bad phases, empty target),
	// ErrNotFound (unknown release).
	CreateDeployment(ctx context.Context, d *Deployment) error
	// Deployment returns one deployment with its statistics, or ErrNotFound.
	Deployment(ctx context.Context, id string) (*Deployment, error)
	// Deployments lists deployments with statistics, newest first.
	Deployments(ctx context.Context) ([]*Deployment, error)
	// PauseDeployment stops new offers. ErrConflict unless running or scheduled.
	PauseDeployment(ctx context.Context, id string) (*Deployment, error)
	// ResumeDeployment restarts a paused deployment; when the current phase
	// has finished it moves on to the next. ErrConflict unless paused.
	ResumeDeployment(ctx context.Context, id string) (*Deployment, error)
	// CancelDeployment cancels every unfinished execution. ErrConflict if
	// already finished.
	CancelDeployment(ctx context.Context, id string) (*Deployment, error)
	// Executions lists executions of a deployment or of a device.
	Executions(ctx context.Context, f ExecutionFilter) ([]*Execution, error)
	// Execution returns one execution with its history, or ErrNotFound.
	Execution(ctx context.Context, id int64) (*Execution, error)
	// DeviceExecution returns the device's own execution in a deployment;
	// ErrNotFound when it has none, so a device never learns of, nor reads,
	// another device's deployment.
	DeviceExecution(ctx context.Context, deviceID, deploymentID string) (*Execution, error)
	// ReportStatus records a device's status for its execution in a
	// deployment. ErrNotFound when the device has no execution there (also
	// for another device's deployment), ErrConflict when the execution was
	// canceled or already finished differently, ErrInvalid for a bad state.
	ReportStatus(ctx context.Context, deviceID, deploymentID string, s Status) (*Execution, error)
	// StartDue starts scheduled deployments whose start time has come.
	StartDue(ctx context.Context, now time.Time) error
}

// Store is everything a fleet server needs from its database.
type Store interface {
	DeviceService
	ReleaseService
	DeploymentService
	io.Closer
}

// BlobStore keeps artifacts by SHA-256. Put must never make a partial blob
// visible: a blob either exists whole or not at all.
type BlobStore interface {
	// Put stores r and returns its hex SHA-256 and size; created is false
	// when an identical blob already existed. A limit > 0 caps the size
	// (ErrInvalid beyond it).
	Put(ctx context.Context, r io.Reader, limit int64) (sha256 string, size int64, created bool, err error)
	// Open returns the blob for reading, or ErrNotFound.
	Open(sha256 string) (Blob, error)
	// Delete removes a blob; a missing blob is not an error.
	Delete(sha256 string) error
}

// Blob is a readable, seekable stored artifact.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// rawJSON is json.RawMessage; the alias keeps field declarations short.
type rawJSON = json.RawMessage
