package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otakit/otakit/fleet"
)

// activeStates are the execution states a device still has work in.
const activeStates = `('pending','offered','downloading','verifying','applying','pending_reboot','testing')`

// CreateDeployment resolves the target and stores the deployment.
func (db *DB) CreateDeployment(ctx context.Context, d *fleet.Deployment) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if _, err := db.Release(ctx, d.ReleaseID); err != nil {
		return err
	}
	now := db.now().UTC()
	d.ID = newID("dep-")
	d.CreatedAt, d.UpdatedAt, d.CurrentPhase, d.Reason = now, now, 0, ""
	d.State = fleet.DeploymentRunning
	if !d.StartAt.IsZero() && d.StartAt.After(now) {
		d.State = fleet.DeploymentScheduled
	}
	d.Target.Tags = normTags(d.Target.Tags)
	return db.tx(ctx, func(tx *sql.Tx) error {
		ids, err := resolveTarget(ctx, tx, d.Target)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("%w: target matches no device", fleet.ErrInvalid)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deployments (id, name, release_id, target, phases, advance_at, pause_at,
			start_at, state, current_phase, reason, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			d.ID, d.Name, d.ReleaseID, jsonString(d.Target, "{}"), jsonString(d.Phases, "[]"), d.AdvanceAt, d.PauseAt,
			ms(d.StartAt), d.State, 0, "", ms(now), ms(now)); err != nil {
			return fmt.Errorf("sqlite: insert deployment: %w", err)
		}
		db.mayCreateOffers(tx)
		phase := fleet.AssignPhases(d.ID, ids, d.Phases)
		ins, err := tx.PrepareContext(ctx, `INSERT INTO executions (deployment_id, device_id, phase, state, updated_at) VALUES (?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		counts := map[int]int{}
		for _, id := range ids {
			if _, err := ins.ExecContext(ctx, d.ID, id, phase[id], fleet.ExecPending, ms(now)); err != nil {
				return fmt.Errorf("sqlite: insert execution: %w", err)
			}
			counts[phase[id]]++
		}
		for p, n := range counts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO exec_counts VALUES (?,?,?,?)`, d.ID, p, fleet.ExecPending, n); err != nil {
				return err
			}
		}
		return nil
	})
}

func resolveTarget(ctx context.Context, tx *sql.Tx, t fleet.Target) ([]string, error) {
	var ids []string
	if len(t.Devices) > 0 {
		if len(t.Devices) > 1000000 {
			return nil, fmt.Errorf("%w: too many devices", fleet.ErrInvalid)
		}
		seen := map[string]bool{}
		st, err := tx.PrepareContext(ctx, `SELECT count(*) FROM devices WHERE id = ?`)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		for _, id := range t.Devices {
			if seen[id] {
				continue
			}
			seen[id] = true
			var n int
			if err := st.QueryRowContext(ctx, id).Scan(&n); err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, fmt.Errorf("%w: target device %q does not exist", fleet.ErrInvalid, id)
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	q := `SELECT id FROM devices WHERE 1=1`
	var args []any
	if t.Group != "" {
		q += ` AND grp = ?`
		args = append(args, t.Group)
	}
	if len(t.Tags) > 0 {
		q += ` AND id IN (SELECT device_id FROM device_tags WHERE tag IN (?` + strings.Repeat(",?", len(t.Tags)-1) +
			`) GROUP BY device_id HAVING count(*) = ?)`
		for _, tag := range t.Tags {
			args = append(args, tag)
		}
		args = append(args, len(t.Tags))
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolve target: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

const deploymentCols = `id, name, release_id, target, phases, advance_at, pause_at, start_at, state, current_phase, reason, created_at, updated_at`

func scanDeployment(s scanner) (*fleet.Deployment, error) {
	var d fleet.Deployment
	var target, phases string
	var start, created, updated int64
	if err := s.Scan(&d.ID, &d.Name, &d.ReleaseID, &target, &phases, &d.AdvanceAt, &d.PauseAt, &start, &d.State,
		&d.CurrentPhase, &d.Reason, &created, &updated); err != nil {
		return nil, err
	}
	json.Unmarshal([]byte(target), &d.Target)
	json.Unmarshal([]byte(phases), &d.Phases)
	d.StartAt, d.CreatedAt, d.UpdatedAt = fromMS(start), fromMS(created), fromMS(updated)
	return &d, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func loadDeployment(ctx context.Context, q querier, id string) (*fleet.Deployment, error) {
	d, err := scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: deployment %q", fleet.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: deployment: %w", err)
	}
	s, err := loadStats(ctx, q, id)
	if err != nil {
		return nil, err
	}
	d.Stats = s
	return d, nil
}

func loadStats(ctx context.Context, q querier, id string) (*fleet.Stats, error) {
	rows, err := q.QueryContext(ctx, `SELECT phase, state, n FROM exec_counts WHERE deployment_id = ? ORDER BY phase`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stats: %w", err)
	}
	defer rows.Close()
	s := &fleet.Stats{States: map[string]int{}}
	for rows.Next() {
		var phase, n int
		var state string
		if err := rows.Scan(&phase, &state, &n); err != nil {
			return nil, err
		}
		s.Add(phase, state, n)
	}
	return s, rows.Err()
}

// Deployment returns one deployment with statistics.
func (db *DB) Deployment(ctx context.Context, id string) (*fleet.Deployment, error) {
	return loadDeployment(ctx, db.r, id)
}

// Deployments lists deployments with statistics, newest first.
func (db *DB) Deployments(ctx context.Context) ([]*fleet.Deployment, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+deploymentCols+` FROM deployments ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deployments: %w", err)
	}
	var out []*fleet.Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: deployments: %w", err)
		}
		out = append(out, d)
	}
	rows.Close()
	for _, d := range out {
		if d.Stats, err = loadStats(ctx, db.r, d.ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setDeploymentState updates state, phase and reason.
func (db *DB) setDeploymentState(ctx context.Context, tx *sql.Tx, d *fleet.Deployment) error {
	db.mayCreateOffers(tx)
	d.UpdatedAt = db.now().UTC()
	_, err := tx.ExecContext(ctx, `UPDATE deployments SET state = ?, current_phase = ?, reason = ?, updated_at = ? WHERE id = ?`,
		d.State, d.CurrentPhase, d.Reason, ms(d.UpdatedAt), d.ID)
	return err
}

// evaluate applies the rollout rules after executions changed.
func (db *DB) evaluate(ctx context.Context, tx *sql.Tx, id string) error {
	d, err := loadDeployment(ctx, tx, id)
	if err != nil {
		return err
	}
	dec := fleet.Evaluate(d, d.Stats)
	if dec.State == d.State && dec.CurrentPhase == d.CurrentPhase {
		return nil
	}
	d.State, d.CurrentPhase, d.Reason = dec.State, dec.CurrentPhase, dec.Reason
	return db.setDeploymentState(ctx, tx, d)
}

// PauseDeployment stops new offers.
func (db *DB) PauseDeployment(ctx context.Context, id string) (*fleet.Deployment, error) {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		d, err := loadDeployment(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.State != fleet.DeploymentRunning && d.State != fleet.DeploymentScheduled {
			return fmt.Errorf("%w: deployment %s is %s", fleet.ErrConflict, id, d.State)
		}
		d.State, d.Reason = fleet.DeploymentPaused, "paused by operator"
		return db.setDeploymentState(ctx, tx, d)
	})
	if err != nil {
		return nil, err
	}
	return db.Deployment(ctx, id)
}

// ResumeDeployment restarts a paused deployment. When the current phase
// has finished (it was paused for falling short of advanceAt) the operator's
// resume moves on to the next phase. The failure-rate rule applies again
// from the next report on.
func (db *DB) ResumeDeployment(ctx context.Context, id string) (*fleet.Deployment, error) {
	err := db.tx(ctx, func(tx *sql.Tx) error {
		d, err := loadDeployment(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.State != fleet.DeploymentPaused {
			return fmt.Errorf("%w: deployment %s is %s, not paused", fleet.ErrConflict, id, d.State)
		}
		d.State, d.Reason = fleet.DeploymentRunning, "resumed by operator"
		if !d.StartAt.IsZero() && d.StartAt.After(db.now()) {
			d.State = fleet.DeploymentScheduled
		}
		if s := d.Stats; d.CurrentPhase < len(s.Phases) {
			p := s.Phases[d.CurrentPhase]
			if p.Pending+p.InProgress == 0 {
				if d.CurrentPhase < len(s.Phases)-1 {
					d.CurrentPhase++
				} else {
					d.State, d.Reason = fleet.DeploymentCompleted, "all phases finished"
				}
			}
		}
		return db.setDeploymentState(ctx, tx, d)
	})
	if err != nil {
		return nil, err
	}
	return db.Deployment(ctx, id)
}

// CancelDeployment cancels the deployment and its unfinished executions.
func (db *DB) CancelDeployment(ctx context.Context, id string) (*fleet.Deployment, error) {
	now := ms(db.now())
	err := db.tx(ctx, func(tx *sql.Tx) error {
		d, err := loadDeployment(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.Finished() {
			return fmt.Errorf("%w: deployment %s is already %s", fleet.ErrConflict, id, d.State)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO execution_events (execution_id, time, state, progress, message)
			SELECT id, ?, 'canceled', progress, 'deployment canceled' FROM executions WHERE deployment_id = ? AND state IN `+activeStates,
			now, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE executions SET state = 'canceled', updated_at = ? WHERE deployment_id = ? AND state IN `+activeStates,
			now, id); err != nil {
			return err
		}
		if err := recount(ctx, tx, id); err != nil {
			return err
		}
		d.State, d.Reason = fleet.DeploymentCanceled, "canceled by operator"
		return db.setDeploymentState(ctx, tx, d)
	})
	if err != nil {
		return nil, err
	}
	return db.Deployment(ctx, id)
}

func recount(ctx context.Context, tx *sql.Tx, id string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM exec_counts WHERE deployment_id = ?`, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO exec_counts SELECT deployment_id, phase, state, count(*) FROM executions
		WHERE deployment_id = ? GROUP BY phase, state`, id)
	return err
}

// StartDue starts scheduled deployments whose time has come.
func (db *DB) StartDue(ctx context.Context, now time.Time) error {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM deployments WHERE state = 'scheduled' AND start_at <= ?`, ms(now)).Scan(&n); err != nil || n == 0 {
		return err
	}
	_, err := db.w.ExecContext(ctx, `UPDATE deployments SET state = 'running', reason = 'scheduled start', updated_at = ?
		WHERE state = 'scheduled' AND start_at <= ?`, ms(now), ms(now))
	db.gen.Add(1)
	return err
}

const execCols = `id, deployment_id, device_id, phase, state, device_state, progress, bytes, total_bytes, speed, artifact, error, updated_at`

func scanExecution(s scanner) (*fleet.Execution, error) {
	var e fleet.Execution
	var updated int64
	if err := s.Scan(&e.ID, &e.DeploymentID, &e.DeviceID, &e.Phase, &e.State, &e.DeviceState, &e.Progress, &e.Bytes,
		&e.TotalBytes, &e.Speed, &e.Artifact, &e.Error, &updated); err != nil {
		return nil, err
	}
	e.UpdatedAt = fromMS(updated)
	return &e, nil
}

// Executions lists executions of a deployment or device; a device's
// executions carry their history.
func (db *DB) Executions(ctx context.Context, f fleet.ExecutionFilter) ([]*fleet.Execution, error) {
	limit := f.Limit
	if limit <= 0 || limit > 100000 {
		limit = 1000
	}
	q := `SELECT ` + execCols + ` FROM executions WHERE 1=1`
	var args []any
	if f.DeploymentID != "" {
		q += ` AND deployment_id = ?`
		args = append(args, f.DeploymentID)
	}
	if f.DeviceID != "" {
		q += ` AND device_id = ?`
		args = append(args, f.DeviceID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: executions: %w", err)
	}
	var out []*fleet.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	if f.DeviceID != "" {
		for _, e := range out {
			if e.History, err = db.history(ctx, e.ID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Execution returns one execution with its history.
func (db *DB) Execution(ctx context.Context, id int64) (*fleet.Execution, error) {
	e, err := scanExecution(db.r.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: execution %d", fleet.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: execution: %w", err)
	}
	e.History, err = db.history(ctx, id)
	return e, err
}

func (db *DB) history(ctx context.Context, id int64) ([]fleet.Event, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT time, state, progress, message FROM execution_events WHERE execution_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history: %w", err)
	}
	defer rows.Close()
	var out []fleet.Event
	for rows.Next() {
		var ev fleet.Event
		var t int64
		if err := rows.Scan(&t, &ev.State, &ev.Progress, &ev.Message); err != nil {
			return nil, err
		}
		ev.Time = fromMS(t)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// transition moves an execution to a new state inside tx, keeping the
// per-phase counters and the history in step, then re-evaluates the
// deployment.
func (db *DB) transition(ctx context.Context, tx *sql.Tx, e *fleet.Execution, state, msg string) error {
	old := e.State
	e.State = state
	e.UpdatedAt = db.now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE executions SET state = ?, device_state = ?, progress = ?, bytes = ?, total_bytes = ?,
		speed = ?, artifact = ?, error = ?, updated_at = ? WHERE id = ?`, e.State, e.DeviceState, e.Progress, e.Bytes,
		e.TotalBytes, e.Speed, e.Artifact, e.Error, ms(e.UpdatedAt), e.ID); err != nil {
		return fmt.Errorf("sqlite: update execution: %w", err)
	}
	if old == state {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO execution_events (execution_id, time, state, progress, message) VALUES (?,?,?,?,?)`,
		e.ID, ms(e.UpdatedAt), state, e.Progress, msg); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE exec_counts SET n = n - 1 WHERE deployment_id = ? AND phase = ? AND state = ?`,
		e.DeploymentID, e.Phase, old); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO exec_counts VALUES (?,?,?,1) ON CONFLICT DO UPDATE SET n = n + 1`,
		e.DeploymentID, e.Phase, state); err != nil {
		return err
	}
	return db.evaluate(ctx, tx, e.DeploymentID)
}

const offerQuery = `SELECT e.id, e.deployment_id, e.device_id, e.phase, e.state, e.device_state, e.progress,
	e.bytes, e.total_bytes, e.speed, e.artifact, e.error, e.updated_at, d.state, d.current_phase, d.release_id
	FROM executions e JOIN deployments d ON d.id = e.deployment_id
	WHERE e.device_id = ? AND e.state IN ` + activeStates + ` AND d.state IN ('running','paused')
	ORDER BY d.created_at`

// offer finds the update device d should install now. The common answer,
// "nothing", costs one indexed query.
func (db *DB) offer(ctx context.Context, d *fleet.Device) (*fleet.Offer, error) {
	type cand struct {
		e               *fleet.Execution
		depState, relID string
		curPhase        int
	}
	rows, err := db.offerStmt.QueryContext(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offer: %w", err)
	}
	var cands []cand
	for rows.Next() {
		var c cand
		var e fleet.Execution
		var updated int64
		if err := rows.Scan(&e.ID, &e.DeploymentID, &e.DeviceID, &e.Phase, &e.State, &e.DeviceState, &e.Progress, &e.Bytes,
			&e.TotalBytes, &e.Speed, &e.Artifact, &e.Error, &updated, &c.depState, &c.curPhase, &c.relID); err != nil {
			rows.Close()
			return nil, err
		}
		e.UpdatedAt = fromMS(updated)
		c.e = &e
		cands = append(cands, c)
	}
	rows.Close()
	for _, c := range cands {
		e := c.e
		if e.State == fleet.ExecPending && (c.depState != fleet.DeploymentRunning || e.Phase > c.curPhase) {
			continue
		}
		rel, err := db.Release(ctx, c.relID)
		if err != nil {
			return nil, err
		}
		if e.State == fleet.ExecPending {
			skip := false
			err := db.tx(ctx, func(tx *sql.Tx) error {
				e, err = scanExecution(tx.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE id = ?`, e.ID))
				if err != nil {
					return err
				}
				if e.State != fleet.ExecPending {
					return nil // someone else moved it on
				}
				a, cerr := rel.Choose(d.HardwareRevision, d.BootloaderVersion, d.CurrentVersion)
				if cerr != nil {
					skip = true
					e.Error = cerr.Error()
					return db.transition(ctx, tx, e, fleet.ExecSkipped, cerr.Error())
				}
				e.Artifact = a.Name
				return db.transition(ctx, tx, e, fleet.ExecOffered, "offered "+a.Name)
			})
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
		}
		a, ok := rel.Artifact(e.Artifact)
		if !ok {
			if a, ok = rel.BestArtifact(d.CurrentVersion); !ok {
				continue
			}
		}
		dep := &fleet.Deployment{ID: e.DeploymentID, ReleaseID: rel.ID, State: c.depState, CurrentPhase: c.curPhase}
		return &fleet.Offer{Deployment: dep, Execution: e, Release: rel, Artifact: a}, nil
	}
	return nil, nil
}

// DeviceExecution returns device's execution in a deployment, or
// ErrNotFound — also when the deployment belongs to other devices only.
func (db *DB) DeviceExecution(ctx context.Context, deviceID, deploymentID string) (*fleet.Execution, error) {
	e, err := scanExecution(db.r.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE deployment_id = ? AND device_id = ?`,
		deploymentID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no execution of deployment %q for this device", fleet.ErrNotFound, deploymentID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: execution: %w", err)
	}
	return e, nil
}

// ReportStatus records a device's update status.
func (db *DB) ReportStatus(ctx context.Context, deviceID, deploymentID string, s fleet.Status) (*fleet.Execution, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	state, _ := fleet.ExecStateOf(s.State)
	var e *fleet.Execution
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanExecution(tx.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE deployment_id = ? AND device_id = ?`,
			deploymentID, deviceID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no execution of deployment %q for this device", fleet.ErrNotFound, deploymentID)
		}
		if err != nil {
			return fmt.Errorf("sqlite: report: %w", err)
		}
		if state == "" {
			return nil // IDLE says nothing about this execution
		}
		switch {
		case e.State == fleet.ExecCanceled:
			return fmt.Errorf("%w: deployment %s was canceled for this device", fleet.ErrConflict, deploymentID)
		case e.State == fleet.ExecPending || e.State == fleet.ExecSkipped:
			return fmt.Errorf("%w: execution is %s, nothing was offered", fleet.ErrConflict, e.State)
		case fleet.ExecFinal(e.State) && e.State != state:
			return fmt.Errorf("%w: execution already finished with %s", fleet.ErrConflict, e.State)
		}
		db.forget(deviceID)
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET state = ? WHERE id = ?`, strings.ToUpper(s.State), deviceID); err != nil {
			return err
		}
		if state == fleet.ExecSuccess && s.Version != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET current_version = ? WHERE id = ?`, s.Version, deviceID); err != nil {
				return err
			}
		}
		e.DeviceState = strings.ToUpper(s.State)
		e.Progress, e.Bytes, e.TotalBytes, e.Speed = s.Progress, s.Details.BytesReceived, s.Details.TotalBytes, s.Details.DownloadSpeed
		if s.Error != "" {
			e.Error = s.Error
		}
		msg := e.DeviceState
		if s.Error != "" {
			msg += ": " + s.Error
		}
		return db.transition(ctx, tx, e, state, msg)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}
