package command

import (
	"encoding/hex"
	"errors"
	"strings"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	webauthn "github.com/vigil-auth/vigil/domain/passkey"
)

// maxClientName bounds the names given to clients.
const maxClientName = 100

// webauthnUser is the user of a's new credentials: handle the account id's bytes, name
// the email, display name the full name (the email when there is none).
func webauthnUser(a *domain.Account) webauthn.User {
	u := webauthn.User{Handle: []byte(a.ID()), Name: a.Email(), DisplayName: strings.TrimSpace(a.FirstName() + " " + a.LastName())}
	if u.DisplayName == "" {
		u.DisplayName = a.Email()
	}
	return u
}

// descriptors names creds in WebAuthn options.
func descriptors(creds []domain.PasskeyCredential) []webauthn.Descriptor {
	out := make([]webauthn.Descriptor, 0, len(creds))
	for _, c := range creds {
		out = append(out, webauthn.Descriptor{ID: c.CredentialID, Transports: c.Transports})
	}
	return out
}

// checkNewPassword applies the password policy and turns its refusal into a
// *PasswordPolicyError (which wraps ErrInvalidInput).
func checkNewPassword(p *credential.PasswordPolicy, password, email string, names ...string) error {
	err := p.Check(password, email, names...)
	var pe *credential.PolicyError
	if errors.As(err, &pe) {
		return &domain.PasswordPolicyError{Reasons: pe.Reasons}
	}
	return err
}

// hexTokenHash is the TokenHash of SessionStarted: the hex SHA-256 of a session token.
func hexTokenHash(token string) string {
	h := credential.HashSessionToken(token)
	return hex.EncodeToString(h[:])
}

// encodeEvents encodes events decided together, with the same metadata.
func encodeEvents(events []domain.Event, md domain.Metadata) ([]domain.EventData, error) {
	out := make([]domain.EventData, 0, len(events))
	for _, e := range events {
		d, err := domain.EncodeEvent(e, md)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
