package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

func newStore(t *testing.T) eventstore.Store {
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { eventstoretest.Run(t, newStore) }

// openTwice opens the log at path twice, as two processes do.
func openTwice(t *testing.T, path string) (*sqlite.Store, *sqlite.Store) {
	t.Helper()
	var stores [2]*sqlite.Store
	for i := range stores {
		s, err := sqlite.Open(sqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores[0], stores[1]
}

// TestSecondWriterOnSameFile opens the file twice, as two processes do (the server and the
// seeding tool): appends through one reach subscribers of the other, and both writers keep
// the expected-version rule between them.
func TestSecondWriterOnSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	a, b := openTwice(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := a.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	const n = 200
	var wg sync.WaitGroup
	for _, s := range []*sqlite.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				ev, _ := domain.NewEventData("Shared", 1, map[string]int{"i": i}, domain.Metadata{})
				if _, err := s.Append(ctx, "system-shared", eventstore.Any, []domain.EventData{ev}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var last uint64
	for i := 0; i < 2*n; i++ {
		select {
		case ev := <-sub.Events():
			if ev.Version != uint64(i+1) || ev.Position <= last {
				t.Fatalf("event %d: version %d position %d after %d; two writers broke the stream's order", i, ev.Version, ev.Position, last)
			}
			last = ev.Position
		case <-ctx.Done():
			t.Fatalf("subscriber of the first store saw %d of %d events", i, 2*n)
		}
	}
	// Exact expected versions still exclude each other across the two.
	head, _ := b.ReadStream(ctx, "system-shared", 1, 0)
	ev, _ := domain.NewEventData("Shared", 1, map[string]int{}, domain.Metadata{})
	if _, err := a.Append(ctx, "system-shared", eventstore.Exact(uint64(len(head))), []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, "system-shared", eventstore.Exact(uint64(len(head))), []domain.EventData{ev}); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("second writer with a stale version: %v, want ErrWrongExpectedVersion", err)
	}
}

// TestOtherWritersAppendsReachSubscribersAcrossCheckpoints: appends by another writer on the
// same file reach this store's subscriber within a second each (the poll's work), also when a
// checkpoint has restarted the WAL between them (the next commit rewrites it from the start:
// the file keeps its size).
func TestOtherWritersAppendsReachSubscribersAcrossCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	a, b := openTwice(t, path)
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := a.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 20 {
		ev, _ := domain.NewEventData("Shared", 1, map[string]int{"i": i}, domain.Metadata{})
		res, err := b.Append(ctx, "system-shared", eventstore.Any, []domain.EventData{ev})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-sub.Events():
			if got.Position != res.LastPosition {
				t.Fatalf("append %d: the subscriber got position %d, want %d", i, got.Position, res.LastPosition)
			}
		case <-time.After(time.Second):
			t.Fatalf("append %d (position %d) did not reach the other store's subscriber within a second", i, res.LastPosition)
		}
		if i%2 == 1 {
			if _, err := raw.ExecContext(ctx, `PRAGMA wal_checkpoint(RESTART)`); err != nil {
				t.Fatal(err)
			}
		}
	}
}
