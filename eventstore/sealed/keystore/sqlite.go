package keystore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/eventstore/sealed"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLite is the key store of the embedded deployment: one SQLite file (<data-dir>/keys.db)
// beside the log, never inside it.
//
// Erasure: the file runs with PRAGMA secure_delete=ON, so a destroyed key's row is overwritten
// with zeros rather than left in free space; Destroy and Close checkpoint the write-ahead log
// with wal_checkpoint(TRUNCATE), so that no old page holding the key survives in keys.db-wal.
// After Destroy and a clean Close, no byte of keys.db, -wal or -shm holds the key, raw or
// wrapped (TestDestroyLeavesNoTrace). Backups of keys.db taken before the destroy still do:
// keep them no longer than erasure allows.
type SQLite struct {
	path string
	db   *sql.DB
	w    *wrapper
	now  func() time.Time

	lookup, insert *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

var _ sealed.KeyStore = (*SQLite)(nil)

const keysSchema = `
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
	id         TEXT PRIMARY KEY,
	wrapped    BLOB NOT NULL,  -- version || nonce || AES-GCM(key), see wrap.go
	created_at INTEGER NOT NULL -- Unix nanoseconds
);
CREATE TABLE IF NOT EXISTS destroyed (
	id           TEXT PRIMARY KEY, -- never created again
	destroyed_at INTEGER NOT NULL
);
`

// OpenSQLite opens (creating when absent, mode 0600) the key store at path. serverKey is the
// server key (at least 32 bytes); a key store made with another one fails with an error
// wrapping sealed.ErrWrongServerKey.
func OpenSQLite(path string, serverKey []byte) (*SQLite, error) {
	w, err := newWrapper(serverKey)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keystore: create directory: %w", err)
	}
	// SQLite gives -wal and -shm the mode of the database file: make that 0600 first.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	f.Close()
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "secure_delete(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("keystore: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := &SQLite{path: path, db: db, w: w, now: time.Now}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("keystore: %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) init() error {
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, keysSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var on int
	if err := s.db.QueryRowContext(ctx, `PRAGMA secure_delete`).Scan(&on); err != nil || on != 1 {
		return fmt.Errorf("secure_delete is not on (%d, %v)", on, err)
	}
	// Record the check value of a new store; an existing one must open with this server key.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (name, value) SELECT 'check', ? WHERE NOT EXISTS (SELECT 1 FROM keys)
		ON CONFLICT (name) DO NOTHING`, s.w.checkValue()); err != nil {
		return fmt.Errorf("record check value: %w", err)
	}
	var check []byte
	switch err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'check'`).Scan(&check); {
	case errors.Is(err, sql.ErrNoRows):
		return errors.New("it holds keys but no check value")
	case err != nil:
		return fmt.Errorf("read check value: %w", err)
	}
	if err := s.w.verifyCheck(check); err != nil {
		return err
	}
	var err error
	if s.lookup, err = s.db.PrepareContext(ctx, `SELECT (SELECT wrapped FROM keys WHERE id = ?1),
		EXISTS (SELECT 1 FROM destroyed WHERE id = ?1)`); err != nil {
		return err
	}
	if s.insert, err = s.db.PrepareContext(ctx, `INSERT INTO keys (id, wrapped, created_at)
		SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM destroyed WHERE id = ?1) ON CONFLICT (id) DO NOTHING`); err != nil {
		return err
	}
	return nil
}

// Key implements sealed.KeyStore. A key is created with a single INSERT that loses quietly to
// a concurrent one and to a destroy, then read back, so every creator gets the stored key.
func (s *SQLite) Key(ctx context.Context, keyID string, create bool) ([]byte, error) {
	if err := checkIDs(keyID); err != nil {
		return nil, err
	}
	key, err := s.read(ctx, keyID)
	if !create || !errors.Is(err, sealed.ErrKeyNotFound) {
		return key, err
	}
	if _, err := s.insert.ExecContext(ctx, keyID, s.w.wrap(keyID, newKey()), s.now().UnixNano()); err != nil {
		return nil, fmt.Errorf("keystore: create key %s: %w", keyID, err)
	}
	return s.read(ctx, keyID)
}

func (s *SQLite) read(ctx context.Context, keyID string) ([]byte, error) {
	var (
		wrapped   []byte
		destroyed bool
	)
	if err := s.lookup.QueryRowContext(ctx, keyID).Scan(&wrapped, &destroyed); err != nil {
		return nil, fmt.Errorf("keystore: read key %s: %w", keyID, err)
	}
	switch {
	case destroyed:
		return nil, fmt.Errorf("keystore: key %s: %w", keyID, sealed.ErrKeyDestroyed)
	case wrapped == nil:
		return nil, fmt.Errorf("keystore: key %s: %w", keyID, sealed.ErrKeyNotFound)
	}
	return s.w.unwrapKey(keyID, wrapped)
}

// Destroy implements sealed.KeyStore: in one transaction the keys' rows are deleted (zeroed
// by secure_delete) and their ids recorded as destroyed; then the write-ahead log is
// checkpointed and truncated so that its copies of the old pages go too.
func (s *SQLite) Destroy(ctx context.Context, keyIDs ...string) error {
	if err := checkIDs(keyIDs...); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("keystore: destroy: %w", err)
	}
	defer tx.Rollback()
	now := s.now().UnixNano()
	for _, id := range keyIDs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE id = ?`, id); err != nil {
			return fmt.Errorf("keystore: destroy key %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO destroyed (id, destroyed_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, now); err != nil {
			return fmt.Errorf("keystore: destroy key %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("keystore: destroy: %w", err)
	}
	// Best effort now (a reader may hold old pages); Close truncates for sure.
	_, _ = s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return nil
}

// Close checkpoints the write-ahead log into keys.db, truncating it, and closes the file.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		var busy, logFrames, done int
		err := s.db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
		if err == nil && busy != 0 {
			err = errors.New("keystore: the final checkpoint of keys.db was blocked by a reader")
		}
		s.closeErr = errors.Join(err, s.lookup.Close(), s.insert.Close(), s.db.Close())
	})
	return s.closeErr
}
