package follow_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run starts f until the test ends (or the returned stop is called).
func run(t *testing.T, f *follow.Follower) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var ran sync.WaitGroup
	ran.Go(func() {
		if err := f.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testwait.Recv(t, 10*time.Second, "the follower to run", f.Running())
	stop = sync.OnceFunc(func() { cancel(); ran.Wait(); f.Close() })
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, f *follow.Follower, pos uint64, names ...string) {
	t.Helper()
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	if err := f.WaitFor(ctx, pos, names...); err != nil {
		t.Fatalf("position %d not reached: %v; at %v", pos, err, f.Positions())
	}
}

// ledger is a SQL consumer: every position once (the primary key), with the checkpoint in
// the same transaction. breakAt fails the commit of the batch holding it, once.
type ledger struct {
	db      *sql.DB
	breakAt uint64
	mu      sync.Mutex
	broke   bool
	batches int
}

func newLedger(t *testing.T, path string) *ledger {
	t.Helper()
	db, err := follow.OpenSQLite(follow.SQLiteConfig{Path: path, Schema: []string{follow.CheckpointTable,
		`CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE IF NOT EXISTS ledger (position INTEGER PRIMARY KEY,
			parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &ledger{db: db}
}

func (l *ledger) consumer() follow.Consumer {
	return follow.Consumer{Name: "ledger", Checkpoints: follow.SQLCheckpoints{DB: l.db},
		Handle: func(ctx context.Context, batch []domain.Envelope) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.batches++
			tx, err := l.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			for _, ev := range batch {
				var parent any
				if ev.Position == l.breakAt && !l.broke {
					l.broke = true
					parent = 999 // no such parent: the deferred foreign key fails the COMMIT
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO ledger (position, parent) VALUES (?, ?)`, ev.Position, parent); err != nil {
					return err
				}
			}
			if err := follow.SaveCheckpoint(ctx, tx, "ledger", batch[len(batch)-1].Position, time.Now()); err != nil {
				return err
			}
			return tx.Commit()
		}}
}

func (l *ledger) check(t *testing.T, head uint64) {
	t.Helper()
	var n, lo, hi uint64
	if err := l.db.QueryRow(`SELECT COUNT(*), MIN(position), MAX(position) FROM ledger`).Scan(&n, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if n != head || lo != 1 || hi != head {
		t.Fatalf("ledger holds %d positions from %d to %d; the log %d", n, lo, hi, head)
	}
	cp, err := follow.SQLCheckpoints{DB: l.db}.Checkpoint(context.Background(), "ledger")
	if err != nil || cp != head {
		t.Fatalf("checkpoint %d, %v; want %d", cp, err, head)
	}
}

// newFollower is follow.New with quick rewinds and a quiet logger unless cfg has one.
func newFollower(t *testing.T, cfg follow.Config) *follow.Follower {
	t.Helper()
	cfg.Logger = cmp.Or(cfg.Logger, quiet)
	cfg.NackBackoff, cfg.MaxNackBackoff = 5*time.Millisecond, 20*time.Millisecond
	f, err := follow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSQLConsumerIsExactlyOnce follows the log live, across a restart and a failed commit:
// every event is applied once, in batches.
func TestSQLConsumerIsExactlyOnce(t *testing.T) {
	store := openStore(t)
	l := newLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	l.breakAt = 30
	testkit.AppendN(t, store, 20)
	f := newFollower(t, follow.Config{Log: store})
	if err := f.Add(l.consumer()); err != nil {
		t.Fatal(err)
	}
	stop := run(t, f)
	var head uint64
	for range 20 {
		head = testkit.AppendN(t, store, 1)
	}
	head = testkit.AppendN(t, store, 100)
	waitFor(t, f, head)
	stop()
	l.mu.Lock()
	broke, batches := l.broke, l.batches
	l.mu.Unlock()
	if !broke {
		t.Fatal("the commit never failed: the test did not exercise the rewind")
	}
	l.check(t, head)
	if batches >= int(head) {
		t.Errorf("%d batches for %d events: no batching", batches, head)
	}

	head = testkit.AppendN(t, store, 7)
	f2 := newFollower(t, follow.Config{Log: store})
	if err := f2.Add(l.consumer()); err != nil {
		t.Fatal(err)
	}
	run(t, f2)
	waitFor(t, f2, head, "ledger")
	l.check(t, head)
}

// memory is a consumer that keeps its checkpoint in memory and can be told to fail.
type memory struct {
	mu      sync.Mutex
	seen    []uint64
	batches []int
	cp      uint64
	failAt  uint64
}

func (m *memory) failAtPosition(pos uint64) {
	m.mu.Lock()
	m.failAt = pos
	m.mu.Unlock()
}

func (m *memory) Checkpoint(context.Context, string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cp, nil
}

func (m *memory) handle(_ context.Context, batch []domain.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range batch {
		if ev.Position == m.failAt {
			return fmt.Errorf("told to fail at %d", ev.Position)
		}
	}
	for _, ev := range batch {
		m.seen = append(m.seen, ev.Position)
	}
	m.batches = append(m.batches, len(batch))
	m.cp = batch[len(batch)-1].Position
	return nil
}

func (m *memory) check(t *testing.T, head uint64) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if uint64(len(m.seen)) != head {
		t.Fatalf("saw %d events, the log has %d", len(m.seen), head)
	}
	for i, p := range m.seen {
		if p != uint64(i+1) {
			t.Fatalf("event %d has position %d (a gap or a repeat)", i, p)
		}
	}
}

// TestStuckConsumerIsReportedAndSkipsNothing: a consumer failing on an event keeps what came
// before it, is reported stuck at its position (status and metrics) while the others go on,
// and resumes without a gap once the cause is gone.
func TestStuckConsumerIsReportedAndSkipsNothing(t *testing.T) {
	store := openStore(t)
	testkit.AppendN(t, store, 10)
	reg := prometheus.NewRegistry()
	f := newFollower(t, follow.Config{Log: store, Retries: 1, RetryBackoff: time.Millisecond, Kind: "widget", Registerer: reg,
		Metrics: follow.Metrics{
			Events: follow.Metric{Name: "widget_events_total", Help: "h"}, Failures: follow.Metric{Name: "widget_failures_total", Help: "h"},
			Checkpoint: follow.Metric{Name: "widget_checkpoint", Help: "h"}, Stuck: follow.Metric{Name: "widget_stuck", Help: "h"},
		}})
	flaky, healthy := &memory{}, &memory{}
	flaky.failAtPosition(6)
	for name, m := range map[string]*memory{"flaky": flaky, "healthy": healthy} {
		if err := f.Add(follow.Consumer{Name: name, Checkpoints: m, Handle: m.handle}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, f)
	waitFor(t, f, 10, "healthy")
	var st follow.Status
	testwait.Until(t, 5*time.Second, "flaky to be reported stuck", func() (bool, string) {
		sts, err := f.Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for _, s := range sts {
			if s.Name == "flaky" {
				st = s
			}
		}
		return st.Stuck, fmt.Sprintf("%+v", st)
	})
	if st.StuckPosition != 6 || st.Checkpoint != 5 || st.LastError == "" {
		t.Fatalf("status %+v; want stuck at 6 with checkpoint 5", st)
	}
	metrics := gather(t, reg)
	for _, want := range []string{`widget_stuck{widget="flaky"} 1`, `widget_checkpoint{widget="flaky"} 5`,
		`widget_checkpoint{widget="healthy"} 10`, `widget_events_total{widget="healthy"} 10`, `widget_failures_total{widget="flaky"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
	flaky.failAtPosition(0)
	head := testkit.AppendN(t, store, 5)
	waitFor(t, f, head)
	flaky.check(t, head)
	healthy.check(t, head)
	sts, _ := f.Status(context.Background())
	for _, s := range sts {
		if s.Stuck {
			t.Fatalf("still stuck after recovering: %+v", s)
		}
	}
}

func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += fmt.Sprintf(`%s="%s"`, l.GetName(), l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), labels, v)
		}
	}
	return b.String()
}

// TestCatchUpReadsInPages: a consumer far behind gets the log in pages before the router
// runs, then follows live; one that is not behind is not handed what it already has.
func TestCatchUpReadsInPages(t *testing.T) {
	store := openStore(t)
	head := testkit.AppendN(t, store, 250)
	var logs bytes.Buffer
	var logMu sync.Mutex
	f := newFollower(t, follow.Config{Log: store, CatchUpAfter: 50, CatchUpPage: 100,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))})
	behind, current := &memory{}, &memory{}
	current.cp = head
	current.seen = make([]uint64, head)
	for i := range current.seen {
		current.seen[i] = uint64(i + 1)
	}
	for name, m := range map[string]*memory{"behind": behind, "current": current} {
		if err := f.Add(follow.Consumer{Name: name, Checkpoints: m, Handle: m.handle}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, f)
	// Running is closed after the catch-up: everything is there already.
	if p := f.Positions(); p["behind"] != head || p["current"] != head {
		t.Fatalf("positions after the catch-up: %v, want %d", p, head)
	}
	behind.mu.Lock()
	batches := append([]int(nil), behind.batches...)
	behind.mu.Unlock()
	if fmt.Sprint(batches) != "[100 100 50]" {
		t.Errorf("catch-up batches %v, want pages of 100", batches)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "caught up with the fast path") {
		t.Errorf("no catch-up logged: %s", logs.String())
	}
	logMu.Unlock()
	head = testkit.AppendN(t, store, 3)
	waitFor(t, f, head)
	behind.check(t, head)
	current.check(t, head)
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestAddAndRemoveWhileRunning: a consumer added to a running follower starts after its
// checkpoint; a removed one stops getting events.
func TestAddAndRemoveWhileRunning(t *testing.T) {
	store := openStore(t)
	f := newFollower(t, follow.Config{Log: store, BatchSize: 1})
	first := &memory{}
	if err := f.Add(follow.Consumer{Name: "first", Checkpoints: first, Handle: first.handle}); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	head := testkit.AppendN(t, store, 4)
	waitFor(t, f, head, "first")
	late := &memory{cp: 2, seen: []uint64{1, 2}}
	if err := f.Add(follow.Consumer{Name: "late", Checkpoints: late, Handle: late.handle}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f, head, "late")
	late.check(t, head)
	f.Remove("late")
	head = testkit.AppendN(t, store, 2)
	waitFor(t, f, head, "first")
	first.check(t, head)
	if _, ok := f.Positions()["late"]; ok {
		t.Fatal("a removed consumer is still listed")
	}
	late.mu.Lock()
	defer late.mu.Unlock()
	if len(late.seen) != 4 {
		t.Fatalf("the removed consumer saw %d events, want 4", len(late.seen))
	}
}

// TestCloseRightAfterRun stops followers at every point of their start: a Close that came
// before the router had started its handlers waited out the close timeout (the router held
// its handlers' lock while it waited for handlers it had not started), and a handler
// subscribed with the cancelled context never started (its checkpoint read failed), so the
// wait timed out too. That was the CI failure "sign-in risk detector: follow: a handler did
// not stop within the close timeout".
func TestCloseRightAfterRun(t *testing.T) {
	store := openStore(t)
	testkit.AppendN(t, store, 3)
	for i := range 40 {
		l := newLedger(t, filepath.Join(t.TempDir(), fmt.Sprintf("l%d.db", i)))
		f := newFollower(t, follow.Config{Log: store, CloseTimeout: 3 * time.Second})
		if err := f.Add(l.consumer()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		time.Sleep(time.Duration(i%8) * 250 * time.Microsecond)
		if i%2 == 1 {
			cancel() // a shutdown cancels Run's context first, then closes
		}
		start := time.Now()
		if err := f.Close(); err != nil {
			t.Fatalf("round %d: Close: %v (after %v)", i, err, time.Since(start))
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Run did not return after Close", i)
		}
	}
}
