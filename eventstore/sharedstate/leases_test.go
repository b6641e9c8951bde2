package sharedstate_test

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/sharedstate"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestExclusiveConsumerNATSAwayAndBack: two instances (followers of one log, each with its
// own NATS connection) run an Exclusive consumer on the NATS leases. One handles everything.
// When NATS goes away, the holder stops acting within the lease's TTL (it cannot renew) and
// the events appended meanwhile wait; when NATS is back on its address with its storage, an
// instance takes the lease again and handles them, resuming from the shared progress: every
// event exactly once.
func TestExclusiveConsumerNATSAwayAndBack(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	port := ns.Addr().(*net.TCPAddr).Port
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sink := testkit.NewSink()
	var fs []*follow.Follower
	for _, name := range []string{"a", "b"} {
		st, err := sharedstate.Open(t.Context(), sharedstate.Config{URL: ns.ClientURL(), Secret: secret, BucketPrefix: "away",
			OpTimeout: 500 * time.Millisecond, LeaseTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		f := testkit.NewExclusiveFollower(t, store, st.Leases, sink, name)
		go func() { _ = f.Run(t.Context()) }()
		t.Cleanup(func() { _ = f.Close() })
		fs = append(fs, f)
	}
	holders := func() (int, string) {
		n := 0
		for _, f := range fs {
			if f.Leased()["sink"] {
				n++
			}
		}
		return n, fmt.Sprint(fs[0].Leased(), fs[1].Leased())
	}
	testwait.Until(t, 10*time.Second, "one instance to hold the lease", func() (bool, string) { n, s := holders(); return n == 1, s })
	head := testkit.AppendN(t, store, 12)
	// Both followers at head: the holder handled everything and the other has read that in
	// the shared progress (no effect is left unrecorded when NATS goes).
	for _, f := range fs {
		ctx, cancel := testwait.Context(10 * time.Second)
		if err := f.WaitFor(ctx, head, "sink"); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	sink.Check(t, head)

	ns.Shutdown()
	ns.WaitForShutdown()
	testwait.Until(t, 5*time.Second, "the holder to stop acting within the lease TTL", func() (bool, string) { n, s := holders(); return n == 0, s })
	before := sink.Count()
	head = testkit.AppendN(t, store, 5)
	if sink.Count() != before {
		t.Fatalf("events handled while no instance holds the lease")
	}

	startNATS(t, dir, port)
	testwait.Until(t, 20*time.Second, "an instance to act again once NATS is back", func() (bool, string) { n, s := holders(); return n == 1, s })
	testwait.Until(t, 10*time.Second, "the events appended while NATS was away", func() (bool, string) {
		return sink.Count() == int(head), fmt.Sprint(sink.Count(), " of ", head)
	})
	sink.Check(t, head)
}

// TestSSFAcksShared: a poll acknowledgement recorded through one connection is seen through
// another (another instance), for its stream only.
func TestSSFAcksShared(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	a, b := open(t, ns.ClientURL(), "acks"), open(t, ns.ClientURL(), "acks")
	ctx := t.Context()
	if err := a.SSFAcks.Ack(ctx, "s1", []string{"j1", "j2"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SSFAcks.Ack(ctx, "s1", []string{"j2"}); err != nil { // an acknowledgement may repeat
		t.Fatal(err)
	}
	got, err := b.SSFAcks.Acked(ctx, "s1", []string{"j1", "j2", "j3"})
	if err != nil || len(got) != 2 || !got["j1"] || !got["j2"] {
		t.Fatalf("acked on s1: %v %v, want j1 and j2", got, err)
	}
	if got, err := b.SSFAcks.Acked(ctx, "s2", []string{"j1"}); err != nil || len(got) != 0 {
		t.Fatalf("another stream: %v %v", got, err)
	}
}
