// Package projections turns the event log into read models: SQLite tables in their own file,
// apart from the log, each projection with its own checkpoint committed in the same
// transaction as its rows. A Runner follows the log through Watermill and applies events in
// batches; read models can be deleted and rebuilt from the log at any time.
package projections

import (
	"context"
	"database/sql"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// Projection is a named read model: its tables and the reducer that turns one event into
// changes of those tables. Apply runs inside the runner's batch transaction and must use only
// tx; it must be deterministic (a rebuild has to produce the same rows as live processing), so
// it takes times from the event, never from the clock. An event it does not care about is a
// no-op, not an error.
type Projection interface {
	// Name is stable and unique: it keys the checkpoint and the Watermill topic.
	Name() string
	// Schema returns the DDL statements that create the projection's tables and indexes; they
	// must be idempotent (CREATE ... IF NOT EXISTS).
	Schema() []string
	// Apply folds one event into the read model.
	Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error
}

// LogInfo is what the runner needs to know about the log to report lag. eventstore.Store
// satisfies it.
type LogInfo interface {
	Head(ctx context.Context) (uint64, error)
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// Status describes one projection for /readyz and metrics.
type Status struct {
	Name       string `json:"name"`
	Checkpoint uint64 `json:"checkpoint"` // last position committed with the read model
	Head       uint64 `json:"head"`       // last position in the log
	// LagSeconds is how long ago the oldest event the projection has not committed was
	// recorded; 0 when it is caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// Stuck is true while an event keeps failing after the retries; StuckPosition names it.
	Stuck         bool      `json:"stuck"`
	StuckPosition uint64    `json:"stuck_position,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Ready reports whether the projection is healthy enough to serve: not stuck and no more than
// maxLag behind the log.
func (s Status) Ready(maxLag time.Duration) bool {
	return !s.Stuck && s.LagSeconds <= maxLag.Seconds()
}
