package follow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// CheckpointTable is the DDL of the checkpoints table that ReadCheckpoint and SaveCheckpoint
// use: one row per consumer.
const CheckpointTable = `CREATE TABLE IF NOT EXISTS checkpoints (
	name       TEXT PRIMARY KEY,
	position   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL -- Unix nanoseconds
)`

// SQLiteConfig configures OpenSQLite.
type SQLiteConfig struct {
	// Path of the database file; its directory is created (0700) when missing. Required.
	Path string
	// ReadOnly opens a pool of query-only connections (MaxConns of them, default 8);
	// otherwise the pool is the one writer connection, whose transactions take the write
	// lock at BEGIN (no upgrade deadlock between two writers).
	ReadOnly bool
	MaxConns int
	// Unjournaled opens a file nothing else reads yet (a rebuild's): no journal, no syncs.
	// Otherwise the file uses WAL with synchronous=NORMAL: a power cut may lose the last
	// commits, which a consumer that commits its checkpoint with its effects handles again.
	Unjournaled bool
	// Schema is run on a writer after opening (idempotent DDL: CREATE ... IF NOT EXISTS).
	Schema []string
}

// OpenSQLite opens a SQLite file of a consumer with Vigil's settings: busy_timeout 10s, WAL
// (or no journal), foreign keys on.
func OpenSQLite(cfg SQLiteConfig) (*sql.DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("follow: SQLiteConfig.Path is required")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("follow: create directory: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if cfg.Unjournaled {
		q.Add("_pragma", "journal_mode(OFF)")
		q.Add("_pragma", "synchronous(OFF)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	q.Add("_pragma", "foreign_keys(1)")
	conns := 1
	if cfg.ReadOnly {
		q.Add("_pragma", "query_only(1)")
		conns = cfg.MaxConns
		if conns <= 0 {
			conns = 8
		}
	} else {
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: cfg.Path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("follow: open %s: %w", cfg.Path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if !cfg.ReadOnly {
		db.SetConnMaxLifetime(0)
	}
	for _, stmt := range cfg.Schema {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("follow: create schema in %s: %w", cfg.Path, err)
		}
	}
	return db, nil
}

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
