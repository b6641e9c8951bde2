package command_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
)

// indexStateLog writes a log that touches every index: sessions started, used, re-authenticated,
// signed out and expired; organisations with members, a managed one and a 2FA policy; a
// delegation with an acting session, then revoked; service tokens created, denied, revoked.
// It returns the log and the session tokens and service token secrets it made.
func indexStateLog(t *testing.T) ([]domain.Envelope, []string, []string) {
	f := newOrgFixture(t)
	h := f.h
	tokens, err := command.NewServiceTokens(command.ServiceTokensConfig{Store: h.store, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var sessionTokens, secrets []string
	keep := func(a command.Authenticated) domain.Session {
		sessionTokens = append(sessionTokens, a.Token)
		return a.Session
	}
	// loginAny signs in, also into a restricted session (an organisation requires 2FA).
	loginAny := func(email string) command.Authenticated {
		res, err := h.svc.Login(h.ctx, email, goodPassword, domain.PortalClientID, command.RequestMeta{})
		if err != nil || res.Authenticated == nil {
			t.Fatalf("login %s: %+v %v", email, res, err)
		}
		return *res.Authenticated
	}
	// A delegation: granted (after a re-authentication), used, revoked.
	h.register("delegate@example.com")
	del := keep(h.login("delegate@example.com"))
	owner := keep(h.login("owner@example.com"))
	if _, err := h.svc.Reauth(h.ctx, owner, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	owner, _ = h.svc.SessionByID(owner.ID)
	g, err := h.svc.GrantDelegation(h.ctx, owner, "delegate@example.com", h.clock.Now().Add(2*time.Hour), command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	acting, err := h.svc.Act(h.ctx, del, g.DelegationID, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	keep(*acting.Authenticated)
	g2, err := h.svc.GrantDelegation(h.ctx, owner, "delegate@example.com", h.clock.Now().Add(3*time.Hour), command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RevokeDelegation(h.ctx, owner, g.DelegationID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	_ = g2
	tok, secret, _, err := tokens.Create(h.ctx, "exporter", []string{command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, secret)
	if _, err := tokens.Authenticate(h.ctx, secret, command.ScopeAuditRead, command.RequestMeta{}); !errors.Is(err, command.ErrInsufficientScope) {
		t.Fatalf("denied use: %v", err)
	}
	_, secret2, _, err := tokens.Create(h.ctx, "auditor", []string{command.ScopeAuditRead, command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, secret2)
	if _, err := tokens.Revoke(h.ctx, tok.ID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "other@example.com", domain.OrgRoleOwner, command.RequestMeta{}))
	if _, err := h.svc.AddManagedOrg(h.ctx, f.other, f.orgA, f.orgB, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	f.must(h.svc.AddMember(h.ctx, f.other, f.orgB, "outsider@example.com", domain.OrgRoleMember, command.RequestMeta{}))
	h.enrollTOTP(f.other, "Phone")
	if _, err := h.svc.SetTwoFactorRequirement(h.ctx, f.other, f.orgA, true, goodPassword, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	f.must(h.svc.RemoveMember(h.ctx, f.other, f.orgA, f.admin.AccountID, command.RequestMeta{}))
	// Uses, sign-outs and expiries.
	ann := keep(loginAny("member@example.com"))
	h.clock.Advance(10 * time.Minute)
	if _, err := h.svc.Touch(h.ctx, ann.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Logout(h.ctx, ann, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	keep(loginAny("outsider@example.com"))
	h.clock.Advance(3 * time.Hour) // past the idle timeout of the earliest sessions
	late := keep(loginAny("member@example.com"))
	if _, err := h.svc.Sweep(h.ctx, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(10 * time.Minute)
	if _, err := h.svc.Touch(h.ctx, late.ID); err != nil {
		t.Fatal(err)
	}
	all, err := h.store.ReadAll(h.ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return all, sessionTokens, secrets
}

func applyAll(t *testing.T, x *command.LogIndexes, envs []domain.Envelope) {
	t.Helper()
	for _, e := range envs {
		if err := x.Apply(e); err != nil {
			t.Fatalf("apply %d %s: %v", e.Position, e.Type, err)
		}
	}
}

func marshal(t *testing.T, x *command.LogIndexes) []command.IndexState {
	t.Helper()
	st, err := x.MarshalStates()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sameStates(t *testing.T, what string, got, want []command.IndexState) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d states, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Format != want[i].Format || !bytes.Equal(got[i].State, want[i].State) {
			t.Fatalf("%s: %s differs:\n got %s\nwant %s", what, want[i].Name, got[i].State, want[i].State)
		}
	}
}

// TestIndexStateRoundTrip: for every position P of a log touching every index, the state at
// P, restored and fed the events after P, equals a replay of the whole log; so does a state
// taken at P that already holds a few events after P (a live instance's indexes, which its
// commands update before the feed brings the same events).
func TestIndexStateRoundTrip(t *testing.T) {
	all, sessionTokens, secrets := indexStateLog(t)
	fresh := command.NewLogIndexes()
	applyAll(t, fresh, all)
	want := marshal(t, fresh)
	sameStates(t, "marshalled twice", marshal(t, fresh), want)
	if fresh.Sessions.Len() == 0 || len(fresh.Tokens.List()) != 2 {
		t.Fatalf("the log holds %d sessions, %d tokens", fresh.Sessions.Len(), len(fresh.Tokens.List()))
	}
	for _, s := range want {
		for _, secret := range append(slices.Clone(sessionTokens), secrets...) {
			if bytes.Contains(s.State, []byte(secret)) {
				t.Fatalf("the %s state holds a token", s.Name)
			}
		}
	}
	for p := 0; p <= len(all); p++ {
		for _, ahead := range []int{0, 3} {
			x := command.NewLogIndexes()
			applyAll(t, x, all[:min(p+ahead, len(all))])
			states := marshal(t, x)
			y := command.NewLogIndexes()
			if err := y.RestoreStates(states); err != nil {
				t.Fatalf("restore at %d+%d: %v", p, ahead, err)
			}
			applyAll(t, y, all[p:])
			sameStates(t, "restored", marshal(t, y), want)
			if p == len(all)/2 && ahead == 0 {
				compareIndexes(t, y, fresh, sessionTokens, secrets)
			}
		}
	}
}

// compareIndexes checks what the restored indexes answer against a replay's answers.
func compareIndexes(t *testing.T, got, want *command.LogIndexes, sessionTokens, secrets []string) {
	t.Helper()
	found := 0
	for _, tok := range sessionTokens {
		g, gok := got.Sessions.Lookup(credential.HashSessionToken(tok))
		w, wok := want.Sessions.Lookup(credential.HashSessionToken(tok))
		if gok != wok || !sameSession(g, w) {
			t.Fatalf("session lookup: %+v %v, want %+v %v", g, gok, w, wok)
		}
		if gok {
			found++
		}
	}
	if found == 0 || found == len(sessionTokens) {
		t.Fatalf("%d of %d sessions known: the log should hold live and ended ones", found, len(sessionTokens))
	}
	for _, secret := range secrets {
		g, gok := got.Tokens.Lookup(command.HashServiceToken(secret))
		w, wok := want.Tokens.Lookup(command.HashServiceToken(secret))
		if !gok || gok != wok || g.ID != w.ID || g.Revoked != w.Revoked || !g.CreatedAt.Equal(w.CreatedAt) || !slices.Equal(g.Scopes, w.Scopes) {
			t.Fatalf("token lookup: %+v %v, want %+v %v", g, gok, w, wok)
		}
	}
}

func sameSession(a, b domain.Session) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.ActorAccountID == b.ActorAccountID && a.DelegationID == b.DelegationID &&
		a.ClientID == b.ClientID && a.AAL == b.AAL && slices.Equal(a.AMR, b.AMR) && a.Restricted == b.Restricted &&
		a.StartedAt.Equal(b.StartedAt) && a.AuthenticatedAt.Equal(b.AuthenticatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.LastAccessedAt.Equal(b.LastAccessedAt) && a.IdleTimeout == b.IdleTimeout
}

// TestIndexStateRestoreKeepsNewer: restoring into indexes that already hold newer state (an
// instance's own commands) keeps the newer entries.
func TestIndexStateRestoreKeepsNewer(t *testing.T) {
	all, _, _ := indexStateLog(t)
	fresh := command.NewLogIndexes()
	applyAll(t, fresh, all)
	want := marshal(t, fresh)
	old := command.NewLogIndexes()
	applyAll(t, old, all[:len(all)/3])
	y := command.NewLogIndexes()
	applyAll(t, y, all)
	if err := y.RestoreStates(marshal(t, old)); err != nil {
		t.Fatal(err)
	}
	sameStates(t, "restored under newer", marshal(t, y), want)
}

// TestIndexStateRefusals: another format, a missing index or damaged state is refused and
// changes nothing.
func TestIndexStateRefusals(t *testing.T) {
	all, _, _ := indexStateLog(t)
	x := command.NewLogIndexes()
	applyAll(t, x, all)
	good := marshal(t, x)
	empty := marshal(t, command.NewLogIndexes())
	mod := func(f func([]command.IndexState) []command.IndexState) []command.IndexState {
		c := slices.Clone(good)
		return f(c)
	}
	for name, c := range map[string]struct {
		states []command.IndexState
		format bool
	}{
		"other format": {mod(func(s []command.IndexState) []command.IndexState {
			s[2].Format = command.IndexStateFormat + 1
			return s
		}), true},
		"no tokens": {mod(func(s []command.IndexState) []command.IndexState { return s[:3] }), true},
		"damaged": {mod(func(s []command.IndexState) []command.IndexState {
			s[3].State = s[3].State[:len(s[3].State)/2]
			return s
		}), false},
		"bad session": {mod(func(s []command.IndexState) []command.IndexState {
			s[0].State = []byte(`{"s":[{"id":"s1","v":0}],"t":[]}`)
			return s
		}), false},
	} {
		y := command.NewLogIndexes()
		err := y.RestoreStates(c.states)
		if err == nil || errors.Is(err, command.ErrIndexStateFormat) != c.format {
			t.Fatalf("%s: %v", name, err)
		}
		sameStates(t, name+": indexes changed", marshal(t, y), empty)
	}
}
