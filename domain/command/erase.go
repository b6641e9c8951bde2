package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// DataKeys is where the accounts' data keys live, outside the log (eventstore/sealed): the
// personal members of an account's events are sealed under its key, and failed sign-ins that
// typed an email of no account under that email's identifier key.
type DataKeys interface {
	// DestroyAccount destroys the account's key and the identifier keys of emails, for good:
	// every personal value sealed under them reads "[erased]" from then on. Idempotent.
	DestroyAccount(ctx context.Context, accountID string, emails []string) error
}

// EraseMe erases the caller's own account (DELETE /api/v1/me): the holder's own session
// (CapControl), authenticated within the step-up window.
func (s *Service) EraseMe(ctx context.Context, caller domain.Session, rm RequestMeta) (uint64, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	return s.erase(ctx, cur.AccountID, s.callerMetadata(cur, rm))
}

// EraseAccount erases any account (POST /api/v1/admin/accounts/{id}/erase). The HTTP layer
// has checked the role and the step-up; rm.Actor names the admin.
func (s *Service) EraseAccount(ctx context.Context, accountID string, rm RequestMeta) (uint64, error) {
	return s.erase(ctx, accountID, s.metadata(accountID, domain.Actor{Type: domain.ActorSystem}, rm))
}

// erase runs the erasure (API.md "Personal data and erasure") in the order that leaves no
// window: the emails the account ever held are read while they can still be opened; its
// sessions, and the sessions others' delegations let it hold, are signed out (reason
// account_erased) so nothing keeps acting for it; AccountErased is appended, which makes
// the read models forget it; then the data keys are destroyed and the email released, so it
// can be registered again. A crash after AccountErased and before the keys are gone is
// finished by the next erasure call (AccountErased is idempotent from the caller's view:
// the account reads as not found, and the keys are destroyed again).
func (s *Service) erase(ctx context.Context, accountID string, md domain.Metadata) (uint64, error) {
	a, err := s.repo.Load(ctx, accountID)
	if err != nil {
		return 0, err
	}
	if a.Version() == 0 {
		return 0, fmt.Errorf("account %s: %w", accountID, domain.ErrNotFound)
	}
	emails, err := s.emailsOf(ctx, accountID)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, sess := range append(s.index.sessionsOf(accountID), s.index.actingAs(accountID)...) {
		p, err := s.signOut(ctx, sess.ID, "", reasons.SignOutAccountErased, md)
		if err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			return last, err
		}
		last = max(last, p)
	}
	res, _, err := s.updateAccount(ctx, accountID, md, func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideErase(s.now())
	})
	if err != nil && !(errors.Is(err, domain.ErrNotFound) && a.Erased()) {
		return last, err
	}
	last = max(last, res.LastPosition)
	if s.cfg.DataKeys != nil {
		if err := s.cfg.DataKeys.DestroyAccount(ctx, accountID, emails); err != nil {
			return last, fmt.Errorf("erase %s: destroy its data keys: %w", accountID, err)
		}
	}
	for _, e := range emails {
		last = max(last, s.releaseEmail(ctx, e, accountID, md))
	}
	return last, nil
}

// emailsOf lists every email the account held (registration and changes), read from its
// stream while the values can still be opened.
func (s *Service) emailsOf(ctx context.Context, accountID string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(e string) {
		if e != "" && e != "[erased]" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	for from := uint64(1); ; {
		evs, err := s.cfg.Store.ReadStream(ctx, domain.AccountStream(accountID), from, s.cfg.ReadPageSize)
		if err != nil {
			return nil, err
		}
		for _, env := range evs {
			switch env.Type {
			case domain.EventAccountRegistered, domain.EventEmailChanged:
				ev, err := domain.DecodeEvent(env)
				if err != nil {
					return nil, err
				}
				switch e := ev.(type) {
				case domain.AccountRegistered:
					add(e.Email)
				case domain.EmailChanged:
					add(e.OldEmail)
					add(e.NewEmail)
				}
			}
			from = env.Version + 1
		}
		if len(evs) < s.cfg.ReadPageSize || len(evs) == 0 {
			return out, nil
		}
	}
}
