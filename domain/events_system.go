package domain

import (
	"time"
)

// System and client events: email reservations (system-email-<sha256>), admin bootstraps
// (system-admin-bootstrap-<sha256>, see bootstrap.go), sign-in failures for unknown emails
// (system-signin, see LoginFailed) and client applications (client-<id>).

// System and client event type names.
const (
	EventEmailReserved    = "EmailReserved"
	eventEmailReleased    = "EmailReleased"
	EventClientRegistered = "ClientRegistered"
)

// EmailReserved claims an email for AccountID. It is appended to the email's reservation
// stream before the account's AccountRegistered or EmailChanged, with the expected version
// the reservation was decided on, so two concurrent claims of one email cannot both win.
// The stream id carries only a hash of the email, not the email.
type EmailReserved struct {
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
}

// EmailReleased frees an email after AccountID changed away from it.
type EmailReleased struct {
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
}

// ClientRegistered opens a client-<id> stream: an application whose users sign in here.
type ClientRegistered struct {
	ClientID string    `json:"client_id"`
	Name     string    `json:"name"`
	At       time.Time `json:"at"`
}

// eventType implements Event: "EmailReserved".
func (EmailReserved) eventType() string { return EventEmailReserved }

// eventType implements Event: "EmailReleased".
func (EmailReleased) eventType() string { return eventEmailReleased }

// eventType implements Event: "ClientRegistered".
func (ClientRegistered) eventType() string { return EventClientRegistered }

// SigninStream holds LoginFailed events for emails that belong to no account.
const SigninStream = StreamPrefixSystem + "signin"

// AccountStream returns the stream id of an account: "account-<id>".
func AccountStream(accountID string) string { return StreamPrefixAccount + accountID }

// SessionStream returns the stream id of a session: "session-<id>".
func SessionStream(sessionID string) string { return StreamPrefixSession + sessionID }

// ClientStream returns the stream id of a client application: "client-<id>".
func ClientStream(clientID string) string { return streamPrefixClient + clientID }

// EmailStream returns the reservation stream of an email, named by index: the keyed hash of
// the normalised email (credential.Keyring.Index with purpose "email"), so that the log holds
// neither the email nor an unkeyed hash of it.
func EmailStream(index string) string {
	return StreamPrefixSystem + "email-" + index
}

// Bootstrap event type names.
const (
	EventAdminBootstrapClaimed = "AdminBootstrapClaimed"
	EventAdminBootstrapGranted = "AdminBootstrapGranted"
)

// AdminBootstrapClaimed spends a bootstrap email on AccountID: no other account can ever
// be granted admin through it.
type AdminBootstrapClaimed struct {
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
}

// AdminBootstrapGranted records that the claimed account was granted admin (its
// RoleGranted is in the log before this event).
type AdminBootstrapGranted struct {
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
}

// eventType implements Event: "AdminBootstrapClaimed".
func (AdminBootstrapClaimed) eventType() string { return EventAdminBootstrapClaimed }

// eventType implements Event: "AdminBootstrapGranted".
func (AdminBootstrapGranted) eventType() string { return EventAdminBootstrapGranted }

// AdminBootstrapStream returns the bootstrap stream of an email, named by index: its keyed
// hash (credential.Keyring.Index with purpose "admin-bootstrap").
func AdminBootstrapStream(index string) string {
	return StreamPrefixSystem + "admin-bootstrap-" + index
}

// The built-in client: portal sign-ins name it.
const (
	PortalClientID   = "portal"
	PortalClientName = "Vigil portal"
)
