package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vigil-auth/vigil/domain"
)

// worker applies the log to one projection in batches. Events are acknowledged to Watermill
// as soon as they are applied to the open batch transaction; the batch, with the checkpoint,
// commits after BatchSize events or BatchWait. If a commit fails, the next message is refused
// with errRewind, the bridge resubscribes from the committed checkpoint and the lost batch is
// applied again.
type worker struct {
	r *Runner
	p Projection

	mu      sync.Mutex
	tx      *sql.Tx
	pending int
	applied uint64 // last position applied (committed or in tx)
	timer   *time.Timer
	rewind  bool

	committed atomic.Uint64

	stuckMu sync.Mutex
	stuck   bool
	stuckAt uint64
	lastErr string
}

func (w *worker) handle(msg *message.Message) error {
	var ev domain.Envelope
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return fmt.Errorf("decode event %s: %w", msg.UUID, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rewind {
		w.rewind = false
		return errRewind
	}
	if ev.Position <= w.applied {
		return nil // redelivered after a rewind: already in the open batch
	}
	ctx := msg.Context()
	if w.tx == nil {
		// Not the message's context: Watermill cancels it on ack, and the batch outlives it.
		tx, err := w.r.cfg.DB.write.BeginTx(context.Background(), nil)
		if err != nil {
			return fmt.Errorf("begin batch: %w", err)
		}
		w.tx = tx
	}
	if err := txExec(ctx, w.tx, "SAVEPOINT ev"); err != nil {
		w.abortLocked()
		return fmt.Errorf("savepoint: %w", err)
	}
	start := time.Now()
	if err := w.p.Apply(ctx, w.tx, ev); err != nil {
		if _, rbErr := w.tx.ExecContext(ctx, "ROLLBACK TO ev; RELEASE ev"); rbErr != nil {
			w.abortLocked()
		} else {
			w.settleLocked()
		}
		return fmt.Errorf("apply %s at position %d: %w", ev.Type, ev.Position, err)
	}
	if err := txExec(ctx, w.tx, "RELEASE ev"); err != nil {
		w.abortLocked()
		return fmt.Errorf("release savepoint: %w", err)
	}
	w.r.metrics.applySeconds.WithLabelValues(w.p.Name()).Observe(time.Since(start).Seconds())
	w.applied = ev.Position
	w.pending++
	if w.pending >= w.r.cfg.BatchSize || (w.r.cfg.BatchEndKey != "" && msg.Metadata.Get(w.r.cfg.BatchEndKey) == "0") {
		w.commitLocked()
	} else {
		w.settleLocked()
	}
	return nil
}

// settleLocked makes sure an open batch does not hold the shared write connection for long:
// an empty one is rolled back at once, a non-empty one commits within BatchWait. w.mu is held.
func (w *worker) settleLocked() {
	switch {
	case w.tx == nil:
	case w.pending == 0:
		_ = w.tx.Rollback()
		w.tx = nil
	case w.timer == nil:
		w.timer = time.AfterFunc(w.r.cfg.BatchWait, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.commitLocked()
		})
	}
}

// commitLocked commits the open batch with its checkpoint. w.mu is held.
func (w *worker) commitLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.tx == nil {
		return
	}
	start := time.Now()
	now := w.r.cfg.Now().UTC().UnixNano()
	_, err := w.tx.Exec(`INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
		w.p.Name(), w.applied, now)
	if err == nil {
		err = w.tx.Commit()
	}
	n := w.pending
	w.tx, w.pending = nil, 0
	if err != nil {
		w.r.cfg.Logger.Error("projection batch commit failed; replaying from checkpoint",
			"projection", w.p.Name(), "events", n, "err", err)
		w.abortLocked()
		return
	}
	w.committed.Store(w.applied)
	w.r.metrics.batchSeconds.WithLabelValues(w.p.Name()).Observe(time.Since(start).Seconds())
	w.r.metrics.events.WithLabelValues(w.p.Name()).Add(float64(n))
	w.r.notifyAdvanced()
}

// abortLocked drops the open batch and makes the next message rewind to the checkpoint.
func (w *worker) abortLocked() {
	if w.tx != nil {
		_ = w.tx.Rollback()
		w.tx, w.pending = nil, 0
	}
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.applied = w.committed.Load()
	w.rewind = true
	if rw, ok := w.r.cfg.Subscriber.(Rewinder); ok {
		rw.Rewind(w.p.Name())
	}
}

func (w *worker) markStuck(pos uint64, err error) {
	w.stuckMu.Lock()
	w.stuck, w.stuckAt, w.lastErr = true, pos, err.Error()
	w.stuckMu.Unlock()
}

func (w *worker) clearStuck() {
	w.stuckMu.Lock()
	w.stuck, w.stuckAt = false, 0
	w.stuckMu.Unlock()
}
