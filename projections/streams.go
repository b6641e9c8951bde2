package projections

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/vigil-auth/vigil/domain"
)

// Streams is the catalogue of streams: for each stream its kind (account, session, org,
// client, system), version, event count and the position and time of its last event. Security
// teams use it to find an account's streams; the crash test uses it to check convergence.
type Streams struct{}

var _ Projection = Streams{}

// Name implements Projection.
func (Streams) Name() string { return "streams" }

// Schema implements Projection.
func (Streams) Schema() []string {
	return []string{`CREATE TABLE IF NOT EXISTS streams (
		stream_id     TEXT PRIMARY KEY,
		kind          TEXT NOT NULL,
		version       INTEGER NOT NULL,
		events        INTEGER NOT NULL,
		last_position INTEGER NOT NULL,
		last_type     TEXT NOT NULL,
		last_at       INTEGER NOT NULL -- Unix nanoseconds, UTC
	) WITHOUT ROWID`,
		`CREATE INDEX IF NOT EXISTS streams_kind ON streams (kind, last_position)`}
}

// StreamKind is the kind of a stream id: its prefix without the dash ("account", "session",
// ...), or "other".
func StreamKind(streamID string) string {
	for _, p := range domain.StreamPrefixes {
		if strings.HasPrefix(streamID, p) {
			return strings.TrimSuffix(p, "-")
		}
	}
	return "other"
}

// Apply implements Projection.
func (Streams) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	err := txExec(ctx, tx, `INSERT INTO streams (stream_id, kind, version, events, last_position, last_type, last_at)
		VALUES (?, ?, ?, 1, ?, ?, ?)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, events = events + 1,
			last_position = excluded.last_position, last_type = excluded.last_type, last_at = excluded.last_at`,
		ev.StreamID, StreamKind(ev.StreamID), ev.Version, ev.Position, ev.Type, ev.RecordedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	return nil
}

// StreamInfo is one row of the stream catalogue.
type StreamInfo struct {
	StreamID     string
	Kind         string
	Version      uint64
	Events       uint64
	LastPosition uint64
	LastType     string
}

// StreamInfos returns the catalogue rows in stream id order, at most limit (<= 0: all).
func (db *DB) StreamInfos(ctx context.Context, limit int) ([]StreamInfo, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT stream_id, kind, version, events, last_position, last_type
		FROM streams ORDER BY stream_id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("projections: streams: %w", err)
	}
	defer rows.Close()
	var out []StreamInfo
	for rows.Next() {
		var s StreamInfo
		if err := rows.Scan(&s.StreamID, &s.Kind, &s.Version, &s.Events, &s.LastPosition, &s.LastType); err != nil {
			return nil, fmt.Errorf("projections: streams: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
