package command

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
)

// TOTPEnrollment is a new, pending TOTP device: its base32 secret and otpauth URL (issuer
// Config.Issuer, account = email) to show once, for typing or scanning.
type TOTPEnrollment struct {
	DeviceID   string
	Secret     string // base32, no padding
	OTPAuthURL string
	Position   uint64
}

// AddTOTPDevice adds a pending TOTP device named name (1..64 characters) to the caller's
// account: a fresh 160-bit secret, sealed with the server key in TOTPDeviceAdded. It needs a
// recent authentication; a restricted session may use it (enrollment).
func (s *Service) AddTOTPDevice(ctx context.Context, caller domain.Session, name string, rm RequestMeta) (TOTPEnrollment, error) {
	cur, err := s.sensitive(caller, domain.CapEnroll)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	secret := make([]byte, credential.TOTPSecretSize)
	if _, err := io.ReadFull(s.cfg.Rand, secret); err != nil {
		return TOTPEnrollment{}, fmt.Errorf("totp secret: %w", err)
	}
	deviceID := domain.NewID()
	sealed, err := s.cfg.Keyring.SealTOTPSecret(cur.AccountID, deviceID, secret)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	res, a, err := s.updateAccount(ctx, cur.AccountID, s.callerMetadata(cur, rm), func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideAddTOTPDevice(deviceID, name, sealed, s.now())
	})
	if err != nil {
		return TOTPEnrollment{}, err
	}
	k, err := credential.TOTPKey(secret, s.cfg.Issuer, a.Email())
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{DeviceID: deviceID, Secret: k.Secret(), OTPAuthURL: k.URL(), Position: res.LastPosition}, nil
}

// TOTPQRCode returns the QR code (PNG, credential.QRCodeSize pixels square) of the otpauth URL of a
// pending device of the caller; a confirmed or unknown device gives ErrNotFound (the secret
// is only shown during enrollment).
func (s *Service) TOTPQRCode(ctx context.Context, caller domain.Session, deviceID string) ([]byte, error) {
	cur, err := s.authorize(caller, domain.CapEnroll)
	if err != nil {
		return nil, err
	}
	a, err := s.repo.Load(ctx, cur.AccountID)
	if err != nil {
		return nil, err
	}
	secret, err := a.PendingTOTPSecret(s.cfg.Keyring, deviceID)
	if err != nil {
		return nil, err
	}
	k, err := credential.TOTPKey(secret, s.cfg.Issuer, a.Email())
	if err != nil {
		return nil, err
	}
	return credential.TOTPQRPNG(k)
}

// ConfirmTOTPDevice confirms a pending device of the caller with a current code (RFC 6238,
// ±1 step); the step is thereby used. A wrong code is ErrInvalidCode, an unknown device
// ErrNotFound, a confirmed one ErrConflict. The first confirmed second factor generates the
// backup codes. The caller's session, having now shown a second factor, becomes aal2 (and
// loses an enrollment restriction) through a ReauthSucceeded.
func (s *Service) ConfirmTOTPDevice(ctx context.Context, caller domain.Session, deviceID, code string, rm RequestMeta) (BackupCodesResult, error) {
	cur, err := s.sensitive(caller, domain.CapEnroll)
	if err != nil {
		return BackupCodesResult{}, err
	}
	set, codes, err := domain.NewBackupCodeSet(s.cfg.Rand, s.now())
	if err != nil {
		return BackupCodesResult{}, err
	}
	md := s.callerMetadata(cur, rm)
	var issued bool
	res, _, err := s.updateAccount(ctx, cur.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		events, codesIssued, err := a.DecideConfirmTOTP(s.cfg.Keyring, deviceID, code, set, s.now())
		issued = codesIssued
		return events, err
	})
	if err != nil {
		return BackupCodesResult{}, err
	}
	out := BackupCodesResult{Position: res.LastPosition}
	if issued {
		out.BackupCodes = codes
	}
	pos, err := s.provedSecondFactor(ctx, cur, md, domain.MethodTOTP, domain.AMROTP)
	out.Position = max(out.Position, pos)
	return out, err
}

// RemoveTOTPDevice removes a device of the caller (recent authentication needed). Removing
// the last second factor turns 2FA off and drops the backup codes (TwoFactorDisabled),
// which is ErrTwoFactorRequired while the TwoFactorPolicy requires 2FA.
func (s *Service) RemoveTOTPDevice(ctx context.Context, caller domain.Session, deviceID string, rm RequestMeta) (uint64, error) {
	return s.removeSecondFactor(ctx, caller, rm, func(a *domain.Account, orgs []string, now time.Time) ([]domain.Event, error) {
		return a.DecideRemoveTOTPDevice(deviceID, orgs, now)
	})
}

// BackupCodesResult holds a new set of backup codes, shown once: those of
// RegenerateBackupCodes, or those ConfirmTOTPDevice generated when its confirmation turned
// 2FA on (else nil).
type BackupCodesResult struct {
	BackupCodes []string
	Position    uint64
}

// RegenerateBackupCodes replaces every backup code of the caller with ten new ones (recent
// authentication needed); earlier codes stop working. Without 2FA it is ErrConflict.
func (s *Service) RegenerateBackupCodes(ctx context.Context, caller domain.Session, rm RequestMeta) (BackupCodesResult, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return BackupCodesResult{}, err
	}
	set, codes, err := domain.NewBackupCodeSet(s.cfg.Rand, s.now())
	if err != nil {
		return BackupCodesResult{}, err
	}
	res, _, err := s.updateAccount(ctx, cur.AccountID, s.callerMetadata(cur, rm), func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideRegenerateBackupCodes(set, s.now())
	})
	if err != nil {
		return BackupCodesResult{}, err
	}
	return BackupCodesResult{BackupCodes: codes, Position: res.LastPosition}, nil
}

// DisableTwoFactor removes every TOTP device, passkey and backup code of the caller. It
// needs a recent authentication and the password (ErrInvalidCredentials, throttled), and is
// ErrTwoFactorRequired while the TwoFactorPolicy requires 2FA. With nothing to remove it
// writes nothing.
func (s *Service) DisableTwoFactor(ctx context.Context, caller domain.Session, password string, rm RequestMeta) (uint64, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	a, md, err := s.callerAccount(ctx, cur, rm)
	if err != nil {
		return 0, err
	}
	if err := s.checkPassword(ctx, a, password, cur.ID, md, rm); err != nil {
		return 0, err
	}
	orgs, err := s.requiredBy(ctx, cur.AccountID)
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateAccount(ctx, cur.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideDisableTwoFactor(orgs, s.now())
	})
	return res.LastPosition, err
}
