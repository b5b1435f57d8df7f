package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/otakit/otakit/fleet"
)

// CreateRelease stores a release and its artifact list.
func (db *DB) CreateRelease(ctx context.Context, r *fleet.Release) error {
	if r.ID == "" || len(r.Manifest) == 0 {
		return fmt.Errorf("%w: release needs an id and a manifest", fleet.ErrInvalid)
	}
	r.CreatedAt = db.now().UTC()
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO releases (id, version, manifest, summary, compatibility, notes, created_at)
			VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`, r.ID, r.Version, []byte(r.Manifest), []byte(r.Summary),
			jsonString(r.Compatibility, "{}"), r.ReleaseNotes, ms(r.CreatedAt))
		if err != nil {
			return fmt.Errorf("sqlite: insert release: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: release %q already exists", fleet.ErrConflict, r.ID)
		}
		for _, a := range r.Artifacts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO artifacts (release_id, name, size, sha256, kind, from_version)
				VALUES (?,?,?,?,?,?)`, r.ID, a.Name, a.Size, a.SHA256, a.Kind, a.FromVersion); err != nil {
				return fmt.Errorf("sqlite: insert artifact: %w", err)
			}
		}
		return nil
	})
	return err
}

// Release returns a release; releases are cached as they never change.
func (db *DB) Release(ctx context.Context, id string) (*fleet.Release, error) {
	db.relMu.Lock()
	r, ok := db.releases[id]
	db.relMu.Unlock()
	if ok {
		return r, nil
	}
	rs, err := db.queryReleases(ctx, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: release %q", fleet.ErrNotFound, id)
	}
	db.relMu.Lock()
	db.releases[id] = rs[0]
	db.relMu.Unlock()
	return rs[0], nil
}

// Releases lists releases, newest first.
func (db *DB) Releases(ctx context.Context) ([]*fleet.Release, error) {
	return db.queryReleases(ctx, `ORDER BY created_at DESC, id`)
}

func (db *DB) queryReleases(ctx context.Context, where string, args ...any) ([]*fleet.Release, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, version, manifest, summary, compatibility, notes, created_at FROM releases `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: releases: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Release
	byID := map[string]*fleet.Release{}
	for rows.Next() {
		var r fleet.Release
		var manifest, summary []byte
		var compat string
		var created int64
		if err := rows.Scan(&r.ID, &r.Version, &manifest, &summary, &compat, &r.ReleaseNotes, &created); err != nil {
			return nil, fmt.Errorf("sqlite: releases: %w", err)
		}
		r.Manifest, r.Summary, r.CreatedAt = manifest, summary, fromMS(created)
		json.Unmarshal([]byte(compat), &r.Compatibility)
		out = append(out, &r)
		byID[r.ID] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	arows, err := db.r.QueryContext(ctx, `SELECT release_id, name, size, sha256, kind, from_version FROM artifacts ORDER BY release_id, name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: artifacts: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id string
		var a fleet.Artifact
		if err := arows.Scan(&id, &a.Name, &a.Size, &a.SHA256, &a.Kind, &a.FromVersion); err != nil {
			return nil, fmt.Errorf("sqlite: artifacts: %w", err)
		}
		if r := byID[id]; r != nil {
			r.Artifacts = append(r.Artifacts, a)
		}
	}
	return out, arows.Err()
}

// BlobReferenced reports whether a release uses the blob.
func (db *DB) BlobReferenced(ctx context.Context, sum string) (bool, error) {
	var one int
	err := db.w.QueryRowContext(ctx, `SELECT 1 FROM artifacts WHERE sha256 = ? LIMIT 1`, sum).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: %w", err)
	}
	return true, nil
}
