package forward

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
)

// DB is the forwarders' own SQLite file (<data-dir>/forward.db): each forwarder's checkpoint,
// the webhook endpoints registered through the admin API (a small read model of the
// WebhookRegistered/WebhookRemoved events) and the parked webhook deliveries.
//
// It is apart from the read models on purpose: projections.db may be deleted and rebuilt at
// any time, and a rebuild must not make the forwarders send the whole log again. The file
// uses WAL with synchronous=NORMAL: a power cut may lose the last checkpoints, and then the
// events after the surviving checkpoint are delivered again (at-least-once; receivers drop
// them by their id), never skipped. Safe for concurrent use.
type DB struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS webhook_endpoints (
	id         TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	position   INTEGER NOT NULL,
	secret     TEXT NOT NULL -- the sealed secret of its WebhookRegistered (JSON), never in clear
);
CREATE TABLE IF NOT EXISTS webhook_parked (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint   TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	position   INTEGER NOT NULL,
	type       TEXT NOT NULL,
	body       BLOB NOT NULL,
	attempts   INTEGER NOT NULL,
	last_error TEXT NOT NULL,
	parked_at  INTEGER NOT NULL,
	UNIQUE (endpoint, event_id)
);`

// OpenDB opens (creating when absent) the forwarders' database at path.
func OpenDB(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("forward: database path is required")
	}
	db, err := follow.OpenSQLite(follow.SQLiteConfig{Path: path, Schema: []string{follow.CheckpointTable, schema}})
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Checkpoint returns the position of the last event forwarder name has durably delivered (or
// parked), 0 when it has none. It implements follow.Checkpoints.
func (d *DB) Checkpoint(ctx context.Context, name string) (uint64, error) {
	pos, err := follow.ReadCheckpoint(ctx, d.db, name)
	if err != nil {
		return 0, fmt.Errorf("forward: %w", err)
	}
	return pos, nil
}

// SaveCheckpoint records that forwarder name has delivered everything up to position.
func (d *DB) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	return saveCheckpoint(ctx, d.db, name, position)
}

func saveCheckpoint(ctx context.Context, x follow.Execer, name string, position uint64) error {
	if err := follow.SaveCheckpoint(ctx, x, name, position, time.Now()); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	return nil
}

// endpointRow is a webhook endpoint registered through the admin API.
type endpointRow struct {
	ID        string
	URL       string
	CreatedAt time.Time
	Position  uint64 // of its WebhookRegistered
	Sealed    string // JSON of its sealed secret (credential.SealedSecret)
}

func (d *DB) endpoints(ctx context.Context) ([]endpointRow, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, url, created_at, position, secret FROM webhook_endpoints ORDER BY position`)
	if err != nil {
		return nil, fmt.Errorf("forward: list endpoints: %w", err)
	}
	defer rows.Close()
	var out []endpointRow
	for rows.Next() {
		var r endpointRow
		var at int64
		if err := rows.Scan(&r.ID, &r.URL, &at, &r.Position, &r.Sealed); err != nil {
			return nil, fmt.Errorf("forward: list endpoints: %w", err)
		}
		r.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// addEndpoint stores a registered endpoint and starts its checkpoint at its registration
// (kept when the registration is seen again after a restart), together with the registry's
// own checkpoint.
func (d *DB) addEndpoint(ctx context.Context, r endpointRow, registry string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO webhook_endpoints (id, url, created_at, position, secret) VALUES (?, ?, ?, ?, ?)`,
			r.ID, r.URL, r.CreatedAt.UnixMilli(), r.Position, r.Sealed); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)`,
			endpointName(r.ID), r.Position, time.Now().UnixNano()); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, registry, r.Position)
	})
}

// removeEndpoint drops a removed endpoint, its checkpoint and its parked deliveries.
func (d *DB) removeEndpoint(ctx context.Context, id string, position uint64, registry string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM webhook_endpoints WHERE id = ?`,
			`DELETE FROM webhook_parked WHERE endpoint = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM checkpoints WHERE name = ?`, endpointName(id)); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, registry, position)
	})
}

// ParkedDelivery is a webhook delivery that failed every attempt and waits for an
// administrator to replay it.
type ParkedDelivery struct {
	ID        int64
	EventID   string
	Position  uint64
	Type      string
	Attempts  int
	LastError string
	ParkedAt  time.Time
	body      []byte
}

// park stores a failed delivery and moves the endpoint's checkpoint past it, atomically.
func (d *DB) park(ctx context.Context, endpoint string, p ParkedDelivery) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_parked (endpoint, event_id, position, type, body, attempts, last_error, parked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (endpoint, event_id) DO UPDATE SET attempts = webhook_parked.attempts + excluded.attempts,
				last_error = excluded.last_error, parked_at = excluded.parked_at, body = excluded.body`,
			endpoint, p.EventID, p.Position, p.Type, p.body, p.Attempts, p.LastError, p.ParkedAt.UnixMilli()); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, endpointName(endpoint), p.Position)
	})
}

// parked lists an endpoint's parked deliveries with id > after, oldest first.
func (d *DB) parked(ctx context.Context, endpoint string, after int64, limit int) ([]ParkedDelivery, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, event_id, position, type, body, attempts, last_error, parked_at
		FROM webhook_parked WHERE endpoint = ? AND id > ? ORDER BY id LIMIT ?`, endpoint, after, limit)
	if err != nil {
		return nil, fmt.Errorf("forward: list parked deliveries: %w", err)
	}
	defer rows.Close()
	var out []ParkedDelivery
	for rows.Next() {
		var p ParkedDelivery
		var at int64
		if err := rows.Scan(&p.ID, &p.EventID, &p.Position, &p.Type, &p.body, &p.Attempts, &p.LastError, &at); err != nil {
			return nil, fmt.Errorf("forward: list parked deliveries: %w", err)
		}
		p.ParkedAt = time.UnixMilli(at).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// parkedOne returns one parked delivery of endpoint; domain.ErrNotFound when there is none.
func (d *DB) parkedOne(ctx context.Context, endpoint string, id int64) (ParkedDelivery, error) {
	list, err := d.parked(ctx, endpoint, id-1, 1)
	if err != nil {
		return ParkedDelivery{}, err
	}
	if len(list) == 0 || list[0].ID != id {
		return ParkedDelivery{}, fmt.Errorf("parked delivery %d of %s: %w", id, endpoint, domain.ErrNotFound)
	}
	return list[0], nil
}

func (d *DB) unpark(ctx context.Context, id int64) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM webhook_parked WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("forward: unpark: %w", err)
	}
	return nil
}

func (d *DB) replayFailed(ctx context.Context, id int64, lastErr string) error {
	_, err := d.db.ExecContext(ctx, `UPDATE webhook_parked SET attempts = attempts + 1, last_error = ? WHERE id = ?`, lastErr, id)
	if err != nil {
		return fmt.Errorf("forward: record replay: %w", err)
	}
	return nil
}

// parkedCounts returns the number of parked deliveries per endpoint.
func (d *DB) parkedCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT endpoint, COUNT(*) FROM webhook_parked GROUP BY endpoint`)
	if err != nil {
		return nil, fmt.Errorf("forward: count parked deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var e string
		var n int
		if err := rows.Scan(&e, &n); err != nil {
			return nil, err
		}
		out[e] = n
	}
	return out, rows.Err()
}

func (d *DB) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forward: begin: %w", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("forward: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forward: commit: %w", err)
	}
	return nil
}
