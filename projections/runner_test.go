package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t     *testing.T
	store *sqlite.Store
	db    *projections.DB
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, dir: dir}
	e.openDB()
	return e
}

func (e *env) openDB() {
	db, err := projections.Open(projections.Config{Path: filepath.Join(e.dir, "projections.db"), Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
}

// start runs a runner over ps until the returned stop function is called.
func (e *env) start(ps ...projections.Projection) (*runner.Runner, func()) {
	e.t.Helper()
	return e.startWith(nil, ps...)
}

// startWith is start with the runner's configuration adjusted by opt.
func (e *env) startWith(opt func(*runner.Config), ps ...projections.Projection) (*runner.Runner, func()) {
	e.t.Helper()
	cfg := runner.Config{DB: e.db, Log: e.store, Projections: ps, Logger: quiet, Retries: 2,
		NackBackoff: 5 * time.Millisecond, MaxNackBackoff: 20 * time.Millisecond}
	if opt != nil {
		opt(&cfg)
	}
	r, err := runner.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Run catches up first (the fast path, when far behind) and only then starts the router.
	testwait.Until(e.t, 10*time.Second, "the runner to start", func() (bool, string) {
		select {
		case <-r.Running():
			return true, ""
		default:
			return false, positions(r)
		}
	})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
		r.Close()
	}
	e.t.Cleanup(stop)
	return r, stop
}

func (e *env) append(stream string, n int) uint64 {
	e.t.Helper()
	evs := make([]domain.EventData, n)
	for i := range evs {
		ev, err := domain.NewEventData("TestHappened", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		if err != nil {
			e.t.Fatal(err)
		}
		evs[i] = ev
	}
	return e.appendData(stream, evs)
}

// waitFor waits (Runner.WaitFor) until every projection of r has committed pos.
func (e *env) waitFor(r *runner.Runner, pos uint64) {
	e.t.Helper()
	const nominal = 10 * time.Second
	ctx, cancel := testwait.Context(nominal)
	defer cancel()
	start := time.Now()
	if err := r.WaitFor(ctx, pos); err != nil {
		e.t.Fatalf("projections did not reach position %d within %v (%v %s): %v; saw %s",
			pos, time.Since(start).Round(time.Millisecond), nominal, testwait.Describe(), err, positions(r))
	}
}

// positions describes where each projection of r stands, for a failed wait.
func positions(r *runner.Runner) string {
	sts, err := r.Status(context.Background())
	if err != nil {
		return "no status: " + err.Error()
	}
	parts := make([]string, len(sts))
	for i, st := range sts {
		parts[i] = fmt.Sprintf("%s at %d of %d", st.Name, st.Checkpoint, st.Head)
		if st.LagSeconds > 0 {
			parts[i] += fmt.Sprintf(" (%.1fs behind)", st.LagSeconds)
		}
		if st.Stuck {
			parts[i] += fmt.Sprintf(" stuck at %d: %s", st.StuckPosition, st.LastError)
		}
	}
	return strings.Join(parts, ", ")
}

// checkStreams compares the stream catalogue with the log itself.
func (e *env) checkStreams(streams map[string]int) {
	e.t.Helper()
	infos, err := e.db.StreamInfos(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(infos) != len(streams) {
		e.t.Fatalf("catalogue has %d streams, want %d: %+v", len(infos), len(streams), infos)
	}
	for _, in := range infos {
		want := uint64(streams[in.StreamID])
		if in.Version != want || in.Events != want {
			e.t.Errorf("%s: version %d, events %d; the log has %d (an event was applied twice or missed)", in.StreamID, in.Version, in.Events, want)
		}
	}
}

func TestRunnerAppliesLiveAndResumesFromCheckpoint(t *testing.T) {
	e := newEnv(t)
	streams := map[string]int{"account-a": 3, "session-b": 5, "org-c": 1}
	for s, n := range streams {
		e.append(s, n)
	}
	r, stop := e.start(projections.Streams{})
	head, _ := e.store.Head(context.Background())
	e.waitFor(r, head)
	e.checkStreams(streams)
	// Events appended while the runner runs arrive too.
	head = e.append("account-a", 2)
	streams["account-a"] += 2
	e.waitFor(r, head)
	e.checkStreams(streams)
	stop()

	// Appended while nothing runs: a new runner resumes after the checkpoint, applying each
	// event exactly once.
	cp, err := e.db.Checkpoint(context.Background(), "streams")
	if err != nil || cp != head {
		t.Fatalf("checkpoint after stop = %d, %v; want %d", cp, err, head)
	}
	e.append("client-d", 4)
	streams["client-d"] = 4
	head = e.append("session-b", 1)
	streams["session-b"]++
	r2, _ := e.start(projections.Streams{})
	e.waitFor(r2, head)
	e.checkStreams(streams)
	sts, err := r2.Status(context.Background())
	if err != nil || len(sts) != 1 || sts[0].Checkpoint != head || sts[0].Head != head || sts[0].LagSeconds != 0 || sts[0].Stuck {
		t.Fatalf("Status = %+v, %v; want caught up at %d", sts, err, head)
	}
}

// ledger records every position it is given once; applying an event twice violates its key.
type ledger struct {
	name string
	// failAt makes Apply fail for this position while failing is set.
	failAt  uint64
	failing atomic.Bool
	// breakCommitAt makes the batch holding this position fail at COMMIT, once.
	breakCommitAt uint64
	broke         atomic.Bool
}

func (l *ledger) Name() string { return l.name }
func (l *ledger) Schema() []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s_parent (id INTEGER PRIMARY KEY)`, l.name),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (position INTEGER PRIMARY KEY,
			parent INTEGER REFERENCES %s_parent (id) DEFERRABLE INITIALLY DEFERRED)`, l.name, l.name),
	}
}
func (l *ledger) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if ev.Position == l.failAt && l.failing.Load() {
		return errors.New("ledger: told to fail")
	}
	var parent any
	if ev.Position == l.breakCommitAt && !l.broke.Swap(true) {
		parent = 999 // no such parent: the deferred foreign key fails the COMMIT
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (position, parent) VALUES (?, ?)`, l.name), ev.Position, parent)
	return err
}

func (e *env) ledgerPositions(name string) []uint64 {
	e.t.Helper()
	rows, err := e.db.Read().Query(fmt.Sprintf(`SELECT position FROM %s ORDER BY position`, name))
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var p uint64
		if err := rows.Scan(&p); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func (e *env) checkLedger(name string, head uint64) {
	e.t.Helper()
	got := e.ledgerPositions(name)
	if uint64(len(got)) != head {
		e.t.Fatalf("ledger %s holds %d positions, the log %d", name, len(got), head)
	}
	for i, p := range got {
		if p != uint64(i+1) {
			e.t.Fatalf("ledger %s: index %d holds position %d (gap)", name, i, p)
		}
	}
}

func TestRunnerReportsStuckProjectionAndSkipsNothing(t *testing.T) {
	e := newEnv(t)
	e.append("account-x", 10)
	l := &ledger{name: "flaky", failAt: 6}
	l.failing.Store(true)
	healthy := &ledger{name: "healthy"}
	r, _ := e.start(l, healthy)
	e.waitForHealthy(r, "healthy", 10)

	// The flaky projection stops before position 6 and says so.
	var st projections.Status
	testwait.Until(t, 5*time.Second, "the flaky projection to be reported stuck", func() (bool, string) {
		sts, err := r.Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		st = sts[0]
		return st.Stuck, positions(r)
	})
	if !st.Stuck || st.StuckPosition != 6 || st.Checkpoint != 5 || st.LastError == "" || st.Ready(5*time.Second) {
		t.Fatalf("status of the failing projection = %+v; want stuck at 6 with checkpoint 5", st)
	}
	// Once the cause is gone it resumes without skipping or repeating anything.
	l.failing.Store(false)
	head := e.append("account-x", 5)
	e.waitFor(r, head)
	e.checkLedger("flaky", head)
	e.checkLedger("healthy", head)
	sts, _ := r.Status(context.Background())
	if sts[0].Stuck {
		t.Fatalf("projection still reported stuck after recovering: %+v", sts[0])
	}
}

func (e *env) waitForHealthy(r *runner.Runner, name string, pos uint64) {
	e.t.Helper()
	testwait.Until(e.t, 5*time.Second, fmt.Sprintf("projection %s to reach %d while another was failing", name, pos), func() (bool, string) {
		cp, err := e.db.Checkpoint(context.Background(), name)
		return err == nil && cp >= pos, fmt.Sprintf("checkpoint %d (%v); %s", cp, err, positions(r))
	})
}

func TestRunnerReplaysBatchWhoseCommitFailed(t *testing.T) {
	e := newEnv(t)
	l := &ledger{name: "breaks", breakCommitAt: 7}
	r, _ := e.start(l)
	var head uint64
	for range 20 {
		head = e.append("session-s", 1)
	}
	e.waitFor(r, head)
	if !l.broke.Load() {
		t.Fatal("the commit never failed: the test did not exercise the rewind")
	}
	e.checkLedger("breaks", head)
}

func TestStreamsReducer(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(projections.Streams{})
	cases := []struct {
		stream string
		n      int
		kind   string
	}{
		{"account-1", 2, "account"},
		{"session-1", 1, "session"},
		{"org-1", 3, "org"},
		{"client-1", 1, "client"},
		{"system-login-failures", 2, "system"},
	}
	var head uint64
	for _, c := range cases {
		head = e.append(c.stream, c.n)
	}
	e.waitFor(r, head)
	infos, err := e.db.StreamInfos(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]projections.StreamInfo{}
	for _, in := range infos {
		byID[in.StreamID] = in
	}
	for _, c := range cases {
		in, ok := byID[c.stream]
		if !ok || in.Kind != c.kind || in.Version != uint64(c.n) || in.Events != uint64(c.n) || in.LastType != "TestHappened" {
			t.Errorf("%s: %+v; want kind %s version %d", c.stream, in, c.kind, c.n)
		}
	}
	if got := projections.StreamKind("weird-1"); got != "other" {
		t.Errorf("StreamKind(weird-1) = %s, want other", got)
	}
}

func TestSnapshotStoreKeepsNewest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.db.Snapshots()
	if _, _, ok, err := s.Get(ctx, "account-1"); ok || err != nil {
		t.Fatalf("Get on an empty store = ok %v, %v", ok, err)
	}
	for _, v := range []uint64{100, 300, 200} {
		if err := s.Put(ctx, "account-1", v, []byte(fmt.Sprintf(`{"v":%d}`, v))); err != nil {
			t.Fatal(err)
		}
	}
	v, state, ok, err := s.Get(ctx, "account-1")
	if err != nil || !ok || v != 300 || string(state) != `{"v":300}` {
		t.Fatalf("Get = %d %s %v %v; want the newest (300), not the last written", v, state, ok, err)
	}
}

// A rebuild's streams lane writes a session's row when the session ends instead of carrying
// it to the end; an event after the end, and a session that never ends, still come out as
// event-by-event processing leaves them.
func TestStreamsRebuiltWithEndedSessionsWrittenEarly(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(projections.Streams{})
	md := domain.Metadata{Actor: self("a"), SubjectAccountID: "a"}
	at := testStart
	e.emit(domain.SessionStream("s1"), md, domain.SessionStarted{SessionID: "s1", AccountID: "a", StartedAt: at},
		domain.SessionAccessed{At: at})
	e.emit(domain.SessionStream("s2"), md, domain.SessionStarted{SessionID: "s2", AccountID: "a", StartedAt: at})
	e.emit(domain.SessionStream("s1"), md, domain.SessionSignedOut{Reason: "user", At: at})
	e.emit(domain.SessionStream("s3"), md, domain.SessionStarted{SessionID: "s3", AccountID: "a", StartedAt: at},
		domain.SessionExpired{Reason: "lifetime", At: at})
	e.emit(domain.SessionStream("s2"), md, domain.SessionAccessed{At: at})
	e.emit(domain.SessionStream("s1"), md, domain.SessionAccessed{At: at}) // after its end
	head := e.emit(domain.AccountStream("a"), md, domain.AccountRegistered{AccountID: "a", Email: "a@example.com", At: at})
	e.waitFor(r, head)
	q := `SELECT stream_id, kind, version, events, last_position, last_type FROM streams`
	want := dump(t, e.db, q)
	if len(want) != 4 {
		t.Fatalf("live streams: %v", want)
	}
	for _, batch := range []int{1, 2, 3, 0} {
		if got := e.rebuiltDump(projections.Streams{}, batch, q); !slices.Equal(got, want) {
			t.Errorf("rebuilt in batches of %d:\n%v\nwant\n%v", batch, got, want)
		}
	}
}
