package app

import (
	"context"
	"fmt"

	"github.com/vigil-auth/vigil/eventstore/follow"

	"github.com/vigil-auth/vigil/eventstore/sharedstate"
)

// openSharedState connects to --nats-url and opens the buckets of the state several
// instances share (login tickets, passkey ceremonies, throttling counts). An unreachable
// server stops the start naming --nats-url; once started, an outage makes sign-ins answer
// 503 until NATS is back (sharedstate.ErrUnavailable), while whoami keeps answering from
// memory.
func openSharedState(ctx context.Context, cfg Config, secret []byte) (*sharedstate.State, error) {
	st, err := sharedstate.Open(ctx, sharedstate.Config{URL: cfg.NATSURL, Secret: secret,
		LeaseTTL: cfg.LeaseTTL, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("--nats-url: %w", err)
	}
	cfg.Logger.Info("shared state in NATS JetStream", "server", st.ServerURL())
	return st, nil
}

// leases are the followers' leases: NATS's with --nats-url (the mail outbox, the forwarders
// and the SSF push workers act on one instance at a time, resuming from the shared
// progress), none without (this instance is the only one and acts).
func (a *App) leases() follow.Leases {
	if a.shared == nil {
		return nil
	}
	return a.shared.Leases
}

// holderID names this App in the followers' leases (one id per App: two Apps in one
// process, as tests run them, are two instances).
func (a *App) holderID() string {
	if a.holder == "" {
		a.holder = follow.NewHolderID()
	}
	return a.holder
}

// closeShared closes the NATS connection of the shared state, if any.
func (a *App) closeShared() error {
	if a.shared == nil {
		return nil
	}
	return a.shared.Close()
}
