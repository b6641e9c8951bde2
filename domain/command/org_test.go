package command_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// orgFixture: an org "A" owned by owner, with admin and member; a second org "B" owned by
// other. Everyone signed in (no 2FA yet).
type orgFixture struct {
	h                                     *harness
	owner, admin, member, other, outsider domain.Session
	orgA, orgB                            string
}

func newOrgFixture(t *testing.T) *orgFixture {
	h := newHarness(t)
	f := &orgFixture{h: h}
	for _, e := range []string{"owner@example.com", "admin@example.com", "member@example.com", "other@example.com", "outsider@example.com"} {
		h.register(e)
	}
	f.owner = h.login("owner@example.com").Session
	f.admin = h.login("admin@example.com").Session
	f.member = h.login("member@example.com").Session
	f.other = h.login("other@example.com").Session
	f.outsider = h.login("outsider@example.com").Session
	a, err := h.svc.CreateOrg(h.ctx, f.owner, "Org A", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.svc.CreateOrg(h.ctx, f.other, "Org B", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	f.orgA, f.orgB = a.OrgID, b.OrgID
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "admin@example.com", domain.OrgRoleAdmin, command.RequestMeta{}))
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "member@example.com", domain.OrgRoleMember, command.RequestMeta{}))
	return f
}

func (f *orgFixture) must(_ uint64, err error) {
	f.h.t.Helper()
	if err != nil {
		f.h.t.Fatal(err)
	}
}

func TestOrgMembershipRules(t *testing.T) {
	f := newOrgFixture(t)
	h := f.h
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"bad role", func() error {
			_, err := h.svc.AddMember(h.ctx, f.owner, f.orgA, "other@example.com", "boss", command.RequestMeta{})
			return err
		}, domain.ErrInvalidInput},
		{"unknown email", func() error {
			_, err := h.svc.AddMember(h.ctx, f.owner, f.orgA, "ghost@example.com", domain.OrgRoleMember, command.RequestMeta{})
			return err
		}, domain.ErrNotFound},
		{"member adds", func() error {
			_, err := h.svc.AddMember(h.ctx, f.member, f.orgA, "other@example.com", domain.OrgRoleMember, command.RequestMeta{})
			return err
		}, domain.ErrForbidden},
		{"outsider adds (org hidden)", func() error {
			_, err := h.svc.AddMember(h.ctx, f.outsider, f.orgA, "other@example.com", domain.OrgRoleMember, command.RequestMeta{})
			return err
		}, domain.ErrNotFound},
		{"admin of B acts on A", func() error {
			_, err := h.svc.RemoveMember(h.ctx, f.other, f.orgA, f.member.AccountID, command.RequestMeta{})
			return err
		}, domain.ErrNotFound},
		{"admin grants owner", func() error {
			_, err := h.svc.AddMember(h.ctx, f.admin, f.orgA, "other@example.com", domain.OrgRoleOwner, command.RequestMeta{})
			return err
		}, domain.ErrForbidden},
		{"admin removes owner", func() error {
			_, err := h.svc.RemoveMember(h.ctx, f.admin, f.orgA, f.owner.AccountID, command.RequestMeta{})
			return err
		}, domain.ErrForbidden},
		{"same role again", func() error {
			_, err := h.svc.AddMember(h.ctx, f.owner, f.orgA, "member@example.com", domain.OrgRoleMember, command.RequestMeta{})
			return err
		}, domain.ErrConflict},
		{"last owner demoted", func() error {
			_, err := h.svc.AddMember(h.ctx, f.owner, f.orgA, "owner@example.com", domain.OrgRoleAdmin, command.RequestMeta{})
			return err
		}, domain.ErrConflict},
		{"last owner removed", func() error {
			_, err := h.svc.RemoveMember(h.ctx, f.owner, f.orgA, f.owner.AccountID, command.RequestMeta{})
			return err
		}, domain.ErrConflict},
		{"remove non-member", func() error {
			_, err := h.svc.RemoveMember(h.ctx, f.owner, f.orgA, f.outsider.AccountID, command.RequestMeta{})
			return err
		}, domain.ErrNotFound},
		{"outsider reads", func() error {
			_, err := h.svc.Org(h.ctx, f.outsider, f.orgA)
			return err
		}, domain.ErrNotFound},
		{"member reads report", func() error {
			_, err := h.svc.OrgAccess(f.member, f.orgA, true)
			return err
		}, domain.ErrForbidden},
		{"empty name", func() error {
			_, err := h.svc.CreateOrg(h.ctx, f.owner, "  ", command.RequestMeta{})
			return err
		}, domain.ErrInvalidInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(h.events(domain.OrgStream(f.orgA)))
			if err := c.run(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if after := len(h.events(domain.OrgStream(f.orgA))); after != before {
				t.Fatalf("a refused command wrote %d events", after-before)
			}
		})
	}
	// Allowed changes: admin adds a member, owner promotes it, admin removes a member.
	f.must(h.svc.AddMember(h.ctx, f.admin, f.orgA, "outsider@example.com", domain.OrgRoleMember, command.RequestMeta{}))
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "outsider@example.com", domain.OrgRoleOwner, command.RequestMeta{}))
	f.must(h.svc.RemoveMember(h.ctx, f.owner, f.orgA, f.outsider.AccountID, command.RequestMeta{}))
	f.must(h.svc.RemoveMember(h.ctx, f.admin, f.orgA, f.member.AccountID, command.RequestMeta{}))
	got := h.types(domain.OrgStream(f.orgA))
	want := []string{"OrgCreated", "MemberAdded", "MemberAdded", "MemberAdded", "MemberRoleChanged", "MemberRemoved", "MemberRemoved"}
	if !slices.Equal(got, want) {
		t.Fatalf("org stream %v, want %v", got, want)
	}
	evs := h.events(domain.OrgStream(f.orgA))
	if md := evs[6].Metadata; md.SubjectAccountID != f.member.AccountID || md.Actor.ID != f.admin.AccountID {
		t.Fatalf("MemberRemoved metadata %+v: subject must be the member, actor the admin", md)
	}
	o, err := h.svc.Org(h.ctx, f.owner, f.orgA)
	if err != nil || !slices.Equal(o.Members(), sortedIDs(f.owner.AccountID, f.admin.AccountID)) || o.Name() != "Org A" {
		t.Fatalf("org %+v %v", o, err)
	}
	if got := h.svc.Orgs().OrgsOf(f.member.AccountID); len(got) != 0 {
		t.Fatalf("removed member still in %v", got)
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func TestTwoFactorPolicyRulesAndEnrollment(t *testing.T) {
	f := newOrgFixture(t)
	h := f.h
	set := func(sess domain.Session, org string, required bool, pw string) error {
		_, err := h.svc.SetTwoFactorRequirement(h.ctx, sess, org, required, pw, command.RequestMeta{})
		return err
	}
	if err := set(f.member, f.orgA, true, goodPassword); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("member changes policy: %v", err)
	}
	if err := set(f.admin, f.orgA, true, goodPassword); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("admin without 2FA changes policy: %v", err)
	}
	if err := set(f.other, f.orgA, true, goodPassword); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("owner of another org changes policy: %v", err)
	}
	f.h.enrollTOTP(f.admin, "Phone")
	if err := set(f.admin, f.orgA, true, "wrong-password-123"); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if got := h.types(domain.OrgStream(f.orgA)); len(got) != 3 {
		t.Fatalf("refused policy changes wrote: %v", got)
	}
	if err := set(f.admin, f.orgA, true, goodPassword); err != nil {
		t.Fatal(err)
	}
	evs := h.events(domain.OrgStream(f.orgA))
	ch := h.decode(evs[len(evs)-1]).(domain.TwoFactorRequirementChanged)
	if !ch.Required || ch.ChangedBy != f.admin.AccountID {
		t.Fatalf("event %+v must name the admin", ch)
	}
	// The member (no 2FA) now signs in restricted.
	res, err := h.svc.Login(h.ctx, "member@example.com", goodPassword, "", command.RequestMeta{})
	if err != nil || res.Status != command.StatusEnrollmentRequired || !res.Authenticated.Session.Restricted {
		t.Fatalf("member sign-in: %+v %v", res, err)
	}
	restricted := res.Authenticated.Session
	if _, err := h.svc.CreateOrg(h.ctx, restricted, "X", command.RequestMeta{}); !errors.Is(err, domain.ErrEnrollmentRequired) {
		t.Fatalf("restricted session creates an org: %v", err)
	}
	st, err := h.svc.Security(h.ctx, f.member.AccountID)
	if err != nil || !slices.Equal(st.TwoFactorRequiredBy, []string{f.orgA}) {
		t.Fatalf("required by %v %v", st.TwoFactorRequiredBy, err)
	}
	// Enrolling lifts the restriction on that session.
	h.enrollTOTP(restricted, "Phone")
	after, err := h.svc.SessionByID(restricted.ID)
	if err != nil || after.Restricted || after.AAL != domain.AAL2 {
		t.Fatalf("after enrollment %+v %v", after, err)
	}
	if _, err := h.svc.DisableTwoFactor(h.ctx, after, goodPassword, command.RequestMeta{}); !errors.Is(err, domain.ErrTwoFactorRequired) {
		t.Fatalf("disable 2FA while required: %v", err)
	}
	// Turning the policy off lets a member without 2FA sign in normally again.
	if err := set(f.admin, f.orgA, false, goodPassword); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.svc.Orgs().RequiredBy(h.ctx, f.member.AccountID); got != nil {
		t.Fatalf("policy off, still required by %v", got)
	}
}

func TestManagedOrgs(t *testing.T) {
	f := newOrgFixture(t)
	h := f.h
	add := func(sess domain.Session, org, managed string) error {
		_, err := h.svc.AddManagedOrg(h.ctx, sess, org, managed, command.RequestMeta{})
		return err
	}
	if err := add(f.owner, f.orgA, f.orgB); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("owner of A only: %v", err)
	}
	// other (owner of B) becomes an admin of A: still not owner of both.
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "other@example.com", domain.OrgRoleAdmin, command.RequestMeta{}))
	if err := add(f.other, f.orgA, f.orgB); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("admin of A, owner of B: %v", err)
	}
	f.must(h.svc.AddMember(h.ctx, f.owner, f.orgA, "other@example.com", domain.OrgRoleOwner, command.RequestMeta{}))
	if err := add(f.other, f.orgA, f.orgA); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("self: %v", err)
	}
	if err := add(f.other, f.orgA, f.orgB); err != nil {
		t.Fatal(err)
	}
	if err := add(f.other, f.orgA, f.orgB); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("twice: %v", err)
	}
	if err := add(f.other, f.orgB, f.orgA); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("cycle: %v", err)
	}
	// B's member (outsider) falls under A's policy once A requires 2FA.
	f.must(h.svc.AddMember(h.ctx, f.other, f.orgB, "outsider@example.com", domain.OrgRoleMember, command.RequestMeta{}))
	h.enrollTOTP(f.other, "Phone")
	if _, err := h.svc.SetTwoFactorRequirement(h.ctx, f.other, f.orgA, true, goodPassword, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	got, _ := h.svc.Orgs().RequiredBy(h.ctx, f.outsider.AccountID)
	if !slices.Equal(got, []string{f.orgA}) {
		t.Fatalf("managed member required by %v, want the managing org %s", got, f.orgA)
	}
	// A's owner has no second factor: the policy restricts that session at once.
	if _, err := h.svc.Org(h.ctx, f.owner, f.orgA); !errors.Is(err, domain.ErrEnrollmentRequired) {
		t.Fatalf("org A read by its owner without 2FA after the policy: %v, want ErrEnrollmentRequired", err)
	}
	o, err := h.svc.Org(h.ctx, f.other, f.orgA)
	if err != nil || !slices.Equal(o.ManagedOrgs(), []string{f.orgB}) || !o.TwoFactorRequired() {
		t.Fatalf("org A %v %v", o, err)
	}
	// A second instance converges from the log alone.
	other, err := command.NewService(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.store.ReadAll(h.ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range all {
		if err := other.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, acc := range []string{f.owner.AccountID, f.member.AccountID, f.outsider.AccountID, f.other.AccountID} {
		want, _ := h.svc.Orgs().RequiredBy(h.ctx, acc)
		got, _ := other.Orgs().RequiredBy(h.ctx, acc)
		if !slices.Equal(got, want) {
			t.Fatalf("instance 2 says %v for %s, instance 1 %v", got, acc, want)
		}
	}
}

func TestDelegation(t *testing.T) {
	h := newHarness(t)
	ownerID := h.register("owner@example.com")
	delegateID := h.register("delegate@example.com")
	h.register("third@example.com")
	owner := h.login("owner@example.com").Session
	delegate := h.login("delegate@example.com").Session
	third := h.login("third@example.com").Session
	grant := func(sess domain.Session, email string, exp time.Time) (string, error) {
		r, err := h.svc.GrantDelegation(h.ctx, sess, email, exp, command.RequestMeta{})
		return r.DelegationID, err
	}
	now := h.clock.Now()
	for name, c := range map[string]struct {
		email string
		exp   time.Time
		want  error
	}{
		"past":          {"delegate@example.com", now.Add(-time.Minute), domain.ErrInvalidInput},
		"over 90 days":  {"delegate@example.com", now.Add(91 * 24 * time.Hour), domain.ErrInvalidInput},
		"self":          {"owner@example.com", now.Add(time.Hour), domain.ErrInvalidInput},
		"unknown email": {"ghost@example.com", now.Add(time.Hour), domain.ErrNotFound},
		"bad email":     {"not an email", now.Add(time.Hour), domain.ErrInvalidInput},
	} {
		if _, err := grant(owner, c.email, c.exp); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", name, err, c.want)
		}
	}
	h.clock.Advance(6 * time.Minute)
	if _, err := grant(owner, "delegate@example.com", h.clock.Now().Add(time.Hour)); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("stale session grants: %v", err)
	}
	if _, err := h.svc.Reauth(h.ctx, owner, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	owner, _ = h.svc.SessionByID(owner.ID)
	exp := h.clock.Now().Add(2 * time.Hour)
	id, err := grant(owner, "delegate@example.com", exp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Act(h.ctx, third, id, command.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("a stranger acts: %v", err)
	}
	res, err := h.svc.Act(h.ctx, delegate, id, command.RequestMeta{IP: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	acting, err := h.svc.Whoami(h.ctx, res.Authenticated.Token)
	if err != nil || acting.AccountID != ownerID || acting.ActorAccountID != delegateID || acting.ExpiresAt.After(exp) {
		t.Fatalf("acting session %+v %v", acting, err)
	}
	// What the acting session may not do.
	h.clock.Advance(time.Second)
	for name, run := range map[string]func() error{
		"password": func() error {
			_, err := h.svc.ChangePassword(h.ctx, acting, goodPassword, "another-long-pass-phrase-91", false, command.RequestMeta{})
			return err
		},
		"totp":  func() error { _, err := h.svc.AddTOTPDevice(h.ctx, acting, "x", command.RequestMeta{}); return err },
		"grant": func() error { _, err := grant(acting, "third@example.com", h.clock.Now().Add(time.Hour)); return err },
		"revoke": func() error {
			_, err := h.svc.RevokeDelegation(h.ctx, acting, id, command.RequestMeta{})
			return err
		},
		"act": func() error { _, err := h.svc.Act(h.ctx, acting, id, command.RequestMeta{}); return err },
		"reauth": func() error {
			_, err := h.svc.Reauth(h.ctx, acting, command.ReauthInput{Password: goodPassword}, command.RequestMeta{})
			return err
		},
		"disable": func() error {
			_, err := h.svc.DisableTwoFactor(h.ctx, acting, goodPassword, command.RequestMeta{})
			return err
		},
	} {
		if err := run(); !errors.Is(err, domain.ErrForbidden) {
			t.Fatalf("acting session %s: %v, want ErrForbidden", name, err)
		}
	}
	// What it does is recorded with both accounts.
	title := "Dr"
	if _, err := h.svc.UpdateProfile(h.ctx, acting, domain.ProfilePatch{Title: &title}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	evs := h.events(domain.AccountStream(ownerID))
	md := evs[len(evs)-1].Metadata
	if md.SubjectAccountID != ownerID || md.Actor != (domain.Actor{Type: domain.ActorDelegate, ID: delegateID}) {
		t.Fatalf("profile change metadata %+v", md)
	}
	// Both see the delegation.
	for _, sess := range []domain.Session{owner, delegate} {
		ds, err := h.svc.ListDelegations(sess)
		if err != nil || len(ds) != 1 || ds[0].ID != id {
			t.Fatalf("list %v %v", ds, err)
		}
	}
	// Revoking ends the acting session at once.
	third = h.login("third@example.com").Session
	if _, err := h.svc.RevokeDelegation(h.ctx, third, id, command.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("stranger revokes: %v", err)
	}
	if _, err := h.svc.RevokeDelegation(h.ctx, owner, id, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Whoami(h.ctx, res.Authenticated.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("whoami after revoke: %v", err)
	}
	sevs := h.events(domain.SessionStream(acting.ID))
	if so, ok := h.decode(sevs[len(sevs)-1]).(domain.SessionSignedOut); !ok || so.Reason != reasons.SignOutDelegationEnded {
		t.Fatalf("acting session stream %v", h.types(domain.SessionStream(acting.ID)))
	}
	if _, err := h.svc.Act(h.ctx, delegate, id, command.RequestMeta{}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("act on a revoked delegation: %v", err)
	}
	if ds, _ := h.svc.ListDelegations(owner); len(ds) != 0 {
		t.Fatalf("revoked delegation still listed: %v", ds)
	}
}

func TestDelegationExpiry(t *testing.T) {
	h := newHarness(t)
	h.register("owner@example.com")
	h.register("delegate@example.com")
	owner := h.login("owner@example.com").Session
	delegate := h.login("delegate@example.com").Session
	r, err := h.svc.GrantDelegation(h.ctx, owner, "delegate@example.com", h.clock.Now().Add(10*time.Minute), command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.svc.Act(h.ctx, delegate, r.DelegationID, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(10 * time.Minute)
	// whoami refuses at once, before any sweep.
	if _, err := h.svc.Whoami(h.ctx, res.Authenticated.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("whoami at expiry: %v", err)
	}
	if _, err := h.svc.Act(h.ctx, delegate, r.DelegationID, command.RequestMeta{}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("act at expiry: %v", err)
	}
	if _, err := h.svc.Sweep(h.ctx, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := h.types(domain.DelegationStream(r.DelegationID)); !slices.Equal(got, []string{"DelegationGranted", "DelegationExpired"}) {
		t.Fatalf("delegation stream %v", got)
	}
	got := h.types(domain.SessionStream(res.Authenticated.Session.ID))
	if last := got[len(got)-1]; last != domain.EventSessionSignedOut && last != domain.EventSessionExpired {
		t.Fatalf("acting session not ended: %v", got)
	}
	// A second sweep writes nothing more.
	if _, err := h.svc.Sweep(h.ctx, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.events(domain.DelegationStream(r.DelegationID))); n != 2 {
		t.Fatalf("second sweep wrote again: %d events", n)
	}
}
