package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

func newStore(t *testing.T) eventstore.Store { return openWindow(t, 0) }

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

// TestReadsGiveBackEveryFieldAsWritten appends events whose text fields hold what could
// confuse the packed read (colons, leading digits, a NUL byte, multi-byte characters, empty
// fields, a long user agent) and reads them back through every read: each field comes back
// byte for byte, and the chain hash as 64 lowercase hex digits, the same in every read.
func TestReadsGiveBackEveryFieldAsWritten(t *testing.T) {
	s := newStore(t).(*sqlite.Store)
	ctx := context.Background()
	long := strings.Repeat("Mozilla/5.0 (X11; Linux x86_64) 12:34 ", 60)
	want := []domain.EventData{
		{ID: "12:ev-1", Type: "account.registered", SchemaVersion: 3, Data: []byte(`{"email":"a@example.com","n":12,"s":"3:x:"}`),
			Metadata: domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: "acc:1"}, SubjectAccountID: "acc:1",
				IP: "2001:db8::1", UserAgent: long, ClientID: "0:", CorrelationID: "Zürich 東京 🔐", CausationID: "a\x00b"}},
		{ID: "ev-2", Type: "x", SchemaVersion: 1, Data: []byte(`{}`)},
		{ID: "9", Type: "session.started", SchemaVersion: 1, Data: []byte(`{"k":"` + strings.Repeat("é", 5000) + `"}`),
			Metadata: domain.Metadata{SubjectAccountID: "acc:1", IP: "192.0.2.7", UserAgent: ":"}},
	}
	if _, err := s.Append(ctx, "account-1:x", eventstore.NoStream, want); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := s.ReadStream(ctx, "account-1:x", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := s.ReadSubject(ctx, "acc:1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || len(stream) != 3 || len(subject) != 2 {
		t.Fatalf("read %d, %d and %d events, want 3, 3 and 2", len(all), len(stream), len(subject))
	}
	for i, w := range want {
		got := all[i]
		if got.ID != w.ID || got.StreamID != "account-1:x" || got.Version != uint64(i+1) || got.Type != w.Type ||
			got.SchemaVersion != w.SchemaVersion || string(got.Data) != string(w.Data) || got.Metadata != w.Metadata {
			t.Errorf("event %d read back as\n%+v\nwant the fields of\n%+v", i, got, w)
		}
		if len(got.Hash) != 64 || strings.Trim(got.Hash, "0123456789abcdef") != "" {
			t.Errorf("event %d: hash %q, want 64 lowercase hex digits", i, got.Hash)
		}
		if !reflect.DeepEqual(stream[i], got) {
			t.Errorf("event %d: ReadStream gave\n%+v\nReadAll\n%+v", i, stream[i], got)
		}
	}
	if !reflect.DeepEqual(subject, []domain.Envelope{all[0], all[2]}) {
		t.Errorf("ReadSubject gave %+v, want events 1 and 3 of ReadAll", subject)
	}
}

// TestPositionsPastTheLargestReadNothing: a position or version above SQLite's largest
// integer (a client's after=18446744073709551615) has nothing after it, on every read.
func TestPositionsPastTheLargestReadNothing(t *testing.T) {
	s := newStore(t).(*sqlite.Store)
	ctx := context.Background()
	ev, _ := domain.NewEventData("Far", 1, map[string]string{}, domain.Metadata{SubjectAccountID: "acc:1"})
	if _, err := s.Append(ctx, "far-1", eventstore.NoStream, []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	for _, far := range []uint64{math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64} {
		for _, limit := range []int{10, 5000} { // database/sql's read and SQLite's own
			if evs, err := s.ReadAll(ctx, far, limit); err != nil || len(evs) != 0 {
				t.Errorf("ReadAll(%d, %d): %d events, %v", far, limit, len(evs), err)
			}
		}
		if evs, err := s.ReadSubject(ctx, "acc:1", far, 10); err != nil || len(evs) != 0 {
			t.Errorf("ReadSubject(%d): %d events, %v", far, len(evs), err)
		}
		if evs, err := s.ReadStream(ctx, "far-1", far, 10); err != nil || len(evs) != 0 {
			t.Errorf("ReadStream(%d): %d events, %v", far, len(evs), err)
		}
		if cps, err := s.Checkpoints(ctx, far, 10); err != nil || len(cps) != 0 {
			t.Errorf("Checkpoints(%d): %d, %v", far, len(cps), err)
		}
	}
}
