package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// unchainedLog writes n events alternately to streams old-a and old-b, then drops the chain's
// column: the layout of a log written before the chain.
func unchainedLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := sqlite.Open(sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		ev, err := domain.NewEventData("Old", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, IP: "192.0.2.7"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(context.Background(), fmt.Sprint("old-", string(rune('a'+i%2))), eventstore.Any, []domain.EventData{ev}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE events DROP COLUMN hash; DROP TABLE checkpoints`); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMigrateScansThenRewrites: the first pass sees every event before the copy starts, the
// rewrite's renamed streams and changed data and metadata are what the chained log holds, and a
// rewrite that loses an event's version is refused.
func TestMigrateScansThenRewrites(t *testing.T) {
	from := unchainedLog(t, 5)
	to := filepath.Join(t.TempDir(), "events.db")
	var (
		started    bool
		scanned    int
		seenAtCopy []int
	)
	res, err := sqlite.Migrate(context.Background(), from, to, sqlite.MigrateConfig{
		Start: func(_ context.Context, dst *sqlite.Store) error {
			started = dst != nil
			return nil
		},
		Scan: func(domain.Envelope) error { scanned++; return nil },
		Rewrite: func(_ context.Context, e *domain.Envelope) error {
			seenAtCopy = append(seenAtCopy, scanned)
			e.StreamID = strings.Replace(e.StreamID, "old-", "new-", 1)
			e.Data = []byte(fmt.Sprintf(`{"copied":%s}`, e.Data))
			e.Metadata.IP = "rewritten"
			return nil
		},
	})
	if err != nil || !started || res != (sqlite.MigrateResult{Events: 5, Streams: 2, FirstPosition: 1, LastPosition: 5}) {
		t.Fatalf("Migrate: %+v, started %v, %v", res, started, err)
	}
	for _, n := range seenAtCopy {
		if n != 5 {
			t.Fatalf("a rewrite ran after %d of 5 scans: the first pass must end before the copy", n)
		}
	}
	st, err := sqlite.Open(sqlite.Config{Path: to, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := chain.VerifyLog(context.Background(), st, chain.KeySet{}, true); err != nil {
		t.Fatalf("the migrated log does not verify: %v", err)
	}
	evs, err := st.ReadAll(context.Background(), 0, 10)
	if err != nil || len(evs) != 5 {
		t.Fatal(len(evs), err)
	}
	for i, e := range evs {
		if want := fmt.Sprint("new-", string(rune('a'+(i+1)%2))); e.StreamID != want || e.Version != uint64(i/2+1) ||
			string(e.Data) != fmt.Sprintf(`{"copied":{"i":%d}}`, i+1) || e.Metadata.IP != "rewritten" {
			t.Errorf("event %d: %s v%d %s %+v; want stream %s", i+1, e.StreamID, e.Version, e.Data, e.Metadata, want)
		}
	}

	_, err = sqlite.Migrate(context.Background(), from, filepath.Join(t.TempDir(), "events.db"), sqlite.MigrateConfig{
		Rewrite: func(_ context.Context, e *domain.Envelope) error { e.Version++; return nil },
	})
	if err == nil || !strings.Contains(err.Error(), "changed its id, version, position or time") {
		t.Errorf("a rewrite that moves a version: %v", err)
	}
}
