package domain

import (
	"context"
	"errors"
	"fmt"
)

// ExpectedVersion is the optimistic-concurrency condition of an append: the version of the
// stream's last event the caller decided on. Zero (NoStream) means the stream must not exist
// yet; Any skips the check; a positive value n means the stream's last event must have version
// n. eventstore re-exports it.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version is.
	Any ExpectedVersion = -1
	// NoStream appends only when the stream has no event yet.
	NoStream ExpectedVersion = 0
)

// Exact returns the condition "the stream's last event has version v"; Exact(0) is NoStream.
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

// String describes the condition for logs and errors.
func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e > 0:
		return fmt.Sprintf("version %d", int64(e))
	default:
		return fmt.Sprintf("invalid(%d)", int64(e))
	}
}

// ErrWrongExpectedVersion: the stream's version did not match the append's condition. Nothing
// of that append was written; reload the stream, decide again and retry. Every event store
// backend returns an error wrapping it (eventstore re-exports it).
var ErrWrongExpectedVersion = errors.New("eventstore: wrong expected version")

// AppendResult tells where an append landed: the global positions of the first and last event
// written and the stream's version after the append (its last event's version).
type AppendResult struct {
	FirstPosition uint64
	LastPosition  uint64
	NextVersion   uint64
}

// EventStore is the port command handlers use to load and save streams. eventstore.Store
// satisfies it; its contract is documented there.
type EventStore interface {
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []EventData) (AppendResult, error)
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]Envelope, error)
}
