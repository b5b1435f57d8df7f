package fleet

import "context"

// ExecutionNoter is implemented by stores that can append a message to an
// execution's history without changing its state. Protocol adapters such
// as the hawkBit DDI use it for device feedback that has no state of its
// own: log details, rejected actions and acknowledged cancellations.
// Callers must have checked that the execution belongs to the device.
type ExecutionNoter interface {
	// NoteExecution records message at the execution's current state and
	// progress. ErrNotFound for an unknown execution.
	NoteExecution(ctx context.Context, executionID int64, message string) error
}
