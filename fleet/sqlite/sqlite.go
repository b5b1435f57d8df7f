// Package sqlite implements fleet.Store on SQLite (modernc.org/sqlite, no
// cgo). The database runs in WAL mode with one writer connection and a pool
// of readers; the schema is created by numbered migrations recorded in
// schema_migrations, applied in order, each in its own transaction.
//
// Durability: WAL with synchronous=NORMAL keeps every committed transaction
// across a process crash (kill -9); a power cut may lose the last
// transactions but never corrupts the database. Device last-seen times are
// buffered in memory and flushed every second, as they are telemetry.
package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otakit/otakit/fleet"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// migrations are applied in order; never edit a released entry, append.
var migrations = []string{
	`CREATE TABLE devices (
		id TEXT PRIMARY KEY,
		token_hash TEXT NOT NULL UNIQUE,
		hardware_revision TEXT NOT NULL DEFAULT '',
		bootloader_version TEXT NOT NULL DEFAULT '',
		current_version TEXT NOT NULL DEFAULT '',
		attributes TEXT NOT NULL DEFAULT '{}',
		grp TEXT NOT NULL DEFAULT '',
		tags TEXT NOT NULL DEFAULT '[]',
		state TEXT NOT NULL DEFAULT '',
		last_seen INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX devices_grp ON devices(grp);
	CREATE TABLE device_tags (
		tag TEXT NOT NULL,
		device_id TEXT NOT NULL REFERENCES devices(id),
		PRIMARY KEY (tag, device_id)
	) WITHOUT ROWID;
	CREATE TABLE releases (
		id TEXT PRIMARY KEY,
		version TEXT NOT NULL,
		manifest BLOB NOT NULL,
		summary BLOB,
		compatibility TEXT NOT NULL,
		notes TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL
	);
	CREATE TABLE artifacts (
		release_id TEXT NOT NULL REFERENCES releases(id),
		name TEXT NOT NULL,
		size INTEGER NOT NULL,
		sha256 TEXT NOT NULL,
		kind TEXT NOT NULL,
		from_version TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (release_id, name)
	);
	CREATE INDEX artifacts_sha256 ON artifacts(sha256);
	CREATE TABLE deployments (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL DEFAULT '',
		release_id TEXT NOT NULL REFERENCES releases(id),
		target TEXT NOT NULL,
		phases TEXT NOT NULL,
		advance_at REAL NOT NULL,
		pause_at REAL NOT NULL,
		start_at INTEGER NOT NULL,
		state TEXT NOT NULL,
		current_phase INTEGER NOT NULL,
		reason TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE executions (
		id INTEGER PRIMARY KEY,
		deployment_id TEXT NOT NULL REFERENCES deployments(id),
		device_id TEXT NOT NULL REFERENCES devices(id),
		phase INTEGER NOT NULL,
		state TEXT NOT NULL,
		device_state TEXT NOT NULL DEFAULT '',
		progress INTEGER NOT NULL DEFAULT 0,
		bytes INTEGER NOT NULL DEFAULT 0,
		total_bytes INTEGER NOT NULL DEFAULT 0,
		speed INTEGER NOT NULL DEFAULT 0,
		artifact TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		updated_at INTEGER NOT NULL,
		UNIQUE (deployment_id, device_id)
	);
	CREATE INDEX executions_device ON executions(device_id, state);
	CREATE TABLE exec_counts (
		deployment_id TEXT NOT NULL,
		phase INTEGER NOT NULL,
		state TEXT NOT NULL,
		n INTEGER NOT NULL,
		PRIMARY KEY (deployment_id, phase, state)
	) WITHOUT ROWID;
	CREATE TABLE execution_events (
		id INTEGER PRIMARY KEY,
		execution_id INTEGER NOT NULL REFERENCES executions(id),
		time INTEGER NOT NULL,
		state TEXT NOT NULL,
		progress INTEGER NOT NULL,
		message TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX execution_events_exec ON execution_events(execution_id);`,
	authSetMigration,
}

// DB is a fleet.Store backed by one SQLite database file.
type DB struct {
	w   *sql.DB // the single writer
	r   *sql.DB // readers
	now func() time.Time

	// Hot-path statements, prepared once: parsing SQL costs more than
	// running these indexed lookups.
	offerStmt, deviceStmt *sql.Stmt

	// gen counts committed writes that may create offers; noOffer maps a
	// device id to the gen at which its check-in found nothing, so an idle
	// fleet checks in without touching the database.
	gen     atomic.Uint64
	noOffer sync.Map
	bumpTx  sync.Map // *sql.Tx -> true: bump gen after this commit

	tokens   sync.Map // token hash -> device id; tokens never change
	devCache sync.Map // device id -> *fleet.Device, for check-ins

	relMu    sync.Mutex
	releases map[string]*fleet.Release // immutable once created

	seenMu sync.Mutex
	seen   map[string]int64 // device id -> last seen (unix ms), not yet flushed
	stop   chan struct{}
	done   chan struct{}
}

var _ fleet.Store = (*DB)(nil)

// Open opens or creates the database at path and migrates it.
func Open(path string) (*DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db := &DB{w: w, now: time.Now, releases: map[string]*fleet.Release{}, seen: map[string]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := db.migrate(); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(ON)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	db.r = r
	if db.offerStmt, err = r.Prepare(offerQuery); err == nil {
		db.deviceStmt, err = r.Prepare(`SELECT ` + deviceCols + ` FROM devices WHERE id = ?`)
	}
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	if err := db.warm(context.Background()); err != nil {
		db.offerStmt.Close()
		db.deviceStmt.Close()
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: loading caches: %w", err)
	}
	go db.flushLoop()
	return db, nil
}

// Close flushes buffered last-seen times and closes the database.
func (db *DB) Close() error {
	close(db.stop)
	<-db.done
	err := db.flushSeen()
	db.offerStmt.Close()
	db.deviceStmt.Close()
	err2 := db.r.Close()
	err3 := db.w.Close()
	return errors.Join(err, err2, err3)
}

// SetClock replaces the clock, for tests of schedules.
func (db *DB) SetClock(now func() time.Time) { db.now = now }

func (db *DB) migrate() error {
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrations table: %w", err)
	}
	var have int
	if err := db.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this program (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?)`, v, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion returns the number of applied migrations.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.r.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (db *DB) flushLoop() {
	defer close(db.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			db.flushSeen()
		}
	}
}

func (db *DB) flushSeen() error {
	db.seenMu.Lock()
	seen := db.seen
	db.seen = make(map[string]int64, len(seen))
	db.seenMu.Unlock()
	if len(seen) == 0 {
		return nil
	}
	// One statement for the whole batch: per-row statements cost more in
	// database/sql than the updates themselves.
	b, _ := json.Marshal(seen)
	_, err := db.w.Exec(`UPDATE devices SET last_seen = j.value FROM json_each(?) AS j
		WHERE devices.id = j.key AND devices.last_seen < j.value`, string(b))
	if err != nil {
		return fmt.Errorf("sqlite: flushing last-seen times: %w", err)
	}
	return nil
}

func (db *DB) markSeen(id string, t time.Time) {
	db.seenMu.Lock()
	db.seen[id] = t.UnixMilli()
	db.seenMu.Unlock()
}

// tx runs fn in a write transaction, then invalidates the cached "no
// offer" answers: after the commit, so a check-in that read the old state
// cannot cache it under the new generation.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer func() {
		if _, ok := db.bumpTx.LoadAndDelete(tx); ok {
			db.gen.Add(1)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// mayCreateOffers marks tx as changing a deployment in a way that can make
// offers appear (new deployment, new phase, resumed or started), so the
// cached "no offer" answers are dropped once it commits.
func (db *DB) mayCreateOffers(tx *sql.Tx) { db.bumpTx.Store(tx, true) }

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
