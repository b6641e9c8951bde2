package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

var errReadOnly = errors.New("sqlite: the store was opened read-only")

// appendReq is one Append call waiting for the writer, or one of the other writes that go
// through it (a checkpoint, an import of stored events), so that every write of the file
// passes the one place that knows the chain's last hash.
type appendReq struct {
	ctx        context.Context
	stream     string
	expected   eventstore.ExpectedVersion
	events     []domain.EventData
	checkpoint *chain.Checkpoint // instead of events: store this checkpoint
	imported   []domain.Envelope // instead of events: copy these stored events (vigil log migrate)
	res        eventstore.AppendResult
	err        error
	done       chan struct{}
}

// writer owns the single write connection and its prepared statements, and the chain's tip
// while a transaction is open.
type writer struct {
	conn    *sql.Conn
	version *sql.Stmt
	insert  *sql.Stmt
	tip     *sql.Stmt

	// The position and hash of the last event in the open transaction. Read at the start of
	// every transaction, under the write lock, because other processes may append to the file.
	lastPos  uint64
	lastHash chain.Sum
	hasher   chain.Hasher
}

func newWriter(conn *sql.Conn) (*writer, error) {
	ctx := context.Background()
	version, err := conn.PrepareContext(ctx, `SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	insert, err := conn.PrepareContext(ctx, `INSERT INTO events (position, id, stream_id, version, type, schema_version, recorded_at, data,
		actor_type, actor_id, subject, ip, user_agent, client_id, correlation_id, causation_id, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		version.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	tip, err := conn.PrepareContext(ctx, `SELECT position, hash FROM events ORDER BY position DESC LIMIT 1`)
	if err != nil {
		version.Close()
		insert.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return &writer{conn: conn, version: version, insert: insert, tip: tip}, nil
}

func (w *writer) close() {
	w.version.Close()
	w.insert.Close()
	w.tip.Close()
	w.conn.Close()
}

// readTip loads the chain's last position and hash inside the open transaction. After a
// crash the chain simply continues from the last stored row.
func (w *writer) readTip(ctx context.Context) error {
	var (
		pos  uint64
		hash []byte
	)
	err := w.tip.QueryRowContext(ctx).Scan(&pos, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		w.lastPos, w.lastHash = 0, chain.Zero
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: read the chain's last hash: %w", err)
	case len(hash) != chain.Size:
		return fmt.Errorf("sqlite: the event at position %d has a chain hash of %d bytes", pos, len(hash))
	}
	w.lastPos = pos
	copy(w.lastHash[:], hash)
	return nil
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
	return s.submit(&appendReq{ctx: ctx, stream: stream, expected: expected, events: events, done: make(chan struct{})})
}

// submit queues a write for the writer and waits for its verdict.
func (s *Store) submit(req *appendReq) (eventstore.AppendResult, error) {
	ctx := req.ctx
	if s.cfg.ReadOnly {
		return eventstore.AppendResult{}, errReadOnly
	}
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
		// Queued: the writer need not hold a commit for this append any longer.
		domain.ExpectationOf(ctx).Done()
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	case <-s.closing:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	<-req.done
	return req.res, req.err
}

// writeLoop takes queued appends in batches of up to MaxBatch (holding a batch, within the
// commit window, for appends announced to arrive in it: awaitExpected) and commits each batch
// in one transaction. A conflicting or failing append is undone alone (a savepoint guards
// appends of several events) and the others of the batch still commit.
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
		batch = s.awaitExpected(s.drainQueued(batch), time.Now())
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
	if err := w.readTip(ctx); err != nil {
		_, _ = w.conn.ExecContext(ctx, "ROLLBACK")
		finish(err)
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
		// only a write of several rows needs a savepoint to be undone alone.
		guarded := len(r.events) > 1 || len(r.imported) > 1
		tipPos, tipHash := w.lastPos, w.lastHash
		if guarded {
			if _, err := w.conn.ExecContext(ctx, "SAVEPOINT a"); err != nil {
				r.err = fmt.Errorf("sqlite: savepoint: %w", err)
				continue
			}
		}
		res, err := w.write(ctx, r, now)
		if err != nil {
			r.err = err
			w.lastPos, w.lastHash = tipPos, tipHash
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
		last = max(last, res.LastPosition)
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

// write performs one queued request inside the open transaction.
func (w *writer) write(ctx context.Context, r *appendReq, now int64) (eventstore.AppendResult, error) {
	switch {
	case r.checkpoint != nil:
		return eventstore.AppendResult{}, w.storeCheckpoint(ctx, r.checkpoint)
	case r.imported != nil:
		return w.importEvents(ctx, r.imported)
	}
	return w.appendOne(ctx, r, now)
}

// insertChained inserts e chained to the last event: at the next position, or at e.Position
// when it is set (an import), which must then come after the last event. It sets e.Position.
func (w *writer) insertChained(ctx context.Context, e *domain.Envelope) error {
	switch {
	case e.Position == 0:
		e.Position = w.lastPos + 1
	case e.Position <= w.lastPos:
		return fmt.Errorf("%w: position %d does not come after the log's last position %d", eventstore.ErrInvalidEvent, e.Position, w.lastPos)
	}
	sum := w.hasher.Next(w.lastHash, e)
	md := &e.Metadata
	_, err := w.insert.ExecContext(ctx, e.Position, e.ID, e.StreamID, e.Version, e.Type, e.SchemaVersion, e.RecordedAt.UnixNano(), []byte(e.Data),
		string(md.Actor.Type), md.Actor.ID, md.SubjectAccountID, md.IP, md.UserAgent, md.ClientID, md.CorrelationID, md.CausationID, sum[:])
	if err != nil {
		return err
	}
	w.lastPos, w.lastHash = e.Position, sum
	return nil
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
	recorded := time.Unix(0, now).UTC()
	for i, e := range r.events {
		env := domain.Envelope{ID: e.ID, StreamID: r.stream, Version: cur + uint64(i) + 1, Type: e.Type, SchemaVersion: e.SchemaVersion,
			RecordedAt: recorded, Data: e.Data, Metadata: e.Metadata}
		if err := w.insertChained(ctx, &env); err != nil {
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
		if i == 0 {
			res.FirstPosition = env.Position
		}
		res.LastPosition = env.Position
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
