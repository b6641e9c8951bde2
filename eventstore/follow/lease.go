package follow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Leases keeps exclusive, expiring leases, one per name, and the shared progress of what
// their holders did. Several instances following one log use it so that a consumer whose
// effects leave the process (a mail, a webhook, a push) acts on one instance at a time: the
// NATS JetStream implementation (eventstore/sharedstate) for a deployment, the in-memory one
// (MemoryLeases) for a single process. Implementations are safe for concurrent use.
type Leases interface {
	// Acquire takes lease name for holder when it is free (never taken, released, or expired
	// TTL after its last renewal) and renews it when holder has it already. It reports
	// whether holder has it after the call; when it does, nobody else can take it before TTL
	// has passed since the call began.
	Acquire(ctx context.Context, name, holder string) (held bool, err error)
	// Release frees name when holder has it (others may take it at once).
	Release(ctx context.Context, name, holder string) error
	// Progress is the shared progress of name: the highest position SaveProgress recorded, 0
	// for none.
	Progress(ctx context.Context, name string) (uint64, error)
	// SaveProgress raises the shared progress of name to position (never lowers it).
	SaveProgress(ctx context.Context, name string, position uint64) error
	// TTL is how long a lease lasts without renewal.
	TTL() time.Duration
}

// ErrNotHolder: this instance does not (or no longer) hold the consumer's lease; what it was
// about to do was left to the holder.
var ErrNotHolder = errors.New("follow: the lease is held by another instance")

// ErrCloseTimeout: Close waited CloseTimeout and some handler had not stopped (typically one
// a stop during the start left subscribing). The subscriber is closed all the same, which ends
// it; a consumer whose checkpoint is saved with its effects lost nothing, so callers may treat
// this as a clean stop (errors.Is).
var ErrCloseTimeout = errors.New("follow: a handler did not stop within the close timeout")

// Lease keeps one lease of Leases for one holder: it takes the lease when it is free, renews
// it every TTL/4 while it holds it, and ends its term (the context handed to the work it
// guards) when it could not renew in time: TTL/5 before another instance may take it. A
// holder cut off from the lease store therefore stops acting before anyone else starts.
// Create with NewLease, run with Run.
type Lease struct {
	leases Leases
	name   string
	holder string
	log    *slog.Logger
	// observed, when set, receives the shared progress read while not holding (so that a
	// non-holder's status shows the deployment's progress).
	observed func(uint64)

	mu      sync.Mutex
	term    *Term
	changed chan struct{} // closed and replaced when the term starts or ends, or Run stops
	stopped bool
}

// Term is one uninterrupted holding of a lease.
type Term struct {
	l *Lease
	// Ctx ends when the term ends (the lease was lost, not renewed in time, or Run stopped).
	Ctx    context.Context
	cancel context.CancelFunc
	// Progress is the shared progress at the term's start and what the holder saved since:
	// everything up to it was done by a holder.
	progress uint64
	deadline time.Time
	timer    *time.Timer
	// inflight counts the work begun in this term (Begin); stopping refuses more.
	inflight sync.WaitGroup
	stopping bool
}

// NewLease prepares the lease name of leases for holder (an id unique to this process).
func NewLease(leases Leases, name, holder string, logger *slog.Logger) *Lease {
	if logger == nil {
		logger = slog.Default()
	}
	return &Lease{leases: leases, name: name, holder: holder, log: logger, changed: make(chan struct{})}
}

// Observe sets fn to receive the shared progress read while another instance holds the
// lease (at every try, TTL/4). Call before Run.
func (l *Lease) Observe(fn func(position uint64)) { l.observed = fn }

// Name is the lease's name.
func (l *Lease) Name() string { return l.name }

// Run takes and renews the lease until ctx ends, then ends the term and releases the lease.
func (l *Lease) Run(ctx context.Context) {
	ttl := l.leases.TTL()
	every := max(ttl/4, time.Millisecond)
	failing := false
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.stop()
			return
		case <-tick.C:
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, every)
		held, err := l.leases.Acquire(actx, l.name, l.holder)
		if err == nil && held {
			err = l.extend(actx, start.Add(ttl-ttl/5))
		}
		if err == nil && !held {
			l.end("another instance holds the lease")
			if l.observed != nil {
				if p, perr := l.leases.Progress(actx, l.name); perr == nil {
					l.observed(p)
				}
			}
		}
		cancel()
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			failing = true
			l.log.Warn("lease: cannot reach the lease store; acting stops when the lease runs out", "lease", l.name, "err", err)
		case err == nil && failing:
			failing = false
			l.log.Info("lease: the lease store answers again", "lease", l.name)
		}
		tick.Reset(every)
	}
}

// extend starts a term (reading the shared progress) or moves the current one's end.
func (l *Lease) extend(ctx context.Context, deadline time.Time) error {
	l.mu.Lock()
	if t := l.term; t != nil {
		t.deadline = deadline
		t.timer.Reset(time.Until(deadline))
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	progress, err := l.leases.Progress(ctx, l.name)
	if err != nil {
		return fmt.Errorf("shared progress: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || time.Now().After(deadline) {
		return nil
	}
	t := &Term{l: l, progress: progress, deadline: deadline}
	t.Ctx, t.cancel = context.WithCancel(context.Background())
	t.timer = time.AfterFunc(time.Until(deadline), func() { l.expire(t) })
	l.term = t
	l.signalLocked()
	l.log.Info("lease: this instance now acts", "lease", l.name, "resumes_after", progress)
	return nil
}

// expire ends t when its deadline has passed without renewal.
func (l *Lease) expire(t *Term) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.term != t || time.Now().Before(t.deadline) {
		return
	}
	l.endLocked("the lease could not be renewed in time")
}

func (l *Lease) end(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(why)
}

func (l *Lease) endLocked(why string) {
	t := l.term
	if t == nil {
		return
	}
	t.timer.Stop()
	t.cancel()
	l.term = nil
	l.signalLocked()
	l.log.Info("lease: this instance stops acting", "lease", l.name, "why", why)
}

func (l *Lease) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// stop refuses new work, lets the work in flight finish (within the lease's time: the
// term's deadline still cancels it), ends the term and releases the lease, so that the next
// holder starts after what this one finished: a clean stop repeats nothing.
func (l *Lease) stop() {
	l.mu.Lock()
	l.stopped = true
	t := l.term
	if t != nil {
		t.stopping = true
	}
	l.signalLocked()
	l.mu.Unlock()
	if t != nil {
		finished := make(chan struct{})
		go func() { t.inflight.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-t.Ctx.Done():
		}
	}
	l.mu.Lock()
	held := l.term != nil
	l.endLocked("stopping")
	l.signalLocked()
	l.mu.Unlock()
	if held {
		ctx, cancel := context.WithTimeout(context.Background(), max(l.leases.TTL()/4, 100*time.Millisecond))
		defer cancel()
		if err := l.leases.Release(ctx, l.name, l.holder); err != nil {
			l.log.Warn("lease: release failed; another instance takes over when it expires", "lease", l.name, "err", err)
		}
	}
}

// Current returns the term in force, nil when this instance does not hold the lease.
func (l *Lease) Current() *Term {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// Changed is closed when the term starts or ends.
func (l *Lease) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Wait blocks until this instance holds the lease and returns the term, or fails with
// ErrNotHolder once Run has stopped, or with ctx's error.
func (l *Lease) Wait(ctx context.Context) (*Term, error) {
	for {
		l.mu.Lock()
		t, ch, stopped := l.term, l.changed, l.stopped
		l.mu.Unlock()
		switch {
		case stopped:
			return nil, ErrNotHolder
		case t != nil:
			return t, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Begin registers work done under the term; it reports false (do nothing) when the term
// has ended or the lease is stopping. Call End when the work (and its Save) is done: a clean
// stop waits for it before handing the lease over.
func (t *Term) Begin() bool {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if t.l.term != t || t.stopping {
		return false
	}
	t.inflight.Add(1)
	return true
}

// End ends what Begin registered.
func (t *Term) End() { t.inflight.Done() }

// Progress is the shared progress as this term knows it.
func (t *Term) Progress() uint64 {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	return t.progress
}

// Save records position as the shared progress (the new holder resumes after it). When it
// cannot, the term ends (this instance stops acting, so that it does nothing the shared
// progress does not know of) and the error wraps ErrNotHolder.
func (t *Term) Save(ctx context.Context, position uint64) error {
	l := t.l
	l.mu.Lock()
	ended := l.term != t
	if !ended && position <= t.progress {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(l.leases.TTL()/4, 100*time.Millisecond))
	defer cancel()
	if ended {
		// The work is done though the term ended meanwhile: recording it (the progress
		// never goes down) spares the next holder repeating it if it has not started yet.
		_ = l.leases.SaveProgress(sctx, l.name, position)
		return ErrNotHolder
	}
	if err := l.leases.SaveProgress(sctx, l.name, position); err != nil {
		l.mu.Lock()
		if l.term == t {
			l.endLocked("the shared progress could not be saved")
		}
		l.mu.Unlock()
		return fmt.Errorf("%w: saving the shared progress of %s: %v", ErrNotHolder, l.name, err)
	}
	l.mu.Lock()
	t.progress = max(t.progress, position)
	l.mu.Unlock()
	return nil
}

type termKey struct{}

// SaveProgress lets a consumer's Handle record, in the middle of a batch, that everything up
// to position is done: for an exclusive consumer (Consumer.Exclusive with Config.Leases) it
// saves the shared progress, so that a new holder does not repeat it; otherwise it does
// nothing. A consumer that saves its own checkpoint after each effect calls it right after,
// keeping what a takeover repeats to the one effect in flight.
func SaveProgress(ctx context.Context, position uint64) error {
	t, ok := ctx.Value(termKey{}).(*Term)
	if !ok {
		return nil
	}
	return t.Save(ctx, position)
}

// MemoryLeases is Leases inside one process: for a single instance (which always gets every
// lease it asks for) and for tests with several holders. Now is its clock (default time.Now).
type MemoryLeases struct {
	Now func() time.Time
	// Lifetime is the TTL; default 10 s.
	Lifetime time.Duration

	mu       sync.Mutex
	held     map[string]memoryLease
	progress map[string]uint64
}

type memoryLease struct {
	holder  string
	expires time.Time
}

var _ Leases = (*MemoryLeases)(nil)

func (m *MemoryLeases) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Acquire implements Leases.
func (m *MemoryLeases) Acquire(ctx context.Context, name, holder string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == nil {
		m.held = map[string]memoryLease{}
	}
	now := m.now()
	if cur, ok := m.held[name]; ok && cur.holder != holder && now.Before(cur.expires) {
		return false, nil
	}
	m.held[name] = memoryLease{holder: holder, expires: now.Add(m.TTL())}
	return true, nil
}

// Release implements Leases.
func (m *MemoryLeases) Release(_ context.Context, name, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.held[name]; ok && cur.holder == holder {
		delete(m.held, name)
	}
	return nil
}

// Progress implements Leases.
func (m *MemoryLeases) Progress(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.progress[name], nil
}

// SaveProgress implements Leases.
func (m *MemoryLeases) SaveProgress(ctx context.Context, name string, position uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.progress == nil {
		m.progress = map[string]uint64{}
	}
	m.progress[name] = max(m.progress[name], position)
	return nil
}

// TTL implements Leases.
func (m *MemoryLeases) TTL() time.Duration {
	if m.Lifetime <= 0 {
		return 10 * time.Second
	}
	return m.Lifetime
}
