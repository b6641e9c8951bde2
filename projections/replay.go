package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
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
// rows as a Runner applying the same log.
//
// It must not run while a Runner applies the same projections to the same DB (both would
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
	// keys); a replay that stops early leaves them to the next Replay or Runner, which
	// create every missing one first.
	var deferred []string
	for i, p := range ps {
		for _, stmt := range p.Schema() {
			if cps[i] == 0 && isIndexDDL(stmt) {
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
	// The next page is read while the current one is applied (the log is another file).
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	pages := make(chan replayPage, 1)
	go func() {
		defer close(pages)
		after := pos
		for {
			page, err := cfg.Log.ReadAll(readCtx, after, cfg.BatchSize)
			select {
			case pages <- replayPage{after: after, events: page, err: err}:
			case <-readCtx.Done():
				return
			}
			if err != nil || len(page) == 0 {
				return
			}
			after = page[len(page)-1].Position
		}
	}()
	for {
		rp, ok := <-pages
		if !ok {
			return pos, fmt.Errorf("projections: replay after %d: %w", pos, ctx.Err())
		}
		page, err := rp.events, rp.err
		if err != nil {
			return pos, fmt.Errorf("projections: replay after %d: %w", rp.after, err)
		}
		if len(page) == 0 {
			for _, stmt := range deferred {
				if _, err := db.write.ExecContext(ctx, stmt); err != nil {
					return pos, fmt.Errorf("projections: replay: create index: %w", err)
				}
			}
			return pos, nil
		}
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return pos, fmt.Errorf("projections: replay: begin: %w", err)
		}
		for _, ev := range page {
			for i, p := range ps {
				if ev.Position <= cps[i] {
					continue
				}
				if err := p.Apply(ctx, tx, ev); err != nil {
					_ = tx.Rollback()
					return pos, fmt.Errorf("projections: replay %s: apply %s at position %d: %w", p.Name(), ev.Type, ev.Position, err)
				}
			}
		}
		last := page[len(page)-1].Position
		now := cfg.Now().UTC().UnixNano()
		for i, p := range ps {
			if last <= cps[i] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?)
				ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
				p.Name(), last, now); err != nil {
				_ = tx.Rollback()
				return pos, fmt.Errorf("projections: replay: checkpoint of %s: %w", p.Name(), err)
			}
		}
		if err := tx.Commit(); err != nil {
			return pos, fmt.Errorf("projections: replay: commit: %w", err)
		}
		for i := range cps {
			cps[i] = max(cps[i], last)
		}
		pos = last
		events += len(page)
		if cfg.Progress != nil {
			cfg.Progress(ReplayProgress{Position: pos, Head: head, Events: events, Elapsed: cfg.Now().Sub(start)})
		}
	}
}

// replayPage is one page of the log read ahead by ReplayWith.
type replayPage struct {
	after  uint64
	events []domain.Envelope
	err    error
}

// isIndexDDL reports whether a schema statement creates an index.
func isIndexDDL(stmt string) bool {
	s := strings.ToUpper(strings.Join(strings.Fields(stmt), " "))
	return strings.HasPrefix(s, "CREATE INDEX") || strings.HasPrefix(s, "CREATE UNIQUE INDEX")
}
