package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

// TestRebuildSwapsInWhileServing runs a live runner that follows its directory while a
// rebuild writes a fresh file: history is appended during the rebuild and between the swap of
// the pointer and its adoption, a reader queries the read models throughout and never fails
// nor sees the activity log shrink, and in the end the adopted file equals a replay of the
// whole log into yet another file; the previous file is gone.
func TestRebuildSwapsInWhileServing(t *testing.T) {
	clock := newTestClock()
	e := newClockEnv(t, clock)
	geo := writeGeoDBs(t, t.TempDir())
	svc := newService(t, e, clock)
	ctx := context.Background()
	builtin := func() []projections.Projection {
		return projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})
	}
	r, _ := e.start(builtin()...)
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		r.FollowRebuilds(followCtx, e.dir, 10*time.Millisecond)
	}()
	t.Cleanup(func() { stopFollowing(); <-followed })

	h := &history{t: t, svc: svc, clock: clock, ctx: ctx}
	h.first()
	head, _ := e.store.Head(ctx)
	e.waitFor(r, head)
	oldPath := e.db.Path()
	if want := filepath.Join(e.dir, projections.DefaultFile); oldPath != want {
		t.Fatalf("serving %s, want %s", oldPath, want)
	}

	// A reader throughout: every query answers, and the activity log never shrinks.
	var (
		readErr  atomic.Value
		reads    atomic.Int64
		stopRead = make(chan struct{})
		readDone sync.WaitGroup
	)
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		last := 0
		for {
			select {
			case <-stopRead:
				return
			default:
			}
			page, _, err := e.db.Activity(ctx, projections.ActivityFilter{Limit: 500})
			if err != nil {
				readErr.Store(err)
				return
			}
			if len(page) < last {
				readErr.Store(errors.New("the activity log shrank during the swap"))
				return
			}
			last = len(page)
			reads.Add(1)
		}
	}()

	// The rest of the history is written while the rebuild runs (after its first batch).
	var once sync.Once
	res, err := projections.Rebuild(ctx, projections.RebuildConfig{Dir: e.dir, Log: e.store, Projections: builtin(),
		BatchSize: 8, Logger: quiet, Progress: func(projections.ReplayProgress) { once.Do(h.second) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != oldPath || filepath.Dir(res.Path) != e.dir || res.Events == 0 {
		t.Fatalf("Rebuild = %+v", res)
	}
	if cur, err := projections.CurrentPath(e.dir); err != nil || cur != res.Path {
		t.Fatalf("CurrentPath = %s, %v; want %s", cur, err, res.Path)
	}
	// Events after the rebuild finished, before the server adopts the file.
	h.register("dan@example.com")
	h.login("dan@example.com", domain.PortalClientID, h.rm(ipGoogle, uaFirefoxWin))

	testwait.Until(t, 5*time.Second, "the runner to adopt "+res.Path, func() (bool, string) {
		return e.db.Path() == res.Path, "serving " + e.db.Path() + "; " + positions(r)
	})
	h.login("dan@example.com", "", h.rm(ipSweden, uaCurl))
	head, _ = e.store.Head(ctx)
	e.waitFor(r, head)
	close(stopRead)
	readDone.Wait()
	if err, _ := readErr.Load().(error); err != nil {
		t.Fatalf("reader: %v", err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never read")
	}
	// Adopt switches first, then closes and removes the previous file: wait for that.
	testwait.Until(t, 5*time.Second, "the previous file to be removed", func() (bool, string) {
		_, err := os.Stat(oldPath)
		return errors.Is(err, os.ErrNotExist), fmt.Sprint(err)
	})

	fresh, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "replayed.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	if pos, err := projections.Replay(ctx, fresh, e.store, builtin()...); err != nil || pos != head {
		t.Fatalf("Replay = %d, %v; want %d", pos, err, head)
	}
	compareDBs(t, e.db, fresh)
}

// TestRunnerCatchesUpWithTheFastPath starts a runner far behind the log: it catches up with
// ReplayWith before the router takes over, and ends with the same read models as a replay.
func TestRunnerCatchesUpWithTheFastPath(t *testing.T) {
	clock := newTestClock()
	e := newClockEnv(t, clock)
	svc := newService(t, e, clock)
	geo := writeGeoDBs(t, t.TempDir())
	builtin := func() []projections.Projection {
		return projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})
	}
	ctx := context.Background()
	h := &history{t: t, svc: svc, clock: clock, ctx: ctx}
	h.first()
	head, _ := e.store.Head(ctx)
	if head < 50 {
		t.Fatalf("history too short: %d", head)
	}
	// CatchUpAfter 10: the runner starts more than 10 events behind, first with empty read
	// models (built in a fresh file, then adopted), then, after more history, with read
	// models that are behind (the live file catches up).
	start := func() (*runner.Runner, func(), string) {
		t.Helper()
		var logs testkit.SyncBuffer
		r, stop := e.startWith(func(c *runner.Config) {
			c.CatchUpAfter = 10
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		}, builtin()...)
		// Run logs the catch-up before the router runs (Running is closed after it).
		if !strings.Contains(logs.String(), "caught up with the fast path") {
			t.Fatalf("no fast catch-up: %s", logs.String())
		}
		// Already caught up when the router runs: the fast path applied everything.
		sts, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Checkpoint != head {
				t.Fatalf("%s at %d after the catch-up, head %d", st.Name, st.Checkpoint, head)
			}
		}
		return r, stop, e.db.Path()
	}
	first := e.db.Path()
	_, stop, built := start()
	if cur, _ := projections.CurrentPath(e.dir); built == first || cur != built {
		t.Fatalf("empty read models caught up in %s (pointer %s), want a fresh file instead of %s", built, cur, first)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty file is still there: %v", err)
	}
	stop()
	h.second()
	for range 5 {
		h.login("cat@example.com", domain.PortalClientID, h.rm(ipGoogle, uaSafariIOS))
	}
	head, _ = e.store.Head(ctx)
	r, _, again := start()
	if again != built {
		t.Fatalf("read models behind the log were rebuilt into %s, want %s caught up", again, built)
	}
	h.login("cat@example.com", domain.PortalClientID, h.rm(ipLondon, uaChromeMac))
	head, _ = e.store.Head(ctx)
	e.waitFor(r, head)

	fresh, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "replayed.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	if _, err := projections.Replay(ctx, fresh, e.store, builtin()...); err != nil {
		t.Fatal(err)
	}
	compareDBs(t, e.db, fresh)
}

// TestReadModelFiles covers the pointer file and the removal of stale files.
func TestReadModelFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := projections.CurrentPath(dir); err != nil || p != filepath.Join(dir, projections.DefaultFile) {
		t.Fatalf("no pointer: %s, %v", p, err)
	}
	for _, bad := range []string{"../events.db\n", "events.db", "projections-x.db", "projections-1.db/../../x", ""} {
		write(projections.CurrentFile, bad)
		if p, err := projections.CurrentPath(dir); err == nil {
			t.Errorf("pointer %q accepted: %s", bad, p)
		}
	}
	write(projections.CurrentFile, "projections-2.db\n")
	if p, err := projections.CurrentPath(dir); err != nil || p != filepath.Join(dir, "projections-2.db") {
		t.Fatalf("pointer: %s, %v", p, err)
	}
	for _, f := range []string{"projections.db", "projections.db-wal", "projections-1.db", "projections-1.db-shm",
		"projections-2.db", "projections-2.db-wal", "events.db", "events.db-wal", "secret.key"} {
		write(f, "x")
	}
	if err := projections.RemoveStale(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, f := range left {
		names = append(names, f.Name())
	}
	want := []string{"events.db", "events.db-wal", "projections-2.db", "projections-2.db-wal", projections.CurrentFile, "projections.rebuild.lock", "secret.key"}
	if len(names) != len(want) {
		t.Fatalf("left %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("left %v, want %v", names, want)
		}
	}
}
