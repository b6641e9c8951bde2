package domain

import (
	"time"

	"github.com/vigil-auth/vigil/domain/eventtype"
)

// Service tokens: credentials of machines (SIEMs, compliance tools) for the event stream and
// the audit reads. Each token has its own stream, system-servicetoken-<id>, holding
// ServiceTokenCreated, then any ServiceTokenUseDenied, and at most one ServiceTokenRevoked.
// The token itself ("vgl_" + 256 random bits, base64url) is shown once, at creation; the log
// holds only its SHA-256.

// Service token event type names.
const (
	EventServiceTokenCreated   = "ServiceTokenCreated"
	EventServiceTokenRevoked   = "ServiceTokenRevoked"
	EventServiceTokenUseDenied = "ServiceTokenUseDenied"
)

// Reasons of ServiceTokenUseDenied.
const (
	DeniedRevoked           = "revoked"
	DeniedInsufficientScope = "insufficient_scope"
)

// ServiceTokenCreated opens a token's stream. TokenHash is the hex SHA-256 of the token.
type ServiceTokenCreated struct {
	TokenID   string    `json:"token_id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	TokenHash string    `json:"token_hash"`
	At        time.Time `json:"at"`
}

// ServiceTokenRevoked ends a token: every later use is refused.
type ServiceTokenRevoked struct {
	TokenID string    `json:"token_id"`
	At      time.Time `json:"at"`
}

// ServiceTokenUseDenied records a refused use of a known token: Reason is DeniedRevoked or
// DeniedInsufficientScope (then Scope is the scope that was needed). At most one is
// recorded per token and reason per DeniedInterval on each instance; Suppressed counts the
// denials since the previous one that were not recorded.
type ServiceTokenUseDenied struct {
	TokenID    string    `json:"token_id"`
	Reason     string    `json:"reason"`
	Scope      string    `json:"scope,omitempty"`
	Suppressed int       `json:"suppressed"`
	At         time.Time `json:"at"`
}

// eventType implements Event: "ServiceTokenCreated".
func (ServiceTokenCreated) eventType() string { return EventServiceTokenCreated }

// eventType implements Event: "ServiceTokenRevoked".
func (ServiceTokenRevoked) eventType() string { return EventServiceTokenRevoked }

// eventType implements Event: "ServiceTokenUseDenied".
func (ServiceTokenUseDenied) eventType() string { return EventServiceTokenUseDenied }

// registerServiceTokenEvents registers the service token events (called by registerEvents).
func registerServiceTokenEvents(r *eventtype.Registry) {
	r.Register(EventServiceTokenCreated, 1, decoderOf[ServiceTokenCreated](), fields{
		"token_id": public, "name": public, "scopes": public, "token_hash": secret,
		"at": public,
	})
	r.Register(EventServiceTokenRevoked, 1, decoderOf[ServiceTokenRevoked](), fields{
		"token_id": public, "at": public,
	})
	r.Register(EventServiceTokenUseDenied, 1, decoderOf[ServiceTokenUseDenied](), fields{
		"token_id": public, "reason": public, "scope": public, "suppressed": public,
		"at": public,
	})
}

// serviceTokenStreamPrefix prefixes the streams of service tokens (inside StreamPrefixSystem).
const serviceTokenStreamPrefix = StreamPrefixSystem + "servicetoken-"

// ServiceTokenStream returns the stream id of a service token: "system-servicetoken-<id>".
func ServiceTokenStream(tokenID string) string { return serviceTokenStreamPrefix + tokenID }
