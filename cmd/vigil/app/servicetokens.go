package app

import (
	"context"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/handlers/stream"
)

// storeSubscriber adapts the event store's Subscribe to the handlers' EventSubscriber (the
// compliance stream's single subscription).
type storeSubscriber struct{ store eventstore.Store }

var _ stream.EventSubscriber = storeSubscriber{}

// SubscribeEvents implements stream.EventSubscriber with Store.Subscribe.
func (s storeSubscriber) SubscribeEvents(ctx context.Context, after uint64) (stream.EventStream, error) {
	return s.store.Subscribe(ctx, after)
}
