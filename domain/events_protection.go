package domain

import "time"

// Recovery and protection events (API.md "Mail, recovery and account protection"), all on the
// account-<id> stream. Link tokens are never stored: a token is a MAC over its purpose, the
// account, the request it answers and its issue time (credential.LinkToken), and the events
// that issue one keep only its SHA-256 (TokenHash) so that each works once.

// Recovery and protection event type names, as in API.md's "Event types".
const (
	EventEmailVerificationRequested = "EmailVerificationRequested"
	EventEmailVerified              = "EmailVerified"
	EventPasswordResetRequested     = "PasswordResetRequested"
	EventPasswordResetCompleted     = "PasswordResetCompleted"
	EventSignInRiskDetected         = "SignInRiskDetected"
	EventSuspiciousActivityReported = "SuspiciousActivityReported"
)

// EmailVerificationRequested: a verification link for Email was issued (at registration,
// after an email change, or on request). RequestID names the link; only the newest request
// for the account's current email can be confirmed, within 24 hours.
type EmailVerificationRequested struct {
	RequestID string    `json:"request_id"`
	Email     string    `json:"email"` // personal data
	TokenHash string    `json:"token_hash"`
	At        time.Time `json:"at"`
}

// EmailVerified: the link of RequestID was followed; Email is verified until it changes.
type EmailVerified struct {
	RequestID string    `json:"request_id"`
	Email     string    `json:"email"` // personal data
	At        time.Time `json:"at"`
}

// PasswordResetRequested: a reset link was mailed; it works once, within 30 minutes, and
// not after a later password change.
type PasswordResetRequested struct {
	RequestID string    `json:"request_id"`
	TokenHash string    `json:"token_hash"`
	At        time.Time `json:"at"`
}

// PasswordResetCompleted: the link of RequestID set a new password (an argon2id PHC
// string); every session was signed out (reason password_reset), second factors stay.
type PasswordResetCompleted struct {
	RequestID    string    `json:"request_id"`
	PasswordHash string    `json:"password_hash"`
	At           time.Time `json:"at"`
}

// Risk signals of SignInRiskDetected.
const (
	SignalNewDevice        = "new_device"
	SignalNewCountry       = "new_country"
	SignalImpossibleTravel = "impossible_travel"
)

// SignInRiskDetected: the sign-in of SessionID (its LoginSucceeded is LoginEventID) stood out
// against the account's history. Signals lists SignalNewDevice, SignalNewCountry and
// SignalImpossibleTravel; Country and PreviousCountry are ISO codes of the two located
// sign-ins compared, SpeedKMH the travel speed needed between them (after allowing for both
// accuracy radii), Device the browser and OS ("Firefox on Linux").
type SignInRiskDetected struct {
	SessionID       string    `json:"session_id"`
	LoginEventID    string    `json:"login_event_id"`
	Signals         []string  `json:"signals"`
	Device          string    `json:"device,omitempty"`           // personal data
	Country         string    `json:"country,omitempty"`          // personal data
	PreviousCountry string    `json:"previous_country,omitempty"` // personal data
	SpeedKMH        int64     `json:"speed_kmh,omitempty"`
	At              time.Time `json:"at"`
}

// Where a SuspiciousActivityReported came from.
const (
	ReportFromMail   = "mail"
	ReportFromPortal = "portal"
)

// SuspiciousActivityReported: the account holder said "this wasn't me" about EventID (an
// event of the account or of one of its sessions, named by the mail's link or picked on the
// activity page). Every session was signed out (reason reported_not_me; from the portal, all
// but the reporting one) and a reset link mailed (the PasswordResetRequested beside it).
type SuspiciousActivityReported struct {
	EventID string    `json:"event_id"`
	Source  string    `json:"source"`
	At      time.Time `json:"at"`
}

// eventType implements Event: "EmailVerificationRequested".
func (EmailVerificationRequested) eventType() string { return EventEmailVerificationRequested }

// eventType implements Event: "EmailVerified".
func (EmailVerified) eventType() string { return EventEmailVerified }

// eventType implements Event: "PasswordResetRequested".
func (PasswordResetRequested) eventType() string { return EventPasswordResetRequested }

// eventType implements Event: "PasswordResetCompleted".
func (PasswordResetCompleted) eventType() string { return EventPasswordResetCompleted }

// eventType implements Event: "SignInRiskDetected".
func (SignInRiskDetected) eventType() string { return EventSignInRiskDetected }

// eventType implements Event: "SuspiciousActivityReported".
func (SuspiciousActivityReported) eventType() string { return EventSuspiciousActivityReported }
