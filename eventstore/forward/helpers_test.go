package forward_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// testEncode is the body the tests forward: enough to check order and content.
func testEncode(ev domain.Envelope) ([]byte, error) {
	return json.Marshal(map[string]any{"id": ev.ID, "type": ev.Type, "vigilposition": ev.Position, "data": ev.Data})
}

// openLog opens a real SQLite event log in dir.
func openLog(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openDB opens the forwarders' database in dir; it is closed when the test ends.
func openDB(t testing.TB, dir string) *forward.DB {
	t.Helper()
	db, err := forward.OpenDB(filepath.Join(dir, "forward.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// appendN appends n events, one per append, over a few streams.
func appendN(t testing.TB, s *sqlite.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		ed, err := domain.NewEventData("TestHappened", 1, map[string]int{"n": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(context.Background(), fmt.Sprintf("system-test-%d", i%7), expect.Any, []domain.EventData{ed}); err != nil {
			t.Error(err)
			return
		}
	}
}

// logIDs returns the ids of every event of the log, in global order.
func logIDs(t *testing.T, s *sqlite.Store) []string {
	t.Helper()
	var ids []string
	for _, ev := range testkit.ReadLog(t, s) {
		ids = append(ids, ev.ID)
	}
	return ids
}

// running starts f and returns a stop function that cancels and closes it.
func running(t *testing.T, f *forward.Forwarders) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	testwait.Recv(t, 5*time.Second, "the forwarders to start", f.Running())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := f.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits (testwait.Until) until cond holds, for at most testwait.Deadline(d); cond
// says what it saw, for the failure.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.Until(t, d, what, cond)
}

// deliveries is a condition of eventually: the receiver got at least n deliveries (exactly n
// when exact).
func deliveries(rcv *receiver, n int, exact bool) func() (bool, string) {
	return func() (bool, string) {
		got := len(rcv.got())
		return got == n || (!exact && got > n), fmt.Sprintf("%d deliveries", got)
	}
}
