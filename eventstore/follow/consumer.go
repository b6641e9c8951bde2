package follow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/wmbridge"
)

// consumer gathers one consumer's events into batches. Messages are acknowledged to Watermill
// as soon as they join the pending batch (the bridge sends the next one only then); the batch
// is handled after BatchSize events, at the end of what the log holds, or after BatchWait. If
// it fails, the consumer goes back to its checkpoint: the bridge delivers again from there.
type consumer struct {
	f       *Follower
	c       Consumer
	handler *message.Handler
	// lease guards an Exclusive consumer (Config.Leases); stopLease ends its Run.
	lease     *Lease
	stopLease context.CancelFunc
	term      *Term // the term of the last batch (under mu)

	mu      sync.Mutex
	pending []domain.Envelope
	applied uint64 // last position pending or handled
	timer   *time.Timer
	rewind  bool // refuse the next message: it was sent before a rewind the bridge still owes

	committed atomic.Uint64 // last position handled

	stuckMu sync.Mutex
	stuck   bool
	stuckAt uint64
	lastErr string
}

func (w *consumer) handle(msg *message.Message) error {
	ev, err := wmbridge.Envelope(msg)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rewind {
		w.rewind = false
		return errRewind
	}
	if ev.Position <= w.applied {
		return nil // delivered again after a rewind or a restart: already handled or pending
	}
	w.pending = append(w.pending, ev)
	w.applied = ev.Position
	if len(w.pending) >= w.c.BatchSize || msg.Metadata.Get(wmbridge.MetaMore) == "0" {
		// A failure nacks this message: the bridge rewinds to the checkpoint.
		return w.flushLocked(w.ctx(), true)
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(w.f.cfg.BatchWait, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.flushLocked(w.ctx(), false)
		})
	}
	return nil
}

// ctx is the context batches are handled with: Run's, so that a shutdown interrupts a
// consumer waiting on something slow.
func (w *consumer) ctx() context.Context {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.f.runCtx == nil {
		return context.Background()
	}
	return w.f.runCtx
}

// flushLocked handles the pending batch. When it fails even event by event, the consumer
// drops what is pending and goes back to its checkpoint: inMessage says the caller returns
// the error to the bridge (a nack, which rewinds); otherwise the bridge is told to rewind.
// w.mu is held.
func (w *consumer) flushLocked(ctx context.Context, inMessage bool) error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	batch := w.pending
	w.pending = nil
	if len(batch) == 0 {
		return nil
	}
	err := w.run(ctx, batch, len(batch) == 1)
	if err == nil {
		w.advance(batch)
		return nil
	}
	// Event by event: everything before the failing event is kept, and it is found. Not
	// when the lease was lost: the holder carries on from the shared progress.
	if len(batch) > 1 && !errors.Is(err, ErrNotHolder) {
		for i := range batch {
			if err = w.run(ctx, batch[i:i+1], true); err != nil {
				break
			}
			w.advance(batch[i : i+1])
		}
	}
	w.applied = w.committed.Load()
	if !inMessage {
		w.rewind = true
		w.f.sub.Rewind(w.c.Name)
	}
	return err
}

// run calls Handle on batch, with retries when retry is set. A failure after the retries is
// reported (stuck, metric, log) unless ctx has ended.
func (w *consumer) run(ctx context.Context, batch []domain.Envelope, retry bool) error {
	cfg := &w.f.cfg
	wait := cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := w.call(ctx, batch)
		if err == nil {
			w.clearStuck()
			return nil
		}
		if errors.Is(err, ErrNotHolder) {
			return err // left to the holder: rewound, handled when this instance holds the lease
		}
		again := retry && attempt < cfg.Retries && ctx.Err() == nil &&
			(cfg.RetryCancelled || !errors.Is(err, context.Canceled))
		if again {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			wait = min(wait*2, cfg.MaxRetryBackoff)
			continue
		}
		if retry && ctx.Err() == nil {
			ev := batch[0]
			w.markStuck(ev.Position, err)
			w.f.metrics.failure(w.c.Name)
			w.f.log.Error(cfg.Kind+" stuck: event keeps failing after retries; retrying from its checkpoint",
				cfg.Kind, w.c.Name, "position", ev.Position, "type", ev.Type, "err", err)
		}
		return err
	}
}

// call is Handle, for an Exclusive consumer only while this instance holds its lease.
func (w *consumer) call(ctx context.Context, batch []domain.Envelope) error {
	if w.lease == nil {
		return w.callHandle(ctx, batch)
	}
	t, err := w.lease.Wait(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotHolder, err)
	}
	if !t.Begin() {
		return ErrNotHolder
	}
	defer t.End()
	// What this instance did before (its own checkpoint, or a batch whose progress could
	// not be saved) is shared first, so that no later holder repeats it.
	c := w.committed.Load()
	if t != w.term {
		cp, err := w.c.Checkpoints.Checkpoint(ctx, w.c.Name)
		if err != nil {
			return err
		}
		c = max(c, cp)
	}
	if c > t.Progress() {
		if err := t.Save(ctx, c); err != nil {
			return err
		}
	}
	w.term = t
	done := t.Progress()
	i := 0
	for i < len(batch) && batch[i].Position <= done {
		i++ // done by a holder before this term
	}
	if i == len(batch) {
		return nil
	}
	hctx, cancel := context.WithCancel(context.WithValue(ctx, termKey{}, t))
	defer cancel()
	defer context.AfterFunc(t.Ctx, cancel)()
	if err := w.callHandle(hctx, batch[i:]); err != nil {
		if t.Ctx.Err() != nil {
			return fmt.Errorf("%w: the lease ended during the batch: %v", ErrNotHolder, err)
		}
		return err
	}
	if err := t.Save(ctx, batch[len(batch)-1].Position); err != nil {
		// The batch is done and checkpointed here; the term has ended. This instance shares
		// it when it holds the lease again; another holder repeats it (at-least-once).
		w.f.log.Warn(w.f.cfg.Kind+": batch done but its shared progress not saved; stopped acting", w.f.cfg.Kind, w.c.Name, "err", err)
	}
	return nil
}

// observe takes the shared progress a non-holder read: its status and WaitFor show the
// deployment's progress.
func (w *consumer) observe(p uint64) {
	if storeMax(&w.committed, p) {
		w.f.notify()
	}
}

// storeMax raises v to p; it reports whether it moved.
func storeMax(v *atomic.Uint64, p uint64) bool {
	for {
		cur := v.Load()
		if p <= cur {
			return false
		}
		if v.CompareAndSwap(cur, p) {
			return true
		}
	}
}

// callHandle is Handle with a panic turned into an error (a batch may be handled from a
// timer, outside the router's recoverer).
func (w *consumer) callHandle(ctx context.Context, batch []domain.Envelope) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("follow: %s panicked: %v", w.c.Name, p)
		}
	}()
	return w.c.Handle(ctx, batch)
}

// advance records a handled batch.
func (w *consumer) advance(batch []domain.Envelope) {
	storeMax(&w.committed, batch[len(batch)-1].Position)
	w.f.metrics.handled(w.c.Name, len(batch))
	w.f.notify()
}

// catchUp hands the consumer the events of page after its position, as one batch; the
// router does not run yet.
func (w *consumer) catchUp(ctx context.Context, page []domain.Envelope) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for i < len(page) && page[i].Position <= w.applied {
		i++
	}
	if i == len(page) {
		return nil
	}
	batch := page[i:]
	if err := w.call(ctx, batch); err != nil {
		return fmt.Errorf("%s at positions %d to %d: %w", w.c.Name, batch[0].Position, batch[len(batch)-1].Position, err)
	}
	w.applied = batch[len(batch)-1].Position
	w.advance(batch)
	return nil
}

func (w *consumer) markStuck(pos uint64, err error) {
	w.stuckMu.Lock()
	w.stuck, w.stuckAt, w.lastErr = true, pos, err.Error()
	w.stuckMu.Unlock()
}

func (w *consumer) clearStuck() {
	w.stuckMu.Lock()
	w.stuck, w.stuckAt = false, 0
	w.stuckMu.Unlock()
}
