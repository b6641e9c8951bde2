package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// openWindow opens a fresh log with the commit window given (0: the default).
func openWindow(t *testing.T, window time.Duration) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), CommitWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type appended struct {
	res eventstore.AppendResult
	err error
}

// appendAsync appends one event to stream in a goroutine and delivers the result.
func appendAsync(ctx context.Context, s *sqlite.Store, stream string) <-chan appended {
	out := make(chan appended, 1)
	go func() {
		res, err := s.Append(ctx, stream, eventstore.NoStream, []domain.EventData{{ID: domain.NewID(), Type: "X", SchemaVersion: 1, Data: []byte(`{}`)}})
		out <- appended{res, err}
	}()
	return out
}

func recordedAt(t *testing.T, s *sqlite.Store, stream string) time.Time {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), stream, 0, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read %s: %v (%d events)", stream, err, len(evs))
	}
	return evs[0].RecordedAt
}

// TestCommitWaitsForAnAnnouncedAppend: with an append announced (Expect), the writer holds
// the commit of an append that arrives first until the announced one is queued, and both
// commit in one transaction (one RecordedAt, stamped per transaction); the announcement is
// withdrawn by the append that carries it in its context.
func TestCommitWaitsForAnAnnouncedAppend(t *testing.T) {
	s := openWindow(t, time.Hour)
	ctx := context.Background()
	exp := s.Expect(time.Now().Add(50 * time.Millisecond))
	if exp == nil {
		t.Fatal("Expect returned nil with a commit window")
	}
	first := appendAsync(ctx, s, "first")
	select {
	case r := <-first:
		t.Fatalf("the first append committed while an append was announced: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	second := appendAsync(domain.WithExpectation(ctx, exp), s, "second")
	for _, c := range []<-chan appended{first, second} {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if a, b := recordedAt(t, s, "first"), recordedAt(t, s, "second"); !a.Equal(b) {
		t.Errorf("the two appends were committed apart (recorded %v and %v)", a, b)
	}
	// The expectation is spent: the next append is not held.
	if r := <-appendAsync(ctx, s, "third"); r.err != nil {
		t.Fatal(r.err)
	}
}

// TestCommitIsNotHeldInVain: a held commit goes ahead when the announced append is withdrawn
// without being made, and nothing is held for an announcement overdue by more than the window
// or due after it, nor when nothing is announced; and a commit is never held past the window.
func TestCommitIsNotHeldInVain(t *testing.T) {
	ctx := context.Background()
	t.Run("withdrawn", func(t *testing.T) {
		s := openWindow(t, time.Hour)
		exp := s.Expect(time.Now().Add(time.Millisecond))
		first := appendAsync(ctx, s, "first")
		select {
		case r := <-first:
			t.Fatalf("committed before the withdrawal: %+v", r)
		case <-time.After(100 * time.Millisecond):
		}
		exp.Done()
		exp.Done() // idempotent
		if r := <-first; r.err != nil {
			t.Fatal(r.err)
		}
	})
	t.Run("not due within the window, or long overdue", func(t *testing.T) {
		s := openWindow(t, time.Hour)
		late := s.Expect(time.Now().Add(2 * time.Hour))
		stale := s.Expect(time.Now().Add(-2 * time.Hour))
		defer late.Done()
		defer stale.Done()
		if r := <-appendAsync(ctx, s, "a"); r.err != nil {
			t.Fatal(r.err)
		}
	})
	t.Run("the window bounds the wait", func(t *testing.T) {
		const window = 100 * time.Millisecond
		s := openWindow(t, window)
		exp := s.Expect(time.Now().Add(time.Millisecond))
		defer exp.Done()
		t0 := time.Now()
		if r := <-appendAsync(ctx, s, "a"); r.err != nil {
			t.Fatal(r.err)
		}
		if took := time.Since(t0); took < window/2 {
			t.Errorf("the commit took %v: it did not wait for the announced append", took)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		s := openWindow(t, -1)
		if exp := s.Expect(time.Now()); exp != nil {
			t.Fatal("Expect with a negative window returned an expectation")
		}
	})
}
