package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config configures Open.
type Config struct {
	// Path of the read-model database file, apart from the event log. Required.
	Path string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ReadConns is the size of the query pool. Default 8.
	ReadConns int
}

// DB is the read-model database: one writer connection (the runner's batches take turns on
// it) and a pool of read-only connections for queries. Safe for concurrent use.
type DB struct {
	path  string
	log   *slog.Logger
	write *sql.DB
	read  *sql.DB
}

// Open opens (creating when absent) the read-model database.
//
// The file uses WAL with synchronous=NORMAL: read models are derived data. A power cut may
// lose the last committed batches, but each batch carries its checkpoint in the same
// transaction, so the projection simply applies those events again from the log.
func Open(cfg Config) (*DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("projections: Config.Path is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 8
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("projections: create directory: %w", err)
	}
	dsn := func(readOnly bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(1)")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Set("_txlock", "immediate")
		}
		return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if _, err := w.Exec(`CREATE TABLE IF NOT EXISTS checkpoints (
		name       TEXT PRIMARY KEY,
		position   INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	); ` + snapshotSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("projections: create schema in %s: %w", cfg.Path, err)
	}
	r, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("projections: open %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	return &DB{path: cfg.Path, log: cfg.Logger, write: w, read: r}, nil
}

// Read returns the read-only pool for queries.
func (db *DB) Read() *sql.DB { return db.read }

// Checkpoint returns the last position committed for the projection name, 0 when it has none.
func (db *DB) Checkpoint(ctx context.Context, name string) (uint64, error) {
	var pos uint64
	err := db.write.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projections: checkpoint of %s: %w", name, err)
	}
	return pos, nil
}

// setup creates the tables of every projection.
func (db *DB) setup(ctx context.Context, ps []Projection) error {
	for _, p := range ps {
		for _, stmt := range p.Schema() {
			if _, err := db.write.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("projections: schema of %s: %w", p.Name(), err)
			}
		}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.write.Close())
}
