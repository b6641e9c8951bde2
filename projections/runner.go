package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
)

// RunnerConfig configures NewRunner.
type RunnerConfig struct {
	DB *DB
	// Subscriber delivers the log to each projection: the topic is the projection's name and
	// the subscription starts after DB.Checkpoint(name). After a nack it must resume from the
	// committed checkpoint (eventstore/wmbridge does), and should implement Rewinder.
	Subscriber  message.Subscriber
	Log         LogInfo
	Projections []Projection
	Logger      *slog.Logger
	// Registerer receives the projection metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// BatchSize and BatchWait bound a batch: it commits after BatchSize events or BatchWait
	// after its first event, whichever comes first. Defaults 500 and 2ms.
	BatchSize int
	BatchWait time.Duration
	// BatchEndKey names message metadata that the subscriber sets to "0" when it holds no
	// further event (wmbridge.MetaMore): the batch then commits at once rather than after
	// BatchWait, so a quiet log's events are visible as soon as they are applied while a busy
	// one still commits in batches. "" relies on BatchSize and BatchWait alone.
	BatchEndKey string
	// Retries is how often a failing event is retried (with back-off from 10ms) before the
	// projection is reported stuck. Default 3.
	Retries int
	// Now is the clock used for lag and status; default time.Now.
	Now func() time.Time
	// CatchUpAfter: when Run starts with some projection more than this many events behind
	// the log, the projections first catch up with ReplayWith (the rebuild's fast path,
	// several times faster than event-by-event delivery), then the router takes over; empty
	// read models are built by Rebuild into a fresh file beside DB's, which is then adopted
	// (the pointer file names it from then on). Default 10,000; negative turns it off.
	CatchUpAfter int
}

// Runner applies the log to every projection through a Watermill router, one handler per
// projection, each with its own checkpoint. Safe for concurrent use.
type Runner struct {
	cfg     RunnerConfig
	router  *message.Router
	workers []*worker
	metrics *metrics

	mu       sync.Mutex
	advanced chan struct{} // closed and replaced whenever a checkpoint moves

	adoptMu sync.Mutex // serialises Adopt
}

// Rewinder is implemented by subscribers that can be told to resume a topic from its
// committed checkpoint (eventstore/wmbridge does). Without it, a lost batch is replayed when
// the next event arrives.
type Rewinder interface {
	Rewind(topic string)
}

// errRewind makes the bridge resubscribe from the committed checkpoint after a failed commit.
var errRewind = errors.New("projections: batch lost, rewinding to the checkpoint")

// NewRunner creates the projections' tables and the router. Run starts it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.DB == nil || cfg.Subscriber == nil || cfg.Log == nil {
		return nil, errors.New("projections: RunnerConfig needs DB, Subscriber and Log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 2 * time.Millisecond
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CatchUpAfter == 0 {
		cfg.CatchUpAfter = 10000
	}
	seen := map[string]bool{}
	for _, p := range cfg.Projections {
		if seen[p.Name()] {
			return nil, fmt.Errorf("projections: two projections named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	if err := cfg.DB.setup(context.Background(), cfg.Projections); err != nil {
		return nil, err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NewSlogLogger(cfg.Logger.With("component", "watermill")))
	if err != nil {
		return nil, fmt.Errorf("projections: router: %w", err)
	}
	r := &Runner{cfg: cfg, router: router, advanced: make(chan struct{})}
	r.metrics = newMetrics(r)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.metrics); err != nil {
			return nil, fmt.Errorf("projections: register metrics: %w", err)
		}
	}
	// The first middleware added is the outermost: the stuck recorder sees what is left after
	// the retries, the retries see panics as errors.
	router.AddMiddleware(
		r.recordFailures,
		middleware.Retry{
			MaxRetries:      cfg.Retries,
			InitialInterval: 10 * time.Millisecond,
			MaxInterval:     time.Second,
			Multiplier:      2,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !errors.Is(p.Err, errRewind) },
		}.Middleware,
		middleware.Recoverer,
	)
	for _, p := range cfg.Projections {
		cp, err := cfg.DB.Checkpoint(context.Background(), p.Name())
		if err != nil {
			return nil, err
		}
		w := &worker{r: r, p: p, applied: cp}
		w.committed.Store(cp)
		r.workers = append(r.workers, w)
		router.AddConsumerHandler(p.Name(), p.Name(), cfg.Subscriber, w.handle)
	}
	return r, nil
}

// Run runs the router until ctx is cancelled or Close is called, then commits what is pending.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.catchUp(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	// Cancelled during the catch-up: the router still runs (and stops at once), so that
	// Close meets a router that has started.
	err := r.router.Run(ctx)
	for _, w := range r.workers {
		w.mu.Lock()
		w.commitLocked()
		w.mu.Unlock()
	}
	return err
}

// catchUp applies the log with ReplayWith when some projection is more than CatchUpAfter
// events behind it (a new server on a long log, or one that was down for a while), moving the
// workers' positions with each batch so that Status and WaitFor follow it.
func (r *Runner) catchUp(ctx context.Context) error {
	if r.cfg.CatchUpAfter < 0 || len(r.workers) == 0 {
		return nil
	}
	low := r.workers[0].committed.Load()
	for _, w := range r.workers[1:] {
		low = min(low, w.committed.Load())
	}
	page, err := r.cfg.Log.ReadAll(ctx, low, r.cfg.CatchUpAfter+1)
	if err != nil {
		return fmt.Errorf("projections: catch up: %w", err)
	}
	if len(page) <= r.cfg.CatchUpAfter {
		return nil
	}
	start := r.cfg.Now()
	r.cfg.Logger.Info("projections far behind the log: catching up with the fast path first", "from", low)
	if low == 0 {
		// Empty read models: build them in a fresh file (no journal, no syncs: twice as
		// fast as the live file) and adopt it, as `vigil projections rebuild` would.
		res, err := Rebuild(ctx, RebuildConfig{Dir: filepath.Dir(r.cfg.DB.Path()), Log: r.cfg.Log,
			Projections: r.cfg.Projections, Logger: r.cfg.Logger, Now: r.cfg.Now})
		switch {
		case err == nil:
			if err := r.Adopt(ctx, res.Path); err != nil {
				return fmt.Errorf("projections: catch up: %w", err)
			}
			r.cfg.Logger.Info("projections caught up with the fast path", "elapsed", r.cfg.Now().Sub(start), "file", res.Path)
			return nil
		case !errors.Is(err, ErrRebuildRunning):
			return fmt.Errorf("projections: catch up: %w", err)
		}
		// A rebuild of this directory is running: apply the log to the live file instead.
	}
	_, err = ReplayWith(ctx, ReplayConfig{DB: r.cfg.DB, Log: r.cfg.Log, Projections: r.cfg.Projections, Now: r.cfg.Now,
		Progress: func(p ReplayProgress) {
			for _, w := range r.workers {
				if p.Position > w.committed.Load() {
					w.committed.Store(p.Position)
				}
			}
			r.notifyAdvanced()
		}})
	if err != nil {
		return fmt.Errorf("projections: catch up: %w", err)
	}
	for _, w := range r.workers {
		cp, err := r.cfg.DB.Checkpoint(ctx, w.p.Name())
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.applied = cp
		w.committed.Store(cp)
		w.mu.Unlock()
	}
	r.cfg.Logger.Info("projections caught up with the fast path", "elapsed", r.cfg.Now().Sub(start))
	return nil
}

// Running is closed once every projection handler runs.
func (r *Runner) Running() <-chan struct{} { return r.router.Running() }

// Close stops the router (waiting up to 10s for handlers) and the subscriber.
func (r *Runner) Close() error {
	return errors.Join(r.router.Close(), r.cfg.Subscriber.Close())
}

// Projections lists the runner's projections.
func (r *Runner) Projections() []Projection { return r.cfg.Projections }

// Status describes every projection. It reads the log's head, so it fails when the log is
// unreachable.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.cfg.Log.Head(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(r.workers))
	for _, w := range r.workers {
		cp := w.committed.Load()
		st := Status{Name: w.p.Name(), Checkpoint: cp, Head: head, UpdatedAt: r.cfg.Now().UTC()}
		if cp < head {
			next, err := r.cfg.Log.ReadAll(ctx, cp, 1)
			if err != nil {
				return nil, err
			}
			if len(next) == 1 {
				st.LagSeconds = max(0, r.cfg.Now().Sub(next[0].RecordedAt).Seconds())
			}
		}
		w.stuckMu.Lock()
		st.Stuck, st.StuckPosition, st.LastError = w.stuck, w.stuckAt, w.lastErr
		w.stuckMu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

// WaitFor blocks until every projection has committed position (read-your-writes), or ctx
// ends (its error is returned).
func (r *Runner) WaitFor(ctx context.Context, position uint64) error {
	for {
		r.mu.Lock()
		ch := r.advanced
		r.mu.Unlock()
		done := true
		for _, w := range r.workers {
			if w.committed.Load() < position {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Runner) notifyAdvanced() {
	r.mu.Lock()
	close(r.advanced)
	r.advanced = make(chan struct{})
	r.mu.Unlock()
}

// recordFailures is the outermost middleware: an event that still fails after the retries
// marks its projection stuck (log, metric, Status) and is nacked, so the bridge redelivers it
// from the checkpoint after a back-off. Nothing is skipped.
func (r *Runner) recordFailures(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		w := r.worker(message.HandlerNameFromCtx(msg.Context()))
		if w == nil {
			return out, err
		}
		if err != nil && !errors.Is(err, errRewind) {
			var ev domain.Envelope
			_ = json.Unmarshal(msg.Payload, &ev)
			w.markStuck(ev.Position, err)
			r.metrics.failures.WithLabelValues(w.p.Name()).Inc()
			r.cfg.Logger.Error("projection stuck: event keeps failing after retries",
				"projection", w.p.Name(), "position", ev.Position, "type", ev.Type, "err", err)
		} else if err == nil {
			w.clearStuck()
		}
		return out, err
	}
}

func (r *Runner) worker(name string) *worker {
	for _, w := range r.workers {
		if w.p.Name() == name {
			return w
		}
	}
	return nil
}
