package follow_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestExclusiveConsumerActsOnOneInstance: two followers of one log share MemoryLeases; the
// Exclusive consumer handles every event on exactly one of them. When the holder stops, the
// other takes over at its next try (TTL/4: a clean stop releases the lease) and resumes from the shared
// progress, not from its own checkpoint (which has not moved): nothing is handled twice.
func TestExclusiveConsumerActsOnOneInstance(t *testing.T) {
	store := openStore(t)
	leases := &follow.MemoryLeases{Lifetime: 2 * time.Second}
	sink := testkit.NewSink()
	a := testkit.NewExclusiveFollower(t, store, leases, sink, "a")
	stopA := run(t, a)
	testwait.Until(t, 5*time.Second, "a to hold the lease", func() (bool, string) { return a.Leased()["sink"], fmt.Sprint(a.Leased()) })
	b := testkit.NewExclusiveFollower(t, store, leases, sink, "b")
	run(t, b)

	var head uint64
	for range 10 {
		head = testkit.AppendN(t, store, 3)
	}
	waitFor(t, a, head, "sink")
	waitFor(t, b, head, "sink") // b sees the shared progress
	for p, who := range sink.Check(t, head) {
		if who != "a" {
			t.Fatalf("position %d handled by %s, the non-holder", p, who)
		}
	}
	if st, err := b.Status(t.Context()); err != nil || len(st) != 1 || !st[0].Exclusive || st[0].Holder || st[0].Checkpoint != head {
		t.Fatalf("b's status: %+v %v; want exclusive, not the holder, at the shared progress %d", st, err, head)
	}

	stopA()
	testwait.Until(t, 5*time.Second, "b to take over", func() (bool, string) { return b.Leased()["sink"], fmt.Sprint(b.Leased()) })
	from := head
	for range 5 {
		head = testkit.AppendN(t, store, 2)
	}
	waitFor(t, b, head, "sink")
	for p, who := range sink.Check(t, head) {
		if want := map[bool]string{true: "a", false: "b"}[p <= from]; who != want {
			t.Fatalf("position %d handled by %s, want %s", p, who, want)
		}
	}
}

// TestExclusiveConsumerWithoutLeases: without Config.Leases an Exclusive consumer acts as
// any (one instance: nothing changes).
func TestExclusiveConsumerWithoutLeases(t *testing.T) {
	store := openStore(t)
	sink := testkit.NewSink()
	f := testkit.NewExclusiveFollower(t, store, nil, sink, "only")
	run(t, f)
	head := testkit.AppendN(t, store, 7)
	waitFor(t, f, head, "sink")
	sink.Check(t, head)
	if len(f.Leased()) != 0 {
		t.Fatalf("leases without Config.Leases: %v", f.Leased())
	}
}

// TestCloseTimeoutIsTyped: a handler that does not stop within CloseTimeout makes Close
// return an error that errors.Is ErrCloseTimeout (callers tell it from a real failure without
// reading Watermill's text).
func TestCloseTimeoutIsTyped(t *testing.T) {
	store := openStore(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f, err := follow.New(follow.Config{Log: store, Logger: quiet, CloseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Add(follow.Consumer{Name: "stubborn", Checkpoints: follow.SQLCheckpoints{DB: newLedger(t, filepath.Join(t.TempDir(), "l.db")).db},
		Handle: func(context.Context, []domain.Envelope) error {
			entered <- struct{}{}
			<-release // ignores its context
			return nil
		}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	testkit.AppendN(t, store, 1)
	testwait.Recv(t, 10*time.Second, "the handler to start", entered)
	err = f.Close()
	close(release)
	if !errors.Is(err, follow.ErrCloseTimeout) {
		t.Fatalf("Close with a stuck handler: %v, want ErrCloseTimeout", err)
	}
	<-done
}

// cutOff is Leases that can be cut off (an instance that lost NATS); it records when its
// last successful Acquire began.
type cutOff struct {
	follow.Leases
	off    atomic.Bool
	mu     sync.Mutex
	lastOK time.Time
}

func (c *cutOff) Acquire(ctx context.Context, name, holder string) (bool, error) {
	if c.off.Load() {
		return false, errors.New("cut off")
	}
	start := time.Now() // the lease then lasts until at least start + TTL
	held, err := c.Leases.Acquire(ctx, name, holder)
	if held {
		c.mu.Lock()
		c.lastOK = start
		c.mu.Unlock()
	}
	return held, err
}

// TestHolderCutOffStopsBeforeExpiry: a holder that cannot renew ends its term (stops acting)
// before its lease can expire, so another instance never acts at the same time; the other
// takes the lease once it has expired.
func TestHolderCutOffStopsBeforeExpiry(t *testing.T) {
	shared := &follow.MemoryLeases{Lifetime: time.Second}
	a := &cutOff{Leases: shared}
	la := follow.NewLease(a, "mail", "a", quiet)
	lb := follow.NewLease(shared, "mail", "b", quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go la.Run(ctx)
	wctx, wcancel := testwait.Context(10 * time.Second)
	defer wcancel()
	term, err := la.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	go lb.Run(ctx)
	a.off.Store(true)
	testwait.Recv(t, 5*time.Second, "a's term to end", term.Ctx.Done())
	ended := time.Now()
	a.mu.Lock()
	expires := a.lastOK.Add(shared.TTL())
	a.mu.Unlock()
	if !ended.Before(expires) {
		t.Fatalf("a stopped acting %s after its lease could expire", ended.Sub(expires))
	}
	bt, err := lb.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Now(); took.Before(expires) {
		t.Fatalf("b acts %s before a's lease expired", expires.Sub(took))
	}
	if la.Current() != nil || lb.Current() != bt {
		t.Fatal("after the takeover a still holds or b does not")
	}
}
