package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
)

// Bootstrap administrators (--admin-emails). Each listed email grants role admin at most
// once, ever: to the first account that registers with it, or that holds it when the
// server starts. The grant is an ordinary RoleGranted on the account (actor system), so
// the role then stays with that account like any other grant: a later change of email
// neither moves nor repeats it, and a revocation sticks across restarts.
//
// Each email has a bootstrap stream, system-admin-bootstrap-<hex sha256(email)> (the id
// names only a hash), holding at most two events: AdminBootstrapClaimed names the account
// (appended when the stream does not exist yet, so of racing instances exactly one claims),
// then, after the RoleGranted, AdminBootstrapGranted. A crash between the two is finished at
// the next start for the account the claim names, never for whoever holds the email then.

// isBootstrapEmail reports whether the normalised email is in Config.BootstrapAdmins.
func (s *Service) isBootstrapEmail(email string) bool {
	_, ok := s.bootstrap[email]
	return ok
}

// BootstrapAdmins runs the bootstrap of every email in Config.BootstrapAdmins at a start:
// an email not yet spent grants admin to the account that holds it now (if any); a grant
// that a crash interrupted is finished for the account its claim names. It returns the
// last position written (0 when nothing was). Safe to run on several instances at once.
func (s *Service) BootstrapAdmins(ctx context.Context) (uint64, error) {
	var last uint64
	for email := range s.bootstrap {
		pos, err := s.bootstrapAdmin(ctx, email, "")
		if err != nil {
			return last, fmt.Errorf("bootstrap admin: %w", err)
		}
		last = max(last, pos)
	}
	return last, nil
}

// bootstrapAdmin spends email's bootstrap on accountID (or, when accountID is "", on the
// account holding email now), unless it is spent already. It returns the last position
// written.
func (s *Service) bootstrapAdmin(ctx context.Context, email, accountID string) (uint64, error) {
	stream := domain.AdminBootstrapStream(s.cfg.Keyring.Index("admin-bootstrap", email))
	events, err := s.cfg.Store.ReadStream(ctx, stream, 1, 2)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	md := s.metadata("", domain.Actor{Type: domain.ActorSystem}, RequestMeta{})
	var last uint64
	switch len(events) {
	case 0:
		if accountID == "" {
			a, err := s.findAccount(ctx, email)
			if errors.Is(err, domain.ErrNotFound) {
				return 0, nil // nobody holds it yet: the first registration will
			}
			if err != nil {
				return 0, err
			}
			accountID = a.ID()
		}
		md.SubjectAccountID = accountID
		res, err := s.appendEvents(ctx, stream, expect.NoStream, []domain.Event{domain.AdminBootstrapClaimed{AccountID: accountID, At: s.now()}}, md)
		if errors.Is(err, expect.ErrWrongVersion) {
			return 0, nil // another instance or registration claimed it first
		}
		if err != nil {
			return 0, err
		}
		last = res.LastPosition
	case 1:
		e, err := domain.DecodeEvent(events[0])
		if err != nil {
			return 0, err
		}
		claim, ok := e.(domain.AdminBootstrapClaimed)
		if !ok {
			return 0, fmt.Errorf("%s v1 is %s: %w", stream, events[0].Type, errNotBootstrapEvent)
		}
		accountID = claim.AccountID
		md.SubjectAccountID = accountID
	default:
		return 0, nil // spent and granted
	}
	pos, err := s.GrantRole(ctx, accountID, domain.RoleAdmin, RequestMeta{})
	if err != nil {
		return last, err
	}
	last = max(last, pos)
	res, err := s.appendEvents(ctx, stream, expect.Exact(1), []domain.Event{domain.AdminBootstrapGranted{AccountID: accountID, At: s.now()}}, md)
	if err != nil && !errors.Is(err, expect.ErrWrongVersion) {
		return last, err
	}
	return max(last, res.LastPosition), nil
}

var errNotBootstrapEvent = errors.New("event does not belong on an admin bootstrap stream")
