package projections

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateIndexesBuildsWithItsOwnCacheAndRestoresIt: the indexes of a table of many rows
// (so that the sorter cuts its keys into several runs of indexBuildCacheKiB, merged by helper
// threads) are built, pass SQLite's integrity check, serve an ordered query, and the writer's
// cache size and sorter threads are what they were before.
func TestCreateIndexesBuildsWithItsOwnCacheAndRestoresIt(t *testing.T) {
	ctx := context.Background()
	db, err := Open(Config{Path: filepath.Join(t.TempDir(), "rm.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`CREATE TABLE t (k TEXT NOT NULL, v INTEGER NOT NULL)`, `PRAGMA cache_size = -3000`, `PRAGMA threads = 0`} {
		if _, err := db.write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const n = 60000 // about 4 MiB of keys: several of the sorter's 1 MiB runs
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		// Keys in an order other than the rows': the sort has work to do.
		if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?, ?)`, fmt.Sprintf("key-%08d-%s", (i*7919)%n, strings.Repeat("x", 40)), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := createIndexes(ctx, db, []string{`CREATE INDEX t_k ON t (k)`, `CREATE UNIQUE INDEX t_v ON t (v)`}); err != nil {
		t.Fatal(err)
	}
	var check string
	if err := db.write.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	var first, last string
	if err := db.write.QueryRowContext(ctx, `SELECT min(k), max(k) FROM t INDEXED BY t_k`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, "key-00000000-") || !strings.HasPrefix(last, fmt.Sprintf("key-%08d-", n-1)) {
		t.Errorf("the index's first and last keys: %q, %q", first, last)
	}
	var cache, threads int
	if err := db.write.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
		t.Fatal(err)
	}
	if err := db.write.QueryRowContext(ctx, `PRAGMA threads`).Scan(&threads); err != nil {
		t.Fatal(err)
	}
	if cache != -3000 || threads != 0 {
		t.Errorf("after the build: cache_size %d, threads %d; want -3000 and 0 as before", cache, threads)
	}
}

// TestDeferredIndexKeepsInOrderIndexesUp: a replay builds every index after the rows except
// those a projection keeps up in order (the activity log's time bounds), and never defers a
// table.
func TestDeferredIndexKeepsInOrderIndexesUp(t *testing.T) {
	var kept, deferred []string
	for _, stmt := range (Activity{}).Schema() {
		switch {
		case deferredIndex(Activity{}, stmt):
			deferred = append(deferred, stmt)
		case isIndexDDL(stmt):
			kept = append(kept, stmt)
		}
	}
	if len(kept) != 2 || !strings.Contains(kept[0], "activity_time_max") || !strings.Contains(kept[1], "activity_time_min") {
		t.Errorf("indexes kept up during a replay: %q", kept)
	}
	if len(deferred) != 4 {
		t.Errorf("indexes built after the rows: %q, want the other four", deferred)
	}
	for _, stmt := range (Sessions{}).Schema() {
		if isIndexDDL(stmt) != deferredIndex(Sessions{}, stmt) {
			t.Errorf("Sessions keeps no index up in order, yet %q is not deferred", stmt)
		}
	}
}
