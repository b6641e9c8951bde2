// Package reasons is the vocabulary of the reason fields of Vigil's events: why a session
// ended (SessionSignedOut, SessionExpired) and why a sign-in failed (LoginFailed). The values
// are part of the log's JSON and of the API (API.md), so they never change once written.
//
// It depends on nothing: package domain, the commands, the projections and the handlers all
// name these values from here.
package reasons

// Reasons of SessionSignedOut.
const (
	SignOutLogout          = "logout"
	SignOutByUser          = "signed_out_by_user"
	SignOutByAdmin         = "signed_out_by_admin"
	SignOutPasswordChanged = "password_changed"
	SignOutDelegationEnded = "delegation_ended"
	SignOutAccountErased   = "account_erased"
	SignOutPasswordReset   = "password_reset"
	SignOutReportedNotMe   = "reported_not_me"
)

// Reasons of SessionExpired: the session passed its absolute lifetime or its idle timeout.
const (
	ExpiredLifetime = "lifetime"
	ExpiredIdle     = "idle"
)

// Reasons of LoginFailed.
const (
	LoginFailedInvalidCredentials  = "invalid_credentials"
	LoginFailedUnknownAccount      = "unknown_account"
	LoginFailedInvalidSecondFactor = "invalid_second_factor"
	LoginFailedThrottled           = "throttled"
	// LoginFailedPasskeyCloneSuspected: a passkey assertion refused because its sign count
	// did not increase (beside the PasskeyCloneSuspected event).
	LoginFailedPasskeyCloneSuspected = "passkey_clone_suspected"
)
