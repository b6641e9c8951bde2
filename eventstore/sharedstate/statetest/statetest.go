// Package statetest is the contract suite of the short-lived sign-in state: every
// ephemeral.TicketStore, ephemeral.CeremonyStore and throttle.Store (the in-memory ones of
// package domain and the NATS ones of package sharedstate) runs it, so that the two behave
// alike, also under concurrency.
package statetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/throttle"
)

// Stores are fresh, empty stores of one implementation.
type Stores struct {
	Tickets    ephemeral.TicketStore
	Ceremonies ephemeral.CeremonyStore
	Throttle   throttle.Store
}

// Run runs the contract suite; newStores returns fresh stores for each sub-test.
func Run(t *testing.T, newStores func(t *testing.T) Stores) {
	t.Run("Tickets", func(t *testing.T) { testTickets(t, newStores(t).Tickets) })
	t.Run("TicketTriesUnderConcurrency", func(t *testing.T) { testTicketConcurrency(t, newStores(t).Tickets) })
	t.Run("Ceremonies", func(t *testing.T) { testCeremonies(t, newStores(t).Ceremonies) })
	t.Run("Throttle", func(t *testing.T) { testThrottle(t, newStores(t).Throttle) })
	t.Run("ThrottleBurst", func(t *testing.T) { testThrottleBurst(t, newStores(t).Throttle) })
	t.Run("ThrottleRefund", func(t *testing.T) { testThrottleRefund(t, newStores(t).Throttle) })
}

// now is near the real time: a store whose entries expire by themselves (a bucket TTL) must
// not drop them during the test.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func testTickets(t *testing.T, s ephemeral.TicketStore) {
	ctx := t.Context()
	t0 := now()
	tk := ephemeral.LoginTicket{ID: "ticket-1", AccountID: "acc-1", Email: "ann@example.com", ClientID: "portal",
		Methods: []string{"totp", "passkey"}, CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	if err := s.Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		got, err := s.Attempt(ctx, "ticket-1", t0, 3)
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		if got.Tries != i || got.AccountID != "acc-1" || got.Email != "ann@example.com" || got.ClientID != "portal" ||
			!slices.Equal(got.Methods, tk.Methods) || !got.ExpiresAt.Equal(tk.ExpiresAt) {
			t.Fatalf("try %d: %+v", i, got)
		}
	}
	if _, err := s.Attempt(ctx, "ticket-1", t0, 3); !errors.Is(err, ephemeral.ErrTicketInvalid) {
		t.Fatalf("a try beyond the maximum: %v, want ErrTicketInvalid", err)
	}
	if _, err := s.Attempt(ctx, "nobody", t0, 3); !errors.Is(err, ephemeral.ErrTicketInvalid) {
		t.Fatalf("unknown ticket: %v", err)
	}
	if s.Consume(ctx, "nobody") {
		t.Fatal("consumed an unknown ticket")
	}
	// Expired at ExpiresAt.
	_ = s.Put(ctx, ephemeral.LoginTicket{ID: "ticket-2", ExpiresAt: t0.Add(time.Minute)})
	if _, err := s.Attempt(ctx, "ticket-2", t0.Add(time.Minute), 5); !errors.Is(err, ephemeral.ErrTicketInvalid) {
		t.Fatalf("expired ticket: %v", err)
	}
	// Of concurrent consumers exactly one wins, and the ticket is gone after.
	_ = s.Put(ctx, ephemeral.LoginTicket{ID: "ticket-3", ExpiresAt: t0.Add(time.Minute)})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Consume(ctx, "ticket-3") {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d consumers won, want 1", wins.Load())
	}
	if _, err := s.Attempt(ctx, "ticket-3", t0, 5); !errors.Is(err, ephemeral.ErrTicketInvalid) {
		t.Fatalf("consumed ticket: %v", err)
	}
	s.Prune(ctx, t0)
}

// testTicketConcurrency: concurrent tries on one ticket are counted exactly: maxTries go
// ahead, each with its own count.
func testTicketConcurrency(t *testing.T, s ephemeral.TicketStore) {
	ctx := t.Context()
	t0 := now()
	_ = s.Put(ctx, ephemeral.LoginTicket{ID: "burst", ExpiresAt: t0.Add(time.Minute)})
	const maxTries, callers = 5, 20
	var mu sync.Mutex
	var tries []int
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Attempt(ctx, "burst", t0, maxTries)
			if err != nil {
				if !errors.Is(err, ephemeral.ErrTicketInvalid) {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			tries = append(tries, got.Tries)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(tries)
	if !slices.Equal(tries, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("concurrent tries got counts %v, want 1..5 once each", tries)
	}
}

func testCeremonies(t *testing.T, s ephemeral.CeremonyStore) {
	ctx := t.Context()
	t0 := now()
	c := ephemeral.Ceremony{ID: "cer-1", Kind: ephemeral.CeremonyReauth, Challenge: []byte("0123456789abcdef0123456789abcdef"),
		AccountID: "acc-1", SessionID: "ses-1", UserVerification: "preferred",
		Ticket:    ephemeral.LoginTicket{ID: "t", Methods: []string{"passkey"}, ExpiresAt: t0.Add(time.Minute)},
		CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	if err := s.Put(ctx, c, t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Take(ctx, "cer-1", t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != c.Kind || string(got.Challenge) != string(c.Challenge) || got.AccountID != "acc-1" || got.SessionID != "ses-1" ||
		got.UserVerification != "preferred" || !slices.Equal(got.Ticket.Methods, []string{"passkey"}) || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("took %+v", got)
	}
	if _, err := s.Take(ctx, "cer-1", t0); !errors.Is(err, ephemeral.ErrCeremonyInvalid) {
		t.Fatalf("second take: %v, want ErrCeremonyInvalid", err)
	}
	if _, err := s.Take(ctx, "nobody", t0); !errors.Is(err, ephemeral.ErrCeremonyInvalid) {
		t.Fatalf("unknown: %v", err)
	}
	c.ID = "cer-2"
	_ = s.Put(ctx, c, t0)
	if _, err := s.Take(ctx, "cer-2", c.ExpiresAt); !errors.Is(err, ephemeral.ErrCeremonyInvalid) {
		t.Fatalf("expired: %v", err)
	}
	// Single use under concurrency.
	c.ID = "cer-3"
	_ = s.Put(ctx, c, t0)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Take(ctx, "cer-3", t0); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ephemeral.ErrCeremonyInvalid) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d takers won, want 1", wins.Load())
	}
	s.Prune(ctx, t0)
}

func rule() throttle.Rule {
	return throttle.Rule{Free: 5, BaseDelay: time.Second, MaxDelay: 15 * time.Minute, ForgetAfter: time.Hour}
}

func testThrottle(t *testing.T, s throttle.Store) {
	ctx := t.Context()
	r := rule()
	at := now()
	key := throttle.AccountKey("ann@example.com")
	reserve := func() throttle.Decision {
		t.Helper()
		d, err := s.Reserve(ctx, key, r, at)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 5 {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("free attempt %d: %+v", i+1, d)
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.Equal(at.Add(want)) {
			t.Fatalf("attempt %d: %+v, want a %s wait started", 6+i, d, want)
		}
		if d := reserve(); d.Wait != want || !d.First {
			t.Fatalf("first refusal after attempt %d: %+v, want %s first", 6+i, d, want)
		}
		if d := reserve(); d.Wait != want || d.First {
			t.Fatalf("second refusal reported as first: %+v", d)
		}
		at = at.Add(want)
	}
	// Another key is not affected.
	if d, err := s.Reserve(ctx, throttle.IPKey("192.0.2.7"), r, at); err != nil || d.Wait != 0 {
		t.Fatalf("another key: %+v %v", d, err)
	}
	if err := s.Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("after reset, attempt %d: %+v", i+1, d)
		}
	}
	// Forgotten ForgetAfter after the last counted attempt: the count starts again.
	at = at.Add(r.ForgetAfter + time.Second)
	for i := range 5 {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("after ForgetAfter, attempt %d: %+v", i+1, d)
		}
	}
	if err := s.Prune(ctx, at); err != nil {
		t.Fatal(err)
	}
}

// testThrottleBurst: of concurrent reservations on one key, exactly Free+1 go ahead (the
// free ones and the one that starts the wait), and exactly one refusal is the first.
func testThrottleBurst(t *testing.T, s throttle.Store) {
	ctx := t.Context()
	r := rule()
	at := now()
	const callers = 24
	var ahead, first atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.Reserve(ctx, "email:burst@example.com", r, at)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Wait == 0 {
				ahead.Add(1)
			} else if d.First {
				first.Add(1)
			}
		}()
	}
	wg.Wait()
	if ahead.Load() != int32(r.Free+1) || first.Load() != 1 {
		t.Fatalf("%d of %d concurrent attempts went ahead (want %d), %d first refusals (want 1)", ahead.Load(), callers, r.Free+1, first.Load())
	}
}

// testThrottleRefund: a refund gives back exactly its attempt and the wait it started; a
// refund after a reset does nothing.
func testThrottleRefund(t *testing.T, s throttle.Store) {
	ctx := t.Context()
	r := rule()
	at := now()
	key := "email:refund@example.com"
	var last throttle.Decision
	for range r.Free + 1 {
		d, err := s.Reserve(ctx, key, r, at)
		if err != nil || d.Wait != 0 {
			t.Fatalf("%+v %v", d, err)
		}
		last = d
	}
	if last.Reservation.Started.IsZero() {
		t.Fatal("the attempt beyond the free ones started no wait")
	}
	if err := s.Refund(ctx, key, last.Reservation); err != nil {
		t.Fatal(err)
	}
	// The wait is gone and one attempt is free again: it starts the wait once more.
	d, err := s.Reserve(ctx, key, r, at)
	if err != nil || d.Wait != 0 || d.Reservation.Started.IsZero() {
		t.Fatalf("after the refund: %+v %v, want an attempt that starts the wait", d, err)
	}
	stale := d.Reservation
	if err := s.Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, key, stale); err != nil {
		t.Fatal(err)
	}
	for i := range r.Free {
		if d, err := s.Reserve(ctx, key, r, at); err != nil || d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("after reset and a stale refund, attempt %d: %+v %v", i+1, d, err)
		}
	}
	if d, err := s.Reserve(ctx, key, r, at); err != nil || d.Reservation.Started.IsZero() {
		t.Fatal(fmt.Sprintf("a stale refund changed the new count: %+v %v", d, err))
	}
}
