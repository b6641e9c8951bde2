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
	"sync/atomic"

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

	// fresh opens a file that nothing reads yet (a rebuild's): no journal, no syncs.
	fresh bool
}

// DB is the read-model database: one writer connection (the runner's batches take turns on
// it) and a pool of read-only connections for queries. Safe for concurrent use.
//
// The file behind a DB can change while it serves: Runner.Adopt moves it to a rebuilt file
// (see Rebuild) between two batches; queries started before keep the old file until they end.
type DB struct {
	log   *slog.Logger
	cfg   Config
	path  atomic.Pointer[string]
	write *pool
	read  *pool
}

// pool is a *sql.DB that can be replaced while in use (Runner.Adopt): each call goes to the
// pool current when it starts, and a call that fails because the pool it started on was
// closed by a swap meanwhile is tried again on the new one.
type pool struct{ p atomic.Pointer[sql.DB] }

func newPool(db *sql.DB) *pool {
	p := &pool{}
	p.p.Store(db)
	return p
}

func (p *pool) db() *sql.DB { return p.p.Load() }

// retry runs f on the current pool, again while it failed on a pool that was swapped out.
func retry[T any](p *pool, f func(*sql.DB) (T, error)) (T, error) {
	for {
		db := p.db()
		v, err := f(db)
		if err != nil && p.db() != db {
			continue
		}
		return v, err
	}
}

func (p *pool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return retry(p, func(db *sql.DB) (sql.Result, error) { return db.ExecContext(ctx, q, args...) })
}

func (p *pool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return retry(p, func(db *sql.DB) (*sql.Rows, error) { return db.QueryContext(ctx, q, args...) })
}

func (p *pool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	row, _ := retry(p, func(db *sql.DB) (*sql.Row, error) {
		row := db.QueryRowContext(ctx, q, args...)
		return row, row.Err()
	})
	return row
}

func (p *pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return retry(p, func(db *sql.DB) (*sql.Tx, error) { return db.BeginTx(ctx, opts) })
}

func (p *pool) Close() error { return p.db().Close() }

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
	w, r, err := openConns(cfg)
	if err != nil {
		return nil, err
	}
	db := &DB{log: cfg.Logger, cfg: cfg, write: newPool(w), read: newPool(r)}
	db.path.Store(&cfg.Path)
	return db, nil
}

// openConns opens the writer and the read pool of the file cfg.Path, creating the
// checkpoints and snapshots tables.
func openConns(cfg Config) (w, r *sql.DB, err error) {
	dsn := func(readOnly bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		if cfg.fresh {
			q.Add("_pragma", "journal_mode(OFF)")
			q.Add("_pragma", "synchronous(OFF)")
		} else {
			q.Add("_pragma", "journal_mode(WAL)")
			q.Add("_pragma", "synchronous(NORMAL)")
		}
		q.Add("_pragma", "foreign_keys(1)")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Set("_txlock", "immediate")
		}
		return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
	}
	w, err = sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, nil, fmt.Errorf("projections: open %s: %w", cfg.Path, err)
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
		return nil, nil, fmt.Errorf("projections: create schema in %s: %w", cfg.Path, err)
	}
	r, err = sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("projections: open %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	return w, r, nil
}

// Read returns the read-only pool for queries.
func (db *DB) Read() *sql.DB { return db.read.db() }

// Path is the file the DB currently uses.
func (db *DB) Path() string { return *db.path.Load() }

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
