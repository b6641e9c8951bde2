package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestSessionFeedSharesSessionsAcrossInstances runs two domain services on one log, as two
// Vigil instances are: a session started by one is known to the other's whoami once the feed
// has applied it (and one started before the feed began is there when the feed is ready), and
// a sign-out on one ends the session on the other.
func TestSessionFeedSharesSessionsAcrossInstances(t *testing.T) {
	ctx, cancel := testwait.Context(15 * time.Second)
	defer cancel()
	store, a, b := twoInstances(t)
	if _, err := a.Register(ctx, command.Registration{Email: "ann@example.com", Password: pw, FirstName: "Ann", LastName: "Lee"}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	login := func(svc *command.Service) string {
		t.Helper()
		res, err := svc.Login(ctx, "ann@example.com", pw, "", command.RequestMeta{IP: "192.0.2.1"})
		if err != nil || res.Authenticated == nil {
			t.Fatalf("login: %+v, %v", res, err)
		}
		return res.Authenticated.Token
	}
	before := login(a) // started before b's feed exists

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ready, done := startLogFeed(ctx, store, 0, log, b.Sessions())
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatalf("session feed never became ready: %v", context.Cause(ctx))
	}
	if _, err := b.Whoami(ctx, before); err != nil {
		t.Fatalf("instance b does not know a session started on a before its feed was ready: %v", err)
	}

	during := login(a)
	waitFor(t, func() bool { _, err := b.Whoami(ctx, during); return err == nil }, "a session started on a reaches b")

	caller, err := a.Whoami(ctx, during)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Logout(ctx, caller, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := b.Whoami(ctx, during); return err != nil }, "a sign-out on a ends the session on b")

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("feed ended with %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testwait.Until(t, 5*time.Second, what, func() (bool, string) { return cond(), "the condition still false" })
}

// pw is the password of the accounts of the two-instance tests.
const pw = "umbrella-cactus-violin-47"

// twoInstances returns a SQLite log and two domain services on it, as two Vigil instances
// are (cheap argon2, the same server key); the log is closed when the test ends.
func twoInstances(t *testing.T) (*sqlite.Store, *command.Service, *command.Service) {
	t.Helper()
	store, kr := testkit.SQLite(t), testkit.Keyring(t, "k")
	newService := func() *command.Service {
		svc, err := command.NewService(command.Config{Store: store, Keyring: kr, Snapshots: ephemeral.NewMemorySnapshotStore(),
			Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	return store, newService(), newService()
}
