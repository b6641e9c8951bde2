package projections

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/geoip"
)

// A rebuild fills its fresh file with every projection at once: one goroutine reads the log
// and decodes each page once, and each projection applies the pages in a goroutine of its
// own, into a file of its own (SQLite has one writer per file): the activity log, the
// largest, into the fresh file itself, every other into a part file beside it
// (<fresh>-part-<name>). When the log is read, the part files' tables and checkpoints are
// copied into the fresh file (one INSERT ... SELECT per table) and removed, and the secondary
// indexes are built. The projections only ever read their own tables, so the rows are those
// of one file applied event by event (TestRebuildEqualsLiveProcessing compares them).

// partInfix separates a fresh file's name from a projection's part file.
const partInfix = "-part-"

// rebuildBatch is the default number of events a rebuild reads per page and each projection
// applies per transaction: the rows that projections build in memory per batch (batchWriter)
// collapse over more events (a session's accesses, a stream's events, an account's security
// state), and fewer commits write the same pages again.
const rebuildBatch = 16384

// rebuildCacheKiB is the page cache of the fresh file a rebuild writes, partCacheKiB that of
// each part file; all of them read through a memory map of rebuildMmap bytes. The cache holds
// the pages being written (the activity log and the sign-in history append in position order,
// the rows carried over are written once, in key order: a page is written once), the map
// serves the reads (the copy and the index builds read whole tables) without a copy. A cache
// holding the whole file, as before, cost seconds at close: the driver's allocator returns
// every cached page to the kernel one madvise at a time. The index builds at the end run with
// a small cache of their own, which also sizes the sorter's runs (createIndexes).
const (
	rebuildCacheKiB = 64 << 10
	partCacheKiB    = 8 << 10
	rebuildMmap     = 1<<31 - 1<<16 // SQLite's build limit is 0x7fff0000
)

// geoOf returns the GeoIP resolver of a built-in projection (nil for the others).
func geoOf(p Projection) *geoip.Resolver {
	switch p := p.(type) {
	case Sessions:
		return p.GeoIP
	case Activity:
		return p.GeoIP
	case SignIns:
		return p.GeoIP
	}
	return nil
}

// lane is one projection of a parallel rebuild.
type lane struct {
	p     Projection
	db    *DB
	path  string // the part file; "" for the fresh file itself
	pages chan lanePage
	pos   atomic.Uint64
}

type lanePage struct {
	events  []domain.Envelope
	decoded *decodedPage
}

// replayParallel fills fresh (at path, empty, Unjournaled) with cfg.Projections from the whole
// log; see above. It returns the last position applied and the number of events read.
func replayParallel(ctx context.Context, cfg RebuildConfig, fresh *DB, path string) (uint64, int, error) {
	ps := cfg.Projections
	batch := cfg.BatchSize
	if batch <= 0 {
		batch = rebuildBatch
	}
	main := 0
	for i, p := range ps {
		if p.Name() == ActivityName {
			main = i
		}
	}
	// Every table in the fresh file (the indexes after the rows, but those kept up in order:
	// deferredIndex), each lane's in its file.
	var indexes []string
	for _, p := range ps {
		for _, stmt := range p.Schema() {
			if deferredIndex(p, stmt) {
				indexes = append(indexes, stmt)
				continue
			}
			if _, err := fresh.write.ExecContext(ctx, stmt); err != nil {
				return 0, 0, fmt.Errorf("projections: schema of %s: %w", p.Name(), err)
			}
		}
	}
	lanes := make([]*lane, len(ps))
	closeParts := func() {
		for _, l := range lanes {
			if l != nil && l.path != "" {
				l.db.Close()
				RemoveFile(l.path)
			}
		}
	}
	for i, p := range ps {
		l := &lane{p: p, db: fresh, pages: make(chan lanePage, 2)}
		if i != main {
			l.path = path + partInfix + p.Name()
			RemoveFile(l.path)
			db, err := Open(Config{Path: l.path, Logger: cfg.Logger, Unjournaled: true})
			if err != nil {
				closeParts()
				return 0, 0, err
			}
			l.db = db
			for _, stmt := range p.Schema() {
				if deferredIndex(p, stmt) {
					continue
				}
				if _, err := db.write.ExecContext(ctx, stmt); err != nil {
					l.db.Close()
					closeParts()
					return 0, 0, fmt.Errorf("projections: schema of %s: %w", p.Name(), err)
				}
			}
		}
		cache := rebuildCacheKiB
		if l.path != "" {
			cache = partCacheKiB
		}
		for _, q := range []string{`PRAGMA cache_size = -` + strconv.Itoa(cache), `PRAGMA mmap_size = ` + strconv.Itoa(rebuildMmap)} {
			if _, err := l.db.write.ExecContext(ctx, q); err != nil {
				closeParts()
				return 0, 0, err
			}
		}
		lanes[i] = l
	}
	defer closeParts()

	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := Applier{DB: l.db, Projections: []Projection{l.p}, Checkpoints: []uint64{0}, Now: cfg.Now}.carrying()
			raw, err := openRawExec(lctx, l.db)
			if err != nil {
				cancel(err)
			}
			a.raw = raw
			defer func() {
				if err := raw.close(); err != nil {
					cancel(err)
				}
			}()
			// Statements run without the cancellation (the driver would watch every one with a
			// goroutine of its own): a cancelled rebuild stops between two pages.
			actx := withFoldCache(withPlaceCache(context.WithoutCancel(lctx), geoOf(l.p)))
			for pg := range l.pages {
				if lctx.Err() != nil {
					continue // drain
				}
				if err := a.Apply(withDecoded(actx, pg.decoded), pg.events); err != nil {
					cancel(err)
					continue
				}
				l.pos.Store(pg.events[len(pg.events)-1].Position)
			}
			if lctx.Err() == nil {
				if err := a.flush(actx); err != nil {
					cancel(err)
				}
			}
		}()
	}
	head, err := cfg.Log.Head(ctx)
	if err != nil {
		cancel(err)
	}
	start, events := cfg.Now(), 0
	var pos uint64
	if err == nil {
		pos, err = follow.Pages(lctx, cfg.Log, 0, batch, func(ctx context.Context, page []domain.Envelope) error {
			pg := lanePage{events: page, decoded: decodePage(page)}
			for _, l := range lanes {
				select {
				case l.pages <- pg:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
			events += len(page)
			if cfg.Progress != nil {
				low := pg.events[len(pg.events)-1].Position
				for _, l := range lanes {
					low = min(low, l.pos.Load())
				}
				cfg.Progress(ReplayProgress{Position: low, Head: head, Events: events, Elapsed: cfg.Now().Sub(start)})
			}
			return nil
		})
	}
	for _, l := range lanes {
		close(l.pages)
	}
	wg.Wait()
	if cause := context.Cause(lctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil {
		return pos, events, fmt.Errorf("projections: replay: %w", err)
	}

	// The part files into the fresh file, then the indexes. Every part is committed: their
	// connections close meanwhile, on the other core (freeing their page caches takes a while).
	var parts []*lane
	for _, l := range lanes {
		if l.path != "" {
			parts = append(parts, l)
		}
	}
	closed := make(chan error, 1)
	go func() {
		var errs []error
		for _, l := range parts {
			if err := l.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", l.path, err))
			}
		}
		closed <- errors.Join(errs...)
	}()
	err = func() error {
		for _, l := range parts {
			if err := mergePart(ctx, fresh, l.path); err != nil {
				return fmt.Errorf("copy %s: %w", l.p.Name(), err)
			}
		}
		return createIndexes(ctx, fresh, indexes)
	}()
	err = errors.Join(err, <-closed)
	for _, l := range parts {
		RemoveFile(l.path)
		l.path = ""
	}
	if err != nil {
		return pos, events, fmt.Errorf("projections: rebuild: %w", err)
	}
	if cfg.Progress != nil {
		cfg.Progress(ReplayProgress{Position: pos, Head: head, Events: events, Elapsed: cfg.Now().Sub(start)})
	}
	return pos, events, nil
}

// mergePart copies every table of the part file at part (its rows and checkpoints) into db's
// tables of the same names, in one transaction.
func mergePart(ctx context.Context, db *DB, part string) error {
	conn, err := db.write.db().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS part`, part); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE part`)
	rows, err := conn.QueryContext(ctx, `SELECT name FROM part.sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name NOT IN ('checkpoints', 'snapshots') ORDER BY name`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range tables {
		q := `"` + t + `"`
		if _, err := tx.ExecContext(ctx, `INSERT INTO main.`+q+` SELECT * FROM part.`+q); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO main.checkpoints SELECT * FROM part.checkpoints`); err != nil {
		return err
	}
	return tx.Commit()
}
