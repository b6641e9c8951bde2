package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/vigil-auth/vigil/eventstore/follow"
)

// Config configures Open.
type Config struct {
	// Path of the read-model database file, apart from the event log. Required.
	Path string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ReadConns is the size of the query pool. Default 8.
	ReadConns int
	// Unjournaled opens a file that nothing reads yet (a rebuild's): no journal, no syncs.
	// EnableWAL gives it the serving settings once it is complete.
	Unjournaled bool
}

// DB is the read-model database: one writer connection (the runner's batches take turns on
// it) and a pool of read-only connections for queries. Safe for concurrent use.
//
// The file behind a DB can change while it serves: the runner moves it to a rebuilt file
// (see Rebuild and Switch) between two batches; queries started before keep the old file
// until they end.
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
	if cfg.Unjournaled {
		cfg.ReadConns = 1
	}
	sqlite := follow.SQLiteConfig{Path: cfg.Path, Unjournaled: cfg.Unjournaled,
		Schema: []string{follow.CheckpointTable, snapshotSchema}}
	w, err := follow.OpenSQLite(sqlite)
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	sqlite.ReadOnly, sqlite.MaxConns, sqlite.Schema = true, cfg.ReadConns, nil
	r, err := follow.OpenSQLite(sqlite)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("projections: %w", err)
	}
	db := &DB{log: cfg.Logger, cfg: cfg, write: newPool(w), read: newPool(r)}
	db.path.Store(&cfg.Path)
	return db, nil
}

// Reopen opens the read-model file at path with db's settings (journaled): the file a
// rebuild wrote, before Switch moves db to it.
func (db *DB) Reopen(path string) (*DB, error) {
	cfg := db.cfg
	cfg.Path, cfg.Unjournaled = path, false
	return Open(cfg)
}

// Switch moves db to next's file and connections: every query that starts from now on reads
// next's file, those already running finish on the old one. It returns a DB holding the old
// file's connections, for the caller to close (and the file to remove with RemoveFile);
// next must not be used any more.
func (db *DB) Switch(next *DB) (old *DB) {
	old = &DB{log: db.log, cfg: db.cfg, write: newPool(db.write.db()), read: newPool(db.read.db())}
	old.path.Store(db.path.Load())
	db.write.p.Store(next.write.db())
	db.read.p.Store(next.read.db())
	db.path.Store(next.path.Load())
	return old
}

// EnableWAL gives an Unjournaled file the serving settings (WAL), once it is complete.
func (db *DB) EnableWAL(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
		return fmt.Errorf("projections: switch to WAL: %w", err)
	}
	return nil
}

// Read returns the read-only pool for queries.
func (db *DB) Read() *sql.DB { return db.read.db() }

// Path is the file the DB currently uses.
func (db *DB) Path() string { return *db.path.Load() }

// Checkpoint returns the last position committed for the projection name, 0 when it has none.
// It implements follow.Checkpoints.
func (db *DB) Checkpoint(ctx context.Context, name string) (uint64, error) {
	pos, err := follow.ReadCheckpoint(ctx, db.write, name)
	if err != nil {
		return 0, fmt.Errorf("projections: %w", err)
	}
	return pos, nil
}

// Setup creates the tables of every projection of ps.
func (db *DB) Setup(ctx context.Context, ps []Projection) error {
	for _, p := range ps {
		for _, stmt := range p.Schema() {
			if _, err := db.write.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("projections: schema of %s: %w", p.Name(), err)
			}
		}
	}
	return nil
}

// Close closes both pools, the readers first so that the writer can fold the WAL back into
// the file and truncate it: after a clean stop no -wal file holds a page an erasure deleted
// (API.md "Personal data and erasure"; the file itself runs with secure_delete).
func (db *DB) Close() error {
	rerr := db.read.Close()
	_, _ = db.write.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`) // best effort: an unjournaled file has no WAL
	return errors.Join(rerr, db.write.Close())
}
