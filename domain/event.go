// Package domain holds Vigil's events, aggregates (with their decisions) and policies. It
// knows nothing of HTTP, SQL, brokers or GeoIP: the interfaces it needs (an event store
// port, a snapshot store) are declared here and implemented elsewhere. The application
// layer that runs the commands (authorises the caller, loads aggregates, appends, keeps the
// in-memory indexes) is package domain/command.
package domain

import (
	"encoding/json"
	"time"
)

// Stream id prefixes. Every stream Vigil writes starts with one of these; the KurrentDB
// backend filters its $all subscription on them.
const (
	StreamPrefixAccount = "account-"
	StreamPrefixSession = "session-"
	StreamPrefixOrg     = "org-"
	streamPrefixClient  = "client-" // outside domain, ClientStream builds these ids
	// StreamPrefixSystem holds events that belong to no account, org or client (sign-in
	// failures for unknown emails, service tokens, load-test events).
	StreamPrefixSystem = "system-"
)

// StreamPrefixes lists every stream prefix Vigil writes, in no particular order.
var StreamPrefixes = []string{StreamPrefixAccount, StreamPrefixSession, StreamPrefixOrg, streamPrefixClient, StreamPrefixSystem,
	StreamPrefixDelegation}

// ActorType says who caused an event.
type ActorType string

// Actor types.
const (
	ActorAccount  ActorType = "account"  // the subject account itself
	ActorAdmin    ActorType = "admin"    // an administrator acting on another account
	ActorDelegate ActorType = "delegate" // a delegate acting for the subject account
	ActorSystem   ActorType = "system"   // Vigil itself (expiry sweeper, policies)
	ActorService  ActorType = "service"  // a machine holding a service token
)

// Actor identifies who acted. ID is an account id for account, admin and delegate actors, a
// service token id for service actors and empty for the system.
type Actor struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id,omitempty"`
}

// Metadata travels with every event. IP and UserAgent are personal data and are kept in these
// clearly named fields so that they can later be encrypted per account (crypto-shredding).
type Metadata struct {
	Actor            Actor  `json:"actor"`
	SubjectAccountID string `json:"subject_account_id,omitempty"`
	IP               string `json:"ip,omitempty"`
	UserAgent        string `json:"user_agent,omitempty"`
	ClientID         string `json:"client_id,omitempty"`
	CorrelationID    string `json:"correlation_id,omitempty"`
	CausationID      string `json:"causation_id,omitempty"`
}

// EventData is an event that has not been stored yet: what a command decides. ID must be a
// UUIDv7 (NewEventData fills one in); the store assigns stream version, global position and
// recorded-at time.
type EventData struct {
	ID            string
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
}

// Envelope is a stored, immutable event as every reader sees it.
//
// Version is the event's 1-based number within its stream (the first event of a stream has
// version 1). Position is its place in the global order of all events: strictly increasing in
// the order events became visible, not necessarily contiguous (KurrentDB positions are byte
// offsets). RecordedAt is the store's clock at append time, in UTC.
type Envelope struct {
	ID            string          `json:"id"`
	StreamID      string          `json:"stream"`
	Version       uint64          `json:"version"`
	Position      uint64          `json:"position"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	RecordedAt    time.Time       `json:"time"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
	// Hash is the event's chain hash (lowercase hex SHA-256 over the previous event's hash and
	// this event's canonical bytes; see eventstore/chain), filled by the stores' reads.
	Hash string `json:"hash,omitempty"`
}

// Event is a domain event: one Go struct per event type, declared with its aggregate's other
// events. The set is closed: only package domain declares events (each registered in
// registerEvents), so the interface's one method is unexported. EventTypeOf gives an
// event's type name.
type Event interface {
	eventType() string
}

// EventTypeOf returns e's past-tense PascalCase type name, which is also the envelope's Type
// and the public name in API.md.
func EventTypeOf(e Event) string { return e.eventType() }
