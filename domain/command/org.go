package command

import (
	"context"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/validate"
)

// The organisation commands (API.md "Organisations"). Every change is an event on the
// organisation's stream, appended with the version it was decided on (a conflict reloads and
// decides again, bounded by Config.MaxRetries); after the append the organisation is published
// to the Orgs directory, so the next sign-in on this instance applies a new policy. An
// organisation the caller does not belong to is ErrNotFound (its existence is not revealed);
// a member who is not an owner or admin gets ErrForbidden.

// OrgResult is what CreateOrg wrote.
type OrgResult struct {
	OrgID    string
	Position uint64
}

// loadOrg reads an organisation's stream and rebuilds it (ErrNotFound when it is empty).
func (s *Service) loadOrg(ctx context.Context, orgID string) (*domain.Org, error) {
	events, err := s.readAll(ctx, domain.OrgStream(orgID))
	if err != nil {
		return nil, fmt.Errorf("load organisation %s: %w", orgID, err)
	}
	return domain.Rebuild[*domain.Org](orgID, events)
}

// readAll reads a whole (short) stream in pages.
func (s *Service) readAll(ctx context.Context, stream string) ([]domain.Envelope, error) {
	var all []domain.Envelope
	for {
		events, err := s.cfg.Store.ReadStream(ctx, stream, uint64(len(all))+1, s.cfg.ReadPageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, events...)
		if len(events) < s.cfg.ReadPageSize {
			return all, nil
		}
	}
}

// updateOrg loads the organisation, lets decide return events, appends them with the
// version it loaded (retrying on a conflict) and publishes the new state to the directory.
func (s *Service) updateOrg(ctx context.Context, orgID string, md func(*domain.Org) domain.Metadata, decide func(o *domain.Org) ([]domain.Event, error)) (domain.AppendResult, *domain.Org, error) {
	res, o, events, err := update(ctx, s, "organisation "+orgID, domain.OrgStream(orgID), func(ctx context.Context) (*domain.Org, error) { return s.loadOrg(ctx, orgID) }, md, decide)
	if err != nil || len(events) == 0 {
		return res, o, err
	}
	next, err := domain.Next(o, events, res.NextVersion)
	if err != nil {
		return res, nil, err
	}
	s.orgs.publish(next)
	return res, next, nil
}

// CreateOrg creates an organisation named name (1..200 characters) whose owner is the
// caller (an active, unrestricted session).
func (s *Service) CreateOrg(ctx context.Context, caller domain.Session, name string, rm RequestMeta) (OrgResult, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return OrgResult{}, err
	}
	id := domain.NewID()
	events, err := domain.DecideCreateOrg(id, name, cur.AccountID, s.now())
	if err != nil {
		return OrgResult{}, err
	}
	res, err := s.appendEvents(ctx, domain.OrgStream(id), expect.NoStream, events, s.callerMetadata(cur, rm))
	if err != nil {
		return OrgResult{}, err
	}
	o, err := domain.Next(domain.NewOrg(id), events, res.NextVersion)
	if err != nil {
		return OrgResult{}, err
	}
	s.orgs.publish(o)
	return OrgResult{OrgID: id, Position: res.LastPosition}, nil
}

// Org returns the organisation read from the log, for a caller who is a member of it (else
// ErrNotFound).
func (s *Service) Org(ctx context.Context, caller domain.Session, orgID string) (*domain.Org, error) {
	cur, err := s.authorize(caller, domain.CapRead)
	if err != nil {
		return nil, err
	}
	o, err := s.loadOrg(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if err := o.See(cur.AccountID); err != nil {
		return nil, err
	}
	return o, nil
}

// OrgAccess says what the caller may read of an organisation, from the directory: ErrNotFound
// for an outsider (or an unknown organisation), ErrForbidden when needAdmin and the caller is a
// plain member; otherwise the caller's role.
func (s *Service) OrgAccess(caller domain.Session, orgID string, needAdmin bool) (string, error) {
	cur, err := s.authorize(caller, domain.CapRead)
	if err != nil {
		return "", err
	}
	o, ok := s.orgs.Get(orgID)
	if !ok {
		return "", fmt.Errorf("organisation %s: %w", orgID, domain.ErrNotFound)
	}
	if needAdmin {
		err = o.Administer(cur.AccountID)
	} else {
		err = o.See(cur.AccountID)
	}
	if err != nil {
		return "", err
	}
	return o.Role(cur.AccountID), nil
}

// memberMetadata is the metadata of a change about accountID made by the caller: the
// subject is that account, so the change shows in its activity log, done by the caller.
func (s *Service) memberMetadata(cur domain.Session, accountID string, rm RequestMeta) domain.Metadata {
	md := s.callerMetadata(cur, rm)
	md.SubjectAccountID = accountID
	return md
}

// AddMember adds the account with this email to the organisation with role (owner, admin,
// member), or gives a member that role. The caller must be an owner or admin (only an
// owner may grant or take the owner role). An email with no account is ErrNotFound (API.md),
// checked after the caller's rights so that outsiders learn nothing; the same role again or
// demoting the last owner is ErrConflict.
func (s *Service) AddMember(ctx context.Context, caller domain.Session, orgID, email, role string, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	if err := domain.ValidateOrgRole(role); err != nil {
		return 0, err
	}
	norm, err := validate.Email(email)
	if err != nil {
		return 0, err
	}
	o, err := s.loadOrg(ctx, orgID)
	if err != nil {
		return 0, err
	}
	if err := o.Administer(cur.AccountID); err != nil {
		return 0, err
	}
	accountID, err := s.LookupEmail(ctx, norm)
	if err != nil {
		return 0, fmt.Errorf("member email: %w", err)
	}
	res, _, err := s.updateOrg(ctx, orgID, func(*domain.Org) domain.Metadata { return s.memberMetadata(cur, accountID, rm) },
		func(o *domain.Org) ([]domain.Event, error) {
			return o.DecideAddMember(cur.AccountID, accountID, role, s.now())
		})
	return res.LastPosition, err
}

// RemoveMember ends accountID's membership. The caller must be an owner or admin (only an
// owner removes an owner); a non-member is ErrNotFound; the last owner stays (ErrConflict).
func (s *Service) RemoveMember(ctx context.Context, caller domain.Session, orgID, accountID string, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateOrg(ctx, orgID, func(*domain.Org) domain.Metadata { return s.memberMetadata(cur, accountID, rm) },
		func(o *domain.Org) ([]domain.Event, error) {
			return o.DecideRemoveMember(cur.AccountID, accountID, s.now())
		})
	return res.LastPosition, err
}

// SetTwoFactorRequirement turns the organisation's 2FA requirement on or off. Only an owner
// or admin whose account has 2FA on may (else ErrForbidden; an outsider gets ErrNotFound),
// re-entering the password (a wrong one is ErrInvalidCredentials, recorded and throttled like
// a sign-in). A delegate's acting session may not (ErrForbidden). The event names the caller.
// Setting the value it already has writes nothing.
func (s *Service) SetTwoFactorRequirement(ctx context.Context, caller domain.Session, orgID string, required bool, password string, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	o, err := s.loadOrg(ctx, orgID)
	if err != nil {
		return 0, err
	}
	a, err := s.repo.Load(ctx, cur.AccountID)
	if err != nil {
		return 0, err
	}
	// Rights first (no password is checked for someone who may not change the policy).
	if _, err := o.DecideSetRequirement(cur.AccountID, a.TwoFactorEnabled(), required, s.now()); err != nil {
		return 0, err
	}
	md := s.callerMetadata(cur, rm)
	if err := s.checkPassword(ctx, a, password, cur.ID, md, rm); err != nil {
		return 0, err
	}
	res, _, err := s.updateOrg(ctx, orgID, func(*domain.Org) domain.Metadata { return md }, func(o *domain.Org) ([]domain.Event, error) {
		return o.DecideSetRequirement(cur.AccountID, a.TwoFactorEnabled(), required, s.now())
	})
	return res.LastPosition, err
}

// AddManagedOrg makes orgID manage managedID: the caller must be an owner of both. From then
// on a 2FA requirement of orgID applies to managedID's members (one level: what managedID
// manages is not covered).
func (s *Service) AddManagedOrg(ctx context.Context, caller domain.Session, orgID, managedID string, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateOrg(ctx, orgID, func(*domain.Org) domain.Metadata { return s.callerMetadata(cur, rm) }, func(o *domain.Org) ([]domain.Event, error) {
		if err := o.See(cur.AccountID); err != nil {
			return nil, err
		}
		other, err := s.loadOrg(ctx, managedID)
		if err != nil {
			return nil, err
		}
		return o.DecideAddManaged(cur.AccountID, other, s.now())
	})
	return res.LastPosition, err
}
