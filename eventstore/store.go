// Package eventstore defines Vigil's immutable event log: the Store interface every backend
// implements (the embedded SQLite one in eventstore/sqlite, the KurrentDB one in
// eventstore/kurrentdb), its sentinel errors, and the contract those backends share (checked by
// eventstore/eventstoretest).
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// ExpectedVersion is the optimistic-concurrency condition of an append (see
// expect.Version): Any, NoStream, or Exact(n) for "the stream's last event has version n".
type ExpectedVersion = expect.Version

const (
	// Any appends whatever the stream's version is.
	Any = expect.Any
	// NoStream appends only when the stream has no event yet.
	NoStream = expect.NoStream
)

// Exact returns the condition "the stream's last event has version v"; Exact(0) is NoStream.
func Exact(v uint64) ExpectedVersion { return expect.Exact(v) }

// Sentinel errors shared by every backend. Backends wrap them; compare with errors.Is.
var (
	// ErrWrongExpectedVersion: the stream's version did not match the append's condition.
	// Nothing of that append was written; reload the stream, decide again and retry.
	ErrWrongExpectedVersion = expect.ErrWrongVersion
	// ErrInvalidEvent: an event was rejected before anything was written (empty type,
	// stream id or event id, data that is not a JSON object or value, invalid expected version).
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("eventstore: closed")
	// ErrUnavailable: the backend could not be reached.
	ErrUnavailable = errors.New("eventstore: unavailable")
)

// AppendResult tells where an append landed (see domain.AppendResult).
type AppendResult = domain.AppendResult

// Store is the event log. Implementations are safe for concurrent use by many goroutines.
// Every Store is also a domain.EventStore.
type Store interface {
	// Append writes events to the end of stream atomically (all or none) when the stream's
	// version matches expected, and returns where they landed. On a mismatch it writes nothing
	// and returns an error wrapping ErrWrongExpectedVersion. Once Append returns without
	// error the events are durable. An empty events slice is ErrInvalidEvent.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []domain.EventData) (AppendResult, error)

	// ReadStream returns up to limit events of stream with version >= fromVersion, in version
	// order. A stream that does not exist gives an empty slice and no error. limit <= 0 means
	// no limit.
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error)

	// ReadAll returns up to limit events with a global position strictly greater than after,
	// in global order. limit must be positive.
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)

	// Head returns the global position of the last event in the log, 0 when it is empty.
	Head(ctx context.Context) (uint64, error)

	// Subscribe delivers every event with a position strictly greater than after, in global
	// order: first those already stored (catch-up), then new ones as they are appended (by
	// this process or any other writer of the same log), with no gap and no duplicate. A slow
	// consumer never blocks appends: the subscription reads from the log at its own pace. The
	// subscription ends when ctx is cancelled, Close is called or the backend fails for good.
	Subscribe(ctx context.Context, after uint64) (Subscription, error)

	// Close releases the store. Appends in flight finish or fail with ErrClosed; open
	// subscriptions end.
	Close() error
}

// Subscription is a live feed of events in global order.
type Subscription interface {
	// Events is closed when the subscription ends; Err then says why (nil after Close or a
	// cancelled context).
	Events() <-chan domain.Envelope
	// Err returns the error that ended the subscription, valid once Events is closed.
	Err() error
	// Close ends the subscription and waits for its goroutine to stop. It is safe to call
	// more than once and from any goroutine.
	Close() error
}

// ValidateAppend checks the arguments of an Append the same way for every backend.
func ValidateAppend(stream string, expected ExpectedVersion, events []domain.EventData) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream id", ErrInvalidEvent)
	}
	if expected < Any {
		return fmt.Errorf("%w: expected version %d", ErrInvalidEvent, int64(expected))
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidEvent)
	}
	for i, e := range events {
		if e.ID == "" || e.Type == "" {
			return fmt.Errorf("%w: event %d has no id or type", ErrInvalidEvent, i)
		}
		if len(e.Data) == 0 || !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %d (%s) data is not JSON", ErrInvalidEvent, i, e.Type)
		}
	}
	return nil
}

var _ domain.EventStore = Store(nil)

// Chain is the integrity side of a Store: the hash chain's head and the signed checkpoints
// (see package chain). Both backends implement it, and their reads fill Envelope.Hash.
// Instrument's wrapper does not, so callers type-assert the backend itself.
type Chain = chain.Log
