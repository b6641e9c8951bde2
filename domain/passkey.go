package domain

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	webauthn "github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Passkeys (WebAuthn credentials): errors and the decisions of the Account aggregate about
// them. The ceremonies are in domain/command (passkey.go); their configuration
// (passkey.Config) and verification in package passkey (imported as webauthn: domain's own passkey is the
// aggregate's record); the server-side ceremony state in package ephemeral.

// Errors of the passkey commands, in addition to those of errors.go.
var (
	// ErrPasskeyInvalid: a passkey assertion did not check out (unknown credential, wrong
	// origin, relying party or challenge, no user presence, bad signature, malformed). It
	// wraps ErrInvalidCredentials, so errors.Is(err, ErrInvalidCredentials) also holds: an
	// unknown credential gets the same answer as a wrong password.
	ErrPasskeyInvalid = fmt.Errorf("%w: passkey assertion refused", ErrInvalidCredentials)
)

// maxPasskeys bounds how many passkeys an account may hold.
const maxPasskeys = 20

// StagePasskey is the LoginFailed stage of a usernameless passkey sign-in, where the passkey
// is the whole sign-in (with a login ticket the stage is StageSecondFactor).
const StagePasskey = "passkey"

// CanAddPasskey returns ErrConflict when the account holds as many passkeys as it may.
func (a *Account) CanAddPasskey() error {
	if len(a.s.Passkeys) >= maxPasskeys {
		return fmt.Errorf("%w: at most %d passkeys", ErrConflict, maxPasskeys)
	}
	return nil
}

func (a *Account) passkeyByCredential(credentialID []byte) *passkey {
	for i := range a.s.Passkeys {
		if bytes.Equal(a.s.Passkeys[i].CredentialID, credentialID) {
			return &a.s.Passkeys[i]
		}
	}
	return nil
}

// DecideRegisterPasskey adds a verified credential named name (1..64 characters). A
// credential the account holds already is ErrConflict, so is a 21st passkey. When this
// turns 2FA on, the backup code set is appended too and codesIssued is true.
func (a *Account) DecideRegisterPasskey(passkeyID, name string, c webauthn.Registration, set BackupCodesGenerated, now time.Time) (events []Event, codesIssued bool, err error) {
	n, err := validate.DeviceName(name)
	if err != nil {
		return nil, false, err
	}
	if a.passkeyByCredential(c.CredentialID) != nil {
		return nil, false, fmt.Errorf("this passkey is registered already: %w", ErrConflict)
	}
	if err := a.CanAddPasskey(); err != nil {
		return nil, false, err
	}
	events = []Event{PasskeyRegistered{PasskeyID: passkeyID, Name: n, CredentialID: slices.Clone(c.CredentialID),
		PublicKey: slices.Clone(c.PublicKey), SignCount: c.SignCount, AAGUID: slices.Clone(c.AAGUID),
		Transports: slices.Clone(c.Transports), BackupEligible: c.BackupEligible, BackupState: c.BackupState, At: now}}
	if !a.TwoFactorEnabled() {
		set.At = now
		events = append(events, set)
		codesIssued = true
	}
	return events, codesIssued, nil
}

// DecideRenamePasskey renames a passkey (ErrNotFound for an unknown one); the same name
// writes nothing.
func (a *Account) DecideRenamePasskey(passkeyID, name string, now time.Time) ([]Event, error) {
	p := a.passkey(passkeyID)
	if p == nil {
		return nil, fmt.Errorf("passkey %s: %w", passkeyID, ErrNotFound)
	}
	n, err := validate.DeviceName(name)
	if err != nil {
		return nil, err
	}
	if n == p.Name {
		return nil, nil
	}
	return []Event{PasskeyRenamed{PasskeyID: passkeyID, Name: n, At: now}}, nil
}

// DecideRemovePasskey removes a passkey. The rule is the one of DecideRemoveTOTPDevice:
// removing the last second factor (no other passkey, no confirmed TOTP device) turns 2FA
// off (TwoFactorDisabled, reason last_factor_removed, drops the backup codes), which is
// refused with ErrTwoFactorRequired while requiredBy (the organisations whose policy
// requires 2FA) is not empty.
func (a *Account) DecideRemovePasskey(passkeyID string, requiredBy []string, now time.Time) ([]Event, error) {
	if a.passkey(passkeyID) == nil {
		return nil, fmt.Errorf("passkey %s: %w", passkeyID, ErrNotFound)
	}
	events := []Event{PasskeyRemoved{PasskeyID: passkeyID, At: now}}
	if len(a.s.Passkeys) == 1 && a.confirmedTOTPCount() == 0 {
		if len(requiredBy) > 0 {
			return nil, fmt.Errorf("removing the last second factor: %w", ErrTwoFactorRequired)
		}
		events = append(events, TwoFactorDisabled{Reason: TwoFactorDisabledLastFactorGone, At: now})
	}
	return events, nil
}

// PasskeyUse is a verified assertion of a stored passkey: the input of DecidePasskeyUse.
type PasskeyUse struct {
	PasskeyID   string
	SignCount   uint32
	BackupState bool
}

// DecidePasskeyUse records a verified assertion. When the stored or the received sign
// count is non-zero and the received one does not exceed the stored one, the authenticator
// may be cloned: the events are PasskeyCloneSuspected and a LoginFailed (reason
// passkey_clone_suspected, with failure's stage, method and session) and cloned is true, so
// the caller appends them and refuses. Otherwise the event is PasskeyUsed. A passkey
// removed meanwhile is ErrPasskeyInvalid.
func (a *Account) DecidePasskeyUse(u PasskeyUse, failure LoginFailed, now time.Time) (events []Event, cloned bool, err error) {
	p := a.passkey(u.PasskeyID)
	if p == nil {
		return nil, false, fmt.Errorf("passkey %s removed: %w", u.PasskeyID, ErrPasskeyInvalid)
	}
	if (p.SignCount != 0 || u.SignCount != 0) && u.SignCount <= p.SignCount {
		failure.Reason, failure.Method, failure.At = reasons.LoginFailedPasskeyCloneSuspected, MethodPasskey, now
		return []Event{PasskeyCloneSuspected{PasskeyID: p.ID, StoredSignCount: p.SignCount, ReceivedSignCount: u.SignCount, At: now},
			failure}, true, nil
	}
	return []Event{PasskeyUsed{PasskeyID: p.ID, SignCount: u.SignCount, BackupState: u.BackupState, At: now}}, false, nil
}
