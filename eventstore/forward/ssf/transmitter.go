// Package ssf is Vigil's Shared Signals transmitter (SSF 1.0, CAEP and RISC; API.md "Shared
// Signals"): it follows the log through eventstore/follow, turns the events of API.md's
// mapping into Security Event Tokens (RFC 8417) signed RS256, and delivers them to each
// stream by push (RFC 8935) or poll (RFC 8936).
//
// Streams are SSFStreamChanged events on system-ssf-stream-<id>. A registry consumer keeps
// the table of streams and starts or stops one consumer per stream, which starts right after
// the stream's creation and keeps its own checkpoint. That consumer decides, in log order,
// what each event becomes under the stream's configuration as it stood at that point (its
// own SSFStreamChanged events reach it in order with the rest): a SET queued in the
// transmitter's database in the same transaction as its checkpoint (enabled or paused), or
// nothing (disabled, or a type the stream did not ask for). A push worker per push stream
// sends the queue in order, one SET at a time, and removes a SET when the receiver answered
// 202; polls return the queue and remove what the receiver acknowledges. So a SET is made
// exactly once, sent at least once and, once acknowledged, never again, across restarts.
package ssf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
)

// RegistryName is the consumer that keeps the table of streams.
const RegistryName = "ssf-registry"

// consumerName is the consumer (and checkpoint) of a stream.
func consumerName(id string) string { return "ssf-" + id }

// Defaults of Config.
const (
	DefaultPushTimeout    = 10 * time.Second
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultDisableAfter   = 24 * time.Hour
	DefaultMaxPollWait    = 30 * time.Second
)

// ErrNotPoll is returned by Poll for a stream that is not delivered by poll.
var ErrNotPoll = errors.New("ssf: the stream is not delivered by poll")

// Config configures New.
type Config struct {
	// Log is the event log. Required.
	Log eventstore.Store
	// Path is the transmitter's database (<data-dir>/ssf.db). Required.
	Path string
	// Keys sign the SETs. Required.
	Keys *Keys
	// Issuer is the SETs' iss: the public URL. Required.
	Issuer string
	// Disable records that a push stream has failed for DisableAfter (an SSFStreamChanged
	// with status disabled and reason). Nil: such streams keep retrying.
	Disable func(ctx context.Context, streamID, reason string) error
	// Logger defaults to slog.Default(); Registerer, when set, receives the metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// PushTimeout bounds one push; InitialBackoff doubles after each failed push up to
	// MaxBackoff; DisableAfter is how long a push stream may fail before it is disabled;
	// MaxPollWait bounds a long poll. Defaults above.
	PushTimeout, InitialBackoff, MaxBackoff, DisableAfter, MaxPollWait time.Duration
	// Transport carries the pushes; default a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Leases, when set (several instances on one log: sharedstate's), makes each push stream
	// push from one instance at a time: the holder of the lease "ssf-push-<stream id>", which
	// saves the position of each SET the receiver accepted as the lease's shared progress.
	// Every instance still makes every SET (the same jti, in the same order) into its own
	// queue; a new holder first drops what the holders before it pushed, and the others
	// drop it as they see the progress. Holder names this instance (default: a random id).
	Leases follow.Leases
	Holder string
	// Acks, when set (sharedstate's), shares poll acknowledgements between the instances: a
	// SET acknowledged on one instance is not offered again by another (see Poll).
	Acks Acks
}

// Acks records which SETs of a stream a poll receiver acknowledged, for every instance.
type Acks interface {
	// Ack records jtis as acknowledged on stream.
	Ack(ctx context.Context, stream string, jtis []string) error
	// Acked returns which of jtis were acknowledged on stream.
	Acked(ctx context.Context, stream string, jtis []string) (map[string]bool, error)
}

// pushLeaseName is the lease (and shared progress) of a push stream's worker.
func pushLeaseName(id string) string { return "ssf-push-" + id }

// Transmitter runs the streams. Create with New, start with Run, stop with Close.
type Transmitter struct {
	cfg     Config
	log     *slog.Logger
	db      *db
	f       *follow.Follower
	client  *http.Client
	metrics *metrics
	runCtx  context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	// polls ends the long polls (EndPolls).
	polls    context.Context
	endPolls context.CancelFunc

	mu      sync.Mutex
	streams map[string]*stream

	regSaved time.Time
}

// stream is one stream as this instance runs it.
type stream struct {
	id string

	mu      sync.Mutex
	cons    domain.SSFStreamChanged // the configuration its consumer has reached
	removed bool
	arrived chan struct{} // closed and replaced when SETs were queued or the status changed
	failing time.Time     // first failed push of the head SET; zero: none
	lastErr string
	stop    context.CancelFunc
	// disabling is set once the worker asked for the stream's disabling, until its status
	// changes: it is asked for once.
	disabling bool
}

func (s *stream) config() domain.SSFStreamChanged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cons
}

// signal wakes the push worker and the long polls.
func (s *stream) signal() {
	s.mu.Lock()
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
}

func (s *stream) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived
}

var metricNames = follow.Metrics{
	Failures:     follow.Metric{Name: "vigil_ssf_failures_total", Help: "Batches a Shared Signals consumer still failed after the retries (tried again from its checkpoint)."},
	Checkpoint:   follow.Metric{Name: "vigil_ssf_checkpoint", Help: "Global position of the last event a Shared Signals consumer turned into SETs."},
	LagPositions: follow.Metric{Name: "vigil_ssf_lag_positions", Help: "Log head minus the Shared Signals consumer's checkpoint."},
}

// New opens the database, loads the streams and builds the follower. Nothing is delivered
// before Run.
func New(cfg Config) (_ *Transmitter, err error) {
	if cfg.Log == nil || cfg.Path == "" || cfg.Keys == nil || cfg.Issuer == "" {
		return nil, errors.New("ssf: Config needs Log, Path, Keys and Issuer")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Leases != nil && cfg.Holder == "" {
		cfg.Holder = follow.NewHolderID()
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.PushTimeout, DefaultPushTimeout)
	def(&cfg.InitialBackoff, DefaultInitialBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.DisableAfter, DefaultDisableAfter)
	def(&cfg.MaxPollWait, DefaultMaxPollWait)
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	t := &Transmitter{cfg: cfg, log: cfg.Logger.With("component", "ssf"), streams: map[string]*stream{},
		client: &http.Client{Transport: tr, Timeout: cfg.PushTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.runCtx, t.cancel = context.WithCancel(context.Background())
	t.polls, t.endPolls = context.WithCancel(context.Background())
	if t.db, err = openDB(cfg.Path); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = t.db.close()
		}
	}()
	t.metrics = newMetrics(t)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(t.metrics); err != nil {
			return nil, fmt.Errorf("ssf: register metrics: %w", err)
		}
	}
	t.f, err = follow.New(follow.Config{Log: cfg.Log, Logger: t.log, Kind: "ssf", Metrics: metricNames, Registerer: cfg.Registerer,
		Retries: 3, RetryBackoff: 50 * time.Millisecond, MaxRetryBackoff: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	if err := t.f.Add(follow.Consumer{Name: RegistryName, Checkpoints: t.db, Handle: t.applyRegistry}); err != nil {
		_ = t.f.Close()
		return nil, err
	}
	rows, err := t.db.streams(context.Background())
	if err != nil {
		_ = t.f.Close()
		return nil, err
	}
	for _, r := range rows {
		if err := t.startStream(r); err != nil {
			_ = t.f.Close()
			return nil, err
		}
	}
	return t, nil
}

// Run delivers until ctx ends or Close is called.
func (t *Transmitter) Run(ctx context.Context) error { return t.f.Run(ctx) }

// Running is closed once every consumer runs.
func (t *Transmitter) Running() <-chan struct{} { return t.f.Running() }

// EndPolls makes the long polls waiting return at once (empty) and later polls return
// immediately: call it when the HTTP server starts shutting down, so that draining does not
// wait for them.
func (t *Transmitter) EndPolls() { t.endPolls() }

// Close stops the follower and the push workers and closes the database.
func (t *Transmitter) Close() error {
	t.endPolls()
	err := t.f.Close()
	t.cancel()
	t.workers.Wait()
	return errors.Join(err, t.db.close())
}

// WaitRegistry blocks until the registry has applied the log up to position, or ctx ends.
func (t *Transmitter) WaitRegistry(ctx context.Context, position uint64) error {
	return t.f.WaitFor(ctx, position, RegistryName)
}

// WaitStream blocks until a stream's consumer has handled position, or ctx ends.
func (t *Transmitter) WaitStream(ctx context.Context, streamID string, position uint64) error {
	return t.f.WaitFor(ctx, position, consumerName(streamID))
}

// startStream adds a stream's consumer and, for push, its worker (once).
func (t *Transmitter) startStream(r streamRow) error {
	t.mu.Lock()
	if _, ok := t.streams[r.ID]; ok {
		t.mu.Unlock()
		return nil
	}
	s := &stream{id: r.ID, cons: r.Consumer, arrived: make(chan struct{}), failing: r.FailingSince, lastErr: r.LastError}
	t.streams[r.ID] = s
	t.mu.Unlock()
	if r.Consumer.DeliveryMethod == MethodPush || r.Config.DeliveryMethod == MethodPush {
		t.startWorker(s)
	}
	return t.f.Add(follow.Consumer{Name: consumerName(r.ID), Checkpoints: t.db,
		Handle: func(ctx context.Context, batch []domain.Envelope) error { return t.handle(ctx, s, batch) }})
}

func (t *Transmitter) startWorker(s *stream) {
	ctx, cancel := context.WithCancel(t.runCtx)
	s.mu.Lock()
	if s.stop != nil {
		s.mu.Unlock()
		cancel()
		return
	}
	s.stop = cancel
	s.mu.Unlock()
	t.workers.Add(1)
	go func() {
		defer t.workers.Done()
		t.pushLeased(ctx, s)
	}()
}

// pushLeased runs the push worker: at once without Config.Leases, else while this instance
// holds the stream's push lease, dropping first what the holders before pushed.
func (t *Transmitter) pushLeased(ctx context.Context, s *stream) {
	if t.cfg.Leases == nil {
		t.push(ctx, s, nil)
		return
	}
	l := follow.NewLease(t.cfg.Leases, pushLeaseName(s.id), t.cfg.Holder, t.log.With("stream", s.id))
	l.Observe(func(p uint64) {
		// Another instance pushes: drop what it has pushed from this instance's queue.
		if _, err := t.db.deliveredUpTo(ctx, s.id, p); err != nil && ctx.Err() == nil {
			t.log.Warn("ssf: dropping SETs another instance pushed failed", "stream", s.id, "error", err.Error())
		}
	})
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.Run(lctx) }()
	defer func() { stop(); <-done }()
	for ctx.Err() == nil {
		term, err := l.Wait(ctx)
		if err != nil {
			return
		}
		if _, err := t.db.deliveredUpTo(ctx, s.id, term.Progress()); err != nil {
			t.log.Error("ssf: dropping SETs pushed before this instance took over failed", "stream", s.id, "error", err.Error())
			t.sleep(ctx, nil, time.Second)
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		stopAfter := context.AfterFunc(term.Ctx, cancel)
		t.push(pctx, s, term)
		stopAfter()
		cancel()
		s.mu.Lock()
		removed := s.removed
		s.mu.Unlock()
		if removed {
			return
		}
	}
}

// stopStream stops a stream's consumer and worker.
func (t *Transmitter) stopStream(id string) {
	t.mu.Lock()
	s, ok := t.streams[id]
	delete(t.streams, id)
	t.mu.Unlock()
	if !ok {
		return
	}
	t.f.Remove(consumerName(id))
	s.mu.Lock()
	s.removed = true
	if s.stop != nil {
		s.stop()
	}
	s.mu.Unlock()
	s.signal()
}

func (t *Transmitter) stream(id string) (*stream, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.streams[id]
	return s, ok
}

// applyRegistry keeps the table of streams; other events only move its checkpoint, saved at
// most once a second (seeing them again after a restart changes nothing).
func (t *Transmitter) applyRegistry(ctx context.Context, batch []domain.Envelope) error {
	saved := true
	for _, ev := range batch {
		if ev.Type != domain.EventSSFStreamChanged {
			saved = false
			continue
		}
		de, err := domain.DecodeEvent(ev)
		if err != nil {
			return err
		}
		e := de.(domain.SSFStreamChanged)
		switch e.Change {
		case ChangeCreated:
			if err := t.db.createStream(ctx, e, ev.Position, RegistryName); err != nil {
				return err
			}
			t.log.Info("ssf stream created", "stream", e.StreamID, "delivery", e.DeliveryMethod)
			if err := t.startStream(streamRow{ID: e.StreamID, Position: ev.Position, Config: e, Consumer: e}); err != nil {
				return err
			}
		case ChangeDeleted:
			t.stopStream(e.StreamID)
			if err := t.db.deleteStream(ctx, e.StreamID, ev.Position, RegistryName); err != nil {
				return err
			}
			t.log.Info("ssf stream deleted", "stream", e.StreamID)
		default:
			if err := t.db.updateConfig(ctx, e, ev.Position, RegistryName); err != nil {
				return err
			}
			if s, ok := t.stream(e.StreamID); ok && e.DeliveryMethod == MethodPush {
				t.startWorker(s) // a poll stream changed to push
			}
		}
		saved = true
		t.regSaved = t.cfg.Now()
	}
	if saved || t.cfg.Now().Sub(t.regSaved) < time.Second {
		return nil
	}
	t.regSaved = t.cfg.Now()
	return follow.SaveCheckpoint(context.WithoutCancel(ctx), t.db.db, RegistryName, batch[len(batch)-1].Position, t.cfg.Now())
}

// jti is a SET's id: derived from the stream and the event, so that the SET of one event for
// one stream has one id however often it is made.
func jti(streamID, eventID string) string {
	sum := sha256.Sum256([]byte(streamID + "\x00" + eventID))
	return hex.EncodeToString(sum[:16])
}

// handle turns a batch into the stream's SETs, in log order, under the configuration the
// stream had at each event, and stores them with the checkpoint.
func (t *Transmitter) handle(ctx context.Context, s *stream, batch []domain.Envelope) error {
	s.mu.Lock()
	gone := s.removed
	s.mu.Unlock()
	if gone {
		return nil // deleted: the registry stops this consumer and drops its rows
	}
	cons := s.config()
	own := domain.SSFStream(s.id)
	var sets []queued
	drop, removed := false, false
	now := t.cfg.Now().UTC()
	add := func(ev domain.Envelope, m mapped) error {
		id := jti(s.id, ev.ID)
		aud := cons.Audience
		tok, err := encodeSET(t.cfg.Keys, t.cfg.Issuer, aud, id, ev.ID, now, m)
		if err != nil {
			return err
		}
		sets = append(sets, queued{JTI: id, Position: ev.Position, Token: tok, Created: now})
		return nil
	}
	for _, ev := range batch {
		if removed {
			break
		}
		if ev.Type == domain.EventSSFStreamChanged && ev.StreamID == own {
			de, err := domain.DecodeEvent(ev)
			if err != nil {
				return err
			}
			e := de.(domain.SSFStreamChanged)
			wasDisabled := cons.Status == StatusDisabled
			cons = e
			switch {
			case e.Change == ChangeDeleted:
				removed = true
			case e.Change == ChangeVerification && e.Status != StatusDisabled:
				members := map[string]any{"event_timestamp": ev.RecordedAt.Unix()}
				if e.State != "" {
					members["state"] = e.State
				}
				if err := add(ev, mapped{uri: EventVerification, sub: &subject{Format: "opaque", ID: s.id}, members: members}); err != nil {
					return err
				}
			case e.Status == StatusDisabled && !wasDisabled:
				drop, sets = true, nil // disabled: what waits is dropped
			}
			continue
		}
		if cons.Status == StatusDisabled {
			continue
		}
		m, ok, err := mapEvent(ctx, t.cfg.Issuer, ev, t.passkeyPlatform)
		if err != nil {
			return err
		}
		if !ok || !slices.Contains(Delivered(cons.EventsRequested), m.uri) {
			continue
		}
		if err := add(ev, m); err != nil {
			return err
		}
	}
	if removed {
		// The registry drops the stream's rows; nothing more is queued for it.
		s.mu.Lock()
		s.removed = true
		s.mu.Unlock()
		s.signal()
		return nil
	}
	if err := t.db.commitBatch(context.WithoutCancel(ctx), s.id, sets, cons, drop, batch[len(batch)-1].Position); err != nil {
		return err
	}
	s.mu.Lock()
	statusChanged := s.cons.Status != cons.Status
	s.cons = cons
	if statusChanged {
		s.failing, s.lastErr, s.disabling = time.Time{}, "", false
	}
	s.mu.Unlock()
	if len(sets) > 0 || statusChanged || drop {
		t.metrics.queued.WithLabelValues(s.id).Add(float64(len(sets)))
		s.signal()
	}
	return nil
}

// passkeyPlatform finds whether a removed passkey was registered backup-eligible, reading
// the account's stream from the log.
func (t *Transmitter) passkeyPlatform(ctx context.Context, accountID, passkeyID string) (bool, error) {
	from := uint64(1)
	for {
		evs, err := t.cfg.Log.ReadStream(ctx, domain.AccountStream(accountID), from, 500)
		if err != nil {
			return false, err
		}
		for _, ev := range evs {
			if ev.Type != domain.EventPasskeyRegistered {
				continue
			}
			e, err := domain.DecodeEvent(ev)
			if err != nil {
				return false, err
			}
			if p := e.(domain.PasskeyRegistered); p.PasskeyID == passkeyID {
				return p.BackupEligible, nil
			}
		}
		if len(evs) < 500 {
			return false, nil
		}
		from = evs[len(evs)-1].Version + 1
	}
}

// push sends a push stream's SETs in order, one at a time, until ctx ends. With a lease's
// term, the position of each SET accepted is saved as the shared progress.
func (t *Transmitter) push(ctx context.Context, s *stream, term *follow.Term) {
	backoff := t.cfg.InitialBackoff
	for ctx.Err() == nil {
		wake := s.wait()
		cons := s.config()
		s.mu.Lock()
		removed := s.removed
		s.mu.Unlock()
		if removed {
			return
		}
		if cons.DeliveryMethod != MethodPush || cons.Status != StatusEnabled {
			backoff = t.cfg.InitialBackoff
			t.sleep(ctx, wake, 0)
			continue
		}
		head, err := t.db.pending(ctx, s.id, 1)
		if err != nil {
			t.log.Error("ssf: reading the queue failed", "stream", s.id, "error", err.Error())
			t.sleep(ctx, nil, time.Second)
			continue
		}
		if len(head) == 0 {
			t.sleep(ctx, wake, 0)
			continue
		}
		q := head[0]
		if term != nil && !term.Begin() {
			return // the lease ended or is being handed over
		}
		err = t.post(ctx, cons.EndpointURL, q.Token)
		if err == nil {
			if err := t.db.delivered(context.WithoutCancel(ctx), s.id, q.Seq); err != nil {
				t.log.Error("ssf: recording a delivery failed", "stream", s.id, "error", err.Error())
			}
			if term != nil {
				if err := term.Save(ctx, q.Position); err != nil {
					t.log.Warn("ssf: the pushed SET's shared progress not saved; pushing stops here", "stream", s.id, "error", err.Error())
				}
				term.End()
			}
			s.mu.Lock()
			s.failing, s.lastErr = time.Time{}, ""
			s.mu.Unlock()
			t.metrics.delivered.WithLabelValues(s.id).Inc()
			backoff = t.cfg.InitialBackoff
			continue
		}
		if term != nil {
			term.End()
		}
		if ctx.Err() != nil {
			return
		}
		t.metrics.pushFailures.WithLabelValues(s.id).Inc()
		now := t.cfg.Now()
		s.mu.Lock()
		if s.failing.IsZero() {
			s.failing = now
		}
		since := s.failing
		s.lastErr = err.Error()
		disable := now.Sub(since) >= t.cfg.DisableAfter && t.cfg.Disable != nil && !s.disabling
		if disable {
			s.disabling = true
		}
		s.mu.Unlock()
		if err := t.db.failed(context.WithoutCancel(ctx), s.id, since, err.Error()); err != nil {
			t.log.Error("ssf: recording a failed push failed", "stream", s.id, "error", err.Error())
		}
		if disable {
			reason := fmt.Sprintf("push to the endpoint failed for %s (last: %s)", now.Sub(since).Round(time.Second), err.Error())
			t.log.Warn("ssf: disabling a stream that cannot deliver", "stream", s.id, "failing_since", since, "error", err.Error())
			if derr := t.cfg.Disable(ctx, s.id, reason); derr != nil && ctx.Err() == nil {
				t.log.Error("ssf: disabling the stream failed", "stream", s.id, "error", derr.Error())
				s.mu.Lock()
				s.disabling = false // try again after the next failure
				s.mu.Unlock()
			}
		} else {
			t.log.Info("ssf: push failed; retrying", "stream", s.id, "retry_in", backoff.String(), "error", err.Error())
		}
		t.sleep(ctx, nil, backoff)
		backoff = min(backoff*2, t.cfg.MaxBackoff)
	}
}

// sleep waits for wake (when not nil), d (when not zero) or the end of ctx.
func (t *Transmitter) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		timer = tm.C
	}
	select {
	case <-wake:
	case <-timer:
	case <-ctx.Done():
	}
}

// errStatus is a push answered with another status than 202.
type errStatus int

func (e errStatus) Error() string { return "the receiver answered HTTP " + strconv.Itoa(int(e)) }

// post pushes one SET (RFC 8935): accepted only with 202. A shutdown does not cut an
// attempt in flight (PushTimeout bounds it): a SET the receiver acknowledged is then recorded,
// and not sent again after the restart.
func (t *Transmitter) post(ctx context.Context, url, token string) error {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader([]byte(token)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Vigil-SSF/1")
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return errStatus(resp.StatusCode)
	}
	return nil
}

// PollResult is the answer of a poll (RFC 8936).
type PollResult struct {
	Sets          map[string]string
	MoreAvailable bool
}

// Poll removes the SETs the receiver acknowledged (ack, and those it reported errors for),
// then returns up to maxEvents SETs waiting, oldest first. With none waiting it waits (unless
// returnImmediately) until one comes, ctx ends or MaxPollWait has passed. A paused or
// disabled stream returns none. An unknown stream gives domain.ErrNotFound; a push stream
// ErrNotPoll.
func (t *Transmitter) Poll(ctx context.Context, streamID string, maxEvents int, returnImmediately bool, ack []string) (PollResult, error) {
	s, ok := t.stream(streamID)
	if !ok {
		return PollResult{}, fmt.Errorf("ssf stream %q: %w", streamID, domain.ErrNotFound)
	}
	if s.config().DeliveryMethod != MethodPoll {
		return PollResult{}, ErrNotPoll
	}
	if t.cfg.Acks != nil && len(ack) > 0 {
		// First, and before answering: a receiver's next poll may land on another instance.
		// When it fails nothing has changed here either.
		if err := t.cfg.Acks.Ack(ctx, streamID, ack); err != nil {
			return PollResult{}, fmt.Errorf("ssf: sharing the acknowledgements: %w", err)
		}
	}
	if err := t.db.ack(ctx, streamID, ack); err != nil {
		return PollResult{}, err
	}
	if len(ack) > 0 {
		t.metrics.delivered.WithLabelValues(streamID).Add(float64(len(ack)))
	}
	deadline := time.NewTimer(t.cfg.MaxPollWait)
	defer deadline.Stop()
	for {
		wake := s.wait()
		if s.config().Status == StatusEnabled {
			list, err := t.unacked(ctx, streamID, maxEvents+1)
			if err != nil {
				return PollResult{}, err
			}
			if len(list) > 0 || returnImmediately {
				res := PollResult{Sets: make(map[string]string, min(len(list), maxEvents)), MoreAvailable: len(list) > maxEvents}
				for _, q := range list[:min(len(list), maxEvents)] {
					res.Sets[q.JTI] = q.Token
				}
				return res, nil
			}
		} else if returnImmediately {
			return PollResult{Sets: map[string]string{}}, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return PollResult{Sets: map[string]string{}}, nil
		case <-t.polls.Done():
			return PollResult{Sets: map[string]string{}}, nil
		case <-ctx.Done():
			return PollResult{}, ctx.Err()
		}
	}
}

// unacked returns up to limit SETs waiting on this instance, oldest first, without those a
// receiver acknowledged on another instance (Config.Acks), which it drops from the queue.
func (t *Transmitter) unacked(ctx context.Context, streamID string, limit int) ([]queued, error) {
	for try := 0; ; try++ {
		list, err := t.db.pending(ctx, streamID, limit)
		if err != nil || t.cfg.Acks == nil || len(list) == 0 {
			return list, err
		}
		jtis := make([]string, len(list))
		for i, q := range list {
			jtis[i] = q.JTI
		}
		acked, err := t.cfg.Acks.Acked(ctx, streamID, jtis)
		if err != nil {
			return nil, fmt.Errorf("ssf: reading the shared acknowledgements: %w", err)
		}
		if len(acked) == 0 {
			return list, nil
		}
		var gone []string
		keep := list[:0:0]
		for _, q := range list {
			if acked[q.JTI] {
				gone = append(gone, q.JTI)
			} else {
				keep = append(keep, q)
			}
		}
		if err := t.db.ack(ctx, streamID, gone); err != nil {
			return nil, err
		}
		if try == 7 {
			return keep, nil // a long run of acknowledged SETs: the next poll reads on
		}
	}
}

// StreamInfo is a stream's delivery state on this instance, for administrators.
type StreamInfo struct {
	Config domain.SSFStreamChanged
	// Position is the last log position its consumer handled; Lag the log head minus it.
	Position, Lag uint64
	// Pending counts the SETs made and not yet acknowledged; OldestPending is the oldest's
	// making time.
	Pending       int
	OldestPending time.Time
	// FailingSince is the first failed push of the head SET (zero: none), LastError why.
	FailingSince time.Time
	LastError    string
}

// Streams describes every stream this instance runs, oldest first.
func (t *Transmitter) Streams(ctx context.Context) ([]StreamInfo, error) {
	rows, err := t.db.streams(ctx)
	if err != nil {
		return nil, err
	}
	n, oldest, err := t.db.counts(ctx)
	if err != nil {
		return nil, err
	}
	head, err := t.cfg.Log.Head(ctx)
	if err != nil {
		return nil, err
	}
	pos := t.f.Positions()
	out := make([]StreamInfo, 0, len(rows))
	for _, r := range rows {
		p := pos[consumerName(r.ID)]
		info := StreamInfo{Config: r.Config, Position: p, Pending: n[r.ID], OldestPending: oldest[r.ID], FailingSince: r.FailingSince, LastError: r.LastError}
		if head > p {
			info.Lag = head - p
		}
		out = append(out, info)
	}
	return out, nil
}

// MemoryAcks is Acks inside one process (several transmitters in one process, tests).
type MemoryAcks struct {
	mu    sync.Mutex
	acked map[string]bool
}

// Ack implements Acks.
func (m *MemoryAcks) Ack(_ context.Context, stream string, jtis []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acked == nil {
		m.acked = map[string]bool{}
	}
	for _, j := range jtis {
		m.acked[stream+"\x00"+j] = true
	}
	return nil
}

// Acked implements Acks.
func (m *MemoryAcks) Acked(_ context.Context, stream string, jtis []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, j := range jtis {
		if m.acked[stream+"\x00"+j] {
			out[j] = true
		}
	}
	return out, nil
}
