package command

import (
	"context"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
)

// PendingTOTPKey returns the base32 secret and the otpauth URL of a pending TOTP device of
// the caller, so that an enrollment page can show the key for manual entry again (after a
// wrong confirmation code, say). Like TOTPQRCode, it serves only pending devices: a
// confirmed or unknown device gives ErrNotFound, since a secret is only shown during
// enrollment. A restricted session may use it.
func (s *Service) PendingTOTPKey(ctx context.Context, caller domain.Session, deviceID string) (secret, otpauthURL string, err error) {
	cur, err := s.authorize(caller, domain.CapEnroll)
	if err != nil {
		return "", "", err
	}
	a, err := s.repo.Load(ctx, cur.AccountID)
	if err != nil {
		return "", "", err
	}
	raw, err := a.PendingTOTPSecret(s.cfg.Keyring, deviceID)
	if err != nil {
		return "", "", err
	}
	k, err := credential.TOTPKey(raw, s.cfg.Issuer, a.Email())
	if err != nil {
		return "", "", err
	}
	return k.Secret(), k.URL(), nil
}
