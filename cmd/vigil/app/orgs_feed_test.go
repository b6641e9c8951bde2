package app

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestFeedSharesOrgPolicyAndDelegationsAcrossInstances runs two domain services on one log,
// b fed by the log feed: a delegation revoked on a ends, on b, the acting session a started,
// and a 2FA requirement set on a makes a sign-in on b restricted.
func TestFeedSharesOrgPolicyAndDelegationsAcrossInstances(t *testing.T) {
	ctx, cancel := testwait.Context(15 * time.Second)
	defer cancel()
	store, a, b := twoInstances(t)
	for _, e := range []string{"owner@example.com", "member@example.com"} {
		if _, err := a.Register(ctx, command.Registration{Email: e, Password: pw, FirstName: "Ann", LastName: "Lee"}, command.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	login := func(svc *command.Service, email string) command.LoginResult {
		t.Helper()
		res, err := svc.Login(ctx, email, pw, "", command.RequestMeta{IP: "192.0.2.1"})
		if err != nil {
			t.Fatalf("login: %+v, %v", res, err)
		}
		return res
	}
	ready, done := startLogFeed(ctx, store, 0, slog.New(slog.NewTextHandler(io.Discard, nil)), b)
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("feed never became ready")
	}

	owner := login(a, "owner@example.com").Authenticated.Session
	org, err := a.CreateOrg(ctx, owner, "Acme", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, owner, org.OrgID, "member@example.com", domain.OrgRoleMember, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	// A delegation granted and used on a, revoked on a: b refuses the acting session.
	member := login(a, "member@example.com").Authenticated.Session
	g, err := a.GrantDelegation(ctx, member, "owner@example.com", time.Now().Add(time.Hour), command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	acting, err := a.Act(ctx, owner, g.DelegationID, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	token := acting.Authenticated.Token
	waitFor(t, func() bool { s, err := b.Whoami(ctx, token); return err == nil && s.ActorAccountID == owner.AccountID }, "b knows the acting session")
	if _, err := a.RevokeDelegation(ctx, member, g.DelegationID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := b.Whoami(ctx, token); return err != nil }, "the revocation ends the acting session on b")

	enr, err := a.AddTOTPDevice(ctx, owner, "phone", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(enr.Secret, time.Now())
	if _, err := a.ConfirmTOTPDevice(ctx, owner, enr.DeviceID, code, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetTwoFactorRequirement(ctx, owner, org.OrgID, true, pw, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	memberID, err := a.LookupEmail(ctx, "member@example.com")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		got, _ := b.Orgs().RequiredBy(ctx, memberID)
		return slices.Equal(got, []string{org.OrgID})
	}, "b's directory requires 2FA of the member")
	if res := login(b, "member@example.com"); res.Status != command.StatusEnrollmentRequired {
		t.Fatalf("sign-in on b: %s, want enrollment_required", res.Status)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("feed ended with %v", err)
	}
}
