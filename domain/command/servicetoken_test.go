package command_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
)

func newTokens(t *testing.T) (*command.ServiceTokens, *sqlite.Store, *testkit.Clock) {
	t.Helper()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	clk := testkit.NewClock(start)
	st, err := command.NewServiceTokens(command.ServiceTokensConfig{Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return st, store, clk
}

func TestServiceTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	st, store, clk := newTokens(t)
	admin := command.RequestMeta{Actor: &domain.Actor{Type: domain.ActorAdmin, ID: "adm"}}
	tok, secret, pos, err := st.Create(ctx, " SIEM ", []string{command.ScopeEventsRead, command.ScopeEventsRead}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "vgl_") || len(secret) < 4+43 || pos == 0 || tok.Name != "SIEM" || len(tok.Scopes) != 1 || tok.CreatedBy != "adm" {
		t.Fatalf("created %+v %q %d", tok, secret, pos)
	}
	// Only the hash is in the log.
	evs, _ := store.ReadStream(ctx, domain.ServiceTokenStream(tok.ID), 1, 0)
	if len(evs) != 1 || strings.Contains(string(evs[0].Data), secret) || strings.Contains(string(evs[0].Data), secret[4:]) {
		t.Fatalf("stream %+v", evs)
	}
	got, err := st.Authenticate(ctx, secret, command.ScopeEventsRead, command.RequestMeta{})
	if err != nil || got.ID != tok.ID {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	for _, bad := range []string{"", "vgl_", secret + "x", "Bearer " + secret, strings.ToUpper(secret), "sess_" + secret[4:]} {
		if _, err := st.Authenticate(ctx, bad, command.ScopeEventsRead, command.RequestMeta{}); !errors.Is(err, command.ErrServiceTokenInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Missing scope: denied and recorded once per interval.
	for range 5 {
		if _, err := st.Authenticate(ctx, secret, command.ScopeAuditRead, command.RequestMeta{IP: "192.0.2.1"}); !errors.Is(err, command.ErrInsufficientScope) {
			t.Fatalf("scope: %v", err)
		}
	}
	evs, _ = store.ReadStream(ctx, domain.ServiceTokenStream(tok.ID), 1, 0)
	if len(evs) != 2 || evs[1].Type != domain.EventServiceTokenUseDenied || evs[1].Metadata.Actor.Type != domain.ActorService || evs[1].Metadata.Actor.ID != tok.ID {
		t.Fatalf("after 5 denials: %+v", evs)
	}
	clk.Advance(command.DefaultDeniedInterval)
	_, _ = st.Authenticate(ctx, secret, command.ScopeAuditRead, command.RequestMeta{})
	evs, _ = store.ReadStream(ctx, domain.ServiceTokenStream(tok.ID), 1, 0)
	if len(evs) != 3 || !strings.Contains(string(evs[2].Data), `"suppressed":4`) {
		t.Fatalf("after the interval: %d events, last %s", len(evs), evs[len(evs)-1].Data)
	}
	// Revocation holds at once; a second revocation writes nothing; use is denied.
	rpos, err := st.Revoke(ctx, tok.ID, admin)
	if err != nil || rpos == 0 {
		t.Fatalf("revoke: %d %v", rpos, err)
	}
	if _, err := st.Authenticate(ctx, secret, command.ScopeEventsRead, command.RequestMeta{}); !errors.Is(err, command.ErrServiceTokenInvalid) {
		t.Fatalf("revoked token: %v", err)
	}
	if p, err := st.Revoke(ctx, tok.ID, admin); err != nil || p != 0 {
		t.Fatalf("second revoke: %d %v", p, err)
	}
	if _, err := st.Revoke(ctx, "nope", admin); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	list := st.List()
	if len(list) != 1 || !list[0].Revoked || list[0].RevokedAt.IsZero() {
		t.Fatalf("list %+v", list)
	}
	// Another instance's index, fed from the log, converges.
	other := command.NewServiceTokenIndex()
	all, _ := store.ReadAll(ctx, 0, 1000)
	for _, e := range append(all, all...) { // twice: repeats change nothing
		if err := other.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	o, ok := other.Lookup(command.HashServiceToken(secret))
	if !ok || !o.Revoked || o.ID != tok.ID || o.Name != "SIEM" {
		t.Fatalf("other index: %+v %v", o, ok)
	}
}

func TestServiceTokenValidation(t *testing.T) {
	ctx := context.Background()
	st, store, _ := newTokens(t)
	for _, tc := range []struct {
		name   string
		scopes []string
	}{
		{"", []string{command.ScopeEventsRead}},
		{"x", nil},
		{"x", []string{"events:write"}},
		{strings.Repeat("n", 101), []string{command.ScopeAuditRead}},
	} {
		if _, _, _, err := st.Create(ctx, tc.name, tc.scopes, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
			t.Errorf("%q %v: %v", tc.name, tc.scopes, err)
		}
	}
	if h, _ := store.Head(ctx); h != 0 {
		t.Fatalf("refused creations wrote %d events", h)
	}
	// Two tokens are distinct and each sees only its scopes.
	_, s1, _, _ := st.Create(ctx, "a", []string{command.ScopeAuditRead}, command.RequestMeta{})
	_, s2, _, _ := st.Create(ctx, "b", []string{command.ScopeAuditRead, command.ScopeEventsRead}, command.RequestMeta{})
	if s1 == s2 {
		t.Fatal("same secret twice")
	}
	if _, err := st.Authenticate(ctx, s2, command.ScopeEventsRead, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, s1, command.ScopeEventsRead, command.RequestMeta{}); !errors.Is(err, command.ErrInsufficientScope) {
		t.Fatal(err)
	}
	_ = time.Second
}
