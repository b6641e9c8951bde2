package sharedstate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/sharedstate"
	"github.com/vigil-auth/vigil/eventstore/sharedstate/statetest"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

var secret = bytes.Repeat([]byte{7}, 32)

// startNATS runs an in-process nats-server with JetStream storing in dir, on port (-1: any).
func startNATS(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(testwait.Deadline(10 * time.Second)) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func open(t testing.TB, url, prefix string) *sharedstate.State {
	t.Helper()
	st, err := sharedstate.Open(t.Context(), sharedstate.Config{URL: url, Secret: secret, BucketPrefix: prefix, OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestContractMemory(t *testing.T) {
	statetest.Run(t, func(*testing.T) statetest.Stores {
		return statetest.Stores{Tickets: ephemeral.NewMemoryTicketStore(), Ceremonies: ephemeral.NewMemoryCeremonyStore(),
			Throttle: throttle.NewMemoryStore()}
	})
}

func TestContractNATS(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	n := 0
	statetest.Run(t, func(t *testing.T) statetest.Stores {
		n++
		// Two connections on one bucket set, as two instances: the stores alternate between
		// them, so every compare-and-set also races across connections.
		prefix := "contract" + strings.Repeat("x", n)
		a, b := open(t, ns.ClientURL(), prefix), open(t, ns.ClientURL(), prefix)
		return statetest.Stores{Tickets: splitTickets{a.Tickets, b.Tickets}, Ceremonies: splitCeremonies{a.Ceremonies, b.Ceremonies},
			Throttle: &splitThrottle{a: a.Throttle, b: b.Throttle}}
	})
}

// The split stores send each call to one of two instances' stores, alternating.
type splitTickets [2]ephemeral.TicketStore

var flip = make(chan int, 1)

func init() { flip <- 0 }

func pick() int {
	i := <-flip
	flip <- i + 1
	return i % 2
}

func (s splitTickets) Put(ctx context.Context, t ephemeral.LoginTicket) error {
	return s[pick()].Put(ctx, t)
}
func (s splitTickets) Attempt(ctx context.Context, id string, now time.Time, m int) (ephemeral.LoginTicket, error) {
	return s[pick()].Attempt(ctx, id, now, m)
}
func (s splitTickets) Consume(ctx context.Context, id string) bool { return s[pick()].Consume(ctx, id) }
func (s splitTickets) Prune(ctx context.Context, now time.Time)    { s[pick()].Prune(ctx, now) }

type splitCeremonies [2]ephemeral.CeremonyStore

func (s splitCeremonies) Put(ctx context.Context, c ephemeral.Ceremony, now time.Time) error {
	return s[pick()].Put(ctx, c, now)
}
func (s splitCeremonies) Take(ctx context.Context, id string, now time.Time) (ephemeral.Ceremony, error) {
	return s[pick()].Take(ctx, id, now)
}
func (s splitCeremonies) Prune(ctx context.Context, now time.Time) { s[pick()].Prune(ctx, now) }

type splitThrottle struct{ a, b throttle.Store }

func (s *splitThrottle) one() throttle.Store {
	if pick() == 0 {
		return s.a
	}
	return s.b
}
func (s *splitThrottle) Reserve(ctx context.Context, key string, r throttle.Rule, now time.Time) (throttle.Decision, error) {
	return s.one().Reserve(ctx, key, r, now)
}
func (s *splitThrottle) Refund(ctx context.Context, key string, r throttle.Reservation) error {
	return s.one().Refund(ctx, key, r)
}
func (s *splitThrottle) Reset(ctx context.Context, key string) error { return s.one().Reset(ctx, key) }
func (s *splitThrottle) Prune(ctx context.Context, now time.Time) error {
	return s.one().Prune(ctx, now)
}

// TestNothingReadableInNATS: the buckets hold neither the ticket id, nor the email of a
// throttling key, nor the ticket's account or email.
func TestNothingReadableInNATS(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	st := open(t, ns.ClientURL(), "plain")
	ctx := t.Context()
	now := time.Now()
	if err := st.Tickets.Put(ctx, ephemeral.LoginTicket{ID: "TICKETSECRET", AccountID: "ACCOUNTID", Email: "ann@example.com",
		ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Throttle.Reserve(ctx, throttle.AccountKey("bob@example.com"), throttle.Rule{Free: 5, BaseDelay: time.Second,
		MaxDelay: time.Minute, ForgetAfter: time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	seen := 0
	for _, b := range []string{"plain_tickets", "plain_throttle"} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			seen++
			for _, secret := range []string{"TICKETSECRET", "ACCOUNTID", "example.com", "ann", "bob"} {
				if strings.Contains(k, secret) || bytes.Contains(e.Value(), []byte(secret)) {
					t.Fatalf("bucket %s holds %q in the clear", b, secret)
				}
			}
		}
	}
	if seen != 2 {
		t.Fatalf("%d entries, want 2", seen)
	}
}

// TestNATSAwayAndBack: while the server is down every operation fails at once with
// ErrUnavailable (never an answer that lets a sign-in through); when it is back on the same
// address the stores work again by themselves, with the counts they had.
func TestNATSAwayAndBack(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	addr := ns.ClientURL()
	port := ns.Addr().(*net.TCPAddr).Port
	st := open(t, addr, "away")
	ctx := t.Context()
	r := throttle.Rule{Free: 2, BaseDelay: time.Minute, MaxDelay: time.Hour, ForgetAfter: time.Hour}
	now := time.Now()
	for range 2 {
		if d, err := st.Throttle.Reserve(ctx, "k", r, now); err != nil || d.Wait != 0 {
			t.Fatalf("%+v %v", d, err)
		}
	}
	_ = st.Tickets.Put(ctx, ephemeral.LoginTicket{ID: "t1", ExpiresAt: now.Add(5 * time.Minute)})

	ns.Shutdown()
	ns.WaitForShutdown()
	testwait.Until(t, 5*time.Second, "the client notices the server is gone", func() (bool, string) {
		ok, _ := connected(st)()
		return !ok, "still connected"
	})
	start := time.Now()
	if _, err := st.Throttle.Reserve(ctx, "k", r, now); !errors.Is(err, sharedstate.ErrUnavailable) {
		t.Fatalf("reserve while away: %v, want ErrUnavailable", err)
	}
	if _, err := st.Tickets.Attempt(ctx, "t1", now, 5); !errors.Is(err, sharedstate.ErrUnavailable) {
		t.Fatalf("ticket while away: %v", err)
	}
	if err := st.Ceremonies.Put(ctx, ephemeral.Ceremony{ID: "c", ExpiresAt: now.Add(time.Minute)}, now); !errors.Is(err, sharedstate.ErrUnavailable) {
		t.Fatalf("ceremony while away: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("failing while away took %s; it must be at once", el)
	}

	// Back on the same port with its storage: the counts survived.
	startNATS(t, dir, port)
	testwait.Until(t, 10*time.Second, "the client reconnects by itself", connected(st))
	d, err := st.Throttle.Reserve(ctx, "k", r, now)
	if err != nil || d.Wait != 0 || d.Reservation.Started.IsZero() {
		t.Fatalf("after the restart: %+v %v, want the third attempt to start the wait", d, err)
	}
	if tk, err := st.Tickets.Attempt(ctx, "t1", now, 5); err != nil || tk.Tries != 1 {
		t.Fatalf("ticket after the restart: %+v %v", tk, err)
	}
}

func connected(st *sharedstate.State) func() (bool, string) {
	return func() (bool, string) { return st.Connected(), "not connected" }
}

// TestCeremoniesBucketIsBounded: a flood of passkey options fills the ceremonies bucket up to
// its bound, then Put answers *throttle.Error (429), as the in-memory store does when full.
func TestCeremoniesBucketIsBounded(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	st, err := sharedstate.Open(t.Context(), sharedstate.Config{URL: ns.ClientURL(), Secret: secret, BucketPrefix: "full",
		CeremonyMaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i := range 1000 {
		err := st.Ceremonies.Put(t.Context(), ephemeral.Ceremony{ID: fmt.Sprint("c", i), Challenge: make([]byte, 32),
			ExpiresAt: now.Add(time.Minute)}, now)
		var te *throttle.Error
		if errors.As(err, &te) {
			if i < 10 {
				t.Fatalf("full after %d ceremonies", i)
			}
			return
		}
		if err != nil {
			t.Fatalf("ceremony %d: %v", i, err)
		}
	}
	t.Fatal("1000 ceremonies fitted in 16 KiB: the bucket is not bounded")
}

func TestLeasesMemory(t *testing.T) {
	statetest.RunLeases(t, func(*testing.T) statetest.LeaseFixture {
		var mu sync.Mutex
		now := time.Unix(1_700_000_000, 0)
		l := &follow.MemoryLeases{Lifetime: 10 * time.Second, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
		return statetest.LeaseFixture{A: l, B: l, Expire: func() { mu.Lock(); now = now.Add(10 * time.Second); mu.Unlock() }}
	})
}

func TestLeasesNATS(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	n := 0
	statetest.RunLeases(t, func(t *testing.T) statetest.LeaseFixture {
		n++
		prefix := "leases" + strings.Repeat("x", n)
		open := func() *sharedstate.State {
			st, err := sharedstate.Open(t.Context(), sharedstate.Config{URL: ns.ClientURL(), Secret: secret, BucketPrefix: prefix,
				OpTimeout: time.Second, LeaseTTL: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
		return statetest.LeaseFixture{A: open().Leases, B: open().Leases}
	})
}
