package follow

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

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
// (or no journal), foreign keys on, secure_delete on.
func OpenSQLite(cfg SQLiteConfig) (*sql.DB, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("follow: SQLiteConfig.Path is required")
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
	// Deleted rows are overwritten, not left in free pages: an erased account's personal
	// values must not survive in the file (API.md "Personal data and erasure").
	q.Add("_pragma", "secure_delete(1)")
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
