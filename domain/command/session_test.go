package command_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/reasons"
)

func TestSessionIdleTimeoutAndTouch(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	a := h.login("ann@example.com")
	id := a.Session.ID

	// touches: in memory every time, an event at most once per minute
	for _, step := range []time.Duration{10 * time.Second, 20 * time.Second, 20 * time.Second} {
		h.clock.Advance(step)
		if _, err := h.svc.Touch(h.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.types(domain.SessionStream(id)); len(got) != 2 {
		t.Fatalf("touches within the first minute wrote %v", got)
	}
	h.clock.Advance(10 * time.Second) // 60 s after the start
	pos, err := h.svc.Touch(h.ctx, id)
	if err != nil || pos == 0 {
		t.Fatalf("touch after a minute: %d %v", pos, err)
	}
	h.clock.Advance(59 * time.Second)
	if pos, _ := h.svc.Touch(h.ctx, id); pos != 0 {
		t.Fatal("second SessionAccessed within a minute")
	}
	if got := h.types(domain.SessionStream(id)); !slices.Equal(got, []string{"LoginSucceeded", "SessionStarted", "SessionAccessed"}) {
		t.Fatalf("session stream %v", got)
	}
	who, err := h.svc.Whoami(h.ctx, a.Token)
	if err != nil || !who.LastAccessedAt.Equal(h.clock.Now()) {
		t.Fatalf("last access %s, %v", who.LastAccessedAt, err)
	}
	// idle for just under 30 min (the ASVS L2 default): alive; at 30 min: gone
	h.clock.Advance(30*time.Minute - time.Second)
	if _, err := h.svc.Whoami(h.ctx, a.Token); err != nil {
		t.Fatalf("idle 29m59s: %v", err)
	}
	h.clock.Advance(time.Second)
	if _, err := h.svc.Whoami(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("idle 30m: %v", err)
	}
	if _, err := h.svc.Touch(h.ctx, id); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("touch of an idle session: %v", err)
	}
	// the sweeper records the expiry
	res, err := h.svc.Sweep(h.ctx, h.clock.Now())
	if err != nil || !slices.Equal(res.Expired, []string{id}) || res.Position == 0 {
		t.Fatalf("sweep %+v %v", res, err)
	}
	evs := h.events(domain.SessionStream(id))
	if exp := h.decode(evs[len(evs)-1]).(domain.SessionExpired); exp.Reason != reasons.ExpiredIdle {
		t.Fatalf("expiry %+v", exp)
	}
	if evs[len(evs)-1].Metadata.Actor.Type != domain.ActorSystem || evs[len(evs)-1].Metadata.SubjectAccountID != a.Session.AccountID {
		t.Fatalf("metadata %+v", evs[len(evs)-1].Metadata)
	}
	if res, _ := h.svc.Sweep(h.ctx, h.clock.Now()); len(res.Expired) != 0 {
		t.Fatal("expired twice")
	}
}

// TestUseThenTouchUse: the API's authenticate finds the session once (Use) and notes the use
// after the request's checks (TouchUse): at the time of the check, with SessionAccessed at
// most once per minute as Touch writes it, and not at all for a session signed out between
// the two, nor for one whose entry was replaced meanwhile without losing the use.
func TestUseThenTouchUse(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	a := h.login("ann@example.com")
	id := a.Session.ID

	h.clock.Advance(30 * time.Second)
	u, err := h.svc.Use(h.ctx, a.Token)
	if err != nil || u.Session.ID != id {
		t.Fatalf("use: %+v %v", u.Session, err)
	}
	checked := h.clock.Now()
	h.clock.Advance(time.Second) // the request's checks take a while: the use is the check's time
	if pos, err := h.svc.TouchUse(h.ctx, u); err != nil || pos != 0 {
		t.Fatalf("touch within the first minute: %d %v", pos, err)
	}
	if who, _ := h.svc.Whoami(h.ctx, a.Token); !who.LastAccessedAt.Equal(checked) {
		t.Fatalf("last access %s, want %s", who.LastAccessedAt, checked)
	}
	h.clock.Advance(time.Minute)
	u, _ = h.svc.Use(h.ctx, a.Token)
	if pos, err := h.svc.TouchUse(h.ctx, u); err != nil || pos == 0 {
		t.Fatalf("touch after a minute: %d %v", pos, err)
	}
	// The event replaced the index entry: a use found before it still counts.
	h.clock.Advance(2 * time.Minute)
	stale := u
	u, _ = h.svc.Use(h.ctx, a.Token)
	stale.Session = u.Session
	if _, err := h.svc.TouchUse(h.ctx, stale); err != nil {
		t.Fatal(err)
	}
	if got := h.types(domain.SessionStream(id)); !slices.Equal(got, []string{"LoginSucceeded", "SessionStarted", "SessionAccessed", "SessionAccessed"}) {
		t.Fatalf("session stream %v", got)
	}
	// Signed out between the check and the touch: nothing is written.
	h.clock.Advance(2 * time.Minute)
	u, _ = h.svc.Use(h.ctx, a.Token)
	if _, err := h.svc.Logout(h.ctx, u.Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	before := h.types(domain.SessionStream(id))
	if _, err := h.svc.TouchUse(h.ctx, u); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("touch of a signed-out session: %v", err)
	}
	if got := h.types(domain.SessionStream(id)); !slices.Equal(got, before) {
		t.Fatalf("a touch after the sign-out wrote %v", got[len(before):])
	}
}

func TestSessionLifetime(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	a := h.login("ann@example.com")
	for i := 0; i < 35; i++ { // used every 20 minutes: never idle
		h.clock.Advance(20 * time.Minute)
		if _, err := h.svc.Touch(h.ctx, a.Session.ID); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	h.clock.Advance(19 * time.Minute)
	if _, err := h.svc.Whoami(h.ctx, a.Token); err != nil {
		t.Fatalf("11h59m: %v", err)
	}
	if res, _ := h.svc.Sweep(h.ctx, h.clock.Now()); len(res.Expired) != 0 {
		t.Fatal("swept an active session")
	}
	h.clock.Advance(time.Minute)
	if _, err := h.svc.Whoami(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("12h: %v", err)
	}
	res, err := h.svc.Sweep(h.ctx, h.clock.Now())
	if err != nil || len(res.Expired) != 1 {
		t.Fatalf("sweep %+v %v", res, err)
	}
	evs := h.events(domain.SessionStream(a.Session.ID))
	if exp := h.decode(evs[len(evs)-1]).(domain.SessionExpired); exp.Reason != reasons.ExpiredLifetime {
		t.Fatalf("expiry %+v", exp)
	}
	// 35 touches 20 minutes apart, each recorded
	if n := len(evs); n != 2+35+1 {
		t.Fatalf("%d events", n)
	}
}

func TestSignOuts(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	h.register("bob@example.com")
	cur := h.login("ann@example.com")
	o1 := h.login("ann@example.com")
	o2 := h.login("ann@example.com")
	o3 := h.login("ann@example.com")
	bob := h.login("bob@example.com")

	if got := h.svc.AccountSessions(cur.Session.AccountID); len(got) != 4 {
		t.Fatalf("%d sessions", len(got))
	}
	// signing out someone else's session is not found
	if _, err := h.svc.SignOut(h.ctx, cur.Session, bob.Session.ID, command.RequestMeta{}); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("sign out bob: %v", err)
	}
	if _, err := h.svc.Whoami(h.ctx, bob.Token); err != nil {
		t.Fatal("bob was signed out")
	}
	// a revoked session fails whoami as soon as the revoke returns
	pos, err := h.svc.SignOut(h.ctx, cur.Session, o1.Session.ID, command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatal(err)
	}
	if _, err := h.svc.Whoami(h.ctx, o1.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("revoked session: %v", err)
	}
	if _, err := h.svc.SignOut(h.ctx, cur.Session, o1.Session.ID, command.RequestMeta{}); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("second sign-out: %v", err)
	}
	res, err := h.svc.SignOutOthers(h.ctx, cur.Session, command.RequestMeta{})
	if err != nil || res.SignedOut != 2 {
		t.Fatalf("sign out others: %+v %v", res, err)
	}
	for _, tok := range []string{o2.Token, o3.Token} {
		if _, err := h.svc.Whoami(h.ctx, tok); !errors.Is(err, domain.ErrSessionNotFound) {
			t.Fatal("other session survived")
		}
	}
	if _, err := h.svc.Whoami(h.ctx, cur.Token); err != nil {
		t.Fatal("current session signed out")
	}
	if evs := h.events(domain.SessionStream(o2.Session.ID)); h.decode(evs[len(evs)-1]).(domain.SessionSignedOut).Reason != reasons.SignOutByUser {
		t.Fatal("reason")
	}
	if _, err := h.svc.AdminSignOut(h.ctx, bob.Session.ID, command.RequestMeta{Actor: &domain.Actor{Type: domain.ActorAdmin, ID: "admin-1"}}); err != nil {
		t.Fatal(err)
	}
	evs := h.events(domain.SessionStream(bob.Session.ID))
	last := evs[len(evs)-1]
	if h.decode(last).(domain.SessionSignedOut).Reason != reasons.SignOutByAdmin || last.Metadata.Actor.ID != "admin-1" {
		t.Fatalf("admin sign-out %+v", last)
	}
	if _, err := h.svc.Logout(h.ctx, cur.Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Whoami(h.ctx, cur.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatal("logged-out session alive")
	}
	if _, err := h.svc.ChangeName(h.ctx, cur.Session, "A", "B", command.RequestMeta{}); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("command with a signed-out session: %v", err)
	}
}

func TestSessionIndexFedFromAnotherInstance(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	// instance B shares the log but not the memory
	cfg := h.cfg
	cfg.Sessions = nil
	cfg.Tickets = nil
	b, err := command.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := h.login("ann@example.com")
	if _, err := b.Whoami(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatal("B knows the session before its projection ran")
	}
	feed := func(after uint64) uint64 {
		evs, err := h.store.ReadAll(h.ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if err := b.Sessions().Apply(e); err != nil {
				t.Fatal(err)
			}
			after = e.Position
		}
		return after
	}
	pos := feed(0)
	if who, err := b.Whoami(h.ctx, a.Token); err != nil || who.ID != a.Session.ID {
		t.Fatalf("B after the projection: %+v %v", who, err)
	}
	// B signs the session out: A learns it from the projection
	if _, err := b.SignOut(h.ctx, mustWhoami(t, b, a.Token), a.Session.ID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Whoami(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatal("B still answers for its revoked session")
	}
	evs, _ := h.store.ReadAll(h.ctx, pos, 1000)
	for _, e := range evs {
		_ = h.svc.Sessions().Apply(e)
	}
	if _, err := h.svc.Whoami(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatal("A still answers after the projection delivered the sign-out")
	}
}

func mustWhoami(t *testing.T, s *command.Service, token string) domain.Session {
	t.Helper()
	sess, err := s.Whoami(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// switchedPolicy requires 2FA of everyone while on.
type switchedPolicy struct{ on *atomic.Bool }

func (p switchedPolicy) RequiredBy(context.Context, string) ([]string, error) {
	if p.on.Load() {
		return []string{"org-1"}, nil
	}
	return nil, nil
}

// TestSessionMemoKeepsOneStateOfTheSession: what a use keeps (whoami's answer) comes back to
// the uses of the same state of the session, never to a use of another: not after a session
// event replaced the state (a recorded access, a sign-out), and not across the two values of
// Restricted, which an organisation's 2FA policy changes without a session event.
func TestSessionMemoKeepsOneStateOfTheSession(t *testing.T) {
	var on atomic.Bool
	h := newHarness(t, func(c *command.Config) { c.TwoFactorPolicy = switchedPolicy{on: &on} })
	h.register("ann@example.com")
	a := h.login("ann@example.com")
	use := func() command.SessionUse {
		t.Helper()
		u, err := h.svc.Use(h.ctx, a.Token)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	encoding := func() string { return string(use().Memo().Encoding()) }

	if got := encoding(); got != "" {
		t.Fatalf("a new session has an encoding: %q", got)
	}
	use().Memo().KeepEncoding([]byte("plain"))
	if got := encoding(); got != "plain" {
		t.Fatalf("the next use finds %q, want what the first kept", got)
	}
	(command.SessionMemo{}).KeepEncoding([]byte("nowhere")) // the zero memo keeps nothing
	if got := (command.SessionMemo{}).Encoding(); got != nil {
		t.Fatalf("the zero memo: %q", got)
	}

	on.Store(true) // the session is now restricted, without an event of its own
	u := use()
	if !u.Session.Restricted {
		t.Fatal("the policy did not restrict the session")
	}
	if got := string(u.Memo().Encoding()); got != "" {
		t.Fatalf("a restricted use finds the unrestricted encoding %q", got)
	}
	u.Memo().KeepEncoding([]byte("restricted"))
	if got := encoding(); got != "restricted" {
		t.Fatalf("restricted: %q", got)
	}
	on.Store(false)
	if got := encoding(); got != "plain" {
		t.Fatalf("unrestricted again: %q", got)
	}

	// A recorded access (SessionAccessed) is a new state of the session.
	h.clock.Advance(2 * time.Minute)
	u = use()
	if pos, err := h.svc.TouchUse(h.ctx, u); err != nil || pos == 0 {
		t.Fatalf("touch: %d %v", pos, err)
	}
	if got := encoding(); got != "" {
		t.Fatalf("after SessionAccessed the use finds %q", got)
	}
	// A memo taken before the event keeps into the state that is gone, not the new one.
	u.Memo().KeepEncoding([]byte("stale"))
	if got := encoding(); got != "" {
		t.Fatalf("a memo of the replaced state reached the new one: %q", got)
	}

	if _, err := h.svc.Logout(h.ctx, use().Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Use(h.ctx, a.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("use after sign-out: %v", err)
	}
}
