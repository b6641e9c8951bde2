package app

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

func eventsStatus(t *testing.T, base, token string) int {
	t.Helper()
	return bearerStatus(t, base+"/api/v1/events?limit=1", token)
}

// otherInstance is a second writer of the same log: the service token commands of another
// Vigil instance.
func otherInstance(t *testing.T, dir string) *command.ServiceTokens {
	t.Helper()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	st, err := command.NewServiceTokens(command.ServiceTokensConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestServiceTokensAcrossInstancesAndRestart: a token created or revoked by another instance
// reaches this one through the log, and tokens survive a restart (the server serves only
// once its token index has caught up with the log).
func TestServiceTokensAcrossInstancesAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := testkit.NewClock(time.Now())
	base, stop := startApp(t, dir, clk)
	other := otherInstance(t, dir)

	tok, secret, _, err := other.Create(ctx, "SIEM", []string{command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return eventsStatus(t, base, secret) == 200 }, "a token created on another instance authenticates here")
	if _, err := other.Revoke(ctx, tok.ID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return eventsStatus(t, base, secret) == 401 }, "a token revoked on another instance is refused here")

	_, kept, _, err := other.Create(ctx, "kept", []string{command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return eventsStatus(t, base, kept) == 200 }, "the second token arrives")
	stop()
	base, stop = startApp(t, dir, clk)
	defer stop()
	if s := eventsStatus(t, base, kept); s != 200 {
		t.Fatalf("after a restart the token answers %d", s)
	}
	if s := eventsStatus(t, base, secret); s != 401 {
		t.Fatalf("after a restart the revoked token answers %d", s)
	}
}

// TestShutdownEndsStreams: an open SSE stream does not hold up the shutdown (the drain
// timeout is 10 s; the stream ends at once).
func TestShutdownEndsStreams(t *testing.T) {
	dir := t.TempDir()
	clk := testkit.NewClock(time.Now())
	base, stop := startApp(t, dir, clk)
	_, secret, _, err := otherInstance(t, dir).Create(context.Background(), "SIEM", []string{command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return eventsStatus(t, base, secret) == 200 }, "the token arrives")
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("first line %q, %v", line, err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	stop()
	if d := time.Since(start); d > testwait.Deadline(5*time.Second) {
		t.Fatalf("shutdown took %v with a stream open", d)
	}
	testwait.Recv(t, 5*time.Second, "the stream to end after shutdown", ended)
}
