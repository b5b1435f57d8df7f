package fleet

import (
	"context"
	"time"
)

// Auth set states. A device that asks to join with a key waits in
// AuthPending until an admin accepts it (or the server auto-accepts);
// AuthRejected keys are refused until accepted again.
const (
	AuthPending  = "pending"
	AuthAccepted = "accepted"
	AuthRejected = "rejected"
)

// AuthSet is a device's request to join the fleet with a public key, as
// Mender clients make it: identity data (a JSON object such as
// {"mac":"…"}) and the key that signs its requests. The server keeps one
// auth set per device; DeviceID is derived from the identity data.
type AuthSet struct {
	DeviceID     string    `json:"device"`
	IdentityData string    `json:"identityData"`
	PublicKey    string    `json:"publicKey"`
	Status       string    `json:"status"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// AuthSetService stores auth sets. RequestAuth is called for a device whose
// request signature was already checked; the rest are admin operations.
type AuthSetService interface {
	// RequestAuth records a signed auth request and returns the stored auth
	// set. A known device with the same key keeps its status; a new device,
	// or a known one with a new key, becomes status (AuthPending, or
	// AuthAccepted when the server auto-accepts; accepting provisions the
	// fleet device). ErrInvalid for bad fields.
	RequestAuth(ctx context.Context, a *AuthSet, status string) (*AuthSet, error)
	// AuthSet returns a device's auth set, or ErrNotFound.
	AuthSet(ctx context.Context, deviceID string) (*AuthSet, error)
	// AuthSets lists auth sets with the given status ("" for all) by device id.
	AuthSets(ctx context.Context, status string) ([]*AuthSet, error)
	// SetAuthStatus accepts or rejects a device's auth set; accepting
	// provisions the fleet device if it does not exist. ErrNotFound,
	// ErrInvalid for an unknown status.
	SetAuthStatus(ctx context.Context, deviceID, status string) (*AuthSet, error)
}
