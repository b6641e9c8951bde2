// Package sqlite is Vigil's embedded event store: one SQLite file in WAL mode, written through a
// single group-committing writer, read through a pool of read-only connections. It is the
// default backend: no other service is needed.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite/rawsqlite"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config configures Open. Zero values take the defaults shown.
type Config struct {
	// Path of the database file; created with its directory when absent. Required.
	Path string
	// Logger receives operational messages; default slog.Default().
	Logger *slog.Logger
	// Now is the clock that stamps RecordedAt; default time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// PollInterval is how often the store looks for events appended by other processes on the
	// same file, to wake subscribers (in-process appends wake them at once), while such
	// appends arrive. Default 25ms.
	PollInterval time.Duration
	// MaxPollInterval is how far the poll slows down while no other process appends: after
	// quietPolls polls that found nothing of theirs its interval doubles, up to this; the
	// first append of another process found brings it back to PollInterval. It bounds how
	// late the first of another process's appends after a quiet while reaches subscribers.
	// Default 250ms (never below PollInterval).
	MaxPollInterval time.Duration
	// MaxBatch is the most append calls the writer folds into one transaction. Default 512.
	MaxBatch int
	// CommitWindow is how long the writer may hold a commit for appends announced to arrive
	// within it (Expect: a sign-in whose password hash ends then), so that they share the
	// commit's sync instead of each syncing alone. While nothing is announced, or nothing due
	// within the window, no commit waits. Default 25ms; negative: never hold.
	CommitWindow time.Duration
	// ReadConns is the size of the read-only connection pool. Default 8.
	ReadConns int
	// ReadOnly opens an existing log for reading only (vigil verify, vigil log export, while
	// a server may be appending): no writer starts, nothing is created, and Append fails.
	ReadOnly bool
}

func (c *Config) fill() error {
	if c.Path == "" {
		return errors.New("sqlite: Config.Path is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 25 * time.Millisecond
	}
	if c.MaxPollInterval <= 0 {
		c.MaxPollInterval = 250 * time.Millisecond
	}
	c.MaxPollInterval = max(c.MaxPollInterval, c.PollInterval)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.CommitWindow == 0 {
		c.CommitWindow = 25 * time.Millisecond
	}
	if c.ReadConns <= 0 {
		c.ReadConns = 8
	}
	return nil
}

// Store is the SQLite event store. It is safe for concurrent use. Several processes may open
// the same file: their appends are serialised by SQLite's write lock and reach every process's
// subscribers.
type Store struct {
	cfg     Config
	writeDB *sql.DB
	readDB  *sql.DB
	reads   readStmts // prepared once: subscriptions read the log on every append

	reqs     chan *appendReq
	closing  chan struct{}
	closed   atomic.Bool
	closeMu  sync.Mutex // orders Append's admission against Close
	wg       sync.WaitGroup
	inflight sync.WaitGroup // Append calls admitted and not yet answered
	expected expected       // appends announced (Expect) and not yet queued

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever new events may be visible
	head    atomic.Uint64 // highest position this process knows to be committed

	polls        atomic.Uint64 // polls made (pollLoop)
	pollInterval atomic.Int64  // the poll's current interval, in nanoseconds
}

var _ eventstore.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	position       INTEGER PRIMARY KEY AUTOINCREMENT,
	id             TEXT    NOT NULL UNIQUE,
	stream_id      TEXT    NOT NULL,
	version        INTEGER NOT NULL,
	type           TEXT    NOT NULL,
	schema_version INTEGER NOT NULL,
	recorded_at    INTEGER NOT NULL, -- Unix nanoseconds, UTC
	data           BLOB    NOT NULL, -- JSON
	actor_type     TEXT    NOT NULL DEFAULT '',
	actor_id       TEXT    NOT NULL DEFAULT '',
	subject        TEXT    NOT NULL DEFAULT '', -- subject account id
	ip             TEXT    NOT NULL DEFAULT '', -- personal data
	user_agent     TEXT    NOT NULL DEFAULT '', -- personal data
	client_id      TEXT    NOT NULL DEFAULT '',
	correlation_id TEXT    NOT NULL DEFAULT '',
	causation_id   TEXT    NOT NULL DEFAULT '',
	hash           BLOB    NOT NULL, -- chain hash, 32 bytes (eventstore/chain)
	UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject, position) WHERE subject <> '';
CREATE TABLE IF NOT EXISTS checkpoints (
	position  INTEGER PRIMARY KEY, -- the event it signs
	hash      TEXT NOT NULL,       -- lowercase hex, as signed
	time      TEXT NOT NULL,       -- RFC 3339, exactly as signed
	key_id    TEXT NOT NULL,
	signature TEXT NOT NULL        -- standard base64
);
`

// Open opens (creating when absent) the event store at cfg.Path and starts its writer.
//
// Durability: the file is in WAL mode with synchronous=FULL, so every commit syncs the WAL
// before Append returns. NORMAL would survive a process crash (kill -9) but can lose the last
// transactions on a power cut or OS crash, and an acknowledged append must survive both. The
// cost of that sync is shared by group commit: concurrent appends ride one transaction.
func Open(cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if cfg.ReadOnly {
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	} else if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory: %w", err)
	}
	dsn := func(readOnly bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Set("_txlock", "immediate")
		}
		return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := checkChained(w, cfg.Path); err != nil {
		w.Close()
		return nil, err
	}
	if !cfg.ReadOnly {
		if _, err := w.Exec(schema); err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: create schema in %s: %w", cfg.Path, err)
		}
	}
	r, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	stmts, err := prepareReads(r)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: prepare reads in %s: %w", cfg.Path, err)
	}
	s := &Store{
		cfg:     cfg,
		writeDB: w,
		readDB:  r,
		reads:   stmts,
		reqs:    make(chan *appendReq, cfg.MaxBatch),
		closing: make(chan struct{}),
		changed: make(chan struct{}),
	}
	s.expected.changed = make(chan struct{}, 1)
	head, err := s.queryHead(context.Background())
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s.head.Store(head)
	if cfg.ReadOnly {
		w.Close()
		s.writeDB = nil
		s.wg.Add(1)
		go s.pollLoop()
		return s, nil
	}
	conn, err := w.Conn(context.Background())
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	wr, err := newWriter(conn)
	if err != nil {
		conn.Close()
		w.Close()
		r.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.writeLoop(wr)
	go s.pollLoop()
	return s, nil
}

// Close stops the writer after the appends already queued, ends subscriptions and closes the
// database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed.Swap(true) {
		s.closeMu.Unlock()
		return nil
	}
	s.closeMu.Unlock()
	// Let admitted appends reach the writer and be answered, then stop it.
	s.inflight.Wait()
	close(s.closing)
	s.wg.Wait()
	errs := []error{s.reads.close(), s.readDB.Close()}
	if s.writeDB != nil {
		errs = append(errs, s.writeDB.Close())
	}
	return errors.Join(errs...)
}

// ErrUnchained is returned by Open for a log file made before Vigil chained its events (its
// events table has no hash column): such a log is never mixed with chained events.
var ErrUnchained = errors.New("sqlite: the log has no hash chain")

// checkChained refuses an events table without the hash column, naming the command that
// copies it into a chained log.
func checkChained(db *sql.DB, path string) error {
	rows, err := db.Query(`SELECT name FROM pragma_table_info('events')`)
	if err != nil {
		return fmt.Errorf("sqlite: read the schema of %s: %w", path, err)
	}
	defer rows.Close()
	var cols int
	hashed := false
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("sqlite: read the schema of %s: %w", path, err)
		}
		cols++
		hashed = hashed || name == "hash"
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: read the schema of %s: %w", path, err)
	}
	if cols > 0 && !hashed {
		return fmt.Errorf("%w: %s was written by a Vigil without the hash chain; copy it into a new chained log with `vigil log migrate --from %s --to NEW` and use NEW", ErrUnchained, path, path)
	}
	return nil
}

// readStmts are the read queries, prepared once on the read pool (database/sql prepares
// each on a connection the first time it runs there and reuses it): every subscriber reads
// the log after every append, and parsing the SQL each time was a third of the cost.
type readStmts struct {
	head, stream, all, subject, chainHead, checkpoints *sql.Stmt
}

func prepareReads(db *sql.DB) (readStmts, error) {
	var st readStmts
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.head, `SELECT max(position) FROM events`},
		{&st.chainHead, `SELECT position, hash FROM events ORDER BY position DESC LIMIT 1`},
		{&st.checkpoints, `SELECT position, hash, time, key_id, signature FROM checkpoints WHERE position > ? ORDER BY position LIMIT ?`},
		{&st.stream, selectEnvelope + `WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?`},
		{&st.all, selectEnvelope + `WHERE position > ? ORDER BY position LIMIT ?`},
		{&st.subject, selectEnvelope + `WHERE subject = ? AND position > ? ORDER BY position LIMIT ?`},
	} {
		stmt, err := db.Prepare(p.q)
		if err != nil {
			st.close()
			return readStmts{}, err
		}
		*p.dst = stmt
	}
	return st, nil
}

func (st readStmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.head, st.stream, st.all, st.subject, st.chainHead, st.checkpoints} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// changedChan returns the channel that will be closed at the next change.
func (s *Store) changedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// broadcast wakes every waiting subscriber.
func (s *Store) broadcast() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// noteHead makes pos the head this process knows when it is higher, and wakes subscribers;
// it reports whether it was.
func (s *Store) noteHead(pos uint64) bool {
	for {
		cur := s.head.Load()
		if pos <= cur {
			return false
		}
		if s.head.CompareAndSwap(cur, pos) {
			s.broadcast()
			return true
		}
	}
}

// quietPolls is how many polls in a row find no other process's append before the poll
// slows down (a second at the default PollInterval), and again before each further doubling.
const quietPolls = 40

// pollLoop notices appends made by other processes on the same file. This process's own
// commits advance the known head as they are made, so a poll that finds the head higher
// found another process's append. Each poll is a query (about 0.2 ms of CPU here): forty a
// second were most of an idle instance's CPU (2 % of a core), for a log most instances share
// with nobody; the poll runs at PollInterval while other processes append and slows down to
// MaxPollInterval while they do not.
func (s *Store) pollLoop() {
	defer s.wg.Done()
	interval := s.cfg.PollInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	quiet := 0
	for {
		select {
		case <-s.closing:
			s.broadcast()
			return
		case <-t.C:
		}
		s.polls.Add(1)
		head, err := s.queryHead(context.Background())
		switch {
		case err != nil:
			s.cfg.Logger.Warn("event store poll failed", "err", err)
		case s.noteHead(head):
			quiet, interval = 0, s.cfg.PollInterval
		default:
			if quiet++; quiet >= quietPolls {
				quiet, interval = 0, min(2*interval, s.cfg.MaxPollInterval)
			}
		}
		s.pollInterval.Store(int64(interval))
		t.Reset(interval)
	}
}

func (s *Store) queryHead(ctx context.Context) (uint64, error) {
	var head sql.NullInt64
	if err := s.reads.head.QueryRowContext(ctx).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite: read head: %w", err)
	}
	return uint64(head.Int64), nil
}

// Head returns the last committed global position, 0 for an empty log.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	head, err := s.queryHead(ctx)
	if err != nil {
		return 0, err
	}
	s.noteHead(head)
	return head, nil
}

// selectEnvelope reads an event: its integers as columns of their own, every other field in
// one packed value (packedFields). SQLite locks the connection for each column it hands over,
// and the driver copies each into a string of its own: one value for thirteen fields reads
// the log with 21 allocations an event instead of 36, at 1.05 to 1.2 times the rate
// (BenchmarkReadAll: medians of two sets of 8 alternating pairs on a noisy host), and 1.16
// times that again since the hash is read as its raw bytes (4 pairs).
var selectEnvelope = selectEnvelopeWith("hash")

// selectEnvelopeWith is selectEnvelope with hash as the chain hash's expression (a log from
// before the chain has none).
func selectEnvelopeWith(hash string) string {
	return `SELECT position, version, schema_version, recorded_at, ` + packedFields(hash) + ` FROM events `
}

// packedFields concatenates the envelope's text and blob columns, each as its length in bytes,
// a colon and its bytes, and then the chain hash's 32 bytes as they are: packedReader splits
// it again. A length, not a separator, delimits the fields, so any byte may occur in any of
// them; the hash, last, is what remains (none for a log from before the chain).
func packedFields(hash string) string {
	var b strings.Builder
	b.WriteString("concat(")
	for _, col := range []string{"id", "stream_id", "type", "data", "actor_type", "actor_id", "subject", "ip",
		"user_agent", "client_id", "correlation_id", "causation_id"} {
		b.WriteString("octet_length(" + col + "),':'," + col + ",")
	}
	b.WriteString(hash + ")")
	return b.String()
}

// errPacked reports a packed value that does not split into the envelope's fields: the query
// and the reader disagree.
var errPacked = errors.New("sqlite: malformed packed event fields")

// packedReader splits a packed value (packedFields) field by field.
type packedReader struct {
	p   string
	err error
}

// next returns the next field, a substring of the packed value: a caller that keeps it copies
// it (strings.Clone), so that keeping one field keeps no other alive. After an error it
// returns "" and the error stays.
func (r *packedReader) next() string {
	if r.err != nil {
		return ""
	}
	p, n, i := r.p, 0, 0
	for ; i < len(p) && p[i] != ':'; i++ {
		c := p[i]
		if c < '0' || c > '9' || i >= 9 {
			r.err = errPacked
			return ""
		}
		n = n*10 + int(c-'0')
	}
	if i == 0 || i == len(p) || n > len(p)-i-1 {
		r.err = errPacked
		return ""
	}
	r.p = p[i+1+n:]
	return p[i+1 : i+1+n]
}

// rest returns what follows the fields read, and the error of any of them.
func (r *packedReader) rest() (string, error) {
	if r.err != nil {
		return "", r.err
	}
	return r.p, nil
}

// hexString is hex.EncodeToString of raw's bytes with one allocation (the result) for a
// chain hash: a read of the log encodes one per event.
func hexString(raw string) string {
	var buf [64]byte
	if hex.EncodedLen(len(raw)) > len(buf) {
		return hex.EncodeToString([]byte(raw))
	}
	n := hex.Encode(buf[:], []byte(raw))
	return string(buf[:n])
}

func scanEnvelopes(rows *sql.Rows, capHint int) ([]domain.Envelope, error) {
	defer rows.Close()
	out := make([]domain.Envelope, 0, capHint)
	for rows.Next() {
		// The integers scan into int64 (what the driver gives): into uint64 or int
		// database/sql converts through a decimal string.
		var (
			position, version, schema int64
			recorded                  int64
			packed                    string
		)
		if err := rows.Scan(&position, &version, &schema, &recorded, &packed); err != nil {
			return nil, fmt.Errorf("sqlite: scan event: %w", err)
		}
		e, err := envelopeOf(position, version, schema, recorded, packed)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return out, nil
}

// envelopeOf makes the envelope of a row of selectEnvelope. Its fields are copies: packed
// may be memory SQLite reuses (readAllRaw).
func envelopeOf(position, version, schema, recorded int64, packed string) (domain.Envelope, error) {
	var e domain.Envelope
	r, md := packedReader{p: packed}, &e.Metadata
	e.ID = strings.Clone(r.next())
	e.StreamID = strings.Clone(r.next())
	e.Type = strings.Clone(r.next())
	e.Data = []byte(r.next())
	md.Actor.Type = domain.ActorType(strings.Clone(r.next()))
	md.Actor.ID = strings.Clone(r.next())
	md.SubjectAccountID = strings.Clone(r.next())
	md.IP = strings.Clone(r.next())
	md.UserAgent = strings.Clone(r.next())
	md.ClientID = strings.Clone(r.next())
	md.CorrelationID = strings.Clone(r.next())
	md.CausationID = strings.Clone(r.next())
	hash, err := r.rest()
	if err != nil {
		return domain.Envelope{}, fmt.Errorf("sqlite: scan event at position %d: %w", position, err)
	}
	e.Hash = hexString(hash)
	e.Position, e.Version, e.SchemaVersion = uint64(position), uint64(version), int(schema)
	e.RecordedAt = time.Unix(0, recorded).UTC()
	return e, nil
}

// ReadStream returns up to limit events of stream from version fromVersion on (limit <= 0: all).
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.reads.stream.QueryContext(ctx, stream, sqlPosition(fromVersion), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read stream %s: %w", stream, err)
	}
	return scanEnvelopes(rows, 16)
}

// ReadAll returns up to limit events after global position after, in order.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error) {
	if limit >= rawReadMin && !s.closed.Load() {
		if out, err := s.readAllRaw(ctx, after, limit); !errors.Is(err, rawsqlite.ErrNotModernc) {
			return out, err
		}
	}
	rows, err := s.queryPage(ctx, s.reads.all, "ReadAll", limit, sqlPosition(after), limit)
	if err != nil {
		return nil, err
	}
	return scanEnvelopes(rows, min(limit, maxPageHint))
}

// rawReadMin is the smallest ReadAll page read through SQLite's own interface (readAllRaw):
// a rebuild's or a catching-up follower's. A smaller one, a live follower's, reuses the
// statement database/sql keeps prepared on each connection.
const rawReadMin = 1024

// readAllRaw is ReadAll through SQLite's own interface (rawsqlite) on a connection of the
// read pool: the driver would box each integer, copy each row's packed fields into a string
// of their own and database/sql convert every value again, about a fifth of the log read's
// CPU in a rebuild; here each field is copied once, from SQLite's memory into the envelope.
// The statement is prepared for the call (a page is thousands of events). Its error is
// rawsqlite.ErrNotModernc when the driver's connection has no handle rawsqlite knows.
func (s *Store) readAllRaw(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error) {
	conn, err := s.readDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ReadAll: %w", err)
	}
	defer conn.Close()
	out := make([]domain.Envelope, 0, min(limit, maxPageHint))
	err = conn.Raw(func(dc any) error {
		c, err := rawsqlite.Of(dc)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Query(selectEnvelope+`WHERE position > ? ORDER BY position LIMIT ?`, []any{sqlPosition(after), limit}, func(r *rawsqlite.Rows) error {
			if len(out)%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			packed := r.Bytes(4)
			e, err := envelopeOf(r.Int64(0), r.Int64(1), r.Int64(2), r.Int64(3), unsafe.String(unsafe.SliceData(packed), len(packed)))
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if errors.Is(err, rawsqlite.ErrNotModernc) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	return out, nil
}

// maxPageHint bounds the room a paged read makes for its events up front: a rebuild reads
// pages of 16,384 events, which growing from a smaller start copied about twice over (4 % of
// a rebuild's CPU, issue 16's profile); a larger limit grows from there.
const maxPageHint = 16384

// sqlPosition is a position or version as an SQLite integer. One above SQLite's largest
// integer, which no event can have, is the largest: a client's after=18446744073709551615
// reads that nothing follows it, where database/sql would refuse the number (a 500).
func sqlPosition(p uint64) int64 { return int64(min(p, math.MaxInt64)) }

// queryPage runs a paged read (limit must be positive) unless the store is closed; what names
// the read in errors.
func (s *Store) queryPage(ctx context.Context, stmt *sql.Stmt, what string, limit int, args ...any) (*sql.Rows, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: %s limit must be positive", eventstore.ErrInvalidEvent, what)
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return rows, nil
}

// ReadSubject returns up to limit events whose subject account is accountID, after global
// position after, in global order. It serves the audit API without scanning the whole log.
func (s *Store) ReadSubject(ctx context.Context, accountID string, after uint64, limit int) ([]domain.Envelope, error) {
	rows, err := s.queryPage(ctx, s.reads.subject, "ReadSubject", limit, accountID, sqlPosition(after), limit)
	if err != nil {
		return nil, err
	}
	return scanEnvelopes(rows, min(limit, 1024))
}
