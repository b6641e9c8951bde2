package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// The chain is written with the events: the writer hashes each event after the last one in
// the same transaction (writer.insertChained), so a stored event always has its hash, and
// checkpoints go through the writer too. These are the reads and the other writes.

var _ eventstore.Chain = (*Store)(nil)

// ChainHead returns the position and chain hash of the last event, (0, chain.Zero) when the log
// is empty.
func (s *Store) ChainHead(ctx context.Context) (uint64, chain.Sum, error) {
	if s.closed.Load() {
		return 0, chain.Zero, eventstore.ErrClosed
	}
	var (
		pos  uint64
		hash []byte
		sum  chain.Sum
	)
	err := s.reads.chainHead.QueryRowContext(ctx).Scan(&pos, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, chain.Zero, nil
	case err != nil:
		return 0, sum, fmt.Errorf("sqlite: read the chain head: %w", err)
	case len(hash) != chain.Size:
		return 0, sum, fmt.Errorf("sqlite: the event at position %d has a chain hash of %d bytes", pos, len(hash))
	}
	copy(sum[:], hash)
	return pos, sum, nil
}

// Checkpoints returns up to limit checkpoints with a position greater than after, oldest first.
func (s *Store) Checkpoints(ctx context.Context, after uint64, limit int) ([]chain.Checkpoint, error) {
	rows, err := s.queryPage(ctx, s.reads.checkpoints, "Checkpoints", limit, sqlPosition(after), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chain.Checkpoint
	for rows.Next() {
		var cp chain.Checkpoint
		if err := rows.Scan(&cp.Position, &cp.Hash, &cp.Time, &cp.KeyID, &cp.Signature); err != nil {
			return nil, fmt.Errorf("sqlite: read checkpoints: %w", err)
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read checkpoints: %w", err)
	}
	return out, nil
}

// AppendCheckpoint stores cp after the last checkpoint (see chain.Log).
func (s *Store) AppendCheckpoint(ctx context.Context, cp chain.Checkpoint) error {
	_, err := s.submit(&appendReq{ctx: ctx, checkpoint: &cp, done: make(chan struct{})})
	return err
}

// Import copies stored events into the log as they are (ids, streams, versions, positions,
// times, data, metadata), chaining them after the last event: what `vigil log migrate` does with
// a log written before the chain. Positions must increase and come after the log's head.
func (s *Store) Import(ctx context.Context, events []domain.Envelope) (eventstore.AppendResult, error) {
	if len(events) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("%w: no events", eventstore.ErrInvalidEvent)
	}
	return s.submit(&appendReq{ctx: ctx, imported: events, done: make(chan struct{})})
}

func (w *writer) storeCheckpoint(ctx context.Context, cp *chain.Checkpoint) error {
	var last sql.NullInt64
	if err := w.conn.QueryRowContext(ctx, `SELECT max(position) FROM checkpoints`).Scan(&last); err != nil {
		return fmt.Errorf("sqlite: read the last checkpoint: %w", err)
	}
	if last.Valid && uint64(last.Int64) >= cp.Position {
		return fmt.Errorf("%w (position %d, stored up to %d)", chain.ErrCheckpointStale, cp.Position, last.Int64)
	}
	var hash []byte
	err := w.conn.QueryRowContext(ctx, `SELECT hash FROM events WHERE position = ?`, cp.Position).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: no event at position %d", chain.ErrCheckpointMismatch, cp.Position)
	}
	if err != nil {
		return fmt.Errorf("sqlite: read the hash at position %d: %w", cp.Position, err)
	}
	if hex.EncodeToString(hash) != cp.Hash {
		return fmt.Errorf("%w: the chain hash at position %d is not %s", chain.ErrCheckpointMismatch, cp.Position, cp.Hash)
	}
	_, err = w.conn.ExecContext(ctx, `INSERT INTO checkpoints (position, hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)`,
		cp.Position, cp.Hash, cp.Time, cp.KeyID, cp.Signature)
	if err != nil {
		return fmt.Errorf("sqlite: store checkpoint: %w", err)
	}
	return nil
}

func (w *writer) importEvents(ctx context.Context, events []domain.Envelope) (eventstore.AppendResult, error) {
	var res eventstore.AppendResult
	for i := range events {
		e := events[i]
		if e.Position == 0 || e.ID == "" || e.StreamID == "" || e.Type == "" || e.Version == 0 {
			return eventstore.AppendResult{}, fmt.Errorf("%w: imported event %d lacks a position, id, stream, type or version", eventstore.ErrInvalidEvent, i)
		}
		e.RecordedAt = e.RecordedAt.UTC()
		if err := w.insertChained(ctx, &e); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("sqlite: import the event at position %d: %w", e.Position, err)
		}
		if i == 0 {
			res.FirstPosition = e.Position
		}
		res.LastPosition = e.Position
		res.NextVersion = e.Version
	}
	return res, nil
}

// MigrateResult is what Migrate copied. Streams counts the streams of the new log (after
// MigrateConfig.Rewrite renamed any).
type MigrateResult struct {
	Events, Streams             uint64
	FirstPosition, LastPosition uint64
}

// MigrateConfig is what Migrate does beyond the copy; every field is optional.
type MigrateConfig struct {
	// Start runs once from is known to be a log written before the chain and the new log is
	// open and empty, before anything is read: open there what Scan and Rewrite need (the new
	// log's data keys), so that a refused migrate makes nothing but the empty new log.
	Start func(ctx context.Context, dst *Store) error
	// Scan sees every event of from, in order, in a first pass before the copy: to collect
	// what Rewrite needs (the emails that name reservation streams).
	Scan func(e domain.Envelope) error
	// Rewrite changes an event before it is copied: its stream, data or metadata. A renamed
	// stream must be renamed alike for all its events, so that its versions stay a sequence.
	// The id, version, position and time must stay: Migrate refuses an event that lost them.
	Rewrite func(ctx context.Context, e *domain.Envelope) error
}

// Migrate copies the log at from, written before Vigil chained its events, into a new chained
// log at to (which must not hold events yet), keeping every event's id, stream, version,
// position, time, data and metadata unless cfg.Rewrite changes them. from is opened read-only
// and left as it is.
func Migrate(ctx context.Context, from, to string, cfg MigrateConfig) (MigrateResult, error) {
	var res MigrateResult
	if _, err := os.Stat(from); err != nil {
		return res, fmt.Errorf("--from: %w", err)
	}
	old, err := sql.Open("sqlite", "file:"+(&url.URL{Path: from}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return res, fmt.Errorf("--from: %w", err)
	}
	defer old.Close()
	if err := checkChained(old, from); err == nil {
		return res, fmt.Errorf("--from: %s already holds a hash chain (or no log at all): there is nothing to migrate", from)
	} else if !errors.Is(err, ErrUnchained) {
		return res, fmt.Errorf("--from: %w", err)
	}
	dst, err := Open(Config{Path: to, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	if head, err := dst.Head(ctx); err != nil || head != 0 {
		return res, fmt.Errorf("--to: %s already holds events (head %d, %v): migrate into a new file", to, head, err)
	}
	if cfg.Start != nil {
		if err := cfg.Start(ctx, dst); err != nil {
			return res, err
		}
	}
	if cfg.Scan != nil {
		err := readOld(ctx, old, from, func(evs []domain.Envelope) error {
			for _, e := range evs {
				if err := cfg.Scan(e); err != nil {
					return fmt.Errorf("--from: the event at position %d: %w", e.Position, err)
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	streams := map[string]struct{}{}
	err = readOld(ctx, old, from, func(evs []domain.Envelope) error {
		if cfg.Rewrite != nil {
			for i := range evs {
				if err := rewrite(ctx, cfg.Rewrite, &evs[i]); err != nil {
					return err
				}
			}
		}
		if _, err := dst.Import(ctx, evs); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		for _, e := range evs {
			streams[e.StreamID] = struct{}{}
		}
		if res.FirstPosition == 0 {
			res.FirstPosition = evs[0].Position
		}
		res.LastPosition = evs[len(evs)-1].Position
		res.Events += uint64(len(evs))
		res.Streams = uint64(len(streams))
		return nil
	})
	return res, err
}

// rewrite applies fn to e, refusing a rewrite that lost what the copy keeps.
func rewrite(ctx context.Context, fn func(context.Context, *domain.Envelope) error, e *domain.Envelope) error {
	id, version, pos, at := e.ID, e.Version, e.Position, e.RecordedAt
	if err := fn(ctx, e); err != nil {
		return fmt.Errorf("the event at position %d: %w", pos, err)
	}
	if e.ID != id || e.Version != version || e.Position != pos || !e.RecordedAt.Equal(at) {
		return fmt.Errorf("the event at position %d: the rewrite changed its id, version, position or time", pos)
	}
	return nil
}

// readOld hands every event of the old log to fn, a page at a time, in order.
func readOld(ctx context.Context, old *sql.DB, from string, fn func([]domain.Envelope) error) error {
	const page = 2000
	for after := uint64(0); ; {
		rows, err := old.QueryContext(ctx, selectEnvelopeWith("x''")+
			`WHERE position > ? ORDER BY position LIMIT ?`, after, page)
		if err != nil {
			return fmt.Errorf("--from: read %s: %w", from, err)
		}
		evs, err := scanEnvelopes(rows, page)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		if err := fn(evs); err != nil {
			return err
		}
		after = evs[len(evs)-1].Position
	}
}
