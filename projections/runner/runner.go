// Package runner keeps the read models of package projections up to date while the service
// runs: each projection is a consumer of an eventstore/follow Follower (batches, each committed
// with the projection's checkpoint in one transaction, stuck reporting, lag metrics, the fast
// catch-up), and the runner moves to a rebuilt read-model file without stopping (Adopt,
// FollowRebuilds).
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/projections"
)

// Config configures New.
type Config struct {
	// DB receives the read models. Required.
	DB *projections.DB
	// Log is the event log. Required.
	Log         eventstore.Store
	Projections []projections.Projection
	Logger      *slog.Logger
	// Registerer receives the projection metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// BatchSize and BatchWait bound a batch: it commits after BatchSize events, when the log
	// holds nothing more, or BatchWait after its first event, whichever comes first. Defaults
	// 500 and 2ms.
	BatchSize int
	BatchWait time.Duration
	// Retries is how often a failing event is retried (with back-off from 10ms) before the
	// projection is reported stuck. Default 3.
	Retries int
	// NackBackoff and MaxNackBackoff bound the wait before a stuck projection tries again
	// from its checkpoint; defaults 50ms and 5s.
	NackBackoff, MaxNackBackoff time.Duration
	// Now is the clock used for lag, status and checkpoints; default time.Now.
	Now func() time.Time
	// CatchUpAfter: when Run starts with some projection more than this many events behind
	// the log, the projections first catch up in large pages (follow.Config.CatchUpAfter),
	// then the router takes over; empty read models are built by projections.Rebuild into a
	// fresh file beside DB's, which is then adopted (the pointer file names it from then on).
	// Default 10,000; negative turns it off.
	CatchUpAfter int
}

// Runner applies the log to every projection, each with its own checkpoint. Safe for
// concurrent use.
type Runner struct {
	cfg     Config
	f       *follow.Follower
	metrics *metrics

	adoptMu sync.Mutex // serialises Adopt
}

// metricNames are the projection series (unchanged since the runner lived in projections).
var metricNames = follow.Metrics{
	Events:       follow.Metric{Name: "vigil_projection_events_total", Help: "Events committed to each projection."},
	Failures:     follow.Metric{Name: "vigil_projection_failures_total", Help: "Events that still failed after the retries."},
	Checkpoint:   follow.Metric{Name: "vigil_projection_checkpoint", Help: "Last committed global position."},
	LagPositions: follow.Metric{Name: "vigil_projection_lag_positions", Help: "Log head minus the committed checkpoint."},
	LagSeconds:   follow.Metric{Name: "vigil_projection_lag_seconds", Help: "Age of the oldest event not yet committed."},
	Stuck:        follow.Metric{Name: "vigil_projection_stuck", Help: "1 while an event keeps failing."},
}

// New creates the projections' tables and the follower. Run starts it.
func New(cfg Config) (*Runner, error) {
	if cfg.DB == nil || cfg.Log == nil {
		return nil, errors.New("runner: Config needs DB and Log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
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
			return nil, fmt.Errorf("runner: two projections named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	if err := cfg.DB.Setup(context.Background(), cfg.Projections); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, metrics: newMetrics()}
	f, err := follow.New(follow.Config{
		Log: cfg.Log, Logger: cfg.Logger, Kind: "projection", Metrics: metricNames, Registerer: cfg.Registerer,
		BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, Retries: cfg.Retries,
		NackBackoff: cfg.NackBackoff, MaxNackBackoff: cfg.MaxNackBackoff,
		CatchUpAfter: cfg.CatchUpAfter, Now: cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r.f = f
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.metrics); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("runner: register metrics: %w", err)
		}
	}
	for _, p := range cfg.Projections {
		if err := f.Add(r.consumer(p)); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return r, nil
}

// Run catches up (building empty read models in a fresh file first when far behind), then
// runs the router until ctx is cancelled or Close is called, then commits what is pending.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.buildIfEmpty(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return r.f.Run(ctx)
}

// buildIfEmpty builds the read models in a fresh file (no journal, no syncs: twice as fast as
// the live file) and adopts it, as `vigil projections rebuild` would, when they are empty and
// the log holds more than CatchUpAfter events. Read models that are only behind catch up in
// the live file (the follower's fast path).
func (r *Runner) buildIfEmpty(ctx context.Context) error {
	low, far, err := r.f.Behind(ctx)
	if err != nil || !far || low != 0 {
		return err
	}
	start := r.cfg.Now()
	r.cfg.Logger.Info("projections far behind the log: catching up with the fast path first", "from", low)
	res, err := projections.Rebuild(ctx, projections.RebuildConfig{Dir: filepath.Dir(r.cfg.DB.Path()), Log: r.cfg.Log,
		Projections: r.cfg.Projections, Logger: r.cfg.Logger, Now: r.cfg.Now})
	switch {
	case errors.Is(err, projections.ErrRebuildRunning):
		return nil // a rebuild of this directory is running: apply the log to the live file
	case err != nil:
		return fmt.Errorf("runner: catch up: %w", err)
	}
	if err := r.Adopt(ctx, res.Path); err != nil {
		return fmt.Errorf("runner: catch up: %w", err)
	}
	r.cfg.Logger.Info("projections caught up with the fast path", "elapsed", r.cfg.Now().Sub(start), "file", res.Path)
	return nil
}

// Running is closed once every projection handler runs.
func (r *Runner) Running() <-chan struct{} { return r.f.Running() }

// Close stops the router (waiting up to 10s for handlers) and the subscriber.
func (r *Runner) Close() error { return r.f.Close() }

// Projections lists the runner's projections.
func (r *Runner) Projections() []projections.Projection { return r.cfg.Projections }

// Status describes every projection. It reads the log's head, so it fails when the log is
// unreachable.
func (r *Runner) Status(ctx context.Context) ([]projections.Status, error) {
	sts, err := r.f.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]projections.Status, len(sts))
	for i, st := range sts {
		out[i] = projections.Status{Name: st.Name, Checkpoint: st.Checkpoint, Head: st.Head, LagSeconds: st.LagSeconds,
			Stuck: st.Stuck, StuckPosition: st.StuckPosition, LastError: st.LastError, UpdatedAt: st.UpdatedAt}
	}
	return out, nil
}

// WaitFor blocks until every projection has committed position (read-your-writes), or ctx
// ends (its error is returned).
func (r *Runner) WaitFor(ctx context.Context, position uint64) error {
	return r.f.WaitFor(ctx, position)
}

// WaitForProjection blocks until the projection named name has committed position, or ctx
// ends (its error is returned).
func (r *Runner) WaitForProjection(ctx context.Context, position uint64, name string) error {
	return r.f.WaitFor(ctx, position, name)
}
