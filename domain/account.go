package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
)

// Account is the aggregate of an account-<id> stream: identity, profile, credentials, second
// factors and roles. Its fields are unexported; it is built only by Rebuild (or from a
// snapshot followed by the same replay), and changed only by appending the events its
// decisions return. An *Account is a value read at one stream version: it is not safe for
// concurrent mutation, and commands never share one between goroutines.
type Account struct {
	s accountState
}

// accountState is the whole state of an Account. Its JSON form is the snapshot (see
// snapshot.go); a field added here must be added to the snapshot schema version.
type accountState struct {
	ID                string         `json:"id"`
	Version           uint64         `json:"version"`
	Email             string         `json:"email"`
	FirstName         string         `json:"first_name"`
	LastName          string         `json:"last_name"`
	Profile           Profile        `json:"profile"`
	PasswordHash      string         `json:"password_hash"`
	PasswordChangedAt time.Time      `json:"password_changed_at"`
	RegisteredAt      time.Time      `json:"registered_at"`
	TOTP              []totpDevice   `json:"totp,omitempty"`
	Passkeys          []passkey      `json:"passkeys,omitempty"`
	Backup            *backupCodeSet `json:"backup,omitempty"`
	Roles             []string       `json:"roles,omitempty"`
	ErasedAt          time.Time      `json:"erased_at,omitzero"`
	// Recovery: the newest verification and reset links, whether the email is verified,
	// and the events reported as "this wasn't me" (events_protection.go).
	EmailVerified bool         `json:"email_verified,omitempty"`
	Verify        *linkRequest `json:"verify,omitempty"`
	Reset         *linkRequest `json:"reset,omitempty"`
	Reported      []string     `json:"reported,omitempty"`
}

// linkRequest is a mailed link the account's events issued: its request id, the hash of
// its token, when it was issued, for which email (verification), and whether it was used.
type linkRequest struct {
	RequestID string    `json:"request_id"`
	TokenHash string    `json:"token_hash"`
	Email     string    `json:"email,omitempty"`
	At        time.Time `json:"at"`
	Used      bool      `json:"used,omitempty"`
}

type totpDevice struct {
	ID          string                  `json:"id"`
	Name        string                  `json:"name"`
	Secret      credential.SealedSecret `json:"secret"`
	Confirmed   bool                    `json:"confirmed"`
	CreatedAt   time.Time               `json:"created_at"`
	ConfirmedAt time.Time               `json:"confirmed_at"`
	LastUsedAt  time.Time               `json:"last_used_at"`
	LastStep    int64                   `json:"last_step"`
}

type passkey struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	CredentialID     []byte    `json:"credential_id"`
	PublicKey        []byte    `json:"public_key"`
	SignCount        uint32    `json:"sign_count"`
	AAGUID           []byte    `json:"aaguid,omitempty"`
	Transports       []string  `json:"transports,omitempty"`
	BackupEligible   bool      `json:"backup_eligible"`
	BackupState      bool      `json:"backup_state"`
	CreatedAt        time.Time `json:"created_at"`
	LastUsedAt       time.Time `json:"last_used_at"`
	CloneSuspectedAt time.Time `json:"clone_suspected_at"`
}

type backupCodeSet struct {
	SetID       string    `json:"set_id"`
	Hashes      []string  `json:"hashes"`
	Used        []bool    `json:"used"`
	GeneratedAt time.Time `json:"generated_at"`
}

// rebuildAccount rebuilds an Account from its stream: events must
// be the stream's events from version 1 on, in order, starting with AccountRegistered. It
// fails on a gap in versions, an event that does not belong on an account stream, or no
// events (ErrNotFound). The repository that starts from a snapshot replays the events after
// it through the same per-event apply.
func rebuildAccount(accountID string, events []Envelope) (*Account, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("account %s: %w", accountID, ErrNotFound)
	}
	a := &Account{s: accountState{ID: accountID}}
	if err := a.replay(events); err != nil {
		return nil, err
	}
	return a, nil
}

// replay applies events that continue the stream at a.s.Version+1.
func (a *Account) replay(events []Envelope) error {
	for _, env := range events {
		if err := a.replayOne(env, nil); err != nil {
			return err
		}
	}
	return nil
}

// replayOne applies env, whose data decodes to e (nil: decoded here).
func (a *Account) replayOne(env Envelope, e Event) error {
	if e == nil {
		var err error
		if e, err = decodeNext("account", a.s.ID, a.s.Version, env); err != nil {
			return err
		}
	} else if err := checkNext("account", a.s.ID, a.s.Version, env); err != nil {
		return err
	}
	if a.s.Version == 0 {
		if _, ok := e.(AccountRegistered); !ok {
			return fmt.Errorf("account %s: stream starts with %s, not AccountRegistered", a.s.ID, env.Type)
		}
	}
	if err := a.apply(e); err != nil {
		return fmt.Errorf("account %s v%d: %w", a.s.ID, env.Version, err)
	}
	a.s.Version = env.Version
	return nil
}

var errNotAccountEvent = errors.New("event does not belong on an account stream")

// apply changes the state by one event. Events are facts: apply never refuses one for
// business reasons (the decision was made when it was appended); it tolerates references
// to devices that are gone.
func (a *Account) apply(e Event) error {
	s := &a.s
	switch e := e.(type) {
	case AccountRegistered:
		s.Email, s.FirstName, s.LastName = e.Email, e.FirstName, e.LastName
		s.PasswordHash, s.PasswordChangedAt, s.RegisteredAt = e.PasswordHash, e.At, e.At
	case EmailChanged:
		s.Email, s.EmailVerified = e.NewEmail, false
	case NameChanged:
		s.FirstName, s.LastName = e.FirstName, e.LastName
	case ProfileUpdated:
		s.Profile = e.Profile
	case PasswordChanged:
		// A reset link issued before a password change no longer works.
		s.PasswordHash, s.PasswordChangedAt, s.Reset = e.PasswordHash, e.At, nil
	case PasswordRehashed:
		s.PasswordHash = e.PasswordHash
	case TOTPDeviceAdded:
		s.TOTP = append(s.TOTP, totpDevice{ID: e.DeviceID, Name: e.Name, Secret: e.Secret, CreatedAt: e.At})
	case TOTPDeviceConfirmed:
		if d := a.device(e.DeviceID); d != nil {
			d.Confirmed, d.ConfirmedAt, d.LastUsedAt = true, e.At, e.At
			d.LastStep = max(d.LastStep, e.Step)
		}
	case TOTPDeviceRemoved:
		s.TOTP = slices.DeleteFunc(s.TOTP, func(d totpDevice) bool { return d.ID == e.DeviceID })
	case TOTPCodeAccepted:
		if d := a.device(e.DeviceID); d != nil {
			d.LastStep, d.LastUsedAt = max(d.LastStep, e.Step), e.At
		}
	case BackupCodesGenerated:
		s.Backup = &backupCodeSet{SetID: e.SetID, Hashes: slices.Clone(e.CodeHashes),
			Used: make([]bool, len(e.CodeHashes)), GeneratedAt: e.At}
	case BackupCodeUsed:
		if s.Backup != nil && s.Backup.SetID == e.SetID && e.Index >= 0 && e.Index < len(s.Backup.Used) {
			s.Backup.Used[e.Index] = true
		}
	case PasskeyRegistered:
		s.Passkeys = append(s.Passkeys, passkey{ID: e.PasskeyID, Name: e.Name, CredentialID: e.CredentialID,
			PublicKey: e.PublicKey, SignCount: e.SignCount, AAGUID: e.AAGUID, Transports: e.Transports,
			BackupEligible: e.BackupEligible, BackupState: e.BackupState, CreatedAt: e.At})
	case PasskeyRenamed:
		if p := a.passkey(e.PasskeyID); p != nil {
			p.Name = e.Name
		}
	case PasskeyRemoved:
		s.Passkeys = slices.DeleteFunc(s.Passkeys, func(p passkey) bool { return p.ID == e.PasskeyID })
	case PasskeyCloneSuspected:
		if p := a.passkey(e.PasskeyID); p != nil {
			p.CloneSuspectedAt = e.At
		}
	case PasskeyUsed:
		if p := a.passkey(e.PasskeyID); p != nil {
			p.SignCount, p.BackupState, p.LastUsedAt = e.SignCount, e.BackupState, e.At
		}
	case TwoFactorDisabled:
		s.TOTP, s.Passkeys, s.Backup = nil, nil, nil
	case RoleGranted:
		if !slices.Contains(s.Roles, e.Role) {
			s.Roles = append(s.Roles, e.Role)
			slices.Sort(s.Roles)
		}
	case RoleRevoked:
		s.Roles = slices.DeleteFunc(s.Roles, func(r string) bool { return r == e.Role })
	case LoginFailed:
		// A record for the activity and audit logs; the throttling counts live in the
		// ThrottleStore, not in the account.
	case EmailVerificationRequested:
		s.Verify = &linkRequest{RequestID: e.RequestID, TokenHash: e.TokenHash, Email: e.Email, At: e.At}
	case EmailVerified:
		if s.Verify != nil && s.Verify.RequestID == e.RequestID {
			s.Verify.Used = true
		}
		if e.Email == s.Email {
			s.EmailVerified = true
		}
	case PasswordResetRequested:
		// The newest request supersedes the links before it.
		s.Reset = &linkRequest{RequestID: e.RequestID, TokenHash: e.TokenHash, At: e.At}
	case PasswordResetCompleted:
		s.PasswordHash, s.PasswordChangedAt, s.Reset = e.PasswordHash, e.At, nil
	case SignInRiskDetected:
		// A record for the activity log, the security teams and the mail outbox.
	case SuspiciousActivityReported:
		if !slices.Contains(s.Reported, e.EventID) {
			s.Reported = append(s.Reported, e.EventID)
		}
	case AccountErased:
		// Nothing personal stays in memory either: the stream's earlier events now read
		// "[erased]", and a replay after this event must give the same state.
		a.s = accountState{ID: a.s.ID, Version: a.s.Version, RegisteredAt: a.s.RegisteredAt, ErasedAt: e.At}
	default:
		return fmt.Errorf("%s: %w", e.eventType(), errNotAccountEvent)
	}
	return nil
}

func (a *Account) device(id string) *totpDevice {
	for i := range a.s.TOTP {
		if a.s.TOTP[i].ID == id {
			return &a.s.TOTP[i]
		}
	}
	return nil
}

func (a *Account) passkey(id string) *passkey {
	for i := range a.s.Passkeys {
		if a.s.Passkeys[i].ID == id {
			return &a.s.Passkeys[i]
		}
	}
	return nil
}

// Erased reports whether the account was erased (AccountErased): it cannot sign in, and
// nothing but its id and times is left.
func (a *Account) Erased() bool { return !a.s.ErasedAt.IsZero() }

// ID returns the account id.
func (a *Account) ID() string { return a.s.ID }

// Version returns the stream version the aggregate was read at (its last event's version).
func (a *Account) Version() uint64 { return a.s.Version }

// Email returns the normalised sign-in email.
func (a *Account) Email() string { return a.s.Email }

// FirstName returns the first name.
func (a *Account) FirstName() string { return a.s.FirstName }

// LastName returns the last name.
func (a *Account) LastName() string { return a.s.LastName }

// Profile returns the profile.
func (a *Account) Profile() Profile { return a.s.Profile }

// roles returns the roles held, sorted.
func (a *Account) roles() []string { return slices.Clone(a.s.Roles) }

// HasRole reports whether the account holds role.
func (a *Account) HasRole(role string) bool { return slices.Contains(a.s.Roles, role) }

// TwoFactorEnabled reports whether the account has a confirmed TOTP device or a passkey.
func (a *Account) TwoFactorEnabled() bool {
	return a.confirmedTOTPCount() > 0 || len(a.s.Passkeys) > 0
}

func (a *Account) confirmedTOTPCount() int {
	n := 0
	for _, d := range a.s.TOTP {
		if d.Confirmed {
			n++
		}
	}
	return n
}

// backupCodesRemaining returns how many backup codes are unused.
func (a *Account) backupCodesRemaining() int {
	if a.s.Backup == nil {
		return 0
	}
	n := 0
	for _, u := range a.s.Backup.Used {
		if !u {
			n++
		}
	}
	return n
}

// SecondFactorMethods returns the second-factor methods a sign-in may use, in the API's
// order: "totp" with a confirmed device, "backup_code" while codes remain, "passkey" with a
// passkey.
func (a *Account) SecondFactorMethods() []string {
	var m []string
	if a.confirmedTOTPCount() > 0 {
		m = append(m, MethodTOTP)
	}
	if a.backupCodesRemaining() > 0 {
		m = append(m, MethodBackupCode)
	}
	if len(a.s.Passkeys) > 0 {
		m = append(m, MethodPasskey)
	}
	return m
}

// TOTPDeviceInfo describes a TOTP device without its secret.
type TOTPDeviceInfo struct {
	ID          string
	Name        string
	Confirmed   bool
	CreatedAt   time.Time
	ConfirmedAt time.Time // zero while pending
	LastUsedAt  time.Time // zero when never used
}

// PasskeyInfo describes a passkey without its key material.
type PasskeyInfo struct {
	ID               string
	Name             string
	CreatedAt        time.Time
	LastUsedAt       time.Time // zero when never used
	BackupEligible   bool
	BackedUp         bool // the backup-state flag of the last assertion
	CloneSuspectedAt time.Time
}

// PasskeyCredential is the key material of a passkey, for the WebAuthn ceremonies.
type PasskeyCredential struct {
	PasskeyInfo
	CredentialID []byte
	PublicKey    []byte // COSE
	SignCount    uint32
	AAGUID       []byte
	Transports   []string
}

// SecurityState is the security page of an account (API.md's /me/security) as the
// aggregate knows it. TwoFactorRequiredBy is filled by
// command.Service.Security from the policy.
type SecurityState struct {
	AccountID           string
	PasswordChangedAt   time.Time
	TwoFactorEnabled    bool
	TwoFactorRequiredBy []string
	TOTPDevices         []TOTPDeviceInfo
	Passkeys            []PasskeyInfo
	// BackupCodes tells how many backup codes remain and when the set was generated (zero
	// when there is none).
	BackupCodes struct {
		Remaining   int
		GeneratedAt time.Time
	}
	Roles []string
}

// Security returns the account's security state.
func (a *Account) Security() SecurityState {
	st := SecurityState{
		AccountID:         a.s.ID,
		PasswordChangedAt: a.s.PasswordChangedAt,
		TwoFactorEnabled:  a.TwoFactorEnabled(),
		Roles:             a.roles(),
	}
	st.BackupCodes.Remaining = a.backupCodesRemaining()
	if a.s.Backup != nil {
		st.BackupCodes.GeneratedAt = a.s.Backup.GeneratedAt
	}
	for _, d := range a.s.TOTP {
		st.TOTPDevices = append(st.TOTPDevices, TOTPDeviceInfo{ID: d.ID, Name: d.Name, Confirmed: d.Confirmed,
			CreatedAt: d.CreatedAt, ConfirmedAt: d.ConfirmedAt, LastUsedAt: d.LastUsedAt})
	}
	for _, p := range a.s.Passkeys {
		st.Passkeys = append(st.Passkeys, p.info())
	}
	return st
}

func (p passkey) info() PasskeyInfo {
	return PasskeyInfo{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt,
		BackupEligible: p.BackupEligible, BackedUp: p.BackupState, CloneSuspectedAt: p.CloneSuspectedAt}
}

// Passkeys returns the key material of every passkey, for the WebAuthn ceremonies.
func (a *Account) Passkeys() []PasskeyCredential {
	out := make([]PasskeyCredential, 0, len(a.s.Passkeys))
	for _, p := range a.s.Passkeys {
		out = append(out, PasskeyCredential{PasskeyInfo: p.info(), CredentialID: slices.Clone(p.CredentialID),
			PublicKey: slices.Clone(p.PublicKey), SignCount: p.SignCount, AAGUID: slices.Clone(p.AAGUID),
			Transports: slices.Clone(p.Transports)})
	}
	return out
}

// RecoveryState is what the account's recovery and protection events left (API.md "Mail,
// recovery and account protection"): whether the current email is verified, the pending
// verification and reset links (empty RequestID: none), and the events reported as "this
// wasn't me". The command layer decides on link tokens from it, so their single use and
// expiry hold across instances and restarts.
type RecoveryState struct {
	// EmailVerified: the current email was confirmed (an email change clears it).
	EmailVerified bool
	// VerifyRequestID, VerifyTokenHash and VerifyAt name the newest verification link when
	// it is for the current email and not used yet.
	VerifyRequestID, VerifyTokenHash string
	VerifyAt                         time.Time
	// ResetRequestID, ResetTokenHash and ResetAt name the newest reset link when it is not
	// used yet and no password change came after it.
	ResetRequestID, ResetTokenHash string
	ResetAt                        time.Time
	// Reported lists the event ids named by SuspiciousActivityReported, oldest first.
	Reported []string
}

// Recovery returns the account's recovery state.
func (a *Account) Recovery() RecoveryState {
	st := RecoveryState{EmailVerified: a.s.EmailVerified, Reported: slices.Clone(a.s.Reported)}
	if v := a.s.Verify; v != nil && !v.Used && v.Email == a.s.Email {
		st.VerifyRequestID, st.VerifyTokenHash, st.VerifyAt = v.RequestID, v.TokenHash, v.At
	}
	if r := a.s.Reset; r != nil && !r.Used {
		st.ResetRequestID, st.ResetTokenHash, st.ResetAt = r.RequestID, r.TokenHash, r.At
	}
	return st
}
