package command_test

import (
	"errors"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/expect"
)

// restart builds a second Service on the same log with the bootstrap list, as a server
// start does, and runs the start's bootstrap.
func (h *harness) restart(admins ...string) *command.Service {
	h.t.Helper()
	cfg := h.cfg
	cfg.BootstrapAdmins = admins
	svc, err := command.NewService(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := svc.BootstrapAdmins(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	return svc
}

func isAdmin(t *testing.T, h *harness, svc *command.Service, id string) bool {
	t.Helper()
	a, err := svc.Account(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a.HasRole(domain.RoleAdmin)
}

// TestBootstrapAdminsGrantOnceEver covers the security review's finding 2 at the domain
// level: the listed email grants admin once, to the first account that registers with it or
// holds it at a start; neither an email change, nor a restart, nor a revocation makes it
// grant again.
func TestBootstrapAdminsGrantOnceEver(t *testing.T) {
	h := newHarness(t, func(c *command.Config) { c.BootstrapAdmins = []string{"Boss@Example.com"} })
	boss := h.register("boss@example.com")
	if !isAdmin(t, h, h.svc, boss) {
		t.Fatal("the first account registering with the listed email is not admin")
	}
	types := h.types(domain.AdminBootstrapStream(h.cfg.Keyring.Index("admin-bootstrap", "boss@example.com")))
	if len(types) != 2 || types[0] != domain.EventAdminBootstrapClaimed || types[1] != domain.EventAdminBootstrapGranted {
		t.Fatalf("bootstrap stream %v", types)
	}
	evs := h.events(domain.AccountStream(boss))
	last := evs[len(evs)-1]
	if last.Type != domain.EventRoleGranted || last.Metadata.Actor.Type != domain.ActorSystem {
		t.Fatalf("grant %s by %+v", last.Type, last.Metadata.Actor)
	}

	// The boss moves away from the address; a second account takes it and restarts happen.
	sess := h.login("boss@example.com").Session
	if _, err := h.svc.ChangeEmail(h.ctx, sess, "boss@example.org", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	mallory := h.register("boss@example.com")
	svc := h.restart("boss@example.com")
	if isAdmin(t, h, svc, mallory) {
		t.Fatal("a second account holding the listed email became admin")
	}
	if !isAdmin(t, h, svc, boss) {
		t.Fatal("the role did not stay with the first account")
	}
	// A revocation sticks across restarts.
	if _, err := svc.RevokeRole(h.ctx, boss, domain.RoleAdmin, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	svc = h.restart("boss@example.com")
	if isAdmin(t, h, svc, boss) || isAdmin(t, h, svc, mallory) {
		t.Fatal("a restart granted the bootstrap role again")
	}
}

// TestBootstrapAdminsAtStart: an email listed after its account registered grants at the
// next start; an email nobody holds waits for its first registration.
func TestBootstrapAdminsAtStart(t *testing.T) {
	h := newHarness(t)
	ann := h.register("ann@example.com")
	svc := h.restart("ann@example.com", "nobody-yet@example.com")
	if !isAdmin(t, h, svc, ann) {
		t.Fatal("the account holding a listed email at a start is not admin")
	}
	if got := h.types(domain.AdminBootstrapStream(h.cfg.Keyring.Index("admin-bootstrap", "nobody-yet@example.com"))); len(got) != 0 {
		t.Fatalf("an email nobody holds was spent: %v", got)
	}
	res, err := svc.Register(h.ctx, command.Registration{Email: "nobody-yet@example.com", Password: goodPassword, FirstName: "N", LastName: "Y"}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if !isAdmin(t, h, svc, res.AccountID) {
		t.Fatal("the first registration of a listed email is not admin")
	}
}

// TestBootstrapAdminsFinishAnInterruptedGrant: a crash between the claim and the grant is
// finished at the next start for the account the claim names, not for whoever holds the
// email by then.
func TestBootstrapAdminsFinishAnInterruptedGrant(t *testing.T) {
	h := newHarness(t)
	ann := h.register("ann@example.com")
	bob := h.register("bob@example.com")
	// Ann's claim was written, then the process died before the grant.
	data, err := domain.NewEventData(domain.EventAdminBootstrapClaimed, 1, domain.AdminBootstrapClaimed{AccountID: ann, At: start},
		domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: ann})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, domain.AdminBootstrapStream(h.cfg.Keyring.Index("admin-bootstrap", "listed@example.com")), expect.NoStream, []domain.EventData{data}); err != nil {
		t.Fatal(err)
	}
	svc := h.restart("listed@example.com")
	if !isAdmin(t, h, svc, ann) || isAdmin(t, h, svc, bob) {
		t.Fatal("the interrupted grant was not finished for the claimed account")
	}
	if got := h.types(domain.AdminBootstrapStream(h.cfg.Keyring.Index("admin-bootstrap", "listed@example.com"))); len(got) != 2 {
		t.Fatalf("bootstrap stream %v", got)
	}
}

// TestBootstrapAdminsRefuseABadEmail: a malformed entry is a configuration error.
func TestBootstrapAdminsRefuseABadEmail(t *testing.T) {
	h := newHarness(t)
	cfg := h.cfg
	cfg.BootstrapAdmins = []string{"not-an-email"}
	if _, err := command.NewService(cfg); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("NewService: %v", err)
	}
}
