package domain

import (
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
)

// Account events: everything on an account-<id> stream. Every event carries At, the
// domain clock's time of the decision (the envelope's RecordedAt is the store's clock).
//
// Personal data sits only in fields whose names say so: Email/OldEmail/NewEmail, FirstName,
// LastName, the Profile fields and AttemptedEmail. Secrets are never stored in clear:
// PasswordHash is an argon2id PHC string, TOTP secrets are sealed with the server key
// (credential.SealedSecret names its key id), backup codes are stored as hashes.

// Account event type names, as in API.md's "Event types".
const (
	EventAccountRegistered     = "AccountRegistered"
	EventEmailChanged          = "EmailChanged"
	EventNameChanged           = "NameChanged"
	EventProfileUpdated        = "ProfileUpdated"
	EventPasswordChanged       = "PasswordChanged"
	eventPasswordRehashed      = "PasswordRehashed"
	EventTOTPDeviceAdded       = "TOTPDeviceAdded"
	EventTOTPDeviceConfirmed   = "TOTPDeviceConfirmed"
	EventTOTPDeviceRemoved     = "TOTPDeviceRemoved"
	EventTOTPCodeAccepted      = "TOTPCodeAccepted"
	EventBackupCodesGenerated  = "BackupCodesGenerated"
	EventBackupCodeUsed        = "BackupCodeUsed"
	EventPasskeyRegistered     = "PasskeyRegistered"
	EventPasskeyRenamed        = "PasskeyRenamed"
	EventPasskeyRemoved        = "PasskeyRemoved"
	EventPasskeyCloneSuspected = "PasskeyCloneSuspected"
	EventPasskeyUsed           = "PasskeyUsed"
	EventTwoFactorDisabled     = "TwoFactorDisabled"
	EventRoleGranted           = "RoleGranted"
	EventRoleRevoked           = "RoleRevoked"
	EventLoginFailed           = "LoginFailed"
	EventAccountErased         = "AccountErased"
)

// AccountRegistered opens an account stream. Email is normalised (trimmed, lower-case).
type AccountRegistered struct {
	AccountID    string    `json:"account_id"`
	Email        string    `json:"email"`      // personal data
	FirstName    string    `json:"first_name"` // personal data
	LastName     string    `json:"last_name"`  // personal data
	PasswordHash string    `json:"password_hash"`
	At           time.Time `json:"at"`
}

// EmailChanged: the account's sign-in email changed (the new one was reserved first).
type EmailChanged struct {
	OldEmail string    `json:"old_email"` // personal data
	NewEmail string    `json:"new_email"` // personal data
	At       time.Time `json:"at"`
}

// NameChanged: first and last name after the change.
type NameChanged struct {
	FirstName string    `json:"first_name"` // personal data
	LastName  string    `json:"last_name"`  // personal data
	At        time.Time `json:"at"`
}

// ProfileUpdated holds the whole profile after the change (every field, empty when unset).
type ProfileUpdated struct {
	Profile Profile   `json:"profile"` // personal data
	At      time.Time `json:"at"`
}

// PasswordChanged: a new password, as an argon2id PHC string.
type PasswordChanged struct {
	PasswordHash string    `json:"password_hash"`
	At           time.Time `json:"at"`
}

// PasswordRehashed: the same password re-hashed at sign-in with the current argon2 cost
// (the stored hash used older parameters). It does not change password_changed_at.
type PasswordRehashed struct {
	PasswordHash string    `json:"password_hash"`
	At           time.Time `json:"at"`
}

// TOTPDeviceAdded: a pending TOTP device; Secret is the RFC 6238 key sealed with the server
// key (associated data: account id and device id).
type TOTPDeviceAdded struct {
	DeviceID string                  `json:"device_id"`
	Name     string                  `json:"name"`
	Secret   credential.SealedSecret `json:"secret"`
	At       time.Time               `json:"at"`
}

// TOTPDeviceConfirmed: the device proved a valid code for time step Step, which is thereby
// used; the device now counts as a second factor.
type TOTPDeviceConfirmed struct {
	DeviceID string    `json:"device_id"`
	Step     int64     `json:"step"`
	At       time.Time `json:"at"`
}

// TOTPDeviceRemoved: the device no longer counts; its secret is forgotten.
type TOTPDeviceRemoved struct {
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"`
}

// TOTPCodeAccepted records the last accepted RFC 6238 time step of a device (and so its last
// use). A step at or below the recorded one is refused afterwards: each code works once.
// Purpose is "login" or "reauth".
type TOTPCodeAccepted struct {
	DeviceID string    `json:"device_id"`
	Step     int64     `json:"step"`
	Purpose  string    `json:"purpose,omitempty"`
	At       time.Time `json:"at"`
}

// BackupCodesGenerated replaces every earlier backup code with a new set. CodeHashes are
// hex SHA-256 hashes of the normalised codes salted with SetID (see credential.HashBackupCode); the
// codes themselves are shown once and never stored.
type BackupCodesGenerated struct {
	SetID      string    `json:"set_id"`
	CodeHashes []string  `json:"code_hashes"`
	At         time.Time `json:"at"`
}

// BackupCodeUsed: code number Index (0-based) of set SetID was used and stops working.
type BackupCodeUsed struct {
	SetID   string    `json:"set_id"`
	Index   int       `json:"index"`
	Purpose string    `json:"purpose,omitempty"`
	At      time.Time `json:"at"`
}

// PasskeyRegistered: a WebAuthn credential. CredentialID, PublicKey (COSE) and AAGUID are
// raw bytes (base64 in JSON). The ceremony that produces it is a later piece of work.
type PasskeyRegistered struct {
	PasskeyID      string    `json:"passkey_id"`
	Name           string    `json:"name"`
	CredentialID   []byte    `json:"credential_id"`
	PublicKey      []byte    `json:"public_key"`
	SignCount      uint32    `json:"sign_count"`
	AAGUID         []byte    `json:"aaguid,omitempty"`
	Transports     []string  `json:"transports,omitempty"`
	BackupEligible bool      `json:"backup_eligible"`
	BackupState    bool      `json:"backup_state"`
	At             time.Time `json:"at"`
}

// PasskeyRenamed gives a passkey a new name.
type PasskeyRenamed struct {
	PasskeyID string    `json:"passkey_id"`
	Name      string    `json:"name"`
	At        time.Time `json:"at"`
}

// PasskeyRemoved: the passkey no longer counts as a factor.
type PasskeyRemoved struct {
	PasskeyID string    `json:"passkey_id"`
	At        time.Time `json:"at"`
}

// PasskeyCloneSuspected: an assertion's sign count did not exceed the stored one, so the
// authenticator may have been cloned; the login was refused.
type PasskeyCloneSuspected struct {
	PasskeyID         string    `json:"passkey_id"`
	StoredSignCount   uint32    `json:"stored_sign_count"`
	ReceivedSignCount uint32    `json:"received_sign_count"`
	At                time.Time `json:"at"`
}

// PasskeyUsed: a successful assertion; records the new sign count and backup state.
type PasskeyUsed struct {
	PasskeyID   string    `json:"passkey_id"`
	SignCount   uint32    `json:"sign_count"`
	BackupState bool      `json:"backup_state"`
	At          time.Time `json:"at"`
}

// Reasons of TwoFactorDisabled.
const (
	twoFactorDisabledByUser         = "disabled_by_user"
	TwoFactorDisabledLastFactorGone = "last_factor_removed"
)

// TwoFactorDisabled turns 2FA off: every TOTP device, passkey and backup code is dropped.
type TwoFactorDisabled struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Roles an account can hold.
const (
	RoleAdmin   = "admin"
	RoleAuditor = "auditor"
)

// RoleGranted gives the account a role (RoleAdmin or RoleAuditor).
type RoleGranted struct {
	Role string    `json:"role"`
	At   time.Time `json:"at"`
}

// RoleRevoked takes a role away.
type RoleRevoked struct {
	Role string    `json:"role"`
	At   time.Time `json:"at"`
}

// Stages of LoginFailed: which step of authentication failed.
const (
	StagePassword     = "password"
	StageSecondFactor = "second_factor"
	StageReauth       = "reauth"
)

// LoginFailed records a failed sign-in or re-authentication. It goes on the account stream
// of a known account and on the system-signin stream for an unknown email, where
// AttemptedEmail (personal data, normalised) names the email typed, only when it is a
// syntactically valid address: anything else typed into the email field (perhaps a
// password) is never recorded, and such a failure is on system-signin without it. No
// account is ever created for it. Reason is one of the LoginFailed* constants. Throttled failures are
// recorded at most once per throttling window per key, so a flood cannot flood the log.
type LoginFailed struct {
	Reason         string    `json:"reason"`
	Stage          string    `json:"stage"`
	Method         string    `json:"method,omitempty"` // password, totp, backup_code, passkey
	AttemptedEmail string    `json:"attempted_email,omitempty"`
	SessionID      string    `json:"session_id,omitempty"` // re-authentication of this session
	RetryAfterMS   int64     `json:"retry_after_ms,omitempty"`
	At             time.Time `json:"at"`
}

// eventType implements Event: "AccountRegistered".
func (AccountRegistered) eventType() string { return EventAccountRegistered }

// eventType implements Event: "EmailChanged".
func (EmailChanged) eventType() string { return EventEmailChanged }

// eventType implements Event: "NameChanged".
func (NameChanged) eventType() string { return EventNameChanged }

// eventType implements Event: "ProfileUpdated".
func (ProfileUpdated) eventType() string { return EventProfileUpdated }

// eventType implements Event: "PasswordChanged".
func (PasswordChanged) eventType() string { return EventPasswordChanged }

// eventType implements Event: "PasswordRehashed".
func (PasswordRehashed) eventType() string { return eventPasswordRehashed }

// eventType implements Event: "TOTPDeviceAdded".
func (TOTPDeviceAdded) eventType() string { return EventTOTPDeviceAdded }

// eventType implements Event: "TOTPDeviceConfirmed".
func (TOTPDeviceConfirmed) eventType() string { return EventTOTPDeviceConfirmed }

// eventType implements Event: "TOTPDeviceRemoved".
func (TOTPDeviceRemoved) eventType() string { return EventTOTPDeviceRemoved }

// eventType implements Event: "TOTPCodeAccepted".
func (TOTPCodeAccepted) eventType() string { return EventTOTPCodeAccepted }

// eventType implements Event: "BackupCodesGenerated".
func (BackupCodesGenerated) eventType() string { return EventBackupCodesGenerated }

// eventType implements Event: "BackupCodeUsed".
func (BackupCodeUsed) eventType() string { return EventBackupCodeUsed }

// eventType implements Event: "PasskeyRegistered".
func (PasskeyRegistered) eventType() string { return EventPasskeyRegistered }

// eventType implements Event: "PasskeyRenamed".
func (PasskeyRenamed) eventType() string { return EventPasskeyRenamed }

// eventType implements Event: "PasskeyRemoved".
func (PasskeyRemoved) eventType() string { return EventPasskeyRemoved }

// eventType implements Event: "PasskeyCloneSuspected".
func (PasskeyCloneSuspected) eventType() string { return EventPasskeyCloneSuspected }

// eventType implements Event: "PasskeyUsed".
func (PasskeyUsed) eventType() string { return EventPasskeyUsed }

// eventType implements Event: "TwoFactorDisabled".
func (TwoFactorDisabled) eventType() string { return EventTwoFactorDisabled }

// eventType implements Event: "RoleGranted".
func (RoleGranted) eventType() string { return EventRoleGranted }

// eventType implements Event: "RoleRevoked".
func (RoleRevoked) eventType() string { return EventRoleRevoked }

// eventType implements Event: "LoginFailed".
func (LoginFailed) eventType() string { return EventLoginFailed }

// AccountErased ends an account for good (API.md "Personal data and erasure"): its sessions
// are signed out, its data key is destroyed, so every personal member of its events reads
// "[erased]" from then on, and the read models forget it. It carries nothing personal: who
// erased it is the envelope's actor (the account itself, or an admin).
type AccountErased struct {
	At time.Time `json:"at"`
}

// eventType implements Event: "AccountErased".
func (AccountErased) eventType() string { return EventAccountErased }
