package domain

import (
	"context"
	"sync/atomic"
	"time"
)

// An Expectation announces an append before it is made: a caller that knows it will append at
// about At (a sign-in whose password hash is due to finish then) tells the store, so that a
// store that syncs every commit may hold a commit that would otherwise sync alone, briefly, and
// let the two share one sync. It is only a hint: an append without one, or one that never
// comes, is committed as always, at most a store's commit window later.
//
// The caller carries the expectation to its append in the context (WithExpectation); the store
// marks it Done once the append is queued. A caller that will not append after all calls Done
// itself. Done is idempotent and a nil *Expectation is a valid one that does nothing.
type Expectation struct {
	At   time.Time
	done atomic.Bool
	drop func(*Expectation)
}

// NewExpectation returns an expectation of an append at about at; drop runs once, at the
// first Done. It is for stores implementing Expecter.
func NewExpectation(at time.Time, drop func(*Expectation)) *Expectation {
	return &Expectation{At: at, drop: drop}
}

// Done withdraws the expectation: its append was queued, or will not be made.
func (e *Expectation) Done() {
	if e != nil && e.done.CompareAndSwap(false, true) && e.drop != nil {
		e.drop(e)
	}
}

// Expecter is implemented by event stores that hold a commit for expected appends (the SQLite
// backend, and the wrappers in front of a store: they pass the call on). Expect returns nil
// when the store does not wait for appends.
type Expecter interface {
	Expect(at time.Time) *Expectation
}

// ExpectAppend announces an append at about at to s when it is an Expecter, and returns nil
// (an expectation that does nothing) when it is not.
func ExpectAppend(s any, at time.Time) *Expectation {
	if x, ok := s.(Expecter); ok {
		return x.Expect(at)
	}
	return nil
}

type expectationKey struct{}

// WithExpectation returns ctx carrying e to the store's Append, which marks it Done once the
// append is queued. A nil e returns ctx unchanged.
func WithExpectation(ctx context.Context, e *Expectation) context.Context {
	if e == nil {
		return ctx
	}
	return context.WithValue(ctx, expectationKey{}, e)
}

// ExpectationOf returns the expectation ctx carries, or nil.
func ExpectationOf(ctx context.Context) *Expectation {
	e, _ := ctx.Value(expectationKey{}).(*Expectation)
	return e
}
