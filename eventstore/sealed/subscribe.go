package sealed

import (
	"context"
	"errors"
	"sync"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// subscription forwards the inner subscription's events, opened.
type subscription struct {
	inner  eventstore.Subscription
	ch     chan domain.Envelope
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	err error // set before ch is closed
}

var _ eventstore.Subscription = (*subscription)(nil)

// Subscribe implements eventstore.Store: the inner store's subscription, with sealed values
// opened. A value that cannot be opened (tampering, an unknown key, an unreachable key store)
// ends the subscription with that error.
func (s *Store) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	in, err := s.inner.Subscribe(ctx, after)
	if err != nil {
		cancel()
		return nil, err
	}
	// As deep as the inner subscription's channel, so that a burst the inner store delivers at
	// once reaches the reader at once too, not paced one event at a time by this hop.
	sub := &subscription{inner: in, ch: make(chan domain.Envelope, cap(in.Events())), cancel: cancel, done: make(chan struct{})}
	go sub.run(ctx, s)
	return sub, nil
}

func (sub *subscription) run(ctx context.Context, s *Store) {
	defer close(sub.done)
	defer close(sub.ch)
	defer sub.inner.Close()
	for {
		var (
			e  domain.Envelope
			ok bool
		)
		select {
		case e, ok = <-sub.inner.Events():
		case <-ctx.Done():
			return
		}
		if !ok {
			sub.setErr(sub.inner.Err())
			return
		}
		if err := s.open(ctx, &e); err != nil {
			if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
				sub.setErr(err)
			}
			return
		}
		select {
		case sub.ch <- e:
		case <-ctx.Done():
			return
		}
	}
}

// Events implements eventstore.Subscription.
func (sub *subscription) Events() <-chan domain.Envelope { return sub.ch }

// Err implements eventstore.Subscription.
func (sub *subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

func (sub *subscription) setErr(err error) {
	sub.mu.Lock()
	sub.err = err
	sub.mu.Unlock()
}

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.once.Do(sub.cancel)
	<-sub.done
	return nil
}
