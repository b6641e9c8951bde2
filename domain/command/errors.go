package command

import (
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/ephemeral"
)

// Errors of the commands (in addition to those of package domain): they come from the
// application layer's own state (the step-up window, the client cache, login tickets,
// passkey ceremonies), not from an aggregate's decision.
var (
	// ErrReauthenticationRequired: the command is sensitive and the session's last
	// authentication is older than the step-up window.
	ErrReauthenticationRequired = errors.New("reauthentication required")
	// ErrUnknownClient: the client id names no registered client application.
	ErrUnknownClient = errors.New("unknown client")
	// ErrTicketInvalid: the login ticket is unknown, expired, already used or burnt by too
	// many wrong codes. The user must sign in with the password again. It is the error of
	// the ticket store (ephemeral.ErrTicketInvalid), returned as it is.
	ErrTicketInvalid = ephemeral.ErrTicketInvalid
	// ErrPasskeysDisabled: Config.Passkeys names no relying party, so no passkey command
	// can run.
	ErrPasskeysDisabled = errors.New("passkeys are not configured")
	// ErrCeremonyInvalid: the ceremony id is unknown, expired, already used (every ceremony
	// is single-use, whatever its outcome), kept by another instance, or was begun for
	// another purpose or another session. The user must start the ceremony again. It is the
	// error of the ceremony store (ephemeral.ErrCeremonyInvalid).
	ErrCeremonyInvalid = ephemeral.ErrCeremonyInvalid
	// ErrPasskeyCloneSuspected: the assertion was valid but its signature counter did not
	// increase, so the authenticator may have been cloned; the sign-in or re-authentication
	// was refused and PasskeyCloneSuspected recorded. It wraps ErrInvalidCredentials.
	// ErrInvalidToken: a link token (email verification, password reset, "this wasn't me")
	// that is malformed, forged, made for another purpose, used, expired, superseded by a
	// newer link or a later password change, or of an account that is gone.
	ErrInvalidToken          = errors.New("invalid link token")
	ErrPasskeyCloneSuspected = fmt.Errorf("%w: passkey sign count did not increase", domain.ErrInvalidCredentials)
)
