// Package webhookadmin adapts the forwarders (eventstore/forward) to what the webhook
// administration routes ask (api.WebhookAdmin), so that package api does not depend on the
// forwarders and the app and the handler tests wire the same adapter.
package webhookadmin

import (
	"context"

	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/handlers/api"
)

// New returns f as the webhook routes' WebhookAdmin.
func New(f *forward.Forwarders) api.WebhookAdmin { return admin{f} }

type admin struct{ f *forward.Forwarders }

// WaitRegistry waits until the forwarders run the endpoints registered up to position.
func (w admin) WaitRegistry(ctx context.Context, position uint64) error {
	return w.f.WaitRegistry(ctx, position)
}

// Endpoints lists the endpoints, the configured one first.
func (w admin) Endpoints(ctx context.Context) ([]api.WebhookEndpoint, error) {
	eps, err := w.f.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.WebhookEndpoint, len(eps))
	for i, e := range eps {
		out[i] = api.WebhookEndpoint{ID: e.ID, URL: e.URL, Source: e.Source, CreatedAt: e.CreatedAt, Position: e.Position, Parked: e.Parked}
	}
	return out, nil
}

// Parked lists an endpoint's parked deliveries after id after.
func (w admin) Parked(ctx context.Context, endpointID string, after int64, limit int) ([]api.ParkedDelivery, error) {
	ps, err := w.f.Parked(ctx, endpointID, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.ParkedDelivery, len(ps))
	for i, p := range ps {
		out[i] = api.ParkedDelivery{ID: p.ID, EventID: p.EventID, Position: p.Position, Type: p.Type,
			Attempts: p.Attempts, LastError: p.LastError, ParkedAt: p.ParkedAt}
	}
	return out, nil
}

// Replay attempts a parked delivery once more.
func (w admin) Replay(ctx context.Context, endpointID string, deliveryID int64) (api.ReplayResult, error) {
	r, err := w.f.Replay(ctx, endpointID, deliveryID)
	return api.ReplayResult{Delivered: r.Delivered, Attempts: r.Attempts, LastError: r.LastError}, err
}
