package projections

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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

// Apply implements Projection. Inside Applier.Apply the batch's changes are gathered in
// memory, one per stream, and written by writeBatch.
func (Streams) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	row := streamRow{id: ev.StreamID, kind: StreamKind(ev.StreamID), version: ev.Version, events: 1,
		position: ev.Position, typ: ev.Type, at: ev.RecordedAt.UnixNano()}
	if !inBatch(ctx, tx) {
		if err := writeStreams(ctx, tx, []*streamRow{&row}); err != nil {
			return fmt.Errorf("streams: %w", err)
		}
		return nil
	}
	st := stateOf(ctx, tx)
	if st.streams == nil {
		st.streams = map[string]*streamRow{}
	}
	if prev := st.streams[ev.StreamID]; prev != nil {
		row.events += prev.events
	}
	st.streams[ev.StreamID] = &row
	if endsStream(ev.Type) {
		st.streamsEnded = append(st.streamsEnded, ev.StreamID)
	}
	return nil
}

// endsStream reports whether an event of type typ is the last its stream takes: a session's
// end.
func endsStream(typ string) bool {
	return typ == domain.EventSessionSignedOut || typ == domain.EventSessionExpired
}

// streamRow is the change of one stream's row: the last event's facts, and how many events
// to add.
type streamRow struct {
	id, kind, typ     string
	version, position uint64
	events            int
	at                int64
}

// writeBatch writes the stream rows the batch gathered.
func (Streams) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	ended := st.streamsEnded
	st.streamsEnded = nil
	if len(st.streams) == 0 {
		return nil
	}
	var rows []*streamRow
	if st.keep {
		// Kept for a later batch (Applier.carry), but for the streams that ended in this one:
		// their rows are written now rather than in the lane's last flush, which the end of a
		// rebuild waits for (an event after the end, if any, is added by the upsert).
		for _, id := range ended {
			if r := st.streams[id]; r != nil && endsStream(r.typ) {
				rows = append(rows, r)
				delete(st.streams, id)
			}
		}
		if len(rows) == 0 {
			return nil
		}
	} else {
		rows = make([]*streamRow, 0, len(st.streams))
		for _, r := range st.streams {
			rows = append(rows, r)
		}
		st.streams = nil
	}
	// In key order: neighbouring rows land in the same pages.
	slices.SortFunc(rows, func(a, b *streamRow) int { return strings.Compare(a.id, b.id) })
	if err := writeStreams(ctx, tx, rows); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	return nil
}

// streamsChunk is how many rows one INSERT of the stream catalogue writes.
const streamsChunk = 256

// writeStreams upserts rows, streamsChunk per statement.
func writeStreams(ctx context.Context, tx *sql.Tx, rows []*streamRow) error {
	for len(rows) > 0 {
		n := min(len(rows), streamsChunk)
		args := make([]any, 0, n*7)
		for _, r := range rows[:n] {
			args = append(args, r.id, r.kind, r.version, r.events, r.position, r.typ, r.at)
		}
		err := txExec(ctx, tx, `INSERT INTO streams (stream_id, kind, version, events, last_position, last_type, last_at)
		VALUES `+strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", n), ", ")+`
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, events = events + excluded.events,
			last_position = excluded.last_position, last_type = excluded.last_type, last_at = excluded.last_at`, args...)
		if err != nil {
			return err
		}
		rows = rows[n:]
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
