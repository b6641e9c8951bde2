package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/validate"
)

// The delegation commands (API.md "Delegated access"). A delegation lives on its own stream
// (delegation-<id>), with the owner as the metadata's subject, so it shows in the owner's
// activity log. An acting session is a session of the owner's account whose ActorAccountID
// is the delegate and whose DelegationID names the delegation; it ends no later than the
// delegation (its ExpiresAt is capped), is signed out (reason delegation_ended) when the
// delegation is revoked or expires, and fails whoami as soon as this instance learns that
// the delegation ended.

// DelegationResult is what GrantDelegation wrote.
type DelegationResult struct {
	DelegationID string
	Position     uint64
}

func (s *Service) loadDelegation(ctx context.Context, id string) (*domain.Delegation, error) {
	events, err := s.readAll(ctx, domain.DelegationStream(id))
	if err != nil {
		return nil, fmt.Errorf("load delegation %s: %w", id, err)
	}
	return domain.Rebuild[*domain.Delegation](id, events)
}

// updateDelegation is updateOrg for a delegation stream; the new state is published to the
// delegation index.
func (s *Service) updateDelegation(ctx context.Context, id string, md func(*domain.Delegation) domain.Metadata, decide func(d *domain.Delegation) ([]domain.Event, error)) (domain.AppendResult, *domain.Delegation, error) {
	res, d, events, err := update(ctx, s, "delegation "+id, domain.DelegationStream(id), func(ctx context.Context) (*domain.Delegation, error) { return s.loadDelegation(ctx, id) }, md, decide)
	if err != nil || len(events) == 0 {
		if err == nil {
			s.dels.publish(d)
		}
		return res, d, err
	}
	next, err := domain.Next(d, events, res.NextVersion)
	if err != nil {
		return res, nil, err
	}
	s.dels.publish(next)
	return res, next, nil
}

// GrantDelegation lets the account with delegateEmail act for the caller until expiresAt
// (after now, at most MaxDelegationLifetime ahead; else a *ValidationError). It is a
// sensitive change: an unrestricted session of the account holder (a delegate's acting
// session gets ErrForbidden), authenticated within the step-up window. An email with no
// account is ErrNotFound.
func (s *Service) GrantDelegation(ctx context.Context, caller domain.Session, delegateEmail string, expiresAt time.Time, rm RequestMeta) (DelegationResult, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return DelegationResult{}, err
	}
	norm, err := validate.Email(delegateEmail)
	if err != nil {
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			return DelegationResult{}, &domain.ValidationError{Field: "delegate_email", Reason: ve.Reason}
		}
		return DelegationResult{}, err
	}
	if _, err := domain.DecideGrantDelegation("", cur.AccountID, "-", expiresAt, s.now()); err != nil {
		return DelegationResult{}, err // the time is checked before the email is looked up
	}
	delegateID, err := s.LookupEmail(ctx, norm)
	if err != nil {
		return DelegationResult{}, fmt.Errorf("delegate email: %w", err)
	}
	id := domain.NewID()
	events, err := domain.DecideGrantDelegation(id, cur.AccountID, delegateID, expiresAt, s.now())
	if err != nil {
		return DelegationResult{}, err
	}
	res, err := s.appendEvents(ctx, domain.DelegationStream(id), expect.NoStream, events, s.callerMetadata(cur, rm))
	if err != nil {
		return DelegationResult{}, err
	}
	d, err := domain.Next(&domain.Delegation{ID: id}, events, res.NextVersion)
	if err != nil {
		return DelegationResult{}, err
	}
	s.dels.publish(d)
	return DelegationResult{DelegationID: id, Position: res.LastPosition}, nil
}

// ListDelegations returns the active delegations the caller granted or received (from the
// index), soonest expiry first.
func (s *Service) ListDelegations(caller domain.Session) ([]domain.Delegation, error) {
	cur, err := s.authorize(caller, domain.CapRead)
	if err != nil {
		return nil, err
	}
	return s.dels.activeFor(cur.AccountID, s.now()), nil
}

// RevokeDelegation ends a delegation the caller granted or received (a sensitive change: an
// acting session gets ErrForbidden, an old authentication ErrReauthenticationRequired). An
// unknown, foreign or already ended delegation is ErrNotFound. The delegate's acting
// sessions are signed out (reason delegation_ended) before it returns.
func (s *Service) RevokeDelegation(ctx context.Context, caller domain.Session, id string, rm RequestMeta) (uint64, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	md := s.callerMetadata(cur, rm)
	res, d, err := s.updateDelegation(ctx, id, func(d *domain.Delegation) domain.Metadata {
		m := md
		m.SubjectAccountID = d.OwnerAccountID
		return m
	}, func(d *domain.Delegation) ([]domain.Event, error) {
		return d.DecideRevoke(cur.AccountID, s.now())
	})
	if err != nil {
		return 0, err
	}
	pos, err := s.endActingSessions(ctx, d, md)
	return max(res.LastPosition, pos), err
}

// endActingSessions signs out every indexed acting session of delegation d.
func (s *Service) endActingSessions(ctx context.Context, d *domain.Delegation, md domain.Metadata) (uint64, error) {
	var pos uint64
	var errs []error
	for _, sess := range s.index.sessionsOf(d.OwnerAccountID) {
		if sess.DelegationID != d.ID {
			continue
		}
		p, err := s.signOut(ctx, sess.ID, d.OwnerAccountID, reasons.SignOutDelegationEnded, md)
		if err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			errs = append(errs, err)
		}
		pos = max(pos, p)
	}
	return pos, errors.Join(errs...)
}

// Act starts an acting session for the delegate (the caller, in an unrestricted session of
// their own: an acting session cannot act again, ErrForbidden) under delegation id: a
// session of the owner's account whose ActorAccountID is the caller, with the caller's amr,
// ending at the delegation's expiry at the latest. A delegation that is unknown or not the
// caller's is ErrNotFound; a revoked or expired one ErrForbidden. When an organisation of the
// owner requires 2FA, the caller's own session must have proved a second factor (aal2), else
// ErrMFARequired: a delegate cannot carry a password-only session past the owner's policy.
func (s *Service) Act(ctx context.Context, caller domain.Session, id string, rm RequestMeta) (LoginResult, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return LoginResult{}, err
	}
	d, err := s.loadDelegation(ctx, id)
	if err != nil {
		return LoginResult{}, err
	}
	if d.DelegateAccountID != cur.AccountID {
		return LoginResult{}, fmt.Errorf("delegation %s: %w", id, domain.ErrNotFound)
	}
	now := s.now()
	if !d.ActiveAt(now) {
		return LoginResult{}, fmt.Errorf("delegation %s was revoked or has expired: %w", id, domain.ErrForbidden)
	}
	if cur.AAL != domain.AAL2 {
		orgs, err := s.requiredBy(ctx, d.OwnerAccountID)
		if err != nil {
			return LoginResult{}, err
		}
		if len(orgs) > 0 {
			return LoginResult{}, fmt.Errorf("delegation %s: the owner's organisation requires 2FA: %w", id, domain.ErrMFARequired)
		}
	}
	lifetime := min(s.cfg.SessionLifetime, d.ExpiresAt.Sub(now))
	if rm.ClientID == "" {
		rm.ClientID = cur.ClientID
	}
	md := s.metadata(d.OwnerAccountID, domain.Actor{Type: domain.ActorDelegate, ID: cur.AccountID}, rm)
	out, err := s.openSession(ctx, domain.SessionStart{AccountID: d.OwnerAccountID, ActorAccountID: cur.AccountID,
		DelegationID: id, ClientID: rm.ClientID, Method: domain.MethodDelegation, AMR: cur.AMR,
		Lifetime: lifetime, IdleTimeout: s.cfg.SessionIdleTimeout}, md)
	if err != nil {
		return LoginResult{}, err
	}
	// A revocation between the check and the start would have missed this session.
	if d2, err := s.loadDelegation(ctx, id); err != nil || !d2.ActiveAt(s.now()) {
		_, _ = s.signOut(ctx, out.Authenticated.Session.ID, d.OwnerAccountID, reasons.SignOutDelegationEnded, md)
		return LoginResult{}, fmt.Errorf("delegation %s ended meanwhile: %w", id, domain.ErrForbidden)
	}
	s.dels.publish(d)
	return out, nil
}

// actingValid reports whether an acting session's delegation is still usable as far as
// this instance knows (always true for other sessions).
func (s *Service) actingValid(sess domain.Session, now time.Time) bool {
	if sess.DelegationID == "" {
		return true
	}
	d, ok := s.dels.get(sess.DelegationID)
	return !ok || d.ActiveAt(now)
}

// sweepDelegations writes DelegationExpired for every indexed delegation past its time and
// signs its acting sessions out (reason delegation_ended).
func (s *Service) sweepDelegations(ctx context.Context, now time.Time) (uint64, error) {
	var pos uint64
	var errs []error
	for _, id := range s.dels.due(now) {
		md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}}
		res, d, err := s.updateDelegation(ctx, id, func(d *domain.Delegation) domain.Metadata {
			m := md
			m.SubjectAccountID = d.OwnerAccountID
			return m
		}, func(d *domain.Delegation) ([]domain.Event, error) { return d.DecideExpire(now), nil })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pos = max(pos, res.LastPosition)
		md.SubjectAccountID = d.OwnerAccountID
		p, err := s.endActingSessions(ctx, d, md)
		if err != nil {
			errs = append(errs, err)
		}
		pos = max(pos, p)
	}
	return pos, errors.Join(errs...)
}
