package domain_test

import (
	"errors"
	"testing"

	"github.com/vigil-auth/vigil/domain"
)

// TestSessionAllows is the table of domain.Session.Allows: which kind of session holds which
// capability, and the error that says why not.
func TestSessionAllows(t *testing.T) {
	holder1 := domain.Session{ID: "s", AccountID: "a", AAL: domain.AAL1}
	holder2 := domain.Session{ID: "s", AccountID: "a", AAL: domain.AAL2}
	restricted := domain.Session{ID: "s", AccountID: "a", AAL: domain.AAL1, Restricted: true}
	delegate := domain.Session{ID: "s", AccountID: "a", ActorAccountID: "d", AAL: domain.AAL2}
	restrictedDelegate := domain.Session{ID: "s", AccountID: "a", ActorAccountID: "d", AAL: domain.AAL1, Restricted: true}
	var (
		ok       error
		enroll   = domain.ErrEnrollmentRequired
		delegNot = domain.ErrDelegateNotAllowed
		mfa      = domain.ErrMFARequired
	)
	sessions := []struct {
		name string
		s    domain.Session
	}{{"holder aal1", holder1}, {"holder aal2", holder2}, {"restricted", restricted}, {"delegate", delegate}, {"restricted delegate", restrictedDelegate}}
	table := map[domain.Capability][5]error{
		domain.CapControl:      {ok, ok, enroll, delegNot, delegNot},
		domain.CapRead:         {ok, ok, enroll, ok, enroll},
		domain.CapReadSecurity: {ok, ok, ok, ok, ok},
		domain.CapProfile:      {ok, ok, enroll, ok, enroll},
		domain.CapSession:      {ok, ok, ok, ok, ok},
		domain.CapEnroll:       {ok, ok, ok, delegNot, delegNot},
		domain.CapTeam:         {mfa, ok, enroll, delegNot, delegNot},
		domain.Capability(200): {ok, ok, enroll, delegNot, delegNot}, // unknown: as CapControl
	}
	for c, want := range table {
		for i, s := range sessions {
			got := s.s.Allows(c)
			if (want[i] == nil) != (got == nil) || (want[i] != nil && !errors.Is(got, want[i])) {
				t.Errorf("%s.Allows(%s) = %v, want %v", s.name, c, got, want[i])
			}
		}
	}
	if domain.Capability(0) != domain.CapControl {
		t.Fatal("the zero Capability must be the most demanding one")
	}
	// Both refusals are 403s that callers may also treat as forbidden.
	if !errors.Is(domain.ErrDelegateNotAllowed, domain.ErrForbidden) || !errors.Is(domain.ErrMFARequired, domain.ErrForbidden) {
		t.Fatal("ErrDelegateNotAllowed and ErrMFARequired must wrap ErrForbidden")
	}
}
