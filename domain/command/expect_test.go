package command_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/expect"
)

// expectingStore records the appends announced to it (domain.Expecter) and, for each append,
// the announcement its context carries.
type expectingStore struct {
	domain.EventStore
	mu        sync.Mutex
	announced []time.Time
	withdrawn int
	carried   []*domain.Expectation // per append, in order (nil: none)
	streams   []string
}

func (s *expectingStore) Expect(at time.Time) *domain.Expectation {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announced = append(s.announced, at)
	return domain.NewExpectation(at, func(*domain.Expectation) {
		s.mu.Lock()
		s.withdrawn++
		s.mu.Unlock()
	})
}

func (s *expectingStore) Append(ctx context.Context, stream string, expected expect.Version, events []domain.EventData) (domain.AppendResult, error) {
	s.mu.Lock()
	s.carried = append(s.carried, domain.ExpectationOf(ctx))
	s.streams = append(s.streams, stream)
	s.mu.Unlock()
	return s.EventStore.Append(ctx, stream, expected, events)
}

func (s *expectingStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announced, s.withdrawn, s.carried, s.streams = nil, 0, nil, nil
}

// TestLoginAnnouncesItsAppend: a password sign-in announces to the log, as its hash starts,
// the append that follows the hash (the new session, or the recorded failure), due when the
// hash is expected to end; that append carries the announcement, and it is withdrawn by the
// time Login returns, also when no append follows (a second factor is asked for).
func TestLoginAnnouncesItsAppend(t *testing.T) {
	es := &expectingStore{}
	h := newHarness(t, func(c *command.Config) {
		es.EventStore = c.Store
		c.Store = es
	})
	h.register("ann@example.com")
	h.register("bob@example.com")
	h.enrollTOTP(h.login("bob@example.com").Session, "Phone")
	for _, tc := range []struct {
		name, email, password string
		wantErr               error
		appends               bool
	}{
		{"success", "ann@example.com", goodPassword, nil, true},
		{"wrong password", "ann@example.com", "not-the-password-at-all", domain.ErrInvalidCredentials, true},
		{"unknown email", "nobody@example.com", goodPassword, domain.ErrInvalidCredentials, true},
		{"second factor asked", "bob@example.com", goodPassword, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es.reset()
			t0 := time.Now()
			_, err := h.svc.Login(h.ctx, tc.email, tc.password, "", command.RequestMeta{IP: "192.0.2.1"})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Login: %v, want %v", err, tc.wantErr)
			}
			es.mu.Lock()
			defer es.mu.Unlock()
			if len(es.announced) != 1 || !es.announced[0].After(t0) {
				t.Fatalf("announced %v (Login began at %v), want one end after the start", es.announced, t0)
			}
			if es.withdrawn != 1 {
				t.Errorf("withdrawn %d times by the time Login returned, want 1", es.withdrawn)
			}
			if !tc.appends {
				return
			}
			if len(es.carried) == 0 || es.carried[0] == nil || !es.carried[0].At.Equal(es.announced[0]) {
				t.Errorf("the first append (of %v) does not carry the announcement: %v", es.streams, es.carried)
			}
		})
	}
}
