package sealed

import (
	"context"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// nopStore is an inner store for tests that only seal and open values.
type nopStore struct{}

func (nopStore) Append(context.Context, string, eventstore.ExpectedVersion, []domain.EventData) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{}, nil
}
func (nopStore) ReadStream(context.Context, string, uint64, int) ([]domain.Envelope, error) {
	return nil, nil
}
func (nopStore) ReadAll(context.Context, uint64, int) ([]domain.Envelope, error) { return nil, nil }
func (nopStore) Head(context.Context) (uint64, error)                            { return 0, nil }
func (nopStore) Subscribe(context.Context, uint64) (eventstore.Subscription, error) {
	return nil, eventstore.ErrClosed
}
func (nopStore) Close() error { return nil }
