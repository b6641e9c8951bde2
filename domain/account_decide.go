package domain

import (
	"fmt"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/validate"
)

// The decisions of the Account aggregate. Each one looks at the state, validates its input
// and returns the events to append (none when nothing changes) or an error; it changes
// nothing itself. Inputs that need secrets or randomness (password hashes, sealed TOTP
// secrets, backup code sets) are prepared by the command layer (domain/command) and passed
// in, so decisions are pure functions of state, input and the injected time.

// maxTOTPDevices bounds how many TOTP devices (pending or confirmed) an account may hold.
const maxTOTPDevices = 20

// DecideRegister returns the event that opens an account. Inputs are already validated and
// normalised by the command layer (validateRegistration).
func DecideRegister(accountID, email, firstName, lastName, passwordHash string, now time.Time) AccountRegistered {
	return AccountRegistered{AccountID: accountID, Email: email, FirstName: firstName, LastName: lastName,
		PasswordHash: passwordHash, At: now}
}

// DecideChangeEmail: newEmail is normalised and reserved for this account.
func (a *Account) DecideChangeEmail(newEmail string, now time.Time) []Event {
	if newEmail == a.s.Email {
		return nil
	}
	return []Event{EmailChanged{OldEmail: a.s.Email, NewEmail: newEmail, At: now}}
}

// DecideChangeName renames the account holder (each name validated); the same names write
// nothing.
func (a *Account) DecideChangeName(firstName, lastName string, now time.Time) ([]Event, error) {
	first, err := validate.Name("first_name", firstName)
	if err != nil {
		return nil, err
	}
	last, err := validate.Name("last_name", lastName)
	if err != nil {
		return nil, err
	}
	if first == a.s.FirstName && last == a.s.LastName {
		return nil, nil
	}
	return []Event{NameChanged{FirstName: first, LastName: last, At: now}}, nil
}

// DecideUpdateProfile applies patch to the profile (validated); a patch that changes nothing
// writes nothing.
func (a *Account) DecideUpdateProfile(patch ProfilePatch, now time.Time) ([]Event, error) {
	p, err := a.s.Profile.apply(patch)
	if err != nil {
		return nil, err
	}
	if p == a.s.Profile {
		return nil, nil
	}
	return []Event{ProfileUpdated{Profile: p, At: now}}, nil
}

// DecidePasswordChange records the new password hash (the caller checked the old password
// and the policy).
func (a *Account) DecidePasswordChange(passwordHash string, now time.Time) []Event {
	return []Event{PasswordChanged{PasswordHash: passwordHash, At: now}}
}

// DecideAddTOTPDevice adds a pending TOTP device named name (see validate.DeviceName) with
// its sealed secret.
func (a *Account) DecideAddTOTPDevice(deviceID, name string, secret credential.SealedSecret, now time.Time) ([]Event, error) {
	n, err := validate.DeviceName(name)
	if err != nil {
		return nil, err
	}
	if len(a.s.TOTP) >= maxTOTPDevices {
		return nil, fmt.Errorf("%w: at most %d TOTP devices", ErrConflict, maxTOTPDevices)
	}
	return []Event{TOTPDeviceAdded{DeviceID: deviceID, Name: n, Secret: secret, At: now}}, nil
}

// decideConfirmTOTPDevice confirms a pending device whose code matched time step step.
// When this turns 2FA on, the backup code set is appended too and codesIssued is true.
func (a *Account) decideConfirmTOTPDevice(deviceID string, step int64, set BackupCodesGenerated, now time.Time) (events []Event, codesIssued bool, err error) {
	d := a.device(deviceID)
	if d == nil {
		return nil, false, fmt.Errorf("totp device %s: %w", deviceID, ErrNotFound)
	}
	if d.Confirmed {
		return nil, false, fmt.Errorf("totp device %s is already confirmed: %w", deviceID, ErrConflict)
	}
	if step <= d.LastStep {
		return nil, false, ErrInvalidCode
	}
	events = []Event{TOTPDeviceConfirmed{DeviceID: deviceID, Step: step, At: now}}
	if !a.TwoFactorEnabled() {
		set.At = now
		events = append(events, set)
		codesIssued = true
	}
	return events, codesIssued, nil
}

// DecideRemoveTOTPDevice removes a device. Removing the last confirmed factor turns 2FA off
// (TwoFactorDisabled drops the backup codes), which is refused while requiredBy (the
// organisations whose policy requires 2FA) is not empty.
func (a *Account) DecideRemoveTOTPDevice(deviceID string, requiredBy []string, now time.Time) ([]Event, error) {
	d := a.device(deviceID)
	if d == nil {
		return nil, fmt.Errorf("totp device %s: %w", deviceID, ErrNotFound)
	}
	events := []Event{TOTPDeviceRemoved{DeviceID: deviceID, At: now}}
	if d.Confirmed && a.confirmedTOTPCount() == 1 && len(a.s.Passkeys) == 0 {
		if len(requiredBy) > 0 {
			return nil, fmt.Errorf("removing the last second factor: %w", ErrTwoFactorRequired)
		}
		events = append(events, TwoFactorDisabled{Reason: TwoFactorDisabledLastFactorGone, At: now})
	}
	return events, nil
}

// decideAcceptTOTP records the use of time step step of a confirmed device. A step at or
// below the device's last accepted one is refused: each code works once per device.
func (a *Account) decideAcceptTOTP(deviceID string, step int64, purpose string, now time.Time) ([]Event, error) {
	d := a.device(deviceID)
	if d == nil || !d.Confirmed || step <= d.LastStep {
		return nil, ErrInvalidCode
	}
	return []Event{TOTPCodeAccepted{DeviceID: deviceID, Step: step, Purpose: purpose, At: now}}, nil
}

// DecideSecondFactor spends a TOTP step (method totp) or a backup code (method
// backup_code) of the account, for purpose login or reauth. A code that matches nothing,
// or another method, is ErrInvalidCode.
func (a *Account) DecideSecondFactor(kr *credential.Keyring, method, code, purpose string, now time.Time) ([]Event, error) {
	switch method {
	case MethodTOTP:
		dev, step, err := a.matchTOTP(kr, code, now, "")
		if err != nil {
			return nil, err
		}
		return a.decideAcceptTOTP(dev, step, purpose, now)
	case MethodBackupCode:
		return a.decideUseBackupCode(code, purpose, now)
	}
	return nil, ErrInvalidCode
}

// DecideConfirmTOTP confirms the pending device deviceID with code, a code of its secret
// for a time step within now ± 1 (else ErrInvalidCode; an unknown device is ErrNotFound, a
// confirmed one ErrConflict). When this turns 2FA on, the backup code set is appended too
// and codesIssued is true.
func (a *Account) DecideConfirmTOTP(kr *credential.Keyring, deviceID, code string, set BackupCodesGenerated, now time.Time) (events []Event, codesIssued bool, err error) {
	d := a.device(deviceID)
	if d == nil {
		return nil, false, fmt.Errorf("totp device %s: %w", deviceID, ErrNotFound)
	}
	if d.Confirmed {
		return nil, false, fmt.Errorf("totp device %s is already confirmed: %w", deviceID, ErrConflict)
	}
	_, step, err := a.matchTOTP(kr, code, now, deviceID)
	if err != nil {
		return nil, false, err
	}
	return a.decideConfirmTOTPDevice(deviceID, step, set, now)
}

// PendingTOTPSecret opens the secret of the pending (not yet confirmed) device deviceID, to
// show it again while it is being set up; any other device is ErrNotFound.
func (a *Account) PendingTOTPSecret(kr *credential.Keyring, deviceID string) ([]byte, error) {
	d := a.device(deviceID)
	if d == nil || d.Confirmed {
		return nil, fmt.Errorf("pending totp device %s: %w", deviceID, ErrNotFound)
	}
	return kr.OpenTOTPSecret(a.ID(), d.ID, d.Secret)
}

// PasswordHash returns the account's password hash (argon2 PHC string).
func (a *Account) PasswordHash() string { return a.s.PasswordHash }

// matchTOTP finds the confirmed device (or, with pendingID set, that pending device) whose
// code for a time step within now ± 1 equals code and whose step is not used yet. It returns
// ErrInvalidCode when none does.
func (a *Account) matchTOTP(kr *credential.Keyring, code string, now time.Time, pendingID string) (deviceID string, step int64, err error) {
	for _, d := range a.s.TOTP {
		if pendingID != "" && d.ID != pendingID || pendingID == "" && !d.Confirmed {
			continue
		}
		secret, err := kr.OpenTOTPSecret(a.s.ID, d.ID, d.Secret)
		if err != nil {
			return "", 0, fmt.Errorf("totp device %s: %w", d.ID, err)
		}
		s, ok, err := credential.MatchTOTPStep(secret, code, now, d.LastStep)
		if err != nil {
			return "", 0, err
		}
		if ok {
			return d.ID, s, nil
		}
	}
	return "", 0, ErrInvalidCode
}

// decideUseBackupCode spends an unused backup code equal to code, or returns ErrInvalidCode.
func (a *Account) decideUseBackupCode(code, purpose string, now time.Time) ([]Event, error) {
	i, ok := matchBackupCode(a.s.Backup, code)
	if !ok {
		return nil, ErrInvalidCode
	}
	return []Event{BackupCodeUsed{SetID: a.s.Backup.SetID, Index: i, Purpose: purpose, At: now}}, nil
}

// DecideRegenerateBackupCodes replaces every backup code with set; only while 2FA is on.
func (a *Account) DecideRegenerateBackupCodes(set BackupCodesGenerated, now time.Time) ([]Event, error) {
	if !a.TwoFactorEnabled() {
		return nil, fmt.Errorf("backup codes need a second factor: %w", ErrConflict)
	}
	set.At = now
	return []Event{set}, nil
}

// DecideDisableTwoFactor drops every TOTP device, passkey and backup code, unless
// requiredBy is not empty (ErrTwoFactorRequired). With nothing to drop it returns no event.
func (a *Account) DecideDisableTwoFactor(requiredBy []string, now time.Time) ([]Event, error) {
	if len(requiredBy) > 0 {
		return nil, ErrTwoFactorRequired
	}
	if len(a.s.TOTP) == 0 && len(a.s.Passkeys) == 0 && a.s.Backup == nil {
		return nil, nil
	}
	return []Event{TwoFactorDisabled{Reason: twoFactorDisabledByUser, At: now}}, nil
}

func validateRole(role string) error {
	if role != RoleAdmin && role != RoleAuditor {
		return validate.Invalid("role", "must be %q or %q", RoleAdmin, RoleAuditor)
	}
	return nil
}

// DecideGrantRole grants role (admin or auditor); a role held already writes nothing.
func (a *Account) DecideGrantRole(role string, now time.Time) ([]Event, error) {
	if err := validateRole(role); err != nil {
		return nil, err
	}
	if slices.Contains(a.s.Roles, role) {
		return nil, nil
	}
	return []Event{RoleGranted{Role: role, At: now}}, nil
}

// DecideRevokeRole revokes role (admin or auditor); a role not held writes nothing.
func (a *Account) DecideRevokeRole(role string, now time.Time) ([]Event, error) {
	if err := validateRole(role); err != nil {
		return nil, err
	}
	if !slices.Contains(a.s.Roles, role) {
		return nil, nil
	}
	return []Event{RoleRevoked{Role: role, At: now}}, nil
}

// DecideErase erases the account (AccountErased); an account erased already is not found.
func (a *Account) DecideErase(now time.Time) ([]Event, error) {
	if a.Erased() {
		return nil, fmt.Errorf("account %s: %w", a.s.ID, ErrNotFound)
	}
	return []Event{AccountErased{At: now}}, nil
}
