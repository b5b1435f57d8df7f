package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/otakit/otakit/fleet"
)

// authSetMigration creates the auth_sets table (Mender device auth).
const authSetMigration = `CREATE TABLE auth_sets (
		device_id TEXT PRIMARY KEY,
		identity_data TEXT NOT NULL,
		public_key TEXT NOT NULL,
		status TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX auth_sets_status ON auth_sets(status);`

var _ fleet.AuthSetService = (*DB)(nil)

const authCols = `device_id, identity_data, public_key, status, created_at, updated_at`

func scanAuthSet(s scanner) (*fleet.AuthSet, error) {
	var a fleet.AuthSet
	var c, u int64
	if err := s.Scan(&a.DeviceID, &a.IdentityData, &a.PublicKey, &a.Status, &c, &u); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = fromMS(c), fromMS(u)
	return &a, nil
}

func validAuthStatus(s string) error {
	switch s {
	case fleet.AuthPending, fleet.AuthAccepted, fleet.AuthRejected:
		return nil
	}
	return fmt.Errorf("%w: auth status %q (want pending, accepted or rejected)", fleet.ErrInvalid, s)
}

// RequestAuth records a signed auth request.
func (db *DB) RequestAuth(ctx context.Context, a *fleet.AuthSet, status string) (*fleet.AuthSet, error) {
	if err := ValidDeviceID(a.DeviceID); err != nil {
		return nil, err
	}
	if err := validAuthStatus(status); err != nil {
		return nil, err
	}
	if len(a.IdentityData) > 4096 || len(a.PublicKey) > 16384 || a.IdentityData == "" || a.PublicKey == "" {
		return nil, fmt.Errorf("%w: identity data or public key empty or too long", fleet.ErrInvalid)
	}
	cur, err := db.AuthSet(ctx, a.DeviceID)
	if err != nil && !errors.Is(err, fleet.ErrNotFound) {
		return nil, err
	}
	if cur != nil && cur.PublicKey == a.PublicKey && cur.IdentityData == a.IdentityData {
		// Auto-accept promotes a pending set only: it never overrides an
		// admin's rejection.
		if cur.Status != fleet.AuthPending || status != fleet.AuthAccepted {
			return cur, nil
		}
	}
	now := ms(db.now())
	_, err = db.w.ExecContext(ctx, `INSERT INTO auth_sets (`+authCols+`) VALUES (?,?,?,?,?,?)
		ON CONFLICT (device_id) DO UPDATE SET identity_data = excluded.identity_data, public_key = excluded.public_key,
		status = excluded.status, updated_at = excluded.updated_at`,
		a.DeviceID, a.IdentityData, a.PublicKey, fleet.AuthPending, now, now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: auth request: %w", err)
	}
	if status != fleet.AuthPending {
		return db.SetAuthStatus(ctx, a.DeviceID, status)
	}
	return db.AuthSet(ctx, a.DeviceID)
}

// AuthSet returns a device's auth set.
func (db *DB) AuthSet(ctx context.Context, deviceID string) (*fleet.AuthSet, error) {
	a, err := scanAuthSet(db.r.QueryRowContext(ctx, `SELECT `+authCols+` FROM auth_sets WHERE device_id = ?`, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no auth set for device %q", fleet.ErrNotFound, deviceID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: auth set: %w", err)
	}
	return a, nil
}

// AuthSets lists auth sets, optionally of one status.
func (db *DB) AuthSets(ctx context.Context, status string) ([]*fleet.AuthSet, error) {
	q := `SELECT ` + authCols + ` FROM auth_sets`
	var args []any
	if status != "" {
		if err := validAuthStatus(status); err != nil {
			return nil, err
		}
		q += ` WHERE status = ?`
		args = append(args, status)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY device_id LIMIT 10000`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: auth sets: %w", err)
	}
	defer rows.Close()
	var out []*fleet.AuthSet
	for rows.Next() {
		a, err := scanAuthSet(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAuthStatus accepts or rejects an auth set. Accepting provisions the
// device (its bearer token is discarded: such devices authenticate with
// their key).
func (db *DB) SetAuthStatus(ctx context.Context, deviceID, status string) (*fleet.AuthSet, error) {
	if err := validAuthStatus(status); err != nil {
		return nil, err
	}
	if _, err := db.AuthSet(ctx, deviceID); err != nil {
		return nil, err
	}
	if status == fleet.AuthAccepted {
		if _, err := db.Device(ctx, deviceID); errors.Is(err, fleet.ErrNotFound) {
			if _, err := db.CreateDevice(ctx, &fleet.Device{ID: deviceID}); err != nil && !errors.Is(err, fleet.ErrConflict) {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
	}
	if _, err := db.w.ExecContext(ctx, `UPDATE auth_sets SET status = ?, updated_at = ? WHERE device_id = ?`,
		status, ms(db.now()), deviceID); err != nil {
		return nil, fmt.Errorf("sqlite: set auth status: %w", err)
	}
	return db.AuthSet(ctx, deviceID)
}
