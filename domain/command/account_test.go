package command_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

func TestRegisterValidation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		in    command.Registration
		field string // ValidationError field, or "password" for a policy error
	}{
		{"bad email", command.Registration{Email: "not-an-email", Password: goodPassword, FirstName: "A", LastName: "B"}, "email"},
		{"long email", command.Registration{Email: strings.Repeat("a", 250) + "@x.ch", Password: goodPassword, FirstName: "A", LastName: "B"}, "email"},
		{"no first name", command.Registration{Email: "a@example.com", Password: goodPassword, FirstName: " ", LastName: "B"}, "first_name"},
		{"long last name", command.Registration{Email: "a@example.com", Password: goodPassword, FirstName: "A", LastName: strings.Repeat("b", 101)}, "last_name"},
		{"control char", command.Registration{Email: "a@example.com", Password: goodPassword, FirstName: "A\x1b", LastName: "B"}, "first_name"},
		{"short password", command.Registration{Email: "a@example.com", Password: "short", FirstName: "A", LastName: "B"}, "password"},
		{"weak password", command.Registration{Email: "a@example.com", Password: "password1234", FirstName: "A", LastName: "B"}, "password"},
		{"password with email", command.Registration{Email: "umbrella@example.com", Password: goodPassword, FirstName: "A", LastName: "B"}, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.Register(h.ctx, tc.in, command.RequestMeta{})
			if !errors.Is(err, domain.ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
			var ve *domain.ValidationError
			var pe *domain.PasswordPolicyError
			switch {
			case tc.field == "password":
				if !errors.As(err, &pe) || len(pe.Reasons) == 0 {
					t.Fatalf("error %v is not a PasswordPolicyError", err)
				}
			case !errors.As(err, &ve) || ve.Field != tc.field:
				t.Fatalf("error %v, want a ValidationError on %s", err, tc.field)
			}
		})
	}
	if head, _ := h.store.Head(h.ctx); head != 0 {
		t.Fatalf("refused registrations wrote %d events", head)
	}
}

func TestRegisterAndLookup(t *testing.T) {
	h := newHarness(t)
	res, err := h.svc.Register(h.ctx, command.Registration{Email: " Ann.Lee@Example.com ", Password: goodPassword, FirstName: "Ann", LastName: "Lee"},
		command.RequestMeta{IP: "192.0.2.7", UserAgent: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position == 0 {
		t.Fatal("no position")
	}
	evs := h.events(domain.AccountStream(res.AccountID))
	// The email's verification link is issued in the same append.
	if len(evs) != 2 || evs[0].Type != domain.EventAccountRegistered || evs[1].Type != domain.EventEmailVerificationRequested ||
		evs[1].Position != res.Position {
		t.Fatalf("account stream %+v", evs)
	}
	reg := h.decode(evs[0]).(domain.AccountRegistered)
	if reg.Email != "ann.lee@example.com" || !strings.HasPrefix(reg.PasswordHash, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("registered %+v", reg)
	}
	if strings.Contains(string(evs[0].Data), goodPassword) {
		t.Fatal("password in clear in the log")
	}
	if md := evs[0].Metadata; md.SubjectAccountID != res.AccountID || md.IP != "192.0.2.7" || md.Actor.ID != res.AccountID {
		t.Fatalf("metadata %+v", md)
	}
	if got := h.types(domain.EmailStream(h.cfg.Keyring.Index("email", "ann.lee@example.com"))); !slices.Equal(got, []string{"EmailReserved"}) {
		t.Fatalf("reservation stream %v", got)
	}
	id, err := h.svc.LookupEmail(h.ctx, "ANN.LEE@example.com")
	if err != nil || id != res.AccountID {
		t.Fatalf("lookup %s %v", id, err)
	}
	if _, err := h.svc.LookupEmail(h.ctx, "nobody@example.com"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("lookup unknown: %v", err)
	}
	_, err = h.svc.Register(h.ctx, command.Registration{Email: "ann.lee@example.com", Password: goodPassword, FirstName: "X", LastName: "Y"}, command.RequestMeta{})
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	a, err := h.svc.Account(h.ctx, res.AccountID)
	if err != nil || a.Email() != "ann.lee@example.com" || a.FirstName() != "Ann" {
		t.Fatalf("account %v %v", a, err)
	}
	if _, err := h.svc.Account(h.ctx, "missing"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
}

func TestRegisterEmailRace(t *testing.T) {
	h := newHarness(t)
	ids := make([]string, 20)
	errs := race(20, func(i int) error {
		res, err := h.svc.Register(h.ctx, command.Registration{Email: "race@example.com", Password: goodPassword,
			FirstName: fmt.Sprintf("N%d", i), LastName: "Racer"}, command.RequestMeta{})
		ids[i] = res.AccountID
		return err
	})
	ok, conflicts := count(errs, domain.ErrConflict)
	if ok != 1 || conflicts != 19 {
		t.Fatalf("%d registrations won, %d conflicts: %v", ok, conflicts, errs)
	}
	winner := ""
	for i, err := range errs {
		if err == nil {
			winner = ids[i]
		}
	}
	if id, err := h.svc.LookupEmail(h.ctx, "race@example.com"); err != nil || id != winner {
		t.Fatalf("lookup %s %v, winner %s", id, err, winner)
	}
	// only the winner's account stream exists
	all, _ := h.store.ReadAll(h.ctx, 0, 1000)
	accounts := 0
	for _, e := range all {
		if e.Type == domain.EventAccountRegistered {
			accounts++
		}
	}
	if accounts != 1 {
		t.Fatalf("%d accounts registered", accounts)
	}
}

func TestChangeEmailNamesProfile(t *testing.T) {
	h := newHarness(t)
	id := h.register("old@example.com")
	h.register("taken@example.com")
	sess := h.login("old@example.com").Session

	if _, err := h.svc.ChangeEmail(h.ctx, sess, "Taken@example.com", command.RequestMeta{}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("taken email: %v", err)
	}
	pos, err := h.svc.ChangeEmail(h.ctx, sess, "New@Example.com", command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatalf("change email: %d %v", pos, err)
	}
	if got, _ := h.svc.LookupEmail(h.ctx, "new@example.com"); got != id {
		t.Fatal("new email does not find the account")
	}
	if _, err := h.svc.LookupEmail(h.ctx, "old@example.com"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("old email still finds the account: %v", err)
	}
	if got := h.types(domain.EmailStream(h.cfg.Keyring.Index("email", "old@example.com"))); !slices.Equal(got, []string{"EmailReserved", "EmailReleased"}) {
		t.Fatalf("old reservation %v", got)
	}
	// the old email is free again
	other := h.register("old@example.com")
	if other == id {
		t.Fatal("same id")
	}
	if _, err := h.svc.Login(h.ctx, "new@example.com", goodPassword, "", command.RequestMeta{}); err != nil {
		t.Fatalf("login with the new email: %v", err)
	}

	if _, err := h.svc.ChangeName(h.ctx, sess, "Anne", "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("empty last name: %v", err)
	}
	if _, err := h.svc.ChangeName(h.ctx, sess, "Anne", "Li", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	country, locale := "ch", "de-ch"
	if _, err := h.svc.UpdateProfile(h.ctx, sess, domain.ProfilePatch{Country: &country, Locale: &locale}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if pos, err := h.svc.UpdateProfile(h.ctx, sess, domain.ProfilePatch{Country: &country}, command.RequestMeta{}); err != nil || pos != 0 {
		t.Fatalf("unchanged profile wrote %d, %v", pos, err)
	}
	a, _ := h.svc.Account(h.ctx, id)
	if a.FirstName() != "Anne" || a.LastName() != "Li" || a.Profile().Country != "CH" || a.Profile().Locale != "de-CH" {
		t.Fatalf("account %s %s %+v", a.FirstName(), a.LastName(), a.Profile())
	}
	if got := h.types(domain.AccountStream(id)); !slices.Equal(got, []string{"AccountRegistered", "EmailVerificationRequested",
		"EmailChanged", "EmailVerificationRequested", "NameChanged", "ProfileUpdated"}) {
		t.Fatalf("account stream %v", got)
	}
}

func TestRolesAndClients(t *testing.T) {
	h := newHarness(t)
	id := h.register("admin@example.com")
	if _, err := h.svc.GrantRole(h.ctx, id, "root", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("bad role: %v", err)
	}
	if pos, err := h.svc.GrantRole(h.ctx, id, domain.RoleAdmin, command.RequestMeta{}); err != nil || pos == 0 {
		t.Fatal(err)
	}
	if pos, _ := h.svc.GrantRole(h.ctx, id, domain.RoleAdmin, command.RequestMeta{}); pos != 0 {
		t.Fatal("granted twice")
	}
	sec, _ := h.svc.Security(h.ctx, id)
	if !slices.Equal(sec.Roles, []string{"admin"}) {
		t.Fatalf("roles %v", sec.Roles)
	}
	if _, err := h.svc.RevokeRole(h.ctx, id, domain.RoleAdmin, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}

	if c, err := h.svc.Client(h.ctx, "portal"); err != nil || c.Name != "Vigil portal" {
		t.Fatalf("portal %+v %v", c, err)
	}
	if _, err := h.svc.Login(h.ctx, "admin@example.com", goodPassword, "no-such-client", command.RequestMeta{}); !errors.Is(err, command.ErrUnknownClient) {
		t.Fatalf("unknown client: %v", err)
	}
	if _, _, err := h.svc.RegisterClient(h.ctx, "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("empty client name: %v", err)
	}
	c, pos, err := h.svc.RegisterClient(h.ctx, "Payroll", command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatal(err)
	}
	if got := h.types(domain.ClientStream(c.ID)); !slices.Equal(got, []string{"ClientRegistered"}) {
		t.Fatalf("client stream %v", got)
	}
	// a second service (another instance) finds the client in the log
	other, err := command.NewService(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.Client(h.ctx, c.ID); err != nil || got.Name != "Payroll" {
		t.Fatalf("client from the log %+v %v", got, err)
	}
	res, err := other.Login(h.ctx, "admin@example.com", goodPassword, c.ID, command.RequestMeta{})
	if err != nil || res.Authenticated.Session.ClientID != c.ID {
		t.Fatalf("login with client %+v %v", res, err)
	}
}
