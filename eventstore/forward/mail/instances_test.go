package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// instance is one server's outbox of a deployment sharing leases, writing .eml files into its
// own data directory.
type instance struct {
	o      *mail.Outbox
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func startInstance(t *testing.T, f *fixture, leases follow.Leases, name, dir string) *instance {
	t.Helper()
	u, _ := url.Parse(publicURL)
	o, err := mail.New(context.Background(), mail.Config{
		Log: f.log, Sender: &mail.FileSender{Dir: filepath.Join(dir, "mail"), From: from(t)}, Keyring: f.keyring, PublicURL: u,
		CheckpointPath: filepath.Join(dir, "mail.db"), Logger: slog.New(slog.DiscardHandler), Leases: leases, Holder: name,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
		NackBackoff: 20 * time.Millisecond, MaxNackBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{o: o, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- o.Run(ctx) }()
	testwait.Recv(t, 10*time.Second, "the outbox to run", o.Running())
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	if in.o == nil {
		return
	}
	in.cancel()
	<-in.done
	_ = in.o.Close()
	in.o = nil
}

// files lists the .eml files about account in the instance's mail directory.
func (in *instance) files(account string) []string {
	entries, _ := os.ReadDir(filepath.Join(in.dir, "mail"))
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), account) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestEachInstanceForgetsAnErasedAccountsMail: with mail written as files and several
// instances, each holder wrote some of an account's messages into its own data directory. An
// erasure removes them from every instance's directory, also from one that does not hold the
// outbox's lease.
func TestEachInstanceForgetsAnErasedAccountsMail(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	leases := &follow.MemoryLeases{Lifetime: time.Second}
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startInstance(t, f, leases, "a", dirA)
	testwait.Until(t, 5*time.Second, "a to hold the outbox's lease", func() (bool, string) { return a.o.Sending(), "not yet" })
	b := startInstance(t, f, leases, "b", dirB)
	acct := f.account("ada@example.com", "Ada", "")
	f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordChanged{PasswordHash: "$argon2id$x", At: time.Now().UTC()})
	testwait.Until(t, 10*time.Second, "a to write the password notice", func() (bool, string) { return len(a.files(acct)) == 1, fmt.Sprint(a.files(acct)) })

	a.stop() // b takes over and writes the next one
	second := f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordChanged{PasswordHash: "$argon2id$y", At: time.Now().UTC()})
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	if err := b.o.WaitFor(ctx, second.Position); err != nil {
		t.Fatal(err)
	}
	// b resumed after what a sent (the shared progress), not from its own checkpoint.
	if got := b.files(acct); len(got) != 1 || !b.o.Sending() {
		t.Fatalf("b (sending: %v) wrote %v, want only the second notice", b.o.Sending(), got)
	}
	if len(a.files(acct)) != 1 {
		t.Fatalf("a's directory: %v", a.files(acct))
	}
	a = startInstance(t, f, leases, "a", dirA) // back, not the holder

	f.appendTo(domain.AccountStream(acct), md(acct), domain.AccountErased{At: time.Now().UTC()})
	testwait.Until(t, 10*time.Second, "every instance to forget the erased account's mail", func() (bool, string) {
		return len(a.files(acct)) == 0 && len(b.files(acct)) == 0, fmt.Sprint("a: ", a.files(acct), " b: ", b.files(acct))
	})
}
