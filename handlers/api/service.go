package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
)

// The domain commands and queries the JSON API runs, grouped by who they serve, so that the
// API depends on what it calls and a test can stand in for any part (*command.Service
// satisfies every one; Service is all of them).

// Accounts registers accounts and reads them.
type Accounts interface {
	Register(ctx context.Context, in command.Registration, rm command.RequestMeta) (command.RegisterResult, error)
	Account(ctx context.Context, accountID string) (*domain.Account, error)
	LookupEmail(ctx context.Context, email string) (string, error)
	Security(ctx context.Context, accountID string) (domain.SecurityState, error)
	PasswordPolicy() *credential.PasswordPolicy
}

// Profiles edits the caller's account: names, profile and email (an email change needs the
// account holder's recent authentication, Authorize).
type Profiles interface {
	Authorize(caller domain.Session, need domain.Capability, recent bool) (domain.Session, error)
	UpdateProfile(ctx context.Context, caller domain.Session, patch domain.ProfilePatch, rm command.RequestMeta) (uint64, error)
	ChangeName(ctx context.Context, caller domain.Session, firstName, lastName string, rm command.RequestMeta) (uint64, error)
	ChangeEmail(ctx context.Context, caller domain.Session, newEmail string, rm command.RequestMeta) (uint64, error)
	EraseMe(ctx context.Context, caller domain.Session, rm command.RequestMeta) (uint64, error)
}

// SignIn starts and ends sessions and renews their authentication: passwords, second
// factors, passkey sign-ins and step-up.
type SignIn interface {
	Login(ctx context.Context, email, password, clientID string, rm command.RequestMeta) (command.LoginResult, error)
	SecondFactor(ctx context.Context, ticket, method, code string, rm command.RequestMeta) (command.LoginResult, error)
	Logout(ctx context.Context, caller domain.Session, rm command.RequestMeta) (uint64, error)
	Reauth(ctx context.Context, caller domain.Session, in command.ReauthInput, rm command.RequestMeta) (uint64, error)
	BeginPasskeyLogin(ctx context.Context, ticket string) (command.PasskeyCeremony, error)
	FinishPasskeyLogin(ctx context.Context, ceremonyID string, credential json.RawMessage, clientID string, rm command.RequestMeta) (command.LoginResult, error)
	BeginPasskeyReauth(ctx context.Context, caller domain.Session) (command.PasskeyCeremony, error)
	FinishPasskeyReauth(ctx context.Context, caller domain.Session, ceremonyID string, credential json.RawMessage, rm command.RequestMeta) (uint64, error)
}

// Credentials changes the caller's password and second factors.
type Credentials interface {
	ChangePassword(ctx context.Context, caller domain.Session, currentPassword, newPassword string, signOutOthers bool, rm command.RequestMeta) (command.SignOutResult, error)
	AddTOTPDevice(ctx context.Context, caller domain.Session, name string, rm command.RequestMeta) (command.TOTPEnrollment, error)
	ConfirmTOTPDevice(ctx context.Context, caller domain.Session, deviceID, code string, rm command.RequestMeta) (command.BackupCodesResult, error)
	RemoveTOTPDevice(ctx context.Context, caller domain.Session, deviceID string, rm command.RequestMeta) (uint64, error)
	TOTPQRCode(ctx context.Context, caller domain.Session, deviceID string) ([]byte, error)
	DisableTwoFactor(ctx context.Context, caller domain.Session, password string, rm command.RequestMeta) (uint64, error)
	RegenerateBackupCodes(ctx context.Context, caller domain.Session, rm command.RequestMeta) (command.BackupCodesResult, error)
	BeginPasskeyRegistration(ctx context.Context, caller domain.Session, name string) (command.PasskeyCeremony, error)
	FinishPasskeyRegistration(ctx context.Context, caller domain.Session, ceremonyID string, credential json.RawMessage, signOutOthers bool, rm command.RequestMeta) (command.PasskeyRegistration, error)
	RenamePasskey(ctx context.Context, caller domain.Session, passkeyID, name string, rm command.RequestMeta) (uint64, error)
	RemovePasskey(ctx context.Context, caller domain.Session, passkeyID string, rm command.RequestMeta) (uint64, error)
}

// Sessions signs sessions out: the caller's own, and any (the security team's).
type Sessions interface {
	SignOut(ctx context.Context, caller domain.Session, sessionID string, rm command.RequestMeta) (uint64, error)
	SignOutOthers(ctx context.Context, caller domain.Session, rm command.RequestMeta) (command.SignOutResult, error)
	AdminSignOut(ctx context.Context, sessionID string, rm command.RequestMeta) (uint64, error)
	Sessions() *command.SessionIndex
}

// Orgs runs the organisations: their members and their two-factor policy.
type Orgs interface {
	CreateOrg(ctx context.Context, caller domain.Session, name string, rm command.RequestMeta) (command.OrgResult, error)
	Org(ctx context.Context, caller domain.Session, orgID string) (*domain.Org, error)
	OrgAccess(caller domain.Session, orgID string, needAdmin bool) (string, error)
	AddMember(ctx context.Context, caller domain.Session, orgID, email, role string, rm command.RequestMeta) (uint64, error)
	RemoveMember(ctx context.Context, caller domain.Session, orgID, accountID string, rm command.RequestMeta) (uint64, error)
	SetTwoFactorRequirement(ctx context.Context, caller domain.Session, orgID string, required bool, password string, rm command.RequestMeta) (uint64, error)
	AddManagedOrg(ctx context.Context, caller domain.Session, orgID, managedID string, rm command.RequestMeta) (uint64, error)
}

// Delegations grants, lists, revokes and uses delegated access.
type Delegations interface {
	GrantDelegation(ctx context.Context, caller domain.Session, delegateEmail string, expiresAt time.Time, rm command.RequestMeta) (command.DelegationResult, error)
	ListDelegations(caller domain.Session) ([]domain.Delegation, error)
	RevokeDelegation(ctx context.Context, caller domain.Session, id string, rm command.RequestMeta) (uint64, error)
	Act(ctx context.Context, caller domain.Session, id string, rm command.RequestMeta) (command.LoginResult, error)
}

// Administration is the administrators': clients, roles and webhooks.
type Administration interface {
	RegisterClient(ctx context.Context, name string, rm command.RequestMeta) (command.Client, uint64, error)
	GrantRole(ctx context.Context, accountID, role string, rm command.RequestMeta) (uint64, error)
	RevokeRole(ctx context.Context, accountID, role string, rm command.RequestMeta) (uint64, error)
	EraseAccount(ctx context.Context, accountID string, rm command.RequestMeta) (uint64, error)
	RegisterWebhook(ctx context.Context, rawURL string, rm command.RequestMeta) (command.Webhook, uint64, error)
	RemoveWebhook(ctx context.Context, webhookID string, rm command.RequestMeta) (uint64, error)
}

// Recovery verifies emails, resets passwords and takes "this wasn't me" reports (the
// mailed links' commands, and the portal's report of an activity entry).
type Recovery interface {
	RequestEmailVerification(ctx context.Context, caller domain.Session, rm command.RequestMeta) (uint64, error)
	VerifyEmail(ctx context.Context, token string, rm command.RequestMeta) (uint64, error)
	RequestPasswordReset(ctx context.Context, email string, rm command.RequestMeta) error
	ConfirmPasswordReset(ctx context.Context, token, newPassword string, rm command.RequestMeta) (command.SignOutResult, error)
	ReportNotMe(ctx context.Context, token string, rm command.RequestMeta) (uint64, error)
	ReportActivity(ctx context.Context, caller domain.Session, eventID string, rm command.RequestMeta) (uint64, error)
}

// Service is every command and query the JSON API runs.
type Service interface {
	Accounts
	Profiles
	SignIn
	Credentials
	Sessions
	Orgs
	Delegations
	Administration
	Recovery
}

// ServiceTokens creates, lists and revokes the service tokens (*command.ServiceTokens
// satisfies it).
type ServiceTokens interface {
	Create(ctx context.Context, name string, scopes []string, rm command.RequestMeta) (command.ServiceToken, string, uint64, error)
	List() []command.ServiceToken
	Revoke(ctx context.Context, id string, rm command.RequestMeta) (uint64, error)
}

var (
	_ Service       = (*command.Service)(nil)
	_ ServiceTokens = (*command.ServiceTokens)(nil)
)
