package sqlite

import (
	"context"
	"fmt"

	"github.com/otakit/otakit/fleet"
)

// NoteExecution appends message to an execution's history at its current
// state. See fleet.ExecutionNoter.
func (db *DB) NoteExecution(ctx context.Context, id int64, message string) error {
	if len(message) > 4096 {
		message = message[:4096]
	}
	res, err := db.w.ExecContext(ctx, `INSERT INTO execution_events (execution_id, time, state, progress, message)
		SELECT id, ?, state, progress, ? FROM executions WHERE id = ?`, ms(db.now()), message, id)
	if err != nil {
		return fmt.Errorf("sqlite: note execution: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: execution %d", fleet.ErrNotFound, id)
	}
	return nil
}

var _ fleet.ExecutionNoter = (*DB)(nil)
