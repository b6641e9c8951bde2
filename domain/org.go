package domain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-auth/vigil/domain/validate"
)

// Org is the aggregate of an org-<id> stream: name, members with their roles, the 2FA
// requirement and the organisations it manages. Its fields are unexported; it is built only
// by Rebuild (and advanced by the same per-event apply), and changed only by appending
// the events its decisions return. An *Org is a value read at one stream version; the
// command layer's OrgIndex shares them read-only, so nothing mutates an *Org once it is
// published.
type Org struct {
	id        string
	version   uint64
	name      string
	createdAt time.Time
	members   map[string]string // account id -> role
	required  bool
	managed   []string // ids of the organisations this one manages, in order of addition
}

var errNotOrgEvent = errors.New("event does not belong on an organisation stream")

// rebuildOrg rebuilds an organisation from its stream: events
// from version 1 on, in order, starting with OrgCreated. An empty stream is ErrNotFound.
func rebuildOrg(orgID string, events []Envelope) (*Org, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("organisation %s: %w", orgID, ErrNotFound)
	}
	o := &Org{id: orgID, members: map[string]string{}}
	for _, env := range events {
		if err := o.applyEnvelope(env); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// applyEnvelope applies one stored event that must continue the stream.
func (o *Org) applyEnvelope(env Envelope) error {
	e, err := decodeNext("organisation", o.id, o.version, env)
	if err != nil {
		return err
	}
	if _, ok := e.(OrgCreated); ok != (o.version == 0) {
		return fmt.Errorf("organisation %s v%d: %s: %w", o.id, env.Version, env.Type, errNotOrgEvent)
	}
	if err := o.apply(e); err != nil {
		return fmt.Errorf("organisation %s v%d: %w", o.id, env.Version, err)
	}
	o.version = env.Version
	return nil
}

// apply changes the state by one event (a fact: never refused for business reasons).
func (o *Org) apply(e Event) error {
	switch e := e.(type) {
	case OrgCreated:
		o.name, o.createdAt = e.Name, e.At
		o.members[e.OwnerAccountID] = OrgRoleOwner
	case MemberAdded:
		o.members[e.AccountID] = e.Role
	case MemberRoleChanged:
		o.members[e.AccountID] = e.Role
	case MemberRemoved:
		delete(o.members, e.AccountID)
	case TwoFactorRequirementChanged:
		o.required = e.Required
	case ManagedOrgAdded:
		if !slices.Contains(o.managed, e.ManagedOrgID) {
			o.managed = append(o.managed, e.ManagedOrgID)
		}
	default:
		return fmt.Errorf("%s: %w", e.eventType(), errNotOrgEvent)
	}
	return nil
}

// clone returns a deep copy (apply on the copy leaves o as it was).
func (o *Org) clone() *Org {
	c := *o
	c.members = maps.Clone(o.members)
	c.managed = slices.Clone(o.managed)
	return &c
}

// ID returns the organisation's id.
func (o *Org) ID() string { return o.id }

// Name returns the organisation's name.
func (o *Org) Name() string { return o.name }

// Version returns the stream version the organisation was read at.
func (o *Org) Version() uint64 { return o.version }

// TwoFactorRequired reports whether the organisation's own policy requires 2FA.
func (o *Org) TwoFactorRequired() bool { return o.required }

// ManagedOrgs returns the ids of the organisations this one manages, in order of addition.
func (o *Org) ManagedOrgs() []string { return slices.Clone(o.managed) }

// Role returns accountID's role, or "" when it is not a member.
func (o *Org) Role(accountID string) string { return o.members[accountID] }

// Members returns the member account ids, sorted.
func (o *Org) Members() []string { return slices.Sorted(maps.Keys(o.members)) }

// CanAdminister reports whether accountID is an owner or admin of the organisation.
func (o *Org) CanAdminister(accountID string) bool {
	r := o.members[accountID]
	return r == OrgRoleOwner || r == OrgRoleAdmin
}

func (o *Org) owners() int {
	n := 0
	for _, r := range o.members {
		if r == OrgRoleOwner {
			n++
		}
	}
	return n
}

// maxOrgName bounds an organisation's name (characters).
const maxOrgName = 200

// validateOrgName trims name and checks it is 1..200 characters of printable text.
func validateOrgName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", validate.Invalid("name", "is required")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxOrgName:
		return "", validate.Invalid("name", "must be at most %d characters", maxOrgName)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", validate.Invalid("name", "must not contain control characters")
	}
	return name, nil
}

// ValidateOrgRole checks that role is owner, admin or member.
func ValidateOrgRole(role string) error {
	switch role {
	case OrgRoleOwner, OrgRoleAdmin, OrgRoleMember:
		return nil
	}
	return validate.Invalid("role", "must be %q, %q or %q", OrgRoleOwner, OrgRoleAdmin, OrgRoleMember)
}

// DecideCreateOrg returns the first event of a new organisation.
func DecideCreateOrg(orgID, name, ownerID string, now time.Time) ([]Event, error) {
	name, err := validateOrgName(name)
	if err != nil {
		return nil, err
	}
	return []Event{OrgCreated{OrgID: orgID, Name: name, OwnerAccountID: ownerID, At: now}}, nil
}

// see returns ErrNotFound unless callerID is a member: an organisation's existence is not
// revealed to outsiders.
func (o *Org) See(callerID string) error {
	if o.members[callerID] == "" {
		return fmt.Errorf("organisation %s: %w", o.id, ErrNotFound)
	}
	return nil
}

// administer returns ErrNotFound for an outsider and ErrForbidden for a plain member.
func (o *Org) Administer(callerID string) error {
	if err := o.See(callerID); err != nil {
		return err
	}
	if !o.CanAdminister(callerID) {
		return fmt.Errorf("organisation %s: only an owner or admin may do this: %w", o.id, ErrForbidden)
	}
	return nil
}

// DecideAddMember adds accountID with role, or changes the role of a member. Owners and
// admins may add; only an owner may make or unmake an owner; the last owner cannot be
// demoted (ErrConflict); the same role again is ErrConflict.
func (o *Org) DecideAddMember(callerID, accountID, role string, now time.Time) ([]Event, error) {
	if err := ValidateOrgRole(role); err != nil {
		return nil, err
	}
	if err := o.Administer(callerID); err != nil {
		return nil, err
	}
	old := o.members[accountID]
	callerIsOwner := o.members[callerID] == OrgRoleOwner
	if (role == OrgRoleOwner || old == OrgRoleOwner) && !callerIsOwner {
		return nil, fmt.Errorf("organisation %s: only an owner may grant or change the owner role: %w", o.id, ErrForbidden)
	}
	switch {
	case old == "":
		return []Event{MemberAdded{OrgID: o.id, AccountID: accountID, Role: role, At: now}}, nil
	case old == role:
		return nil, fmt.Errorf("organisation %s: the account is already a member with role %s: %w", o.id, role, ErrConflict)
	case old == OrgRoleOwner && o.owners() == 1:
		return nil, fmt.Errorf("organisation %s: the last owner keeps the role: %w", o.id, ErrConflict)
	}
	return []Event{MemberRoleChanged{OrgID: o.id, AccountID: accountID, OldRole: old, Role: role, At: now}}, nil
}

// DecideRemoveMember removes accountID. Owners and admins may remove members and admins;
// only an owner may remove an owner; the last owner stays (ErrConflict); a non-member is
// ErrNotFound.
func (o *Org) DecideRemoveMember(callerID, accountID string, now time.Time) ([]Event, error) {
	if err := o.Administer(callerID); err != nil {
		return nil, err
	}
	old := o.members[accountID]
	switch {
	case old == "":
		return nil, fmt.Errorf("organisation %s: member %s: %w", o.id, accountID, ErrNotFound)
	case old == OrgRoleOwner && o.members[callerID] != OrgRoleOwner:
		return nil, fmt.Errorf("organisation %s: only an owner may remove an owner: %w", o.id, ErrForbidden)
	case old == OrgRoleOwner && o.owners() == 1:
		return nil, fmt.Errorf("organisation %s: the last owner cannot be removed: %w", o.id, ErrConflict)
	}
	return []Event{MemberRemoved{OrgID: o.id, AccountID: accountID, At: now}}, nil
}

// DecideSetRequirement turns the 2FA requirement on or off. The caller must be an owner or
// admin (else ErrForbidden; an outsider gets ErrNotFound) and have 2FA on (callerHas2FA;
// else ErrForbidden). The password was checked by the command. No change, no event.
func (o *Org) DecideSetRequirement(callerID string, callerHas2FA, required bool, now time.Time) ([]Event, error) {
	if err := o.Administer(callerID); err != nil {
		return nil, err
	}
	if !callerHas2FA {
		return nil, fmt.Errorf("organisation %s: changing the policy needs 2FA on the caller's account: %w", o.id, ErrForbidden)
	}
	if o.required == required {
		return nil, nil
	}
	return []Event{TwoFactorRequirementChanged{OrgID: o.id, Required: required, ChangedBy: callerID, At: now}}, nil
}

// DecideAddManaged makes o manage other. The caller must own both (an outsider of either
// gets ErrNotFound, a non-owner ErrForbidden); an organisation cannot manage itself or one
// that manages it (ErrConflict), and managing one twice is ErrConflict.
func (o *Org) DecideAddManaged(callerID string, other *Org, now time.Time) ([]Event, error) {
	if err := o.See(callerID); err != nil {
		return nil, err
	}
	if err := other.See(callerID); err != nil {
		return nil, err
	}
	if o.members[callerID] != OrgRoleOwner || other.members[callerID] != OrgRoleOwner {
		return nil, fmt.Errorf("organisation %s: managing another needs the owner role in both: %w", o.id, ErrForbidden)
	}
	switch {
	case other.id == o.id:
		return nil, validate.Invalid("org_id", "an organisation cannot manage itself")
	case slices.Contains(o.managed, other.id):
		return nil, fmt.Errorf("organisation %s already manages %s: %w", o.id, other.id, ErrConflict)
	case slices.Contains(other.managed, o.id):
		return nil, fmt.Errorf("organisation %s manages %s: %w", other.id, o.id, ErrConflict)
	}
	return []Event{ManagedOrgAdded{OrgID: o.id, ManagedOrgID: other.id, At: now}}, nil
}
