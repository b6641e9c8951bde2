package domain

import (
	"time"

	"github.com/vigil-auth/vigil/domain/eventtype"
)

// Organisation events (stream org-<id>) and delegation events (stream delegation-<id>).
// Every event carries At, the domain clock's time of the decision. The metadata's subject is
// the account the event is about (the member added or removed, the delegation's owner), so
// the activity log shows it to that account; the actor is who acted.

// Organisation and delegation event type names, as in API.md's "Event types".
const (
	EventOrgCreated                  = "OrgCreated"
	EventMemberAdded                 = "MemberAdded"
	EventMemberRemoved               = "MemberRemoved"
	EventMemberRoleChanged           = "MemberRoleChanged"
	EventTwoFactorRequirementChanged = "TwoFactorRequirementChanged"
	EventManagedOrgAdded             = "ManagedOrgAdded"
	EventDelegationGranted           = "DelegationGranted"
	EventDelegationRevoked           = "DelegationRevoked"
	EventDelegationExpired           = "DelegationExpired"
)

// Organisation roles.
const (
	OrgRoleOwner  = "owner"
	OrgRoleAdmin  = "admin"
	OrgRoleMember = "member"
)

// StreamPrefixDelegation starts the stream of one delegation: "delegation-<id>".
const StreamPrefixDelegation = "delegation-"

// OrgStream returns the stream id of an organisation: "org-<id>".
func OrgStream(orgID string) string { return StreamPrefixOrg + orgID }

// DelegationStream returns the stream id of a delegation: "delegation-<id>".
func DelegationStream(delegationID string) string { return StreamPrefixDelegation + delegationID }

// OrgCreated opens an organisation; OwnerAccountID (the creator) is its first owner (no
// separate MemberAdded is written for the creator).
type OrgCreated struct {
	OrgID          string    `json:"org_id"`
	Name           string    `json:"name"`
	OwnerAccountID string    `json:"owner_account_id"`
	At             time.Time `json:"at"`
}

// MemberAdded makes AccountID a member of the organisation with Role (owner, admin, member).
type MemberAdded struct {
	OrgID     string    `json:"org_id"`
	AccountID string    `json:"account_id"`
	Role      string    `json:"role"`
	At        time.Time `json:"at"`
}

// MemberRemoved ends AccountID's membership.
type MemberRemoved struct {
	OrgID     string    `json:"org_id"`
	AccountID string    `json:"account_id"`
	At        time.Time `json:"at"`
}

// MemberRoleChanged gives a member a new Role (OldRole was the previous one).
type MemberRoleChanged struct {
	OrgID     string    `json:"org_id"`
	AccountID string    `json:"account_id"`
	OldRole   string    `json:"old_role"`
	Role      string    `json:"role"`
	At        time.Time `json:"at"`
}

// TwoFactorRequirementChanged turns the organisation's 2FA requirement on or off; ChangedBy
// is the account of the owner or admin who changed it.
type TwoFactorRequirementChanged struct {
	OrgID     string    `json:"org_id"`
	Required  bool      `json:"required"`
	ChangedBy string    `json:"changed_by"`
	At        time.Time `json:"at"`
}

// ManagedOrgAdded: the organisation now manages ManagedOrgID; its 2FA requirement applies to
// the managed organisation's members too.
type ManagedOrgAdded struct {
	OrgID        string    `json:"org_id"`
	ManagedOrgID string    `json:"managed_org_id"`
	At           time.Time `json:"at"`
}

// DelegationGranted lets DelegateAccountID act for OwnerAccountID until ExpiresAt.
type DelegationGranted struct {
	DelegationID      string    `json:"delegation_id"`
	OwnerAccountID    string    `json:"owner_account_id"`
	DelegateAccountID string    `json:"delegate_account_id"`
	ExpiresAt         time.Time `json:"expires_at"`
	At                time.Time `json:"at"`
}

// DelegationRevoked ends a delegation before its time (by its owner or its delegate).
type DelegationRevoked struct {
	DelegationID string    `json:"delegation_id"`
	At           time.Time `json:"at"`
}

// DelegationExpired: the sweeper noticed the delegation passed its ExpiresAt.
type DelegationExpired struct {
	DelegationID string    `json:"delegation_id"`
	At           time.Time `json:"at"`
}

// eventType implements Event: "OrgCreated".
func (OrgCreated) eventType() string { return EventOrgCreated }

// eventType implements Event: "MemberAdded".
func (MemberAdded) eventType() string { return EventMemberAdded }

// eventType implements Event: "MemberRemoved".
func (MemberRemoved) eventType() string { return EventMemberRemoved }

// eventType implements Event: "MemberRoleChanged".
func (MemberRoleChanged) eventType() string { return EventMemberRoleChanged }

// eventType implements Event: "TwoFactorRequirementChanged".
func (TwoFactorRequirementChanged) eventType() string { return EventTwoFactorRequirementChanged }

// eventType implements Event: "ManagedOrgAdded".
func (ManagedOrgAdded) eventType() string { return EventManagedOrgAdded }

// eventType implements Event: "DelegationGranted".
func (DelegationGranted) eventType() string { return EventDelegationGranted }

// eventType implements Event: "DelegationRevoked".
func (DelegationRevoked) eventType() string { return EventDelegationRevoked }

// eventType implements Event: "DelegationExpired".
func (DelegationExpired) eventType() string { return EventDelegationExpired }

// registerOrgEvents registers the organisation and delegation events (called from
// registerEvents, the one place of registration).
func registerOrgEvents(r *eventtype.Registry) {
	// org-<id>
	r.Register(EventOrgCreated, 1, decoderOf[OrgCreated](), fields{
		"org_id": public, "name": public, "owner_account_id": public, "at": public,
	})
	r.Register(EventMemberAdded, 1, decoderOf[MemberAdded](), fields{
		"org_id": public, "account_id": public, "role": public, "at": public,
	})
	r.Register(EventMemberRemoved, 1, decoderOf[MemberRemoved](), fields{
		"org_id": public, "account_id": public, "at": public,
	})
	r.Register(EventMemberRoleChanged, 1, decoderOf[MemberRoleChanged](), fields{
		"org_id": public, "account_id": public, "old_role": public, "role": public,
		"at": public,
	})
	r.Register(EventTwoFactorRequirementChanged, 1, decoderOf[TwoFactorRequirementChanged](), fields{
		"org_id": public, "required": public, "changed_by": public, "at": public,
	})
	r.Register(EventManagedOrgAdded, 1, decoderOf[ManagedOrgAdded](), fields{
		"org_id": public, "managed_org_id": public, "at": public,
	})
	// delegation-<id>
	r.Register(EventDelegationGranted, 1, decoderOf[DelegationGranted](), fields{
		"delegation_id": public, "owner_account_id": public,
		"delegate_account_id": public, "expires_at": public, "at": public,
	})
	r.Register(EventDelegationRevoked, 1, decoderOf[DelegationRevoked](), fields{
		"delegation_id": public, "at": public,
	})
	r.Register(EventDelegationExpired, 1, decoderOf[DelegationExpired](), fields{
		"delegation_id": public, "at": public,
	})
}
