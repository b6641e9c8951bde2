// Package kurrentdb is Vigil's event store on KurrentDB (formerly EventStoreDB), for deployments
// beyond one machine: the log lives in a KurrentDB node or cluster and every Vigil instance
// builds its read models from the $all subscription.
//
// It talks to the server through the official gRPC client, github.com/EventStore/EventStore-Client-Go/v4
// (package esdb). How Vigil's model maps onto KurrentDB:
//
//   - Event: the event id is EventData.ID (a canonical UUID), the event type is Type, the content
//     type is JSON, the data is Data, and the user metadata is a JSON object carrying
//     schema_version, recorded_at (RFC 3339 with nanoseconds, UTC, Vigil's clock at append time)
//     and the fields of domain.Metadata (plus KurrentDB's $correlationId/$causationId
//     conventions, so the server's $by_correlation_id projection works when enabled).
//   - Version: KurrentDB stream revisions are 0-based and Vigil versions 1-based, so
//     Version = revision + 1 and the expected version n is sent as revision n-1.
//   - Position: the commit position of the event in $all. Positions are byte offsets in the
//     server's transaction log: strictly increasing in log order but not contiguous (the gap
//     between two events is at least the size of the first). A position is only meaningful to
//     the server when it is 0 or the position of a real event; ReadAll and Subscribe accept any
//     value and, when the server rejects one that falls between events, find the last event at
//     or before it and start from there.
//   - Only Vigil's events are visible through ReadAll, Head and Subscribe: those in streams with
//     one of domain.StreamPrefixes whose type does not start with "$" (KurrentDB's system
//     events). Append refuses other stream names, so that everything appended can be read back.
package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/vigil-auth/vigil/eventstore"
)

// Config configures Open. Zero values take the defaults shown.
type Config struct {
	// ConnectionString locates the server, for example
	// "kurrentdb://localhost:2113?tls=false" or
	// "kurrentdb+discover://admin:changeit@node1:2113,node2:2113,node3:2113". The schemes
	// kurrentdb, kurrent, kdb and esdb (each optionally with +discover) are accepted; the
	// query settings are the client's (tls, tlsVerifyCert, tlsCAFile, nodePreference,
	// maxDiscoverAttempts, discoveryInterval, gossipTimeout, keepAliveInterval,
	// keepAliveTimeout, defaultDeadline). TLS is on unless tls=false. Required.
	ConnectionString string
	// Logger receives operational messages, the client's own log lines included (at Debug,
	// or Warn for its warnings and errors). Default slog.Default().
	Logger *slog.Logger
	// Now is the clock that stamps RecordedAt; default time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// OpenAttempts bounds how many times Open tries to reach the server (each try is a full
	// discovery by a fresh client) before it gives up with ErrUnavailable. Default 5.
	OpenAttempts int
	// RetryBackoff is the first pause between two tries of Open and between two
	// resubscriptions; it doubles after each failed try up to MaxRetryBackoff. Defaults 100ms
	// and 5s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// ReadBatch is the most events one $all read request asks for while ReadAll, Head and
	// position searches page through the log. Default 1024.
	ReadBatch int
	// SubscriptionBuffer is the capacity of a subscription's Events channel. Default 256.
	SubscriptionBuffer int
	// CloseTimeout bounds how long Close waits for calls still inside the client before it
	// closes the client's connection. Default 5s.
	CloseTimeout time.Duration
}

func (c *Config) fill() error {
	if strings.TrimSpace(c.ConnectionString) == "" {
		return errors.New("kurrentdb: Config.ConnectionString is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OpenAttempts < 0 || c.RetryBackoff < 0 || c.MaxRetryBackoff < 0 || c.ReadBatch < 0 ||
		c.SubscriptionBuffer < 0 || c.CloseTimeout < 0 {
		return errors.New("kurrentdb: Config values must not be negative")
	}
	if c.OpenAttempts == 0 {
		c.OpenAttempts = 5
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = 5 * time.Second
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		return fmt.Errorf("kurrentdb: MaxRetryBackoff %v is shorter than RetryBackoff %v", c.MaxRetryBackoff, c.RetryBackoff)
	}
	if c.ReadBatch == 0 {
		c.ReadBatch = 1024
	}
	if c.SubscriptionBuffer == 0 {
		c.SubscriptionBuffer = 256
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
	return nil
}

// Store is the KurrentDB event store. It is safe for concurrent use by many goroutines.
//
// It owns one client (one gRPC connection to the node it discovered) at a time. When the
// client reports that the server is unreachable, the store retires it and the next call builds
// a fresh one, which runs a fresh discovery: the client cannot recover by itself once a
// discovery has failed (its connection loop exits, esdb/impl.go:217-226), and its own
// rediscovery after an unavailable node leaks the previous gRPC connection
// (esdb/impl.go:249-253). Calls on a client that has not yet answered one are serialised, so
// that only one of them runs the client's discovery; the client's discovery does not watch
// contexts, so every call runs in its own goroutine and returns as soon as its context ends.
type Store struct {
	cfg    Config
	log    *slog.Logger
	esconf esdb.Configuration // parsed once; each client gets a copy
	target string             // the connection string with credentials hidden, for messages

	ctx    context.Context // cancelled by Close: ends every call and subscription
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	cur    *conn              // the client new calls use; nil until needed
	conns  map[*conn]struct{} // every client not yet closed, current and retired
	subs   map[*subscription]struct{}
	nextID uint64

	chain chainIndex // the hash chain folded over $all (chain.go)
}

var _ eventstore.Store = (*Store)(nil)

// Open checks cfg, connects to the server and checks that it can read $all, retrying a failed
// connection with a fresh client up to cfg.OpenAttempts times (pausing RetryBackoff, doubling,
// between tries). An unreachable server gives an error wrapping eventstore.ErrUnavailable; a
// bad connection string, refused credentials or a missing permission give other errors at once.
// ctx bounds the whole of Open.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err = s.probe(ctx)
		if err == nil {
			s.log.Info("kurrentdb: connected", "server", s.target)
			return s, nil
		}
		if !errors.Is(err, eventstore.ErrUnavailable) || attempt >= s.cfg.OpenAttempts || ctx.Err() != nil {
			_ = s.Close()
			return nil, fmt.Errorf("kurrentdb: open %s (try %d of %d): %w", s.target, attempt, s.cfg.OpenAttempts, err)
		}
		s.log.Warn("kurrentdb: server not reachable, retrying with a fresh client",
			"server", s.target, "try", attempt, "of", s.cfg.OpenAttempts, "pause", backoff, "err", err)
		if !sleepCtx(ctx, backoff) {
			_ = s.Close()
			return nil, fmt.Errorf("kurrentdb: open %s: %w", s.target, ctx.Err())
		}
		backoff = min(2*backoff, s.cfg.MaxRetryBackoff)
	}
}

// newStore builds a Store without contacting the server: the client is created by the first
// call.
func newStore(cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	esconf, err := parseConnectionString(cfg.ConnectionString)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "eventstore.kurrentdb")
	esconf.Logger = clientLogger(log)
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		cfg:    cfg,
		log:    log,
		esconf: *esconf,
		target: redact(cfg.ConnectionString),
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*conn]struct{}),
		subs:   make(map[*subscription]struct{}),
	}, nil
}

// probe reads the last event of $all: it makes the client discover the server and checks that
// the credentials may read $all, which every Vigil instance needs.
func (s *Store) probe(ctx context.Context) error {
	_, err := call(ctx, s, "connect", func(ctx context.Context, c *esdb.Client) (struct{}, error) {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return struct{}{}, err
		}
		defer rs.Close()
		if _, err := rs.Recv(); err != nil && !isEOF(err) {
			return struct{}{}, err
		}
		return struct{}{}, nil
	}, nil)
	return err
}

// Close ends every subscription, fails calls in flight with ErrClosed, waits up to
// CloseTimeout for them to leave the client and closes the client. It is safe to call more
// than once; later calls return nil at once. A call still inside the client when the timeout
// expires (one waiting behind a discovery that is still running) keeps its client open until
// it returns: closing the client under it would make it panic (esdb/impl.go:93,103).
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.cur = nil
	s.mu.Unlock()

	s.cancel()
	for _, sub := range subs {
		_ = sub.Close()
	}

	deadline := time.Now().Add(s.cfg.CloseTimeout)
	for {
		var idle []*conn
		pending := 0
		s.mu.Lock()
		for cn := range s.conns {
			cn.closeWanted = true // a call that leaves the client later closes it (release)
			if cn.inflight == 0 {
				idle = append(idle, cn)
				delete(s.conns, cn)
			} else {
				pending++
			}
		}
		s.mu.Unlock()
		for _, cn := range idle {
			cn.closeClient()
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			s.log.Warn("kurrentdb: closing with calls still inside the client; their client closes when they return",
				"calls", pending)
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// conn is one client and what the store knows about its health.
type conn struct {
	id     uint64
	client *esdb.Client

	// gate serialises calls while the client has not answered one yet (proven is false), so
	// that a single call runs the client's discovery and the others wait outside the client.
	gate   chan struct{}
	proven atomic.Bool
	errSeq atomic.Uint64 // bumped on every connection error; a success proves the client only if none came in between

	retired     chan struct{} // closed when no new call may start on this client
	dead        chan struct{} // closed when the client's connection loop has exited: calls inside it may never return
	retireOnce  sync.Once
	deadOnce    sync.Once
	closeOnce   sync.Once
	inflight    int  // guarded by Store.mu
	closeWanted bool // guarded by Store.mu: close the client when inflight drops to 0
}

func (cn *conn) closeClient() {
	cn.closeOnce.Do(func() { _ = cn.client.Close() })
}

// acquire returns the current client, creating one when there is none, and counts a call on
// it. Every acquire is paired with a release.
func (s *Store) acquire() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	if s.cur == nil {
		cfg := s.esconf
		client, err := esdb.NewClient(&cfg)
		if err != nil {
			return nil, fmt.Errorf("kurrentdb: create client: %w", err)
		}
		s.nextID++
		s.cur = &conn{
			id:      s.nextID,
			client:  client,
			gate:    make(chan struct{}, 1),
			retired: make(chan struct{}),
			dead:    make(chan struct{}),
		}
		s.conns[s.cur] = struct{}{}
		s.log.Debug("kurrentdb: new client", "client", s.nextID)
	}
	s.cur.inflight++
	return s.cur, nil
}

// release ends a call counted by acquire and closes a retired client once no call is left in
// it.
func (s *Store) release(cn *conn) {
	s.mu.Lock()
	cn.inflight--
	closeNow := cn.inflight == 0 && cn.closeWanted
	if closeNow {
		delete(s.conns, cn)
	}
	s.mu.Unlock()
	if closeNow {
		cn.closeClient()
	}
}

// retire stops new calls from using cn; it is closed when its last call returns. dead also
// records that the client's connection loop has exited.
func (s *Store) retire(cn *conn, dead bool, cause error) {
	if dead {
		cn.deadOnce.Do(func() { close(cn.dead) })
	}
	first := false
	cn.retireOnce.Do(func() {
		first = true
		close(cn.retired)
	})
	s.mu.Lock()
	if s.cur == cn {
		s.cur = nil
	}
	cn.closeWanted = true
	closeNow := cn.inflight == 0
	if closeNow {
		delete(s.conns, cn)
	}
	s.mu.Unlock()
	if closeNow {
		cn.closeClient()
	}
	if first {
		s.log.Warn("kurrentdb: connection lost; the next call uses a fresh client", "client", cn.id, "err", cause)
	}
}

// observe updates cn's health after a call returned err (inside the call's goroutine, so that
// it happens even when the caller gave up waiting).
func (s *Store) observe(gaveUp bool, cn *conn, seq uint64, err error) {
	if err != nil && gaveUp {
		return // the caller gave up or the store closed: says nothing about the server
	}
	switch {
	case err == nil || serverAnswered(err):
		if cn.errSeq.Load() == seq {
			cn.proven.Store(true)
		}
	case clientDead(err):
		cn.errSeq.Add(1)
		cn.proven.Store(false)
		s.retire(cn, true, err)
	case connectionLost(err):
		cn.errSeq.Add(1)
		cn.proven.Store(false)
		s.retire(cn, false, err)
	case connectionShaky(err):
		cn.errSeq.Add(1)
		cn.proven.Store(false)
	}
}

type result[T any] struct {
	v   T
	err error
}

// errRetry marks a call that never reached the server because its client was retired first;
// call retries it on the next client.
var errRetry = fmt.Errorf("%w: the client was replaced before the call started", eventstore.ErrUnavailable)

// call runs fn on the current client in its own goroutine and returns its result, or an error
// as soon as ctx ends or the store closes. When the caller stops waiting, a result that
// arrives later is passed to discard (when not nil) so that it can release what it holds.
// Errors come back mapped onto the eventstore sentinels (see mapError).
func call[T any](ctx context.Context, s *Store, op string, fn func(ctx context.Context, c *esdb.Client) (T, error), discard func(T)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("kurrentdb: %s: %w", op, err)
	}
	for attempt := 0; ; attempt++ {
		cn, err := s.acquire()
		if err != nil {
			return zero, s.mapError(ctx, op, err)
		}
		v, err := callOn(ctx, s, cn, fn, discard)
		// Retire at once (observe does it too, but in the call's goroutine, maybe later), so
		// that the next call, a retry included, gets a fresh client.
		switch {
		case clientDead(err):
			s.retire(cn, true, err)
		case connectionLost(err) && ctx.Err() == nil && s.ctx.Err() == nil:
			s.retire(cn, false, err)
		}
		if (errors.Is(err, errRetry) || clientClosedBeforeCall(err)) && attempt < 3 && s.ctx.Err() == nil {
			continue
		}
		return v, s.mapError(ctx, op, err)
	}
}

func callOn[T any](ctx context.Context, s *Store, cn *conn, fn func(ctx context.Context, c *esdb.Client) (T, error), discard func(T)) (T, error) {
	var zero T
	opCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	defer func() {
		stop()
		cancel()
	}()

	gated := !cn.proven.Load()
	if gated {
		select {
		case cn.gate <- struct{}{}:
		case <-opCtx.Done():
			s.release(cn)
			return zero, opCtx.Err()
		case <-cn.retired:
			s.release(cn)
			return zero, errRetry
		}
	}

	var (
		mu        sync.Mutex
		abandoned bool
		done      = make(chan result[T], 1)
	)
	seq := cn.errSeq.Load()
	go func() {
		defer s.release(cn)
		if gated {
			defer func() { <-cn.gate }()
		}
		v, err := protect(opCtx, cn.client, fn)
		gaveUp := opCtx.Err() != nil
		mu.Lock()
		if abandoned {
			if err == nil && discard != nil {
				discard(v)
			}
		} else {
			done <- result[T]{v, err}
		}
		mu.Unlock()
		s.observe(gaveUp, cn, seq, err)
	}()

	giveUp := func(err error) (T, error) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-done: // it finished meanwhile: its result wins
			return r.v, r.err
		default:
			abandoned = true
			return zero, err
		}
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-opCtx.Done():
		return giveUp(opCtx.Err())
	case <-cn.dead:
		return giveUp(fmt.Errorf("%w: the client's connection loop stopped", eventstore.ErrUnavailable))
	}
}

// protect runs fn, turning a panic inside the client into an error.
func protect[T any](ctx context.Context, c *esdb.Client, fn func(ctx context.Context, c *esdb.Client) (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kurrentdb: client panicked: %v", r)
		}
	}()
	return fn(ctx, c)
}

// sleepCtx pauses for d; false means ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// clientLogger adapts the client's printf-style logging to slog. The client logs every
// dropped subscription and every failed call as an error, including those Vigil ends on
// purpose, so its errors and warnings become Warn (Debug when they only report a cancelled
// context) and the rest Debug.
func clientLogger(log *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...interface{}) {
		lvl := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			lvl = slog.LevelWarn
		}
		ctx := context.Background()
		if !log.Enabled(ctx, lvl) {
			return
		}
		msg := fmt.Sprintf(format, args...)
		if lvl == slog.LevelWarn && (strings.Contains(msg, "context canceled") || strings.Contains(msg, "code = Canceled")) {
			lvl = slog.LevelDebug
			if !log.Enabled(ctx, lvl) {
				return
			}
		}
		log.Log(ctx, lvl, "kurrentdb client: "+msg, "client_level", level)
	}
}
