// Package expect is the optimistic-concurrency condition of an append to the event log:
// the version of the stream's last event the caller decided on, and the error every event
// store backend returns when it does not hold. domain.EventStore takes it; eventstore
// re-exports it under its older names (eventstore.ExpectedVersion, eventstore.Any, ...).
package expect

import (
	"errors"
	"fmt"
)

// Version is the condition of an append. Zero (NoStream) means the stream must not exist
// yet; Any skips the check; a positive value n means the stream's last event must have
// version n.
type Version int64

const (
	// Any appends whatever the stream's version is.
	Any Version = -1
	// NoStream appends only when the stream has no event yet.
	NoStream Version = 0
)

// Exact returns the condition "the stream's last event has version v"; Exact(0) is NoStream.
func Exact(v uint64) Version { return Version(v) }

// String describes the condition for logs and errors.
func (e Version) String() string {
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

// ErrWrongVersion: the stream's version did not match the append's condition. Nothing of
// that append was written; reload the stream, decide again and retry. Every event store
// backend returns an error wrapping it (eventstore re-exports it as ErrWrongExpectedVersion).
var ErrWrongVersion = errors.New("eventstore: wrong expected version")
