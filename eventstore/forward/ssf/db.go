package ssf

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
)

// The transmitter's own SQLite file (<data-dir>/ssf.db): each stream's checkpoint, the
// streams the registry knows (a small read model of SSFStreamChanged) with the state each
// stream's consumer decides by, and the SETs made but not yet acknowledged. Apart from the
// read models on purpose: a rebuild of projections.db must not send the log again.
const dbSchema = `
CREATE TABLE IF NOT EXISTS ssf_streams (
	id            TEXT PRIMARY KEY,
	position      INTEGER NOT NULL,         -- of its creation
	config        TEXT NOT NULL,            -- the last SSFStreamChanged the registry applied (JSON)
	consumer      TEXT NOT NULL,            -- the configuration its consumer has reached (JSON)
	failing_since INTEGER NOT NULL DEFAULT 0, -- Unix ms of the first failed push of the head SET; 0: none
	last_error    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS ssf_sets (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	stream     TEXT NOT NULL,
	jti        TEXT NOT NULL,
	position   INTEGER NOT NULL,
	token      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (stream, jti)
);
CREATE INDEX IF NOT EXISTS ssf_sets_stream ON ssf_sets (stream, seq);`

// db wraps the transmitter's database.
type db struct{ db *sql.DB }

func openDB(path string) (*db, error) {
	d, err := follow.OpenSQLite(follow.SQLiteConfig{Path: path, Schema: []string{follow.CheckpointTable, dbSchema}})
	if err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	return &db{db: d}, nil
}

// Checkpoint implements follow.Checkpoints.
func (d *db) Checkpoint(ctx context.Context, name string) (uint64, error) {
	return follow.ReadCheckpoint(ctx, d.db, name)
}

func (d *db) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ssf: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("ssf: %w", err)
	}
	return tx.Commit()
}

// streamRow is a stream as the database holds it.
type streamRow struct {
	ID           string
	Position     uint64
	Config       domain.SSFStreamChanged
	Consumer     domain.SSFStreamChanged
	FailingSince time.Time
	LastError    string
}

func (d *db) streams(ctx context.Context) ([]streamRow, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, position, config, consumer, failing_since, last_error FROM ssf_streams ORDER BY position`)
	if err != nil {
		return nil, fmt.Errorf("ssf: streams: %w", err)
	}
	defer rows.Close()
	var out []streamRow
	for rows.Next() {
		var r streamRow
		var cfg, cons string
		var since int64
		if err := rows.Scan(&r.ID, &r.Position, &cfg, &cons, &since, &r.LastError); err != nil {
			return nil, fmt.Errorf("ssf: streams: %w", err)
		}
		if err := errors.Join(json.Unmarshal([]byte(cfg), &r.Config), json.Unmarshal([]byte(cons), &r.Consumer)); err != nil {
			return nil, fmt.Errorf("ssf: stream %s: %w", r.ID, err)
		}
		if since > 0 {
			r.FailingSince = time.UnixMilli(since).UTC()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and times
	}
	return string(b)
}

// createStream stores a new stream, its consumer's checkpoint at its creation, and the
// registry's checkpoint, in one transaction (seen again after a restart, nothing changes).
func (d *db) createStream(ctx context.Context, e domain.SSFStreamChanged, pos uint64, registry string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO ssf_streams (id, position, config, consumer) VALUES (?, ?, ?, ?)`,
			e.StreamID, pos, mustJSON(e), mustJSON(e)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)`,
			consumerName(e.StreamID), pos, time.Now().UnixNano()); err != nil {
			return err
		}
		return follow.SaveCheckpoint(ctx, tx, registry, pos, time.Now())
	})
}

// updateConfig records the registry's view of a stream.
func (d *db) updateConfig(ctx context.Context, e domain.SSFStreamChanged, pos uint64, registry string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE ssf_streams SET config = ? WHERE id = ?`, mustJSON(e), e.StreamID); err != nil {
			return err
		}
		return follow.SaveCheckpoint(ctx, tx, registry, pos, time.Now())
	})
}

// deleteStream drops a deleted stream, its SETs and its checkpoint.
func (d *db) deleteStream(ctx context.Context, id string, pos uint64, registry string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM ssf_streams WHERE id = ?`, `DELETE FROM ssf_sets WHERE stream = ?`, `DELETE FROM checkpoints WHERE name = ?`} {
			arg := id
			if strings.Contains(q, "checkpoints") {
				arg = consumerName(id)
			}
			if _, err := tx.ExecContext(ctx, q, arg); err != nil {
				return err
			}
		}
		return follow.SaveCheckpoint(ctx, tx, registry, pos, time.Now())
	})
}

// queued is a SET waiting for its acknowledgement.
type queued struct {
	Seq      int64
	JTI      string
	Position uint64
	Token    string
	Created  time.Time
}

// commitBatch stores a stream consumer's SETs, its configuration and its checkpoint in one
// transaction; drop first removes the SETs waiting (the stream was disabled).
func (d *db) commitBatch(ctx context.Context, stream string, sets []queued, cons domain.SSFStreamChanged, drop bool, pos uint64) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ssf_sets WHERE stream = ?`, stream); err != nil {
				return err
			}
		}
		for _, s := range sets {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO ssf_sets (stream, jti, position, token, created_at) VALUES (?, ?, ?, ?, ?)`,
				stream, s.JTI, s.Position, s.Token, s.Created.UnixMilli()); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ssf_streams SET consumer = ? WHERE id = ?`, mustJSON(cons), stream); err != nil {
			return err
		}
		return follow.SaveCheckpoint(ctx, tx, consumerName(stream), pos, time.Now())
	})
}

// pending returns up to limit SETs of stream waiting for an acknowledgement, oldest first.
func (d *db) pending(ctx context.Context, stream string, limit int) ([]queued, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, jti, position, token, created_at FROM ssf_sets WHERE stream = ? ORDER BY seq LIMIT ?`, stream, limit)
	if err != nil {
		return nil, fmt.Errorf("ssf: pending: %w", err)
	}
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		var at int64
		if err := rows.Scan(&q.Seq, &q.JTI, &q.Position, &q.Token, &at); err != nil {
			return nil, fmt.Errorf("ssf: pending: %w", err)
		}
		q.Created = time.UnixMilli(at).UTC()
		out = append(out, q)
	}
	return out, rows.Err()
}

// ack removes acknowledged SETs of stream; unknown jtis are ignored (RFC 8936: an
// acknowledgement may repeat).
func (d *db) ack(ctx context.Context, stream string, jtis []string) error {
	if len(jtis) == 0 {
		return nil
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		for len(jtis) > 0 {
			n := min(len(jtis), 500)
			args := []any{stream}
			for _, j := range jtis[:n] {
				args = append(args, j)
			}
			q := `DELETE FROM ssf_sets WHERE stream = ? AND jti IN (?` + strings.Repeat(",?", n-1) + `)`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			jtis = jtis[n:]
		}
		return nil
	})
}

// delivered removes a pushed SET and clears the stream's failure.
func (d *db) delivered(ctx context.Context, stream string, seq int64) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ssf_sets WHERE seq = ?`, seq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE ssf_streams SET failing_since = 0, last_error = '' WHERE id = ? AND failing_since != 0`, stream)
		return err
	})
}

// deliveredUpTo removes a push stream's SETs up to position: another instance pushed them
// (the shared progress of the stream's push lease).
func (d *db) deliveredUpTo(ctx context.Context, stream string, position uint64) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM ssf_sets WHERE stream = ? AND position <= ?`, stream, position)
	if err != nil {
		return 0, fmt.Errorf("ssf: %w", err)
	}
	return res.RowsAffected()
}

// failed records a failed push; the failure's start is kept when there is one.
func (d *db) failed(ctx context.Context, stream string, since time.Time, msg string) error {
	_, err := d.db.ExecContext(ctx, `UPDATE ssf_streams SET failing_since = ?, last_error = ? WHERE id = ?`, since.UnixMilli(), msg, stream)
	return err
}

// counts returns the SETs waiting per stream and the creation time of each stream's oldest.
func (d *db) counts(ctx context.Context) (map[string]int, map[string]time.Time, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT stream, COUNT(*), MIN(created_at) FROM ssf_sets GROUP BY stream`)
	if err != nil {
		return nil, nil, fmt.Errorf("ssf: counts: %w", err)
	}
	defer rows.Close()
	n, oldest := map[string]int{}, map[string]time.Time{}
	for rows.Next() {
		var s string
		var c int
		var at int64
		if err := rows.Scan(&s, &c, &at); err != nil {
			return nil, nil, err
		}
		n[s], oldest[s] = c, time.UnixMilli(at).UTC()
	}
	return n, oldest, rows.Err()
}

func (d *db) close() error { return d.db.Close() }
