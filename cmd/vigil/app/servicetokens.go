package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/handlers"
)

// storeSubscriber adapts the event store's Subscribe to the handlers' EventSubscriber (the
// compliance stream's single subscription).
type storeSubscriber struct{ store eventstore.Store }

var _ handlers.EventSubscriber = storeSubscriber{}

// SubscribeEvents implements handlers.EventSubscriber with Store.Subscribe.
func (s storeSubscriber) SubscribeEvents(ctx context.Context, after uint64) (handlers.EventStream, error) {
	return s.store.Subscribe(ctx, after)
}

// startServiceTokenFeed keeps index current with the service tokens created and revoked on
// every instance: it reads the log from the start, applies each event to the index, then
// follows new ones (this instance's own commands update the index synchronously as well).
// ready is closed once the index reflects the log as it was when the feed started (serve
// only after that, or tokens created before this instance started would be refused); done
// receives nil when ctx ends. A failed subscription is resumed after the last applied
// position, with back-off.
func startServiceTokenFeed(ctx context.Context, store eventstore.Store, index *domain.ServiceTokenIndex, log *slog.Logger) (<-chan struct{}, <-chan error) {
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var (
			pos, target uint64
			haveHead    bool
			readyOnce   bool
			backoff     = 100 * time.Millisecond
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
					log.Warn("service token feed: cannot read the log head; retrying", "err", err)
					if !sleepCtx(ctx, &backoff) {
						break
					}
					continue
				}
				target, haveHead = h, true
				if target == 0 {
					markReady()
				}
			}
			sub, err := store.Subscribe(ctx, pos)
			if err != nil {
				log.Warn("service token feed: cannot subscribe; retrying", "after", pos, "err", err)
				if !sleepCtx(ctx, &backoff) {
					break
				}
				continue
			}
			for ev := range sub.Events() {
				if err := index.Apply(ev); err != nil {
					log.Error("service token feed: cannot apply event", "position", ev.Position, "type", ev.Type, "err", err)
				}
				pos = ev.Position
				if pos >= target {
					markReady()
				}
				backoff = 100 * time.Millisecond
			}
			if err := sub.Err(); err != nil {
				log.Warn("service token feed: subscription ended; resuming", "after", pos, "err", err)
				if !sleepCtx(ctx, &backoff) {
					break
				}
			}
		}
		done <- nil
	}()
	return ready, done
}
