package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// Subscribe delivers every one of Vigil's events (see the package comment) with a position
// strictly greater than after, in global order, on the returned subscription's Events channel
// (buffered, Config.SubscriptionBuffer). It is a catch-up subscription to $all with a
// server-side filter on domain.StreamPrefixes: the server reads stored events first and then
// pushes new ones, at the subscriber's pace, so a slow consumer never holds up appends.
//
// Subscribe returns an error when the first server subscription cannot be made. After that,
// when the server subscription drops (the node restarts or becomes unreachable, the connection
// breaks), a new one is made from the position of the last event delivered, after a pause of
// Config.RetryBackoff doubling up to Config.MaxRetryBackoff (back to RetryBackoff once events
// flow again), for as long as it takes; events at or before the last delivered position are
// skipped, so nothing is delivered twice or skipped. Checkpoint, caught-up and fell-behind
// notices carry no event and are ignored. The subscription ends, closing Events, when ctx is
// cancelled, Close (of the subscription or the store) is called, or on an error retrying cannot
// fix (refused credentials or permission, an event whose metadata cannot be decoded); Err then
// says which (nil for the first two).
func (s *Store) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kurrentdb: subscribe: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	sub := &subscription{
		s:      s,
		events: make(chan domain.Envelope, s.cfg.SubscriptionBuffer),
		ctx:    sctx,
		cancel: func() { stop(); cancel() },
		done:   make(chan struct{}),
		last:   after,
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.cancel()
		return nil, fmt.Errorf("kurrentdb: subscribe: %w", eventstore.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()

	var err error
	if after > 0 {
		// The hash of the last event at or before after, which the first delivered event
		// follows in the chain.
		sub.prev, err = call(sub.ctx, s, "fold the chain", func(ctx context.Context, c *esdb.Client) (chain.Sum, error) {
			_, sum, err := s.hashAt(ctx, c, after)
			return sum, err
		}, nil)
	}
	from := allFrom(after)
	checked := after == 0
	var es *esdb.Subscription
	if err == nil {
		es, err = sub.open(from)
	}
	if err != nil && !checked && isInvalidPosition(err) {
		checked = true
		if from, err = sub.floor(); err == nil {
			es, err = sub.open(from)
		}
	}
	if err != nil {
		sub.cancel()
		sub.detach()
		close(sub.events)
		close(sub.done)
		return nil, err
	}
	go sub.run(es, from, checked)
	return sub, nil
}

// subscription is a live feed from $all; see Store.Subscribe.
type subscription struct {
	s      *Store
	events chan domain.Envelope
	ctx    context.Context
	cancel func()
	done   chan struct{} // closed when run has returned

	mu  sync.Mutex
	err error

	last uint64 // position of the last event delivered, or the starting position; run's only

	prev   chain.Sum // chain hash of the event at last; run's only
	hasher chain.Hasher
}

var _ eventstore.Subscription = (*subscription)(nil)

// Events is closed when the subscription ends.
func (sub *subscription) Events() <-chan domain.Envelope { return sub.events }

// Err says why the subscription ended, once Events is closed: nil after Close or a cancelled
// context.
func (sub *subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// Close ends the subscription and waits for its goroutine to stop. It is safe to call more
// than once and from any goroutine, and always returns nil.
func (sub *subscription) Close() error {
	sub.cancel()
	<-sub.done
	return nil
}

func (sub *subscription) detach() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
}

// open makes a server subscription to $all from from, filtered to Vigil's streams. It lives
// in sub.ctx, not in the call's context.
func (sub *subscription) open(from esdb.AllPosition) (*esdb.Subscription, error) {
	return call(sub.ctx, sub.s, "subscribe to $all", func(_ context.Context, c *esdb.Client) (*esdb.Subscription, error) {
		return c.SubscribeToAll(sub.ctx, esdb.SubscribeToAllOptions{From: from, Filter: vigilFilter()})
	}, func(es *esdb.Subscription) { _ = es.Close() })
}

// floor finds a valid place to subscribe from when sub.last falls between two events.
func (sub *subscription) floor() (esdb.AllPosition, error) {
	after := sub.last
	return call(sub.ctx, sub.s, "find a position in $all", func(ctx context.Context, c *esdb.Client) (esdb.AllPosition, error) {
		return sub.s.floor(ctx, c, after)
	}, nil)
}

// decodeError marks an event that cannot be decoded: retrying would meet it again.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// run delivers from es and, whenever the server subscription drops, makes a new one from the
// last delivered position (see Store.Subscribe). checked says whether from is known to be a
// position the server accepts.
func (sub *subscription) run(es *esdb.Subscription, from esdb.AllPosition, checked bool) {
	defer func() {
		sub.cancel()
		sub.detach()
		close(sub.events)
		close(sub.done)
	}()
	cfg := sub.s.cfg
	backoff := cfg.RetryBackoff
	for {
		var err error
		if es == nil {
			es, err = sub.open(from)
		}
		if es != nil {
			var n int
			n, err = sub.pump(es)
			_ = es.Close()
			es = nil
			if n > 0 {
				from, checked, backoff = allFrom(sub.last), true, cfg.RetryBackoff
			}
		}
		if sub.ctx.Err() != nil {
			return
		}
		if !checked && isInvalidPosition(err) {
			checked = true
			var ferr error
			if from, ferr = sub.floor(); ferr == nil {
				continue // subscribe again at once, from the last event at or before the start
			}
			err = ferr
			if sub.ctx.Err() != nil {
				return
			}
		}
		var dErr decodeError
		if errors.As(err, &dErr) || permanent(err) {
			sub.mu.Lock()
			sub.err = fmt.Errorf("kurrentdb: subscription after position %d: %w", sub.last, err)
			sub.mu.Unlock()
			sub.s.log.Error("kurrentdb: subscription ended", "after", sub.last, "err", err)
			return
		}
		sub.s.log.Warn("kurrentdb: subscription dropped; resubscribing", "after", sub.last, "pause", backoff, "err", err)
		if !sleepCtx(sub.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, cfg.MaxRetryBackoff)
	}
}

// pump moves events from es to the Events channel until es drops or sub.ctx ends, and says
// how many it delivered.
func (sub *subscription) pump(es *esdb.Subscription) (delivered int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kurrentdb: client panicked in a subscription: %v", r)
		}
	}()
	for {
		m := es.Recv()
		switch {
		case m.SubscriptionDropped != nil:
			err := m.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("subscription dropped")
			}
			return delivered, err
		case m.EventAppeared != nil:
			rec := m.EventAppeared.OriginalEvent()
			if rec == nil || rec.Position.Commit <= sub.last || !isVigilEvent(rec.StreamID, rec.EventType) {
				continue
			}
			env, err := decodeEvent(rec)
			if err != nil {
				return delivered, decodeError{err}
			}
			sum := sub.hasher.Next(sub.prev, &env)
			env.Hash = sum.String()
			select {
			case sub.events <- env:
				sub.last, sub.prev = rec.Position.Commit, sum
				delivered++
			case <-sub.ctx.Done():
				return delivered, sub.ctx.Err()
			}
		default:
			// CheckPointReached, CaughtUp, FellBehind: no event to deliver.
		}
	}
}
