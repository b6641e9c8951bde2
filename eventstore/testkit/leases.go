package testkit

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
)

// Sink records, for every instance of a deployment, which positions an Exclusive consumer
// handled, and gives each instance its own (local) checkpoint.
type Sink struct {
	mu      sync.Mutex
	handled map[uint64][]string // position -> instances that handled it
	local   map[string]uint64   // instance -> its own checkpoint
}

// NewSink returns an empty Sink.
func NewSink() *Sink { return &Sink{handled: map[uint64][]string{}, local: map[string]uint64{}} }

type sinkCheckpoints struct {
	s        *Sink
	instance string
}

func (c sinkCheckpoints) Checkpoint(context.Context, string) (uint64, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.local[c.instance], nil
}

// Consumer is instance's Exclusive consumer "sink", saving the shared progress after each
// event as an outbox does.
func (s *Sink) Consumer(instance string) follow.Consumer {
	return follow.Consumer{Name: "sink", Exclusive: true, Checkpoints: sinkCheckpoints{s, instance},
		Handle: func(ctx context.Context, batch []domain.Envelope) error {
			for _, ev := range batch {
				s.mu.Lock()
				s.handled[ev.Position] = append(s.handled[ev.Position], instance)
				s.local[instance] = ev.Position
				s.mu.Unlock()
				if err := follow.SaveProgress(ctx, ev.Position); err != nil {
					return err
				}
			}
			return nil
		}}
}

// Check fails unless every position up to head was handled exactly once; it returns who
// handled each.
func (s *Sink) Check(t testing.TB, head uint64) map[uint64]string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint64]string{}
	for p := uint64(1); p <= head; p++ {
		if len(s.handled[p]) != 1 {
			t.Fatalf("position %d handled by %v, want exactly one instance", p, s.handled[p])
		}
		out[p] = s.handled[p][0]
	}
	return out
}

// Count is how many positions were handled.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.handled)
}

// NewExclusiveFollower is a follower of log with the Exclusive consumer of sink, as instance name of
// a deployment sharing leases.
func NewExclusiveFollower(t testing.TB, log eventstore.Store, leases follow.Leases, sink *Sink, name string) *follow.Follower {
	t.Helper()
	f, err := follow.New(follow.Config{Log: log, Logger: slog.New(slog.DiscardHandler), Leases: leases, Holder: name, BatchSize: 3,
		NackBackoff: 5 * time.Millisecond, MaxNackBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Add(sink.Consumer(name)); err != nil {
		t.Fatal(err)
	}
	return f
}

// AppendN appends n "TestHappened" events to one stream of s in one append and returns the
// last position.
func AppendN(t testing.TB, s eventstore.Store, n int) uint64 {
	t.Helper()
	evs := make([]domain.EventData, n)
	for i := range evs {
		ev, err := domain.NewEventData("TestHappened", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	res, err := s.Append(context.Background(), "system-testkit", eventstore.Any, evs)
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition
}
