package portal

import (
	"context"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/api"
)

// The domain commands and queries the portal's pages run, grouped by who they serve, so that
// the portal depends on what it calls (*command.Service satisfies every one; Service is all
// of them). The pages it shares with the JSON API run through *api.API; the organisations
// and delegations it runs, and the accounts it registers and reads, as the API does.

// Sessions reads and refreshes the session of a cookie, and signs in and out.
type Sessions interface {
	Whoami(ctx context.Context, token string) (domain.Session, error)
	Touch(ctx context.Context, sessionID string) (uint64, error)
	Login(ctx context.Context, email, password, clientID string, rm command.RequestMeta) (command.LoginResult, error)
	SecondFactor(ctx context.Context, ticket, method, code string, rm command.RequestMeta) (command.LoginResult, error)
	Logout(ctx context.Context, caller domain.Session, rm command.RequestMeta) (uint64, error)
	Reauth(ctx context.Context, caller domain.Session, in command.ReauthInput, rm command.RequestMeta) (uint64, error)
	SignOut(ctx context.Context, caller domain.Session, sessionID string, rm command.RequestMeta) (uint64, error)
	SignOutOthers(ctx context.Context, caller domain.Session, rm command.RequestMeta) (command.SignOutResult, error)
	AdminSignOut(ctx context.Context, sessionID string, rm command.RequestMeta) (uint64, error)
}

// Credentials changes the caller's password and second factors.
type Credentials interface {
	ChangePassword(ctx context.Context, caller domain.Session, currentPassword, newPassword string, signOutOthers bool, rm command.RequestMeta) (command.SignOutResult, error)
	AddTOTPDevice(ctx context.Context, caller domain.Session, name string, rm command.RequestMeta) (command.TOTPEnrollment, error)
	PendingTOTPKey(ctx context.Context, caller domain.Session, deviceID string) (secret, otpauthURL string, err error)
	ConfirmTOTPDevice(ctx context.Context, caller domain.Session, deviceID, code string, rm command.RequestMeta) (command.BackupCodesResult, error)
	RemoveTOTPDevice(ctx context.Context, caller domain.Session, deviceID string, rm command.RequestMeta) (uint64, error)
	DisableTwoFactor(ctx context.Context, caller domain.Session, password string, rm command.RequestMeta) (uint64, error)
	RegenerateBackupCodes(ctx context.Context, caller domain.Session, rm command.RequestMeta) (command.BackupCodesResult, error)
	RenamePasskey(ctx context.Context, caller domain.Session, passkeyID, name string, rm command.RequestMeta) (uint64, error)
	RemovePasskey(ctx context.Context, caller domain.Session, passkeyID string, rm command.RequestMeta) (uint64, error)
}

// Orgs runs the organisations (as the JSON API does) and reads their directory.
type Orgs interface {
	api.Orgs
	Orgs() *command.OrgIndex
}

// Service is every command and query the portal runs.
type Service interface {
	Sessions
	api.Accounts
	Credentials
	Orgs
	api.Delegations
	api.Recovery
}

var _ Service = (*command.Service)(nil)
