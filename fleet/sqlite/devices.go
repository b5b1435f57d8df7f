package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/otakit/otakit/fleet"
)

// TokenPrefix starts every device token, so leaked tokens are recognisable.
const TokenPrefix = "otd_"

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ValidDeviceID reports whether id is an acceptable device id: 1 to 128
// characters of letters, digits and "-_.:@".
func ValidDeviceID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: device id must be 1 to 128 characters", fleet.ErrInvalid)
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("-_.:@", c)) {
			return fmt.Errorf("%w: device id %q has character %q", fleet.ErrInvalid, id, c)
		}
	}
	return nil
}

func validLabel(what, s string) error {
	if len(s) > 128 || strings.ContainsAny(s, "\x00\n\r") {
		return fmt.Errorf("%w: %s %q too long or has control characters", fleet.ErrInvalid, what, s)
	}
	return nil
}

func validTags(tags []string) error {
	if len(tags) > 64 {
		return fmt.Errorf("%w: at most 64 tags", fleet.ErrInvalid)
	}
	for _, t := range tags {
		if t == "" {
			return fmt.Errorf("%w: empty tag", fleet.ErrInvalid)
		}
		if err := validLabel("tag", t); err != nil {
			return err
		}
	}
	return nil
}

func validAttributes(a map[string]string) error {
	if len(a) > 64 {
		return fmt.Errorf("%w: at most 64 attributes", fleet.ErrInvalid)
	}
	for k, v := range a {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return fmt.Errorf("%w: attribute %q: key 1..128 and value ≤ 1024 bytes", fleet.ErrInvalid, k)
		}
	}
	return nil
}

// CreateDevice provisions one device. See fleet.DeviceService.
func (db *DB) CreateDevice(ctx context.Context, d *fleet.Device) (string, error) {
	toks, err := db.CreateDevices(ctx, []*fleet.Device{d})
	if err != nil {
		return "", err
	}
	return toks[0], nil
}

// CreateDevices provisions devices in one transaction.
func (db *DB) CreateDevices(ctx context.Context, ds []*fleet.Device) ([]string, error) {
	for _, d := range ds {
		if err := ValidDeviceID(d.ID); err != nil {
			return nil, err
		}
		for what, s := range map[string]string{"group": d.Group, "hardware revision": d.HardwareRevision,
			"bootloader version": d.BootloaderVersion, "current version": d.CurrentVersion} {
			if err := validLabel(what, s); err != nil {
				return nil, err
			}
		}
		if err := validTags(d.Tags); err != nil {
			return nil, err
		}
		if err := validAttributes(d.Attributes); err != nil {
			return nil, err
		}
	}
	now := db.now().UTC()
	toks := make([]string, len(ds))
	gen := db.gen.Load() // new devices have no executions until a deployment bumps gen
	err := db.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO devices (id, token_hash, hardware_revision, bootloader_version,
			current_version, attributes, grp, tags, created_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		tag, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO device_tags (tag, device_id) VALUES (?, ?)`)
		if err != nil {
			return err
		}
		defer tag.Close()
		for i, d := range ds {
			toks[i] = newToken()
			tags := normTags(d.Tags)
			res, err := ins.ExecContext(ctx, d.ID, hashToken(toks[i]), d.HardwareRevision, d.BootloaderVersion,
				d.CurrentVersion, jsonString(d.Attributes, "{}"), d.Group, jsonString(tags, "[]"), ms(now))
			if err != nil {
				return fmt.Errorf("sqlite: insert device: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: device %q already exists", fleet.ErrConflict, d.ID)
			}
			for _, t := range tags {
				if _, err := tag.ExecContext(ctx, t, d.ID); err != nil {
					return err
				}
			}
			d.Tags, d.CreatedAt = tags, now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, d := range ds {
		db.tokens.Store(hashToken(toks[i]), d.ID)
		c := *d
		db.devCache.Store(d.ID, &c)
		db.noOffer.Store(d.ID, gen)
	}
	return toks, nil
}

func normTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	t := append([]string(nil), tags...)
	sort.Strings(t)
	out := t[:0]
	for i, s := range t {
		if i == 0 || s != t[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func jsonString(v any, empty string) string {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return empty
	}
	return string(b)
}

const deviceCols = `id, hardware_revision, bootloader_version, current_version, attributes, grp, tags, state, last_seen, created_at`

type scanner interface{ Scan(...any) error }

func (db *DB) scanDevice(s scanner) (*fleet.Device, error) {
	var d fleet.Device
	var attrs, tags string
	var seen, created int64
	if err := s.Scan(&d.ID, &d.HardwareRevision, &d.BootloaderVersion, &d.CurrentVersion, &attrs, &d.Group, &tags,
		&d.State, &seen, &created); err != nil {
		return nil, err
	}
	json.Unmarshal([]byte(attrs), &d.Attributes)
	json.Unmarshal([]byte(tags), &d.Tags)
	d.LastSeen, d.CreatedAt = fromMS(seen), fromMS(created)
	db.seenMu.Lock()
	if t, ok := db.seen[d.ID]; ok && t > seen {
		d.LastSeen = fromMS(t)
	}
	db.seenMu.Unlock()
	return &d, nil
}

// Device returns one device.
func (db *DB) Device(ctx context.Context, id string) (*fleet.Device, error) {
	d, err := db.scanDevice(db.deviceStmt.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: device %q", fleet.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: device: %w", err)
	}
	return d, nil
}

// Devices lists devices by id.
func (db *DB) Devices(ctx context.Context, f fleet.DeviceFilter) ([]*fleet.Device, error) {
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	q := `SELECT ` + deviceCols + ` FROM devices WHERE 1=1`
	var args []any
	if f.Group != "" {
		q += ` AND grp = ?`
		args = append(args, f.Group)
	}
	if f.Tag != "" {
		q += ` AND id IN (SELECT device_id FROM device_tags WHERE tag = ?)`
		args = append(args, f.Tag)
	}
	q += ` ORDER BY id LIMIT ? OFFSET ?`
	args = append(args, limit, max(f.Offset, 0))
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: devices: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Device
	for rows.Next() {
		d, err := db.scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpdateDevice sets a device's group and tags.
func (db *DB) UpdateDevice(ctx context.Context, id string, u fleet.DeviceUpdate) (*fleet.Device, error) {
	if u.Group != nil {
		if err := validLabel("group", *u.Group); err != nil {
			return nil, err
		}
	}
	if u.Tags != nil {
		if err := validTags(*u.Tags); err != nil {
			return nil, err
		}
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: device %q", fleet.ErrNotFound, id)
		}
		db.forget(id)
		if u.Group != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET grp = ? WHERE id = ?`, *u.Group, id); err != nil {
				return err
			}
		}
		if u.Tags != nil {
			tags := normTags(*u.Tags)
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET tags = ? WHERE id = ?`, jsonString(tags, "[]"), id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM device_tags WHERE device_id = ?`, id); err != nil {
				return err
			}
			for _, t := range tags {
				if _, err := tx.ExecContext(ctx, `INSERT INTO device_tags (tag, device_id) VALUES (?, ?)`, t, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return db.Device(ctx, id)
}

// AuthenticateDevice maps a token to a device id.
func (db *DB) AuthenticateDevice(ctx context.Context, token string) (string, error) {
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 128 {
		return "", fleet.ErrUnauthorized
	}
	h := hashToken(token)
	if id, ok := db.tokens.Load(h); ok {
		return id.(string), nil
	}
	var id string
	err := db.r.QueryRowContext(ctx, `SELECT id FROM devices WHERE token_hash = ?`, h).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fleet.ErrUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: authenticate: %w", err)
	}
	db.tokens.Store(h, id)
	return id, nil
}

// CheckIn records a device's facts and returns its pending offer, if any.
func (db *DB) CheckIn(ctx context.Context, id string, c fleet.CheckIn) (*fleet.Offer, error) {
	for what, s := range map[string]string{"hardware revision": c.HardwareRevision,
		"bootloader version": c.BootloaderVersion, "current version": c.CurrentVersion} {
		if err := validLabel(what, s); err != nil {
			return nil, err
		}
	}
	if err := validAttributes(c.Attributes); err != nil {
		return nil, err
	}
	now := db.now().UTC()
	d, err := db.facts(ctx, id)
	if err != nil {
		return nil, err
	}
	db.markSeen(id, now)
	changed := false
	if c.CurrentVersion != "" && c.CurrentVersion != d.CurrentVersion {
		d.CurrentVersion, changed = c.CurrentVersion, true
	}
	if c.HardwareRevision != "" && c.HardwareRevision != d.HardwareRevision {
		d.HardwareRevision, changed = c.HardwareRevision, true
	}
	if c.BootloaderVersion != "" && c.BootloaderVersion != d.BootloaderVersion {
		d.BootloaderVersion, changed = c.BootloaderVersion, true
	}
	if c.Attributes != nil && !maps.Equal(c.Attributes, d.Attributes) {
		d.Attributes, changed = c.Attributes, true
	}
	if changed {
		db.forget(id)
		_, err := db.w.ExecContext(ctx, `UPDATE devices SET current_version = ?, hardware_revision = ?, bootloader_version = ?,
			attributes = ? WHERE id = ?`, d.CurrentVersion, d.HardwareRevision, d.BootloaderVersion,
			jsonString(d.Attributes, "{}"), id)
		db.forget(id)
		if err != nil {
			return nil, fmt.Errorf("sqlite: check-in: %w", err)
		}
	}
	gen := db.gen.Load()
	if g, ok := db.noOffer.Load(id); ok && g.(uint64) == gen {
		return nil, nil
	}
	off, err := db.offer(ctx, d)
	if err == nil && off == nil {
		db.noOffer.Store(id, gen)
	}
	return off, err
}

// facts returns what check-ins compare against: the device as last read.
// Check-ins are the hot path, so the rows are cached; every write to a
// device row drops its entry (forget) before it commits, and the cache is
// filled only from committed reads, so it never holds stale facts for long.
func (db *DB) facts(ctx context.Context, id string) (*fleet.Device, error) {
	if v, ok := db.devCache.Load(id); ok {
		d := *v.(*fleet.Device)
		return &d, nil
	}
	d, err := db.Device(ctx, id)
	if err != nil {
		return nil, err
	}
	c := *d
	db.devCache.Store(id, &c)
	return d, nil
}

func (db *DB) forget(id string) { db.devCache.Delete(id) }

// warmLimit caps how many devices Open loads into the check-in caches.
const warmLimit = 500000

// warm fills the check-in caches at start-up, so the first check-in of
// each device after a restart costs no more than later ones: tokens and
// facts for every device, and "no offer" for devices without unfinished
// executions.
func (db *DB) warm(ctx context.Context) error {
	rows, err := db.r.QueryContext(ctx, `SELECT token_hash, `+deviceCols+` FROM devices LIMIT ?`, warmLimit)
	if err != nil {
		return err
	}
	gen := db.gen.Load()
	ids := make([]string, 0, 1024)
	for rows.Next() {
		var h string
		var d fleet.Device
		var attrs, tags string
		var seen, created int64
		if err := rows.Scan(&h, &d.ID, &d.HardwareRevision, &d.BootloaderVersion, &d.CurrentVersion, &attrs, &d.Group, &tags,
			&d.State, &seen, &created); err != nil {
			rows.Close()
			return err
		}
		json.Unmarshal([]byte(attrs), &d.Attributes)
		json.Unmarshal([]byte(tags), &d.Tags)
		d.LastSeen, d.CreatedAt = fromMS(seen), fromMS(created)
		db.tokens.Store(h, d.ID)
		db.devCache.Store(d.ID, &d)
		ids = append(ids, d.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	active := map[string]bool{}
	arows, err := db.r.QueryContext(ctx, `SELECT DISTINCT device_id FROM executions WHERE state IN `+activeStates)
	if err != nil {
		return err
	}
	defer arows.Close()
	for arows.Next() {
		var id string
		if err := arows.Scan(&id); err != nil {
			return err
		}
		active[id] = true
	}
	for _, id := range ids {
		if !active[id] {
			db.noOffer.Store(id, gen)
		}
	}
	return arows.Err()
}
