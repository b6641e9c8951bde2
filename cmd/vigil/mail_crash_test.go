package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestMailOutboxSurvivesKill9 runs the real binary with --smtp-url pointing at an SMTP
// server in the test (slow: 20 ms per message) and appends triggering events to the sealed
// log from this process, as the commands would. `vigil serve` is killed with SIGKILL while
// the outbox is part-way through; the restarted server mails every triggering event at least
// once (at most the one message in flight twice), and after a clean stop and a new start
// nothing is mailed again.
func TestMailOutboxSurvivesKill9(t *testing.T) {
	bin, err := buildVigil()
	if err != nil {
		t.Fatal(err)
	}
	smtp := mailtest.Start(t, mailtest.Config{Delay: 20 * time.Millisecond})
	dir := t.TempDir()
	args := []string{"--smtp-url", smtp.URL()}
	serve := startServeWith(t, bin, dir, args...)

	log := openSealedLog(t, dir)
	const n = 40
	want := map[string]bool{}
	for i := range n {
		acct := domain.NewID()
		md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: acct}, SubjectAccountID: acct, IP: "81.2.69.142", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"}
		now := time.Now().UTC()
		ev := appendEvents(t, log, domain.AccountStream(acct), md,
			domain.AccountRegistered{AccountID: acct, Email: "user" + string(rune('a'+i%26)) + domain.NewID()[:8] + "@example.com", FirstName: "U", LastName: "T", PasswordHash: "$argon2id$x", At: now},
			domain.PasswordChanged{PasswordHash: "$argon2id$y", At: now})
		want[ev.ID] = true
	}
	// Kill it part-way through.
	for len(smtp.Messages()) < 8 {
		testwait.Recv(t, 20*time.Second, "a few messages before the kill", smtp.Changed())
	}
	_ = serve.Process.Signal(syscall.SIGKILL)
	_ = serve.Wait()
	before := len(smtp.Messages())
	if before >= n {
		t.Fatalf("the outbox had sent all %d messages before the kill: the test did not kill it mid-way", before)
	}
	t.Logf("%d of %d messages sent before SIGKILL", before, n)

	serve = startServeWith(t, bin, dir, args...)
	testwait.Until(t, 30*time.Second, "every triggering event mailed after the restart", func() (bool, string) {
		got := mailed(smtp.Messages())
		missing := 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		return missing == 0, "missing some"
	})
	got := mailed(smtp.Messages())
	dups := 0
	for id := range want {
		dups += got[id] - 1
	}
	if dups > 1 {
		t.Fatalf("%d messages sent twice after one kill: more than the one in flight", dups)
	}

	// A clean stop and a start: nothing again.
	_ = serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("vigil serve after SIGTERM: %v", err)
	}
	after := len(smtp.Messages())
	serve = startServeWith(t, bin, dir, args...)
	acct := domain.NewID()
	now := time.Now().UTC()
	marker := appendEvents(t, log, domain.AccountStream(acct), domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: acct}},
		domain.AccountRegistered{AccountID: acct, Email: "marker@example.com", FirstName: "M", LastName: "K", PasswordHash: "$argon2id$x", At: now},
		domain.PasswordChanged{PasswordHash: "$argon2id$y", At: now})
	testwait.Until(t, 20*time.Second, "the marker's mail after the clean restart", func() (bool, string) {
		return mailed(smtp.Messages())[marker.ID] == 1, "no marker"
	})
	if total := len(smtp.Messages()); total != after+1 {
		t.Fatalf("after a clean restart %d messages arrived, want only the marker's", total-after)
	}
	_ = serve.Process.Signal(syscall.SIGTERM)
	_ = serve.Wait()
}

func mailed(ms []mailtest.Message) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.Header.Get(mail.HeaderEvent)]++
	}
	return out
}

// openSealedLog opens the data directory's log from this process, sealed with its server key
// (as `vigil-dev load` writes to a served log).
func openSealedLog(t *testing.T, dir string) *sealed.Store {
	t.Helper()
	raw, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := app.OpenSealing(context.Background(), app.Config{DataDir: dir, Store: app.StoreSQLite, Logger: slog.New(slog.DiscardHandler)}, raw)
	if err != nil {
		raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// appendEvents appends events to stream and returns the last one's envelope.
func appendEvents(t *testing.T, log eventstore.Store, stream string, md domain.Metadata, events ...domain.Event) domain.Envelope {
	t.Helper()
	var data []domain.EventData
	for _, e := range events {
		d, err := domain.EncodeEvent(e, md)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
	}
	res, err := log.Append(context.Background(), stream, eventstore.Any, data)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := log.ReadStream(context.Background(), stream, res.NextVersion, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read back %s: %v", stream, err)
	}
	return evs[0]
}

// startServeWith starts `vigil serve` on a free port with extra flags and waits for its URL
// line.
func startServeWith(t *testing.T, bin, dir string, extra ...string) *server {
	t.Helper()
	return startVigil(t, bin, nil, 10*time.Second, append([]string{"serve", "--data-dir", dir, "--addr", "127.0.0.1:0"}, extra...)...)
}
