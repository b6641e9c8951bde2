package ssf_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// twoInstances runs two transmitters on one log, each with its own database, sharing leases
// and poll acknowledgements as two instances of a deployment do.
func twoInstances(t *testing.T) (*env, *env) {
	t.Helper()
	leases := &follow.MemoryLeases{Lifetime: time.Second}
	acks := &ssf.MemoryAcks{}
	share := func(holder string) func(*ssf.Config) {
		return func(c *ssf.Config) { c.Leases, c.Holder, c.Acks = leases, holder, acks }
	}
	a := newEnv(t, share("a"))
	b := &env{t: t, dir: t.TempDir(), log: a.log, keys: a.keys, tweak: share("b")}
	b.start()
	t.Cleanup(func() { b.stop() })
	return a, b
}

func waitRegistry(t *testing.T, e *env, pos uint64) {
	t.Helper()
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	if err := e.tr.WaitRegistry(ctx, pos); err != nil {
		t.Fatal(err)
	}
}

// TestPushOnceFromTwoInstances: both instances make the push stream's SETs, one pushes them
// (the push lease's holder). When it stops, the other takes over from the shared progress:
// the receiver gets every SET once, in order, none of those pushed before again.
func TestPushOnceFromTwoInstances(t *testing.T) {
	a, b := twoInstances(t)
	rcv := newReceiver(t, a.keys)
	id := a.createStream(ssf.MethodPush, rcv.srv.URL)
	head, _ := a.log.Head(context.Background())
	waitRegistry(t, b, head)
	md := accountMD("a1")
	var want []string
	add := func(n int) {
		for range n {
			want = append(want, a.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md).ID)
		}
	}
	add(6)
	rcv.waitSets(6)
	// Both made the SETs. Stop a (the first to run, so most likely the holder; either way the
	// other must push what comes next and none of the first six again).
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	last, _ := a.log.Head(ctx)
	if err := b.tr.WaitStream(ctx, id, last); err != nil {
		t.Fatal(err)
	}
	a.stop()
	add(4)
	got := rcv.waitSets(len(want))
	var order []string
	for _, s := range got {
		order = append(order, s.Claims.Txn)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("pushed %v\nwant %v (each once, in order)", order, want)
	}
}

// TestPollAcknowledgedOnOneInstance: a receiver polling through a round-robin balancer
// acknowledges on one instance what another gave it; no instance offers it again.
func TestPollAcknowledgedOnOneInstance(t *testing.T) {
	a, b := twoInstances(t)
	id := a.createStream(ssf.MethodPoll, "")
	md := accountMD("a1")
	var want []string
	for range 6 {
		want = append(want, a.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md).ID)
	}
	for _, e := range []*env{a, b} {
		testwait.Until(t, 10*time.Second, "6 SETs on each instance", func() (bool, string) {
			n := len(poll(t, e, id, 10, true, nil))
			return n == 6, fmt.Sprint(n)
		})
	}
	// Round robin: poll a, acknowledge on b, poll a again, ...
	seen := map[string]bool{}
	var got []string
	var ack []string
	for i := 0; ; i++ {
		e := []*env{a, b}[i%2]
		r := poll(t, e, id, 2, true, ack)
		if len(r) == 0 {
			break
		}
		if i > 20 {
			t.Fatal("the queue does not drain")
		}
		ack = keys(r)
		for k, s := range r {
			if seen[k] {
				t.Fatalf("SET %s acknowledged on the other instance was offered again", k)
			}
			seen[k] = true
			got = append(got, s.Claims.Txn)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("polled %v, want %v", got, want)
	}
}

// flakyAcks is shared acknowledgements that can be cut off (NATS away).
type flakyAcks struct {
	ssf.MemoryAcks
	off atomic.Bool
}

var errAway = errors.New("shared state away")

func (f *flakyAcks) Ack(ctx context.Context, stream string, jtis []string) error {
	if f.off.Load() {
		return errAway
	}
	return f.MemoryAcks.Ack(ctx, stream, jtis)
}

func (f *flakyAcks) Acked(ctx context.Context, stream string, jtis []string) (map[string]bool, error) {
	if f.off.Load() {
		return nil, errAway
	}
	return f.MemoryAcks.Acked(ctx, stream, jtis)
}

// TestPollWhileSharedAcksAway: a poll whose acknowledgements cannot be shared fails (the
// HTTP layer answers 503 for sharedstate's ErrUnavailable) and changes nothing: the SETs it
// acknowledged are still offered once the shared state is back, until acknowledged again.
func TestPollWhileSharedAcksAway(t *testing.T) {
	acks := &flakyAcks{}
	e := newEnv(t, func(c *ssf.Config) { c.Acks = acks })
	id := e.createStream(ssf.MethodPoll, "")
	md := accountMD("a1")
	for range 3 {
		e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md)
	}
	var first map[string]set
	testwait.Until(t, 10*time.Second, "3 SETs", func() (bool, string) {
		first = poll(t, e, id, 10, true, nil)
		return len(first) == 3, fmt.Sprint(len(first))
	})
	acks.off.Store(true)
	if _, err := e.tr.Poll(context.Background(), id, 10, true, keys(first)); !errors.Is(err, errAway) {
		t.Fatalf("poll with acknowledgements while the shared state is away: %v, want its error", err)
	}
	acks.off.Store(false)
	if again := poll(t, e, id, 10, true, nil); len(again) != 3 {
		t.Fatalf("after a failed acknowledgement %d SETs are offered, want the 3 still", len(again))
	}
	poll(t, e, id, 10, true, keys(first))
	if rest := poll(t, e, id, 10, true, nil); len(rest) != 0 {
		t.Fatalf("%d SETs after acknowledging all", len(rest))
	}
}
