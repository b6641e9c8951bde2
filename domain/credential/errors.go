package credential

import (
	"errors"
	"strings"
)

// Errors of the credential primitives; compare with errors.Is and errors.As.
var (
	// ErrInvalidHash: a stored password hash is not a PHC string this package understands.
	ErrInvalidHash = errors.New("invalid password hash")
	// ErrUnknownKey: a sealed secret names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("unknown secret key id")
	// ErrPasswordRefused: a new password does not meet the policy. *PolicyError wraps it.
	ErrPasswordRefused = errors.New("password refused")
)

// PolicyError lists why PasswordPolicy.Check refused a new password: length, the email's
// local part, and the zxcvbn estimator's feedback when it scored below the minimum. Reasons
// are English sentences safe to show to the user. It wraps ErrPasswordRefused. (Package
// domain turns it into its *PasswordPolicyError, which wraps domain.ErrInvalidInput.)
type PolicyError struct {
	Reasons []string
}

// Error joins the reasons.
func (e *PolicyError) Error() string {
	return "password refused: " + strings.Join(e.Reasons, " ")
}

// Unwrap returns ErrPasswordRefused.
func (e *PolicyError) Unwrap() error { return ErrPasswordRefused }
