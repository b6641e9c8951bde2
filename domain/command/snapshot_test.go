package command_test

import (
	"context"
	"testing"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/ephemeral"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
)

// TestSnapshotLoadEqualsFullReplay grows an account stream past several snapshots and checks
// that the snapshot-based load equals a full replay of the stream.
func TestSnapshotLoadEqualsFullReplay(t *testing.T) {
	h := newHarness(t, noThrottle)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	_, secret, codes := h.enrollTOTP(sess, "Phone")
	for i := 0; i < 130; i++ {
		h.login2FA(secret) // one TOTPCodeAccepted each
		if i%20 == 0 {
			_, _ = h.svc.Login(h.ctx, "ann@example.com", "wrong-password-123", "", command.RequestMeta{})
		}
	}
	tk := h.ticket("ann@example.com")
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", codes[2], command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.GrantRole(h.ctx, id, domain.RoleAuditor, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	version, _, ok, _ := h.snaps.Get(h.ctx, domain.AccountStream(id))
	if !ok || version < 100 {
		t.Fatalf("no snapshot written (version %d)", version)
	}
	viaSnapshot, err := h.svc.Account(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	full, err := domain.Rebuild[*domain.Account](id, h.events(domain.AccountStream(id)))
	if err != nil {
		t.Fatal(err)
	}
	if full.Version() <= version {
		t.Fatal("no events after the snapshot: the test proves little")
	}
	if viaSnapshot.Version() != full.Version() {
		t.Fatalf("snapshot load at v%d, full replay at v%d", viaSnapshot.Version(), full.Version())
	}
	fullState := loadedState(t, h, ephemeral.NewMemorySnapshotStore(), id)
	if a := loadedState(t, h, h.snaps, id); a != fullState {
		t.Fatalf("snapshot load differs from full replay:\n%s\n%s", a, fullState)
	}
	// a snapshot of an unknown schema version is ignored: full replay, same state
	_ = h.snaps.Put(h.ctx, domain.AccountStream(id), full.Version()+1000, []byte(`{"schema":99,"state":{}}`))
	if _, err := h.svc.Account(h.ctx, id); err != nil {
		t.Fatalf("unknown snapshot version: %v", err)
	}
	if again := loadedState(t, h, h.snaps, id); again != fullState {
		t.Fatalf("unknown snapshot version: state differs from full replay:\n%s\n%s", again, fullState)
	}
}

// recordingSnapshots reads the snapshots of a store and keeps, instead of storing it, the
// last snapshot put.
type recordingSnapshots struct {
	ephemeral.SnapshotStore
	put []byte
}

func (r *recordingSnapshots) Put(_ context.Context, _ string, _ uint64, state []byte) error {
	r.put = state
	return nil
}

// loadedState loads account id with an AccountRepository reading the snapshots of snaps
// and returns the whole state it loaded: the JSON of the snapshot it writes afterwards
// (Every 1, so it always writes one when it read any event after the snapshot).
func loadedState(t *testing.T, h *harness, snaps ephemeral.SnapshotStore, id string) string {
	t.Helper()
	rec := &recordingSnapshots{SnapshotStore: snaps}
	repo := &domain.AccountRepository{Store: h.store, Snapshots: rec, Every: 1, PageSize: 500}
	if _, err := repo.Load(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	if rec.put == nil {
		t.Fatal("the load replayed no event: no state to compare")
	}
	return string(rec.put)
}

// TestLoginWorkDoesNotGrowWithHistory asserts that the number of account events a sign-in
// reads stays bounded however many sign-ins the account had: sign-ins live on session
// streams, and the account stream's growth (TOTPCodeAccepted, LoginFailed) is cut by
// snapshots every 100 events.
func TestLoginWorkDoesNotGrowWithHistory(t *testing.T) {
	h := newHarness(t, noThrottle, func(c *command.Config) {
		c.Argon2 = credential.Argon2Config{MemoryKiB: 64, Iterations: 1} // many sign-ins: tiny cost
	})
	h.register("fresh@example.com")
	h.register("busy@example.com")
	h.register("ann@example.com")

	measure := func(email string) int {
		h.counter.take()
		h.login(email)
		return h.counter.take()
	}
	fresh := measure("fresh@example.com")
	for i := 0; i < 150; i++ {
		h.login("busy@example.com")
	}
	if busy := measure("busy@example.com"); busy != fresh {
		t.Fatalf("password sign-in read %d account events after 150 sign-ins, %d when fresh", busy, fresh)
	}

	// with 2FA every sign-in appends TOTPCodeAccepted to the account stream
	_, secret, _ := h.enrollTOTP(h.login("ann@example.com").Session, "Phone")
	secondFactor := func() int {
		h.counter.take()
		h.login2FA(secret)
		return h.counter.take()
	}
	first := secondFactor()
	worst := 0
	for i := 0; i < 300; i++ {
		worst = max(worst, secondFactor())
		if i%10 == 0 {
			_, _ = h.svc.Login(h.ctx, "ann@example.com", "wrong-password-123", "", command.RequestMeta{})
		}
	}
	a, _ := h.svc.Account(h.ctx, h.mustLookup("ann@example.com"))
	if a.Version() < 330 {
		t.Fatalf("account stream at version %d only", a.Version())
	}
	// Login and SecondFactor each load the account (plus a retry at most); with a snapshot
	// every 100 events a load reads at most ~100 + the few events since the last load.
	if bound := 2 * (100 + 10); worst > bound {
		t.Fatalf("a 2FA sign-in read %d account events (first %d), bound %d", worst, first, bound)
	}
	t.Logf("account events read per 2FA sign-in: first %d, worst %d over %d events", first, worst, a.Version())
}

func (h *harness) mustLookup(email string) string {
	h.t.Helper()
	id, err := h.svc.LookupEmail(h.ctx, email)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}
