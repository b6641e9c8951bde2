package domain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-auth/vigil/domain/eventtype"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Errors returned by the account, sign-in and session commands. Commands wrap them with
// context (fmt.Errorf("...: %w", err)); compare with errors.Is and errors.As. The HTTP layer
// maps them to problem codes in one place; none of their messages contains a secret.
var (
	// ErrInvalidCredentials: the password, code or ticket owner did not check out. Sign-in
	// gives the same error for an unknown email as for a wrong password.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrInvalidCode: a TOTP or backup code was wrong, or its time step was already used. It
	// wraps ErrInvalidCredentials, so errors.Is(err, ErrInvalidCredentials) also holds.
	ErrInvalidCode = fmt.Errorf("%w: invalid code", ErrInvalidCredentials)
	// ErrNotFound: the account, device, passkey or client does not exist (or is not the
	// caller's to see).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the command conflicts with the current state: the email is taken by
	// another account, or two-factor authentication is not in the state the command needs.
	ErrConflict = errors.New("conflict")
	// ErrInvalidInput: the input failed validation. It is always wrapped in a
	// *ValidationError or a *PasswordPolicyError naming what was wrong
	// (validate.ErrInvalidInput).
	ErrInvalidInput = validate.ErrInvalidInput
	// ErrTwoFactorRequired: an organisation's policy requires two-factor authentication, so
	// it cannot be turned off. The organisation issue supplies the policy.
	ErrTwoFactorRequired = errors.New("two-factor authentication is required by policy")
	// ErrEnrollmentRequired: the session is restricted to enrolling a second factor and
	// the command is not one of those it may use.
	ErrEnrollmentRequired = errors.New("second-factor enrollment required")
	// ErrForbidden: the caller is known but may not do this: not an owner or admin of the
	// organisation, without 2FA where the command needs it, or a delegate's acting session
	// asking for a change only the account holder may make.
	ErrForbidden = errors.New("forbidden")
	// ErrDelegateNotAllowed: a delegate's acting session asked for something only the
	// account holder may do (Session.Allows: anything that could take the account over). It
	// wraps ErrForbidden.
	ErrDelegateNotAllowed = fmt.Errorf("%w: not allowed in a delegate's acting session", ErrForbidden)
	// ErrMFARequired: the command needs a session that proved a second factor (aal2), or
	// the delegate acting needs one because the owner's organisation requires 2FA. It wraps
	// ErrForbidden.
	ErrMFARequired = fmt.Errorf("%w: a session with a second factor (aal2) is required", ErrForbidden)
	// ErrSessionNotFound: no active session has this token or id (never existed, signed
	// out, expired, or belongs to another account).
	ErrSessionNotFound = errors.New("session not found")
	// ErrUnknownEvent: an envelope's type or schema version has no decoder or upcaster (the
	// registry's eventtype.ErrUnknown).
	ErrUnknownEvent = eventtype.ErrUnknown
)

// ValidationError says which input field was refused and why. It wraps ErrInvalidInput.
// Field uses the API's snake_case names (email, first_name, profile.country, ...); Reason is
// a short English sentence safe to show to the user. The checks of package validate return
// it, so it is their type.
type ValidationError = validate.Error

// PasswordPolicyError lists why a new password was refused: length, the email's local part,
// and the zxcvbn estimator's feedback (a warning and suggestions) when it scored below the
// minimum. It wraps ErrInvalidInput. Reasons are English sentences safe to show to the user.
type PasswordPolicyError struct {
	Reasons []string
}

// Error joins the reasons.
func (e *PasswordPolicyError) Error() string {
	return "password refused: " + strings.Join(e.Reasons, " ")
}

// Unwrap returns ErrInvalidInput.
func (e *PasswordPolicyError) Unwrap() error { return ErrInvalidInput }
