package projections

import (
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// The activity log's organisation and delegation entries. Organisation events show in the
// log of the account they are about (the member added or removed; the caller for the
// organisation's own changes), delegation events in the owner's; the activity projection
// remembers organisation names (activity_orgs) so that an entry can name one.

// activityOrgsDDL is the activity projection's table of organisation names.
const activityOrgsDDL = `CREATE TABLE IF NOT EXISTS activity_orgs (
	org_id TEXT PRIMARY KEY,
	name   TEXT NOT NULL
) WITHOUT ROWID`

// orgName returns the remembered name of an organisation, quoted, or "an organisation".
func (in *activityEvent) orgName(orgID string) (string, error) {
	var name string
	err := txScan(in.ctx, in.tx, `SELECT name FROM activity_orgs WHERE org_id = ?`, []any{orgID}, &name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "an organisation", nil
	case err != nil:
		return "", err
	}
	return "organisation " + strconv.Quote(name), nil
}

func describeOrg(in *activityEvent) (string, details, error) {
	orgID := streamID(in.env.StreamID, domain.StreamPrefixOrg)
	switch e := in.event.(type) {
	case domain.OrgCreated:
		if err := txExec(in.ctx, in.tx, `INSERT INTO activity_orgs (org_id, name) VALUES (?, ?)
			ON CONFLICT (org_id) DO UPDATE SET name = excluded.name`, orgID, e.Name); err != nil {
			return "", nil, err
		}
		return "Organisation " + strconv.Quote(e.Name) + " created", details{"org_id": orgID, "name": e.Name}, nil
	}
	name, err := in.orgName(orgID)
	if err != nil {
		return "", nil, err
	}
	switch e := in.event.(type) {
	case domain.MemberAdded:
		return "Added to " + name + " as " + e.Role, details{"org_id": orgID, "account_id": e.AccountID, "role": e.Role}, nil
	case domain.MemberRemoved:
		return "Removed from " + name, details{"org_id": orgID, "account_id": e.AccountID}, nil
	case domain.MemberRoleChanged:
		return "Role in " + name + " changed to " + e.Role,
			details{"org_id": orgID, "account_id": e.AccountID, "role": e.Role, "old_role": e.OldRole}, nil
	case domain.TwoFactorRequirementChanged:
		desc := "Two-factor authentication required in " + name
		if !e.Required {
			desc = "Two-factor authentication no longer required in " + name
		}
		return desc, details{"org_id": orgID, "required": e.Required, "changed_by": e.ChangedBy}, nil
	case domain.ManagedOrgAdded:
		managed, err := in.orgName(e.ManagedOrgID)
		if err != nil {
			return "", nil, err
		}
		return capitalFirst(name) + " now manages " + managed, details{"org_id": orgID, "managed_org_id": e.ManagedOrgID}, nil
	}
	return "", nil, unexpected(in)
}

func capitalFirst(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func describeDelegation(in *activityEvent) (string, details, error) {
	id := streamID(in.env.StreamID, domain.StreamPrefixDelegation)
	switch e := in.event.(type) {
	case domain.DelegationGranted:
		return "Access delegated until " + e.ExpiresAt.UTC().Format(time.RFC3339),
			details{"delegation_id": id, "delegate_account_id": e.DelegateAccountID, "expires_at": e.ExpiresAt.UTC().Format(time.RFC3339)}, nil
	case domain.DelegationRevoked:
		return "Delegated access revoked", details{"delegation_id": id}, nil
	case domain.DelegationExpired:
		return "Delegated access expired", details{"delegation_id": id}, nil
	}
	return "", nil, unexpected(in)
}
