package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
)

// ReplayConfig configures ReplayWith.
type ReplayConfig struct {
	// DB receives the read models (their tables are created when missing). Required.
	DB *DB
	// Log is read with ReadAll from the lowest checkpoint of Projections. Required.
	Log LogInfo
	// Projections to fill. Each starts after its own checkpoint in DB.
	Projections []Projection
	// BatchSize is the number of events read per page and applied per transaction (with
	// the checkpoints). Default 4000.
	BatchSize int
	// Progress, when set, is called after each committed batch.
	Progress func(ReplayProgress)
	// Now stamps the checkpoints' updated_at; default time.Now.
	Now func() time.Time
}

// ReplayProgress reports a replay's progress after a committed batch.
type ReplayProgress struct {
	Position uint64        // last position committed
	Head     uint64        // the log's head when the replay started
	Events   int           // events read from the log so far
	Elapsed  time.Duration // since the replay started
}

// Replay applies the log to ps in DB directly, without Watermill: the fast path of a
// rebuild. See ReplayWith; it returns the last position applied.
func Replay(ctx context.Context, db *DB, log LogInfo, ps ...Projection) (uint64, error) {
	return ReplayWith(ctx, ReplayConfig{DB: db, Log: log, Projections: ps})
}

// ReplayWith reads the log in pages of BatchSize after the lowest checkpoint of the
// projections and applies each page in one transaction that also moves every projection's
// checkpoint, until a page comes back empty (the end of the log at that moment). Each
// projection skips the events at or below its own checkpoint, so an interrupted replay
// resumes where it stopped and every event is applied exactly once. It produces the same
// rows as a runner applying the same log (both apply with Applier).
//
// It must not run while a runner applies the same projections to the same DB (both would
// apply the events). A failing event stops the replay with its error; the batch holding it
// is rolled back. It returns the last position committed.
func ReplayWith(ctx context.Context, cfg ReplayConfig) (uint64, error) {
	if cfg.DB == nil || cfg.Log == nil {
		return 0, errors.New("projections: ReplayConfig needs DB and Log")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	db, ps := cfg.DB, cfg.Projections
	if len(ps) == 0 {
		return 0, nil
	}
	cps := make([]uint64, len(ps))
	var pos uint64
	for i, p := range ps {
		cp, err := db.Checkpoint(ctx, p.Name())
		if err != nil {
			return 0, err
		}
		cps[i] = cp
		if i == 0 || cp < pos {
			pos = cp
		}
	}
	// A projection replayed from the start gets its secondary indexes after its rows: one
	// sorted build instead of an update per row. Apply must not need them (only primary
	// keys); a replay that stops early leaves them to the next Replay or runner, which
	// create every missing one first.
	var deferred []string
	for i, p := range ps {
		for _, stmt := range p.Schema() {
			if cps[i] == 0 && deferredIndex(p, stmt) {
				deferred = append(deferred, stmt)
				continue
			}
			if _, err := db.write.ExecContext(ctx, stmt); err != nil {
				return 0, fmt.Errorf("projections: schema of %s: %w", p.Name(), err)
			}
		}
	}
	// A bigger page cache for the batches (restored after).
	var cacheSize int64
	if err := db.write.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cacheSize); err == nil {
		if _, err := db.write.ExecContext(ctx, `PRAGMA cache_size = -131072`); err == nil {
			defer db.write.ExecContext(context.WithoutCancel(ctx), `PRAGMA cache_size = `+strconv.FormatInt(cacheSize, 10))
		}
	}
	head, err := cfg.Log.Head(ctx)
	if err != nil {
		return pos, fmt.Errorf("projections: replay: %w", err)
	}
	start, events := cfg.Now(), 0
	a := Applier{DB: db, Projections: ps, Checkpoints: cps, Now: cfg.Now}
	pos, err = follow.Pages(ctx, cfg.Log, pos, cfg.BatchSize, func(ctx context.Context, page []domain.Envelope) error {
		if err := a.Apply(ctx, page); err != nil {
			return err
		}
		events += len(page)
		if cfg.Progress != nil {
			cfg.Progress(ReplayProgress{Position: page[len(page)-1].Position, Head: head, Events: events, Elapsed: cfg.Now().Sub(start)})
		}
		return nil
	})
	if err != nil {
		return pos, fmt.Errorf("projections: replay: %w", err)
	}
	if err := createIndexes(ctx, db, deferred); err != nil {
		return pos, fmt.Errorf("projections: replay: %w", err)
	}
	return pos, nil
}

// indexBuildCacheKiB is the page cache an index build after a replay runs with. It also sizes
// the sorted runs SQLite's sorter cuts the index's keys into before merging them: runs of
// 1 MiB fit the processor's caches, where a run as large as the 64 MiB cache did not. The
// activity log's six indexes of the 1M-event rebuild, on a copy of its file: 2.18–2.24 s with
// 64 MiB, 1.55–1.66 s with 2 MiB, and 1.35–1.39 s with 1 MiB and one helper thread
// (indexBuildThreads), which sorts runs while the build reads the table.
const indexBuildCacheKiB = 1 << 10

// indexBuildThreads is the number of helper threads SQLite's sorter may use in an index build:
// every processor but the one building.
func indexBuildThreads() int { return min(max(runtime.GOMAXPROCS(0)-1, 0), 8) }

// createIndexes runs the index statements on db's writer, with the page cache and sorter
// threads of an index build (restored after).
func createIndexes(ctx context.Context, db *DB, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
	conn, err := db.write.db().Conn(ctx)
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer conn.Close()
	var cache, threads int64
	if err := conn.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA threads`).Scan(&threads); err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer func() {
		ctx := context.WithoutCancel(ctx)
		_, _ = conn.ExecContext(ctx, `PRAGMA cache_size = `+strconv.FormatInt(cache, 10))
		_, _ = conn.ExecContext(ctx, `PRAGMA threads = `+strconv.FormatInt(threads, 10))
	}()
	for _, q := range []string{`PRAGMA cache_size = -` + strconv.Itoa(indexBuildCacheKiB), `PRAGMA threads = ` + strconv.Itoa(indexBuildThreads())} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create index: %w", err)
		}
	}
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create index: %w", err)
		}
	}
	return nil
}

// Observer is told how long applying one event and committing one batch take (the runner's
// metrics).
type Observer interface {
	Applied(projection string, d time.Duration)
	Committed(projection string, d time.Duration)
}

// Applier applies batches of events to projections of a DB: the one way events reach a read
// model, live (the runner, one projection per Applier) or replayed (ReplayWith, all at once).
type Applier struct {
	DB          *DB
	Projections []Projection
	// Checkpoints, when set, holds each projection's checkpoint: a projection skips the
	// events at or below its own, and Apply moves it on. Nil applies every event to every
	// projection.
	Checkpoints []uint64
	// Now stamps the checkpoints; default time.Now.
	Now func() time.Time
	// Observer, when set, times applies and commits.
	Observer Observer

	// carry, set by a rebuild's lane (one projection, a file nothing reads before the swap),
	// holds the rows that projections build in memory per batch (the stream catalogue, the
	// security state, the sessions and the activity log's sessions) from one batch to the
	// next, up to carryLimit rows, instead of writing them at each batch's end: a session
	// started and ended during the rebuild is never written, a stream's row is written once.
	// The checkpoint still moves with each batch, so the file is complete only after flush;
	// after an error the Applier must not be used again (the rebuild stops).
	carry *txState
	// raw, set by a rebuild's lane, runs the batches on one connection of the DB's writer and
	// their statements that return no rows through SQLite's own interface (see rawExec).
	raw *rawExec
}

// carryLimit bounds the rows an Applier carries from batch to batch; more are written (a
// variable for the tests).
var carryLimit = 1 << 19

// carrying returns a with batches carrying their rows over (see Applier.carry).
func (a Applier) carrying() Applier {
	a.carry = &txState{}
	return a
}

// flush writes the rows carried over from the batches applied (see Applier.carry) in one
// transaction. It must follow the last Apply.
func (a *Applier) flush(ctx context.Context) error {
	if a.carry == nil || a.carry.carried() == 0 && len(a.carry.clientNames) == 0 {
		return nil
	}
	tx, err := a.begin(ctx)
	if err != nil {
		return fmt.Errorf("projections: begin flush: %w", err)
	}
	defer tx.Rollback()
	st := a.carry.next(tx)
	st.raw = a.raw
	ctx = context.WithValue(ctx, batchKey{}, st)
	for _, p := range a.Projections {
		if bw, ok := p.(batchWriter); ok {
			if err := bw.writeBatch(ctx, tx); err != nil {
				return fmt.Errorf("projections: %s: write batch: %w", p.Name(), err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projections: commit flush: %w", err)
	}
	a.carry = &txState{}
	return nil
}

// Apply applies batch (in log order) in one transaction of the DB's writer that also moves
// every projection's checkpoint to the batch's last position: all of it or, on an error,
// nothing.
func (a *Applier) Apply(ctx context.Context, batch []domain.Envelope) error {
	if len(batch) == 0 {
		return nil
	}
	ps, cps, obs := a.Projections, a.Checkpoints, a.Observer
	tx, err := a.begin(ctx)
	if err != nil {
		return fmt.Errorf("projections: begin batch: %w", err)
	}
	defer tx.Rollback()
	var st *txState
	if a.carry != nil {
		st = a.carry.next(tx)
		st.raw = a.raw
		ctx = context.WithValue(ctx, batchKey{}, st)
	} else {
		ctx = withBatch(ctx, tx)
	}
	for _, ev := range batch {
		for i, p := range ps {
			if cps != nil && ev.Position <= cps[i] {
				continue
			}
			var start time.Time
			if obs != nil {
				start = time.Now()
			}
			if err := p.Apply(ctx, tx, ev); err != nil {
				return fmt.Errorf("projections: %s: apply %s at position %d: %w", p.Name(), ev.Type, ev.Position, err)
			}
			if obs != nil {
				obs.Applied(p.Name(), time.Since(start))
			}
		}
	}
	// Rows that projections built in memory during the batch (batchWriter).
	if st != nil {
		st.keep = st.carried() < carryLimit
	}
	for i, p := range ps {
		if cps != nil && batch[len(batch)-1].Position <= cps[i] {
			continue
		}
		if bw, ok := p.(batchWriter); ok {
			if err := bw.writeBatch(ctx, tx); err != nil {
				return fmt.Errorf("projections: %s: write batch: %w", p.Name(), err)
			}
		}
	}
	start := time.Now()
	last := batch[len(batch)-1].Position
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	for i, p := range ps {
		if cps != nil && last <= cps[i] {
			continue
		}
		if err := follow.SaveCheckpoint(ctx, tx, p.Name(), last, now()); err != nil {
			return fmt.Errorf("projections: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projections: commit batch: %w", err)
	}
	if st != nil {
		a.carry = st
	}
	for i := range cps {
		cps[i] = max(cps[i], last)
	}
	if obs != nil {
		d := time.Since(start)
		for _, p := range ps {
			obs.Committed(p.Name(), d)
		}
	}
	return nil
}

// begin begins a batch's transaction: on the lane's connection when it has one (raw).
func (a *Applier) begin(ctx context.Context) (*sql.Tx, error) {
	if a.raw != nil {
		return a.raw.conn.BeginTx(ctx, nil)
	}
	return a.DB.write.BeginTx(ctx, nil)
}

// batchWriter is a projection that, inside Applier.Apply (inBatch), builds its rows in memory
// during the batch and writes them, with multi-row statements, before the checkpoint moves.
type batchWriter interface {
	writeBatch(ctx context.Context, tx *sql.Tx) error
}

// inOrderIndexed is a projection some of whose indexes take their keys in the order a replay
// inserts its rows: such an index costs less kept up row by row, on the cores the replay
// keeps busy, than built after it on one.
type inOrderIndexed interface{ inOrderIndexes() []string }

// deferredIndex reports whether a replay from the start builds stmt, a statement of p's
// schema, after the rows (an index, unless p keeps it up in order) rather than first.
func deferredIndex(p Projection, stmt string) bool {
	if !isIndexDDL(stmt) {
		return false
	}
	o, ok := p.(inOrderIndexed)
	return !ok || !slices.Contains(o.inOrderIndexes(), stmt)
}

// isIndexDDL reports whether a schema statement creates an index.
func isIndexDDL(stmt string) bool {
	s := strings.ToUpper(strings.Join(strings.Fields(stmt), " "))
	return strings.HasPrefix(s, "CREATE INDEX") || strings.HasPrefix(s, "CREATE UNIQUE INDEX")
}
