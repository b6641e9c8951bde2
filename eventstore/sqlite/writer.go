package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// appendReq is one Append call waiting for the writer.
type appendReq struct {
	ctx      context.Context
	stream   string
	expected eventstore.ExpectedVersion
	events   []domain.EventData
	res      eventstore.AppendResult
	err      error
	done     chan struct{}
}

// writer owns the single write connection and its prepared statements.
type writer struct {
	conn    *sql.Conn
	version *sql.Stmt
	insert  *sql.Stmt
}

func newWriter(conn *sql.Conn) (*writer, error) {
	ctx := context.Background()
	version, err := conn.PrepareContext(ctx, `SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	insert, err := conn.PrepareContext(ctx, `INSERT INTO events (id, stream_id, version, type, schema_version, recorded_at, data,
		actor_type, actor_id, subject, ip, user_agent, client_id, correlation_id, causation_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		version.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return &writer{conn: conn, version: version, insert: insert}, nil
}

func (w *writer) close() {
	w.version.Close()
	w.insert.Close()
	w.conn.Close()
}

// Append writes events to stream when its version matches expected. Concurrent calls are
// folded into shared transactions by one writer goroutine (group commit), so one WAL sync
// acknowledges many appends. Once Append has queued the request it waits for the writer's
// verdict, so an error always means nothing was written (a context cancelled before the
// writer reached the request withdraws it).
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []domain.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	req := &appendReq{ctx: ctx, stream: stream, expected: expected, events: events, done: make(chan struct{})}
	s.closeMu.Lock()
	if s.closed.Load() {
		s.closeMu.Unlock()
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	s.inflight.Add(1)
	s.closeMu.Unlock()
	defer s.inflight.Done()
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	case <-s.closing:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	<-req.done
	return req.res, req.err
}

// writeLoop takes queued appends in batches of up to MaxBatch and commits each batch in one
// transaction. A conflicting or failing append is undone alone (a savepoint guards appends of
// several events) and the others of the batch still commit.
func (s *Store) writeLoop(w *writer) {
	defer s.wg.Done()
	defer w.close()
	batch := make([]*appendReq, 0, s.cfg.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case req := <-s.reqs:
			batch = append(batch, req)
		case <-s.closing:
			// Answer whatever is still queued, then stop.
			for {
				select {
				case req := <-s.reqs:
					req.err = eventstore.ErrClosed
					close(req.done)
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case req := <-s.reqs:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		s.commitBatch(w, batch)
	}
}

func (s *Store) commitBatch(w *writer, batch []*appendReq) {
	ctx := context.Background()
	finish := func(err error) {
		for _, r := range batch {
			if r.err == nil && err != nil {
				r.err = err
				r.res = eventstore.AppendResult{}
			}
			close(r.done)
		}
	}
	if err := execRetry(ctx, w.conn, "BEGIN IMMEDIATE"); err != nil {
		finish(fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	now := s.cfg.Now().UTC().UnixNano()
	var last uint64
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		// A failed statement undoes itself in SQLite and a version conflict writes nothing, so
		// only an append of several events needs a savepoint to be undone alone.
		guarded := len(r.events) > 1
		if guarded {
			if _, err := w.conn.ExecContext(ctx, "SAVEPOINT a"); err != nil {
				r.err = fmt.Errorf("sqlite: savepoint: %w", err)
				continue
			}
		}
		res, err := w.appendOne(ctx, r, now)
		if err != nil {
			r.err = err
			if !guarded {
				continue
			}
			if _, rbErr := w.conn.ExecContext(ctx, "ROLLBACK TO a; RELEASE a"); rbErr != nil {
				// The transaction is in an unknown state: fail the whole batch.
				_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
				finish(fmt.Errorf("sqlite: rollback to savepoint: %w", rbErr))
				return
			}
			continue
		}
		if guarded {
			if _, err := w.conn.ExecContext(ctx, "RELEASE a"); err != nil {
				_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
				finish(fmt.Errorf("sqlite: release savepoint: %w", err))
				return
			}
		}
		r.res = res
		last = res.LastPosition
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		finish(fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	finish(nil)
	if last > 0 {
		s.noteHead(last)
	}
}

func (w *writer) appendOne(ctx context.Context, r *appendReq, now int64) (eventstore.AppendResult, error) {
	var cur uint64
	err := w.version.QueryRowContext(ctx, r.stream).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return eventstore.AppendResult{}, fmt.Errorf("sqlite: read version of %s: %w", r.stream, err)
	}
	if r.expected != eventstore.Any && uint64(r.expected) != cur {
		return eventstore.AppendResult{}, fmt.Errorf("%w: stream %s is at version %d, expected %s",
			eventstore.ErrWrongExpectedVersion, r.stream, cur, r.expected)
	}
	var res eventstore.AppendResult
	for i, e := range r.events {
		md := e.Metadata
		out, err := w.insert.ExecContext(ctx, e.ID, r.stream, cur+uint64(i)+1, e.Type, e.SchemaVersion, now, []byte(e.Data),
			string(md.Actor.Type), md.Actor.ID, md.SubjectAccountID, md.IP, md.UserAgent, md.ClientID, md.CorrelationID, md.CausationID)
		if err != nil {
			if isUniqueViolation(err) {
				// Either the event id is already stored, or another writer process took this
				// (stream, version) between our read and insert. The result code does not say
				// which key it was; the table does.
				var dup bool
				if qerr := w.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE id = ?)`, e.ID).Scan(&dup); qerr != nil {
					return eventstore.AppendResult{}, fmt.Errorf("sqlite: insert into %s: %w (and looking up the id: %v)", r.stream, err, qerr)
				}
				if dup {
					return eventstore.AppendResult{}, fmt.Errorf("%w: event id %s already stored", eventstore.ErrInvalidEvent, e.ID)
				}
				return eventstore.AppendResult{}, fmt.Errorf("%w: stream %s moved on", eventstore.ErrWrongExpectedVersion, r.stream)
			}
			return eventstore.AppendResult{}, fmt.Errorf("sqlite: insert into %s: %w", r.stream, err)
		}
		pos, err := out.LastInsertId()
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("sqlite: position: %w", err)
		}
		if i == 0 {
			res.FirstPosition = uint64(pos)
		}
		res.LastPosition = uint64(pos)
	}
	res.NextVersion = cur + uint64(len(r.events))
	return res, nil
}

// execRetry runs a statement, retrying while another process holds the write lock beyond the
// busy timeout.
func execRetry(ctx context.Context, conn *sql.Conn, stmt string) error {
	var err error
	for range 5 {
		if _, err = conn.ExecContext(ctx, stmt); !isBusy(err) {
			return err
		}
	}
	return err
}
