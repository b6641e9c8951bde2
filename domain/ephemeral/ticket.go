// Package ephemeral holds the short-lived state of the sign-in commands that does not belong
// in the event log (login tickets between the password and the second factor, WebAuthn
// ceremonies between their options and the answer) and the aggregate snapshots that only
// spare a replay: one interface per kind of state, with an in-memory implementation beside
// which a shared one (a key-value store) can stand.
//
// It depends on the standard library and domain/throttle only, never on package domain:
// domain imports it.
package ephemeral

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// LoginTicket is the state between a correct password and the second factor: single-use,
// short-lived (command.Config.TicketTTL, default 5 minutes), with a bounded number of second-factor
// tries (command.Config.TicketMaxTries, default 5). ID is an opaque 256-bit random string.
type LoginTicket struct {
	ID        string
	AccountID string
	Email     string // normalised; the throttling key
	ClientID  string
	Methods   []string // second-factor methods offered
	CreatedAt time.Time
	ExpiresAt time.Time
	Tries     int // second-factor attempts made, including the current one
}

// ErrTicketInvalid: the login ticket is unknown, expired, already used or burnt by too many
// wrong codes. The user must sign in with the password again. (command.ErrTicketInvalid is
// this error.)
var ErrTicketInvalid = errors.New("login ticket invalid or expired")

// TicketStore keeps login tickets. Implementations must be safe for concurrent use.
//
// MemoryTicketStore keeps them in the instance's memory: with several instances the second
// factor must reach the instance that took the password (sticky sessions), or the ticket
// is unknown there and the user signs in again. The shared store (the event log is the wrong
// place for such short-lived secrets) is sharedstate.Tickets, in NATS JetStream.
type TicketStore interface {
	// Put stores a new ticket.
	Put(ctx context.Context, t LoginTicket) error
	// Attempt counts one second-factor try on ticket id at now and returns the ticket with
	// Tries including it. An unknown or expired ticket, or one that already had maxTries
	// tries, gives ErrTicketInvalid (and is dropped).
	Attempt(ctx context.Context, id string, now time.Time, maxTries int) (LoginTicket, error)
	// Consume removes ticket id and reports whether this call removed it: of concurrent
	// callers, exactly one gets true.
	Consume(ctx context.Context, id string) bool
	// Prune drops tickets expired at now.
	Prune(ctx context.Context, now time.Time)
}

// MemoryTicketStore is the in-memory TicketStore (per instance, see TicketStore). The zero
// value is not usable; call NewMemoryTicketStore. Safe for concurrent use.
type MemoryTicketStore struct {
	mu      sync.Mutex
	tickets map[string]LoginTicket
}

var _ TicketStore = (*MemoryTicketStore)(nil)

// NewMemoryTicketStore returns an empty store.
func NewMemoryTicketStore() *MemoryTicketStore {
	return &MemoryTicketStore{tickets: map[string]LoginTicket{}}
}

// Put implements TicketStore.
func (m *MemoryTicketStore) Put(_ context.Context, t LoginTicket) error {
	t.Methods = slices.Clone(t.Methods)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tickets[t.ID] = t
	return nil
}

// Attempt implements TicketStore.
func (m *MemoryTicketStore) Attempt(_ context.Context, id string, now time.Time, maxTries int) (LoginTicket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tickets[id]
	if !ok {
		return LoginTicket{}, ErrTicketInvalid
	}
	if !now.Before(t.ExpiresAt) || t.Tries >= maxTries {
		delete(m.tickets, id)
		return LoginTicket{}, ErrTicketInvalid
	}
	t.Tries++
	m.tickets[id] = t
	t.Methods = slices.Clone(t.Methods)
	return t, nil
}

// Consume implements TicketStore.
func (m *MemoryTicketStore) Consume(_ context.Context, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.tickets[id]
	delete(m.tickets, id)
	return ok
}

// Prune implements TicketStore.
func (m *MemoryTicketStore) Prune(_ context.Context, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range m.tickets {
		if !now.Before(t.ExpiresAt) {
			delete(m.tickets, id)
		}
	}
}
