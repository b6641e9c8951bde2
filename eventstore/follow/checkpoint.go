package follow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CheckpointTable is the DDL of the checkpoints table that ReadCheckpoint and SaveCheckpoint
// use: one row per consumer.
const CheckpointTable = `CREATE TABLE IF NOT EXISTS checkpoints (
	name       TEXT PRIMARY KEY,
	position   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL -- Unix nanoseconds
)`

// Execer is what SaveCheckpoint writes with: a *sql.Tx (the consumer's own transaction) or a
// *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Queryer is what ReadCheckpoint reads with.
type Queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SaveCheckpoint records in the checkpoints table (CheckpointTable) that consumer name has
// handled everything up to position.
func SaveCheckpoint(ctx context.Context, x Execer, name string, position uint64, at time.Time) error {
	_, err := x.ExecContext(ctx, `INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
		name, position, at.UTC().UnixNano())
	if err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", name, err)
	}
	return nil
}

// ReadCheckpoint returns the position the checkpoints table holds for name, 0 when none.
func ReadCheckpoint(ctx context.Context, q Queryer, name string) (uint64, error) {
	var pos uint64
	err := q.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint of %s: %w", name, err)
	}
	return pos, nil
}

// SQLCheckpoints is the Checkpoints of consumers that keep theirs in a checkpoints table
// (CheckpointTable) of DB.
type SQLCheckpoints struct{ DB Queryer }

// Checkpoint implements Checkpoints.
func (s SQLCheckpoints) Checkpoint(ctx context.Context, name string) (uint64, error) {
	return ReadCheckpoint(ctx, s.DB, name)
}
