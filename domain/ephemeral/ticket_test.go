package ephemeral

import (
	"errors"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestTickets(t *testing.T) {
	ctx := t.Context()
	m := NewMemoryTicketStore()
	_ = m.Put(ctx, LoginTicket{ID: "t1", AccountID: "a1", ExpiresAt: t0.Add(5 * time.Minute)})
	for i := 1; i <= 5; i++ {
		tk, err := m.Attempt(ctx, "t1", t0, 5)
		if err != nil || tk.Tries != i {
			t.Fatalf("try %d: %+v %v", i, tk, err)
		}
	}
	if _, err := m.Attempt(ctx, "t1", t0, 5); !errors.Is(err, ErrTicketInvalid) {
		t.Fatalf("sixth try: %v", err)
	}
	_ = m.Put(ctx, LoginTicket{ID: "t2", ExpiresAt: t0.Add(5 * time.Minute)})
	if _, err := m.Attempt(ctx, "t2", t0.Add(5*time.Minute), 5); !errors.Is(err, ErrTicketInvalid) {
		t.Fatalf("expired: %v", err)
	}
	_ = m.Put(ctx, LoginTicket{ID: "t3", ExpiresAt: t0.Add(5 * time.Minute)})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.Consume(ctx, "t3") {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d consumers won", wins)
	}
}
