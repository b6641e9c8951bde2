package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore"
)

// logApplier takes one envelope of the log: *command.SessionIndex, *command.Service (which
// feeds its session index, organisation directory and delegation index) or
// *command.ServiceTokenIndex.
type logApplier interface {
	Apply(env domain.Envelope) error
}

// startLogFeed keeps this instance's in-memory indexes (the appliers: sessions, organisations,
// delegations, service tokens) current with what every instance writes: it reads the log after
// position after (0: from the start; a snapshot's position when the indexes were restored from
// it, see restoreIndexes), gives each event to every applier, then follows new ones (this instance's own
// commands update the indexes synchronously as well). ready is closed once the indexes
// reflect the log as it was when the feed started (serve only after that, or sessions and
// tokens made before this instance started would be unknown); done receives nil when ctx
// ends. A failed subscription is resumed after the last applied position, with back-off, so
// the feed never skips an event; an event an applier cannot take is logged and skipped by
// that applier only.
//
// Without a snapshot the feed replays every event from position 0 at start-up, which grows
// with the log (BENCHMARKS.md "Ready in seconds").
func startLogFeed(ctx context.Context, store eventstore.Store, after uint64, log *slog.Logger, appliers ...logApplier) (<-chan struct{}, <-chan error) {
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var (
			pos       = after
			target    uint64
			haveHead  bool
			readyOnce bool
			backoff   = 100 * time.Millisecond
		)
		markReady := func() {
			if !readyOnce {
				readyOnce = true
				close(ready)
			}
		}
		for ctx.Err() == nil {
			if !haveHead {
				h, err := store.Head(ctx)
				if err != nil {
					log.Warn("log feed: cannot read the log head; retrying", "err", err)
					if !sleepCtx(ctx, &backoff) {
						break
					}
					continue
				}
				target, haveHead = h, true
				if target <= pos {
					markReady()
				}
			}
			sub, err := store.Subscribe(ctx, pos)
			if err != nil {
				log.Warn("log feed: cannot subscribe; retrying", "after", pos, "err", err)
				if !sleepCtx(ctx, &backoff) {
					break
				}
				continue
			}
			for ev := range sub.Events() {
				for _, a := range appliers {
					if err := a.Apply(ev); err != nil {
						// An undecodable event: log it and go on; for that session or token
						// the index knows what this instance's own commands told it.
						log.Error("log feed: cannot apply event", "position", ev.Position, "type", ev.Type, "err", err)
					}
				}
				pos = ev.Position
				if pos >= target {
					markReady()
				}
				backoff = 100 * time.Millisecond
			}
			if err := sub.Err(); err != nil {
				log.Warn("log feed: subscription ended; resuming", "after", pos, "err", err)
				if !sleepCtx(ctx, &backoff) {
					break
				}
			}
		}
		done <- nil
	}()
	return ready, done
}

// startSweeper calls svc.Sweep every interval until ctx ends, turning sessions past their
// lifetime or idle timeout into SessionExpired events. done is closed when it has stopped.
func startSweeper(ctx context.Context, svc *command.Service, every time.Duration, now func() time.Time, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				res, err := svc.Sweep(ctx, now())
				if err != nil && ctx.Err() == nil {
					log.Warn("session sweep failed", "err", err)
				}
				if len(res.Expired) > 0 {
					log.Info("sessions expired", "count", len(res.Expired))
				}
			}
		}
	}()
	return done
}

// sleepCtx waits *backoff (then doubles it, up to 5s); false when ctx ended first.
func sleepCtx(ctx context.Context, backoff *time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*backoff):
		*backoff = min(*backoff*2, 5*time.Second)
		return true
	}
}

// feedPosition is the log feed's last applier: it records the position every applier before
// it has taken, so that catchUp can wait for the feed to reach the log's head.
type feedPosition struct {
	store   eventstore.Store
	mu      sync.Mutex
	applied uint64
	moved   chan struct{} // closed and replaced whenever applied grows
}

func newFeedPosition(store eventstore.Store) *feedPosition {
	return &feedPosition{store: store, moved: make(chan struct{})}
}

// Apply implements logApplier.
func (f *feedPosition) Apply(env domain.Envelope) error {
	f.mu.Lock()
	if env.Position > f.applied {
		f.applied = env.Position
		close(f.moved)
		f.moved = make(chan struct{})
	}
	f.mu.Unlock()
	return nil
}

// startAt makes pos the position applied (the indexes were restored at pos).
func (f *feedPosition) startAt(pos uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = max(f.applied, pos)
}

// position returns the position every applier has taken.
func (f *feedPosition) position() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// catchUp waits until the feed has applied the log's head as it is now (command.Config.CatchUp).
func (f *feedPosition) catchUp(ctx context.Context) error {
	head, err := f.store.Head(ctx)
	if err != nil {
		return err
	}
	for {
		f.mu.Lock()
		applied, moved := f.applied, f.moved
		f.mu.Unlock()
		if applied >= head {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
