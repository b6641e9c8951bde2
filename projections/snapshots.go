package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain/ephemeral"
)

// snapshotSchema holds aggregate snapshots beside the read models. They are a cache derived
// from the log, like the read models: deleting the file loses nothing (the next load replays
// the stream and writes a new snapshot). They hold what the account stream holds (password
// hashes, sealed TOTP secrets, code hashes), so the file needs the log's protection; the data
// directory is created 0700.
const snapshotSchema = `CREATE TABLE IF NOT EXISTS snapshots (
	stream     TEXT PRIMARY KEY,
	version    INTEGER NOT NULL,
	state      BLOB NOT NULL
) WITHOUT ROWID`

// SnapshotStore keeps the newest snapshot of each stream in the read-model database. It
// implements ephemeral.SnapshotStore and is safe for concurrent use.
type SnapshotStore struct{ db *DB }

var _ ephemeral.SnapshotStore = (*SnapshotStore)(nil)

// Snapshots returns the database's snapshot store.
func (db *DB) Snapshots() *SnapshotStore { return &SnapshotStore{db: db} }

// Get returns the newest snapshot of stream; ok is false when there is none.
func (s *SnapshotStore) Get(ctx context.Context, stream string) (uint64, []byte, bool, error) {
	var (
		version uint64
		state   []byte
	)
	err := s.db.read.QueryRowContext(ctx, `SELECT version, state FROM snapshots WHERE stream = ?`, stream).Scan(&version, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil, false, nil
	case err != nil:
		return 0, nil, false, fmt.Errorf("projections: snapshot of %s: %w", stream, err)
	}
	return version, state, true, nil
}

// Put stores a snapshot of stream taken at version, unless a newer one is already stored.
func (s *SnapshotStore) Put(ctx context.Context, stream string, version uint64, state []byte) error {
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO snapshots (stream, version, state) VALUES (?, ?, ?)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state
		WHERE excluded.version > snapshots.version`, stream, version, state)
	if err != nil {
		return fmt.Errorf("projections: store snapshot of %s: %w", stream, err)
	}
	return nil
}
