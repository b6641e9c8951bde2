package portal

import (
	"context"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
)

// The domain commands and queries the portal's pages run, grouped by who they serve, so that
// the portal depends on what it calls (*domain.Service satisfies every one; Service is all
// of them). The pages it shares with the JSON API run through *api.API.

// Sessions reads and refreshes the session of a cookie, and signs in and out.
type Sessions interface {
	Whoami(ctx context.Context, token string) (domain.Session, error)
	Touch(ctx context.Context, sessionID string) (uint64, error)
	Login(ctx context.Context, email, password, clientID string, rm domain.RequestMeta) (domain.LoginResult, error)
	SecondFactor(ctx context.Context, ticket, method, code string, rm domain.RequestMeta) (domain.LoginResult, error)
	Logout(ctx context.Context, caller domain.Session, rm domain.RequestMeta) (uint64, error)
	Reauth(ctx context.Context, caller domain.Session, in domain.ReauthInput, rm domain.RequestMeta) (uint64, error)
	SignOut(ctx context.Context, caller domain.Session, sessionID string, rm domain.RequestMeta) (uint64, error)
	SignOutOthers(ctx context.Context, caller domain.Session, rm domain.RequestMeta) (domain.SignOutResult, error)
	AdminSignOut(ctx context.Context, sessionID string, rm domain.RequestMeta) (uint64, error)
}

// Accounts registers accounts and reads them and their security.
type Accounts interface {
	Register(ctx context.Context, in domain.Registration, rm domain.RequestMeta) (domain.RegisterResult, error)
	Account(ctx context.Context, accountID string) (*domain.Account, error)
	LookupEmail(ctx context.Context, email string) (string, error)
	Security(ctx context.Context, accountID string) (domain.SecurityState, error)
	PasswordPolicy() *credential.PasswordPolicy
}

// Credentials changes the caller's password and second factors.
type Credentials interface {
	ChangePassword(ctx context.Context, caller domain.Session, currentPassword, newPassword string, signOutOthers bool, rm domain.RequestMeta) (domain.SignOutResult, error)
	AddTOTPDevice(ctx context.Context, caller domain.Session, name string, rm domain.RequestMeta) (domain.TOTPEnrollment, error)
	PendingTOTPKey(ctx context.Context, caller domain.Session, deviceID string) (secret, otpauthURL string, err error)
	ConfirmTOTPDevice(ctx context.Context, caller domain.Session, deviceID, code string, rm domain.RequestMeta) (domain.BackupCodesResult, error)
	RemoveTOTPDevice(ctx context.Context, caller domain.Session, deviceID string, rm domain.RequestMeta) (uint64, error)
	DisableTwoFactor(ctx context.Context, caller domain.Session, password string, rm domain.RequestMeta) (uint64, error)
	RegenerateBackupCodes(ctx context.Context, caller domain.Session, rm domain.RequestMeta) (domain.BackupCodesResult, error)
	RenamePasskey(ctx context.Context, caller domain.Session, passkeyID, name string, rm domain.RequestMeta) (uint64, error)
	RemovePasskey(ctx context.Context, caller domain.Session, passkeyID string, rm domain.RequestMeta) (uint64, error)
}

// Orgs runs the organisations and reads their directory.
type Orgs interface {
	Orgs() *domain.OrgIndex
	CreateOrg(ctx context.Context, caller domain.Session, name string, rm domain.RequestMeta) (domain.OrgResult, error)
	Org(ctx context.Context, caller domain.Session, orgID string) (*domain.Org, error)
	OrgAccess(caller domain.Session, orgID string, needAdmin bool) (string, error)
	AddMember(ctx context.Context, caller domain.Session, orgID, email, role string, rm domain.RequestMeta) (uint64, error)
	RemoveMember(ctx context.Context, caller domain.Session, orgID, accountID string, rm domain.RequestMeta) (uint64, error)
	SetTwoFactorRequirement(ctx context.Context, caller domain.Session, orgID string, required bool, password string, rm domain.RequestMeta) (uint64, error)
	AddManagedOrg(ctx context.Context, caller domain.Session, orgID, managedID string, rm domain.RequestMeta) (uint64, error)
}

// Delegations grants, lists, revokes and uses delegated access.
type Delegations interface {
	GrantDelegation(ctx context.Context, caller domain.Session, delegateEmail string, expiresAt time.Time, rm domain.RequestMeta) (domain.DelegationResult, error)
	ListDelegations(caller domain.Session) ([]domain.Delegation, error)
	RevokeDelegation(ctx context.Context, caller domain.Session, id string, rm domain.RequestMeta) (uint64, error)
	Act(ctx context.Context, caller domain.Session, id string, rm domain.RequestMeta) (domain.LoginResult, error)
}

// Service is every command and query the portal runs.
type Service interface {
	Sessions
	Accounts
	Credentials
	Orgs
	Delegations
}

var _ Service = (*domain.Service)(nil)
