package statetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// LeaseFixture is one implementation of follow.Leases as two instances see it: A and B
// share the leases (for the in-memory one, the same value). Expire makes every lease not
// renewed since older than the TTL (a fake clock's jump); nil means the leases expire by
// themselves, and the suite waits for it (bounded by 5 TTLs, polling, no sleeps).
type LeaseFixture struct {
	A, B   follow.Leases
	Expire func()
}

// RunLeases runs the contract suite of follow.Leases; newLeases returns fresh, empty leases
// for each sub-test.
func RunLeases(t *testing.T, newLeases func(t *testing.T) LeaseFixture) {
	t.Run("ExclusiveRenewRelease", func(t *testing.T) { testLeaseExclusive(t, newLeases(t)) })
	t.Run("ExpiryAndTakeover", func(t *testing.T) { testLeaseExpiry(t, newLeases(t)) })
	t.Run("ConcurrentTakers", func(t *testing.T) { testLeaseConcurrent(t, newLeases(t)) })
	t.Run("Progress", func(t *testing.T) { testLeaseProgress(t, newLeases(t)) })
}

func acquire(t *testing.T, l follow.Leases, name, holder string) bool {
	t.Helper()
	held, err := l.Acquire(t.Context(), name, holder)
	if err != nil {
		t.Fatalf("%s acquires %s: %v", holder, name, err)
	}
	return held
}

func testLeaseExclusive(t *testing.T, f LeaseFixture) {
	if f.A.TTL() <= 0 {
		t.Fatalf("TTL %s", f.A.TTL())
	}
	if !acquire(t, f.A, "mail", "a") {
		t.Fatal("a free lease was not taken")
	}
	if acquire(t, f.B, "mail", "b") {
		t.Fatal("b took the lease a holds")
	}
	for i := range 3 {
		if !acquire(t, f.A, "mail", "a") {
			t.Fatalf("renewal %d by the holder failed", i+1)
		}
		if acquire(t, f.B, "mail", "b") {
			t.Fatalf("b took the lease after a's renewal %d", i+1)
		}
	}
	// Another name is another lease.
	if !acquire(t, f.B, "webhook-x", "b") {
		t.Fatal("b could not take another, free lease")
	}
	// Releasing what one does not hold changes nothing.
	if err := f.B.Release(t.Context(), "mail", "b"); err != nil {
		t.Fatal(err)
	}
	if acquire(t, f.B, "mail", "b") {
		t.Fatal("a non-holder's release freed the lease")
	}
	if err := f.A.Release(t.Context(), "mail", "a"); err != nil {
		t.Fatal(err)
	}
	if !acquire(t, f.B, "mail", "b") {
		t.Fatal("b could not take a released lease at once")
	}
	if acquire(t, f.A, "mail", "a") {
		t.Fatal("a took the lease back from b")
	}
}

func testLeaseExpiry(t *testing.T, f LeaseFixture) {
	if !acquire(t, f.A, "ssf-push-s1", "a") {
		t.Fatal("a free lease was not taken")
	}
	// a stops renewing (killed): b takes over once the TTL has passed, not before.
	if acquire(t, f.B, "ssf-push-s1", "b") {
		t.Fatal("b took a live lease")
	}
	start := time.Now()
	if f.Expire != nil {
		f.Expire()
		if !acquire(t, f.B, "ssf-push-s1", "b") {
			t.Fatal("b could not take an expired lease")
		}
	} else {
		ttl := f.A.TTL()
		testwait.Until(t, 5*ttl, "b to take the expired lease", func() (bool, string) {
			return acquire(t, f.B, "ssf-push-s1", "b"), "a still holds it"
		})
		if el := time.Since(start); el < ttl/2 {
			t.Fatalf("b took the lease %s after a's last renewal; the TTL is %s", el, ttl)
		}
	}
	// The old holder's renewal fails: it must stop acting.
	if acquire(t, f.A, "ssf-push-s1", "a") {
		t.Fatal("the expired holder renewed a lease another instance took")
	}
	if !acquire(t, f.B, "ssf-push-s1", "b") {
		t.Fatal("the new holder cannot renew")
	}
}

func testLeaseConcurrent(t *testing.T, f LeaseFixture) {
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		l := f.A
		if i%2 == 1 {
			l = f.B
		}
		wg.Go(func() {
			held, err := l.Acquire(t.Context(), "nats", fmt.Sprint("holder-", i))
			if err != nil {
				t.Error(err)
			}
			if held {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of 16 concurrent takers got the lease, want 1", wins.Load())
	}
}

func testLeaseProgress(t *testing.T, f LeaseFixture) {
	ctx := t.Context()
	if p, err := f.B.Progress(ctx, "mail"); err != nil || p != 0 {
		t.Fatalf("progress of a new name: %d %v", p, err)
	}
	for _, step := range []struct{ save, want uint64 }{{5, 5}, {3, 5}, {9, 9}, {9, 9}} {
		if err := f.A.SaveProgress(ctx, "mail", step.save); err != nil {
			t.Fatal(err)
		}
		if p, err := f.B.Progress(ctx, "mail"); err != nil || p != step.want {
			t.Fatalf("after saving %d: %d %v, want %d (never lowered)", step.save, p, err, step.want)
		}
	}
	if p, _ := f.B.Progress(ctx, "nats"); p != 0 {
		t.Fatalf("another name's progress moved: %d", p)
	}
	// Concurrent saves from both instances: the highest wins.
	var wg sync.WaitGroup
	for i := range 20 {
		l := f.A
		if i%2 == 1 {
			l = f.B
		}
		wg.Go(func() {
			if err := l.SaveProgress(ctx, "mail", uint64(100+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p, err := f.A.Progress(ctx, "mail"); err != nil || p != 119 {
		t.Fatalf("after concurrent saves: %d %v, want 119", p, err)
	}
}
