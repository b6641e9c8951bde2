package domain

import (
	"context"

	"github.com/vigil-auth/vigil/domain/expect"
)

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
	Append(ctx context.Context, stream string, expected expect.Version, events []EventData) (AppendResult, error)
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]Envelope, error)
}
