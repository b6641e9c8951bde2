package sqlite

import (
	"context"
	"sync"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// subscribePage is how many events a subscription reads from the log at a time.
const subscribePage = 512

type subscription struct {
	ch     chan domain.Envelope
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

var _ eventstore.Subscription = (*subscription)(nil)

func (s *subscription) Events() <-chan domain.Envelope { return s.ch }
func (s *subscription) Err() error {
	<-s.done
	return s.err
}
func (s *subscription) Close() error {
	s.once.Do(s.cancel)
	<-s.done
	return nil
}

// Subscribe delivers the events after position after: it pages through the log, then waits to
// be woken by an append (of this process, or noticed by the poller for other processes) and
// reads again. It never holds events in memory beyond one page, so a slow reader costs appends
// nothing.
func (s *Store) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{ch: make(chan domain.Envelope, subscribePage), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		defer close(sub.ch)
		defer cancel()
		pos := after
		for {
			wake := s.changedChan() // taken before reading, so no append is missed in between
			evs, err := s.ReadAll(ctx, pos, subscribePage)
			if err != nil {
				if ctx.Err() == nil && !s.closed.Load() {
					sub.err = err
				}
				return
			}
			for _, e := range evs {
				select {
				case sub.ch <- e:
					pos = e.Position
				case <-ctx.Done():
					return
				case <-s.closing:
					return
				}
			}
			if len(evs) == subscribePage {
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
		}
	}()
	return sub, nil
}
