package domain

import "time"

// Session events: everything on a session-<id> stream. A sign-in writes LoginSucceeded and
// SessionStarted together as the stream's first two events, so an account's stream does not
// grow with its sign-ins. Every event carries At, the domain clock's time of the decision.

// Session event type names, as in API.md's "Event types".
const (
	EventLoginSucceeded   = "LoginSucceeded"
	EventSessionStarted   = "SessionStarted"
	EventSessionAccessed  = "SessionAccessed"
	EventReauthSucceeded  = "ReauthSucceeded"
	EventSessionSignedOut = "SessionSignedOut"
	EventSessionExpired   = "SessionExpired"
)

// Authentication methods references (RFC 8176 style) as used in amr.
const (
	AMRPassword   = "pwd"
	AMROTP        = "otp"
	AMRBackupCode = "backup_code"
	AMRPasskey    = "passkey"
)

// Authenticator assurance levels.
const (
	AAL1 = "aal1" // one factor (password or, later, a passkey alone)
	AAL2 = "aal2" // two factors
)

// Sign-in methods, as in LoginSucceeded.Method and LoginFailed.Method.
const (
	MethodPassword   = "password"
	MethodTOTP       = "totp"
	MethodBackupCode = "backup_code"
	MethodPasskey    = "passkey"
)

// LoginSucceeded records a completed sign-in. Method is the last step that completed it
// (password, totp, backup_code, passkey); AMR lists every method used; AAL follows from AMR.
type LoginSucceeded struct {
	AccountID string    `json:"account_id"`
	SessionID string    `json:"session_id"`
	Method    string    `json:"method"`
	AMR       []string  `json:"amr"`
	AAL       string    `json:"aal"`
	ClientID  string    `json:"client_id,omitempty"`
	At        time.Time `json:"at"`
}

// SessionStarted opens a session. TokenHash is the hex SHA-256 of the opaque token (the
// token itself is never stored). ExpiresAt is the absolute end; IdleTimeoutSeconds the idle
// limit. Restricted sessions may only enroll a second factor. ActorAccountID is set when a
// delegate acts for AccountID, under the delegation DelegationID (an acting session: its
// ExpiresAt is at most the delegation's).
type SessionStarted struct {
	SessionID          string    `json:"session_id"`
	AccountID          string    `json:"account_id"`
	ActorAccountID     string    `json:"actor_account_id,omitempty"`
	DelegationID       string    `json:"delegation_id,omitempty"`
	TokenHash          string    `json:"token_hash"`
	ClientID           string    `json:"client_id,omitempty"`
	AMR                []string  `json:"amr"`
	AAL                string    `json:"aal"`
	Restricted         bool      `json:"restricted"`
	StartedAt          time.Time `json:"started_at"`
	ExpiresAt          time.Time `json:"expires_at"`
	IdleTimeoutSeconds int64     `json:"idle_timeout_seconds"`
}

// SessionAccessed: the session was used at At. Written at most once per session per
// minute (command.Config.TouchInterval); the in-memory index keeps the exact last access.
type SessionAccessed struct {
	At time.Time `json:"at"`
}

// ReauthSucceeded renews the session's authenticated_at (step-up). AMR is the session's amr
// after the re-authentication, AAL its level; a second factor lifts a restriction.
type ReauthSucceeded struct {
	Method string    `json:"method"`
	AMR    []string  `json:"amr"`
	AAL    string    `json:"aal"`
	At     time.Time `json:"at"`
}

// SessionSignedOut ends a session; Reason is one of the SignOut* constants.
type SessionSignedOut struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// SessionExpired: the expiry sweeper noticed the session passed its absolute lifetime or its
// idle timeout (Reason reasons.ExpiredLifetime or reasons.ExpiredIdle).
type SessionExpired struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// eventType implements Event: "LoginSucceeded".
func (LoginSucceeded) eventType() string { return EventLoginSucceeded }

// eventType implements Event: "SessionStarted".
func (SessionStarted) eventType() string { return EventSessionStarted }

// eventType implements Event: "SessionAccessed".
func (SessionAccessed) eventType() string { return EventSessionAccessed }

// eventType implements Event: "ReauthSucceeded".
func (ReauthSucceeded) eventType() string { return EventReauthSucceeded }

// eventType implements Event: "SessionSignedOut".
func (SessionSignedOut) eventType() string { return EventSessionSignedOut }

// eventType implements Event: "SessionExpired".
func (SessionExpired) eventType() string { return EventSessionExpired }

// MethodDelegation is the LoginSucceeded method of an acting session.
const MethodDelegation = "delegation"
