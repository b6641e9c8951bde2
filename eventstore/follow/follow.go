// Package follow is the one way Vigil follows its event log from a checkpoint: the read-model
// projections, the NATS and webhook forwarders, and any later consumer (an outbox, a chain
// verifier, a transmitter) are consumers of a Follower.
//
// A Follower runs one Watermill router over the eventstore/wmbridge bridge, one handler per
// consumer. It gathers each consumer's events into batches (up to BatchSize, ended early when
// the log holds nothing more), hands every batch to the consumer's Handle, retries a failing
// batch event by event so that everything before a bad event is kept, reports a consumer stuck
// (with the position) while an event keeps failing, exports lag metrics, and catches a consumer
// that is far behind up in large pages before live delivery starts. Nothing is ever skipped: a
// failure rewinds the consumer to its checkpoint.
//
// A consumer is a name, a checkpoint store and a batch handler. Handle must record the batch's
// last position as the consumer's checkpoint, atomically with its effects when it can; for a
// consumer that writes to SQL, doing both in one transaction makes it exactly-once:
//
//	db, _ := follow.OpenSQLite(follow.SQLiteConfig{Path: path, Schema: []string{follow.CheckpointTable, myTable}})
//	f, _ := follow.New(follow.Config{Log: store, Logger: logger})
//	f.Add(follow.Consumer{
//		Name:        "outbox",
//		Checkpoints: follow.SQLCheckpoints{DB: db},
//		Handle: func(ctx context.Context, batch []domain.Envelope) error {
//			tx, err := db.BeginTx(ctx, nil)
//			if err != nil {
//				return err
//			}
//			defer tx.Rollback()
//			for _, ev := range batch {
//				// ... apply ev with tx ...
//			}
//			if err := follow.SaveCheckpoint(ctx, tx, "outbox", batch[len(batch)-1].Position, time.Now()); err != nil {
//				return err
//			}
//			return tx.Commit()
//		},
//	})
//	go f.Run(ctx) // until ctx ends; then f.Close()
//
// A consumer whose effects leave the process (a message broker, an HTTP endpoint) saves the
// checkpoint after the destination acknowledged: delivery is then at-least-once, with the
// event id for the receiver to drop what it has seen (BatchSize 1 keeps the window to one
// event).
//
// Several instances following one log run every consumer each, which is right for read
// models but not for a consumer whose effects leave the process: with Config.Leases, a
// Consumer marked Exclusive handles batches only while its instance holds the lease named
// after it (Lease: taken and renewed in a shared store, given up before it can expire when it
// cannot be renewed), and a new holder resumes after the shared progress its predecessors
// saved, so that a takeover repeats at most the effect in flight.
package follow

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/wmbridge"
)

// HandleFunc handles one batch of events, in log order, never empty. It returns nil once the
// batch is handled and the consumer's checkpoint records its last position (a consumer may
// defer saving the checkpoint when handling those events again changes nothing). On an error
// nothing of the batch may count as handled unless the checkpoint says so: the Follower goes
// back to the checkpoint and tries again.
type HandleFunc func(ctx context.Context, batch []domain.Envelope) error

// Checkpoints tells where a consumer's committed progress stands: the position of the last
// event it has durably handled, 0 for none.
type Checkpoints = wmbridge.CheckpointSource

// Consumer is one follower of the log.
type Consumer struct {
	// Name is stable and unique within the Follower: it keys the checkpoint, the metric
	// label and the Watermill topic.
	Name string
	// Checkpoints says where the consumer resumes (at start and after a failure). Required.
	Checkpoints Checkpoints
	// Handle handles the batches. Required.
	Handle HandleFunc
	// BatchSize bounds this consumer's batches; 0 uses Config.BatchSize.
	BatchSize int
	// Exclusive marks a consumer whose effects must happen once per deployment, not once per
	// instance (a mail, a webhook, a message to a broker). With Config.Leases, its batches are
	// handled only while this instance holds the lease named after the consumer; a new holder
	// resumes after the shared progress (the position the holders before it reached), not
	// after its own, older, checkpoint; the progress is saved after each batch, and within a
	// batch by SaveProgress. Without Config.Leases it runs as any consumer. Exclusive
	// consumers skip the fast catch-up (CatchUpAfter).
	Exclusive bool
}

// Config configures New.
type Config struct {
	// Log is the event log. Required.
	Log eventstore.Store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Kind names the consumers in logs and is the label of the metrics ("projection",
	// "forwarder"); default "consumer".
	Kind string
	// Metrics names the Prometheus series; exported when Registerer is set.
	Metrics    Metrics
	Registerer prometheus.Registerer
	// BatchSize and BatchWait bound a batch: it is handled after BatchSize events, when the
	// log holds no further event, or BatchWait after its first event, whichever comes first.
	// Defaults 500 and 2ms.
	BatchSize int
	BatchWait time.Duration
	// Retries is how often an event that fails on its own is tried again, with back-off from
	// RetryBackoff doubling up to MaxRetryBackoff, before the consumer is reported stuck and
	// rewound to its checkpoint. Defaults 3, 10ms and 1s.
	Retries                       int
	RetryBackoff, MaxRetryBackoff time.Duration
	// RetryCancelled also retries errors wrapping context.Canceled (a consumer whose
	// Handle cancels its own work); by default they are not retried.
	RetryCancelled bool
	// NackBackoff and MaxNackBackoff bound the wait of a rewound consumer before its events
	// are delivered again from its checkpoint (eventstore/wmbridge); defaults 50ms and 5s.
	NackBackoff, MaxNackBackoff time.Duration
	// CloseTimeout bounds the wait for handlers in Close; default 10s.
	CloseTimeout time.Duration
	// CatchUpAfter: when Run starts with some consumer more than this many events behind the
	// log, the consumers behind first catch up in pages of CatchUpPage events read straight
	// from the log (several times faster than live delivery), then the router takes over.
	// Default 10,000; negative turns it off. CatchUpPage defaults to 4000.
	CatchUpAfter int
	CatchUpPage  int
	// Now is the clock of lag and status; default time.Now.
	Now func() time.Time
	// Leases, when set, makes the Exclusive consumers act on one instance at a time (see
	// Consumer.Exclusive); Holder names this instance in them (default: a random id per
	// Follower). Nil: every consumer acts here.
	Leases Leases
	Holder string
}

// Follower runs consumers of the log. Create with New, add consumers with Add, start with
// Run, stop with Close. Safe for concurrent use.
type Follower struct {
	cfg     Config
	log     *slog.Logger
	sub     *wmbridge.Subscriber
	router  *message.Router
	metrics *collector

	mu        sync.Mutex
	consumers []*consumer
	runCtx    context.Context    // set by Run
	stop      context.CancelFunc // cancels runCtx
	closing   bool
	keepers   sync.WaitGroup // the leases' Run
	ended     chan struct{}  // closed when Run returns

	advMu    sync.Mutex
	advanced chan struct{} // closed and replaced whenever a consumer's position moves
}

// errRewind refuses a message delivered before a rewind the bridge has not carried out yet.
var errRewind = errors.New("follow: batch lost, rewinding to the checkpoint")

// New creates the bridge subscriber and the router. Nothing is delivered before Run.
func New(cfg Config) (*Follower, error) {
	if cfg.Log == nil {
		return nil, errors.New("follow: Config needs Log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Kind == "" {
		cfg.Kind = "consumer"
	}
	setDefault(&cfg.BatchSize, 500)
	setDefault(&cfg.BatchWait, 2*time.Millisecond)
	setDefault(&cfg.Retries, 3)
	setDefault(&cfg.RetryBackoff, 10*time.Millisecond)
	setDefault(&cfg.MaxRetryBackoff, time.Second)
	setDefault(&cfg.CloseTimeout, 10*time.Second)
	setDefault(&cfg.CatchUpAfter, 10000)
	setDefault(&cfg.CatchUpPage, 4000)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Leases != nil && cfg.Holder == "" {
		cfg.Holder = NewHolderID()
	}
	f := &Follower{cfg: cfg, log: cfg.Logger, advanced: make(chan struct{}), ended: make(chan struct{})}
	var err error
	f.sub, err = wmbridge.NewSubscriber(cfg.Log, wmbridge.SubscriberConfig{
		Checkpoints: checkpointsOf{f}, Logger: newSlogLogger(cfg.Logger.With("component", cfg.Kind+"-bridge")),
		NackBackoff: cfg.NackBackoff, MaxNackBackoff: cfg.MaxNackBackoff,
	})
	if err != nil {
		return nil, err
	}
	f.router, err = message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout},
		newSlogLogger(cfg.Logger.With("component", cfg.Kind+"-router")))
	if err != nil {
		_ = f.sub.Close()
		return nil, fmt.Errorf("follow: router: %w", err)
	}
	// Retries happen in the consumer (per event, after a failed batch); the recoverer turns a
	// panic while decoding into a nack.
	f.router.AddMiddleware(middleware.Recoverer)
	f.metrics = newCollector(f)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(f.metrics); err != nil {
			_ = f.sub.Close()
			return nil, fmt.Errorf("follow: register metrics: %w", err)
		}
	}
	return f, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Add registers a consumer, starting after its checkpoint, and runs it when the Follower
// already runs. Adding a name that is already there, or adding while Close runs, does nothing.
func (f *Follower) Add(c Consumer) error {
	if c.Name == "" || c.Checkpoints == nil || c.Handle == nil {
		return errors.New("follow: Consumer needs Name, Checkpoints and Handle")
	}
	if c.BatchSize <= 0 {
		c.BatchSize = f.cfg.BatchSize
	}
	cp, err := c.Checkpoints.Checkpoint(context.Background(), c.Name)
	if err != nil {
		return fmt.Errorf("follow: checkpoint of %s: %w", c.Name, err)
	}
	w := &consumer{f: f, c: c, applied: cp}
	if c.Exclusive && f.cfg.Leases != nil {
		w.lease = NewLease(f.cfg.Leases, c.Name, f.cfg.Holder, f.log.With(f.cfg.Kind, c.Name))
		w.lease.observed = w.observe
		// Start after what the holders did (best effort: the lease's term filters anyway).
		pctx, cancel := context.WithTimeout(context.Background(), f.cfg.Leases.TTL()/4)
		if p, err := f.cfg.Leases.Progress(pctx, c.Name); err == nil && p > cp {
			cp = p
			w.applied = p
		}
		cancel()
	}
	w.committed.Store(cp)
	f.mu.Lock()
	if f.closing || f.consumerLocked(c.Name) != nil {
		f.mu.Unlock()
		return nil
	}
	w.handler = f.router.AddConsumerHandler(c.Name, c.Name, f.sub, w.handle)
	f.consumers = append(f.consumers, w)
	runCtx := f.runCtx
	if runCtx != nil {
		f.startLeaseLocked(w)
	}
	f.mu.Unlock()
	if runCtx == nil {
		return nil
	}
	select {
	case <-f.router.Running():
		// Without f.mu: subscribing reads the consumer's checkpoint through checkpointsOf.
		if err := f.router.RunHandlers(runCtx); err != nil {
			return fmt.Errorf("follow: start %s: %w", c.Name, err)
		}
	default:
		// Run is catching up or starting the router: it starts the handler.
	}
	return nil
}

// Remove stops a consumer and waits (at most CloseTimeout) until its handler has stopped. Its
// checkpoint is left as it is. A consumer whose handler has not started yet cannot be
// stopped (a Watermill limit): it stays, and starts with the others.
func (f *Follower) Remove(name string) {
	f.mu.Lock()
	w := f.consumerLocked(name)
	if w == nil {
		f.mu.Unlock()
		return
	}
	select {
	case <-w.handler.Started():
	default:
		f.mu.Unlock()
		return // not started: Watermill cannot stop it; it starts with the router
	}
	f.consumers = deleteFunc(f.consumers, w)
	closing := f.closing
	if w.stopLease != nil {
		w.stopLease()
	}
	f.mu.Unlock()
	w.handler.Stop()
	if closing {
		return // Close waits for every handler
	}
	select {
	case <-w.handler.Stopped():
	case <-time.After(f.cfg.CloseTimeout):
		f.log.Warn(f.cfg.Kind+" did not stop in time", f.cfg.Kind, name)
	}
}

func deleteFunc(ws []*consumer, w *consumer) []*consumer {
	out := ws[:0:0]
	for _, x := range ws {
		if x != w {
			out = append(out, x)
		}
	}
	return out
}

func (f *Follower) consumerLocked(name string) *consumer {
	for _, w := range f.consumers {
		if w.c.Name == name {
			return w
		}
	}
	return nil
}

func (f *Follower) list() []*consumer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consumers
}

// shared lists the consumers that act on every instance (the catch-up's).
func (f *Follower) shared() []*consumer {
	var out []*consumer
	for _, w := range f.list() {
		if w.lease == nil {
			out = append(out, w)
		}
	}
	return out
}

// Run catches up the consumers that are far behind (CatchUpAfter), then delivers until ctx is
// cancelled or Close is called, and finally handles what is pending.
func (f *Follower) Run(ctx context.Context) error {
	// Close cancels the batches in flight too (a consumer waiting on something slow).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	if f.runCtx != nil {
		f.mu.Unlock()
		return errors.New("follow: Run called twice")
	}
	if f.closing {
		f.mu.Unlock()
		return nil // closed before it ran: nothing to deliver
	}
	defer close(f.ended)
	f.runCtx, f.stop = ctx, cancel
	for _, w := range f.consumers {
		f.startLeaseLocked(w)
	}
	f.mu.Unlock()
	if err := f.catchUp(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	// Consumers added while the router was starting. Run waits for this helper, so that
	// nothing of the Follower runs (or logs) once Run has returned.
	helper := make(chan struct{})
	go func() {
		defer close(helper)
		select {
		case <-f.router.Running():
			if err := f.router.RunHandlers(ctx); err != nil && ctx.Err() == nil {
				f.log.Error("starting "+f.cfg.Kind+"s failed", "err", err)
			}
		case <-ctx.Done():
		}
	}()
	// Cancelled during the catch-up: the router still runs (and stops at once), so that
	// Close meets a router that has started.
	err := f.router.Run(ctx)
	cancel() // the router may have returned without a Close (it failed to start)
	<-helper
	for _, w := range f.list() {
		w.mu.Lock()
		w.flushLocked(context.WithoutCancel(ctx), false)
		w.mu.Unlock()
	}
	return err
}

// Running is closed once every consumer added before Run runs live.
func (f *Follower) Running() <-chan struct{} { return f.router.Running() }

// Close stops the router (waiting up to CloseTimeout for handlers) and the subscriber. Before
// Run only the subscriber is closed: a router that never ran has nothing to wait for.
func (f *Follower) Close() error {
	f.mu.Lock()
	ran := f.runCtx != nil
	f.closing = true
	if ran {
		f.stop()
	}
	f.mu.Unlock()
	var err error
	if ran {
		err = f.closeRouter()
	}
	err = errors.Join(err, f.sub.Close())
	f.keepers.Wait() // the leases are released: another instance takes over at once
	return err
}

// closeRouter closes the router of a Follower whose Run has been called (its context is
// cancelled). Watermill's Close holds the handlers' lock while it waits for every handler it
// was given, started or not: closed before Run had started them, it waited out the close
// timeout while Run waited for the lock. So it first waits for the router to run (or for Run
// to end without it), starts the handlers added since (they stop at once), then closes.
func (f *Follower) closeRouter() error {
	t := time.NewTimer(f.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-f.router.Running():
	case <-f.ended:
		select {
		case <-f.router.Running():
		default:
			return nil // the router never ran: no handler to wait for
		}
	case <-t.C:
		return fmt.Errorf("%w (the router did not start)", ErrCloseTimeout)
	}
	f.mu.Lock()
	ctx := f.runCtx
	f.mu.Unlock()
	_ = f.router.RunHandlers(ctx)
	// Watermill's Close fails only when its handlers did not stop within CloseTimeout.
	if err := f.router.Close(); err != nil {
		return fmt.Errorf("%w (not stopped: %s): %v", ErrCloseTimeout, strings.Join(f.notStopped(), ", "), err)
	}
	return nil
}

// notStopped names the consumers whose handler has not stopped (a handler may have stopped
// while a batch it started still runs).
func (f *Follower) notStopped() []string {
	var out []string
	for _, w := range f.list() {
		select {
		case <-w.handler.Stopped():
		default:
			out = append(out, w.c.Name)
		}
	}
	return out
}

// startLeaseLocked runs the lease of an Exclusive consumer until Run's context ends or the
// consumer is removed. f.mu is held.
func (f *Follower) startLeaseLocked(w *consumer) {
	if w.lease == nil || w.stopLease != nil {
		return
	}
	ctx, cancel := context.WithCancel(f.runCtx)
	w.stopLease = cancel
	f.keepers.Go(func() { w.lease.Run(ctx) })
}

// Leased reports, for each Exclusive consumer running with Config.Leases, whether this
// instance holds its lease now.
func (f *Follower) Leased() map[string]bool {
	out := map[string]bool{}
	for _, w := range f.list() {
		if w.lease != nil {
			out[w.c.Name] = w.lease.Current() != nil
		}
	}
	return out
}

// NewHolderID returns a random lease holder id for this process.
func NewHolderID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

// Hold handles every consumer's pending events, then holds the consumers (no event is
// handled) until release is called. release moves each consumer named in at to the given
// position (its checkpoint store now stands there: events up to it are not handled again).
// It lets a caller switch what the consumers write to between two batches.
func (f *Follower) Hold(ctx context.Context) (release func(at map[string]uint64)) {
	ws := f.list()
	for _, w := range ws {
		w.mu.Lock()
		if w.lease == nil { // an Exclusive consumer's batch waits for its lease: kept pending
			w.flushLocked(ctx, false)
		}
	}
	return func(at map[string]uint64) {
		for _, w := range ws {
			if pos, ok := at[w.c.Name]; ok {
				w.applied = pos
				w.committed.Store(pos)
			}
			w.mu.Unlock()
		}
		f.notify()
	}
}

// Behind reports the lowest position of the consumers and whether the log holds more than
// CatchUpAfter events after it.
func (f *Follower) Behind(ctx context.Context) (low uint64, far bool, err error) {
	ws := f.shared()
	if f.cfg.CatchUpAfter < 0 || len(ws) == 0 {
		return 0, false, nil
	}
	low = ws[0].committed.Load()
	for _, w := range ws[1:] {
		low = min(low, w.committed.Load())
	}
	page, err := f.cfg.Log.ReadAll(ctx, low, f.cfg.CatchUpAfter+1)
	if err != nil {
		return low, false, fmt.Errorf("follow: catch up: %w", err)
	}
	return low, len(page) > f.cfg.CatchUpAfter, nil
}

// catchUp reads the log once in pages after the lowest consumer and hands each consumer the
// part of every page after its own position, as one batch.
func (f *Follower) catchUp(ctx context.Context) error {
	low, far, err := f.Behind(ctx)
	if err != nil || !far {
		return err
	}
	start := f.cfg.Now()
	f.log.Info(f.cfg.Kind+"s far behind the log: catching up with the fast path first", "from", low)
	ws := f.shared()
	_, err = Pages(ctx, f.cfg.Log, low, f.cfg.CatchUpPage, func(ctx context.Context, page []domain.Envelope) error {
		for _, w := range ws {
			if err := w.catchUp(ctx, page); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("follow: catch up: %w", err)
	}
	f.log.Info(f.cfg.Kind+"s caught up with the fast path", "elapsed", f.cfg.Now().Sub(start))
	return nil
}

// checkpointsOf gives the bridge each consumer's resume position: the store's, or the last
// position the consumer handled when the store is behind (a deferred checkpoint).
type checkpointsOf struct{ f *Follower }

func (c checkpointsOf) Checkpoint(ctx context.Context, name string) (uint64, error) {
	c.f.mu.Lock()
	w := c.f.consumerLocked(name)
	c.f.mu.Unlock()
	if w == nil {
		return 0, fmt.Errorf("follow: no consumer %s", name)
	}
	cp, err := w.c.Checkpoints.Checkpoint(ctx, name)
	if err != nil {
		return 0, err
	}
	return max(cp, w.committed.Load()), nil
}

func (f *Follower) notify() {
	f.advMu.Lock()
	close(f.advanced)
	f.advanced = make(chan struct{})
	f.advMu.Unlock()
}

// WaitFor blocks until every named consumer (every consumer when none is named) has handled
// position, or ctx ends (its error is returned). An unknown name is waited for until it is
// added.
func (f *Follower) WaitFor(ctx context.Context, position uint64, names ...string) error {
	for {
		f.advMu.Lock()
		ch := f.advanced
		f.advMu.Unlock()
		if f.reached(position, names) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *Follower) reached(position uint64, names []string) bool {
	pos := f.Positions()
	if len(names) == 0 {
		for _, p := range pos {
			if p < position {
				return false
			}
		}
		return true
	}
	for _, n := range names {
		if p, ok := pos[n]; !ok || p < position {
			return false
		}
	}
	return true
}

// Positions returns the last position each consumer has handled, by name.
func (f *Follower) Positions() map[string]uint64 {
	ws := f.list()
	out := make(map[string]uint64, len(ws))
	for _, w := range ws {
		out[w.c.Name] = w.committed.Load()
	}
	return out
}
