package projections

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Adopt moves the runner, and every query of its DB, to the read-model file at path (a
// rebuild's, see Rebuild) while the service keeps serving:
//
//  1. the file is opened and caught up with the log without stopping anything;
//  2. every projection's open batch is committed and the projections pause;
//  3. the file is caught up again, past everything the old file holds;
//  4. the DB switches to the new file (queries that already started finish on the old one),
//     each projection continues from the new file's checkpoint, and the old file is closed
//     and removed.
//
// Readers see the old read models until step 4 and the new ones after, never a mix within
// one query; nothing is applied twice or skipped (each worker skips what the new file already
// holds). On an error before the switch, the runner keeps the old file. Safe for concurrent
// use with Run; concurrent Adopt calls are serialised.
func (r *Runner) Adopt(ctx context.Context, path string) error {
	r.adoptMu.Lock()
	defer r.adoptMu.Unlock()
	db := r.cfg.DB
	old := db.Path()
	if filepath.Clean(path) == filepath.Clean(old) {
		return nil
	}
	cfg := db.cfg
	cfg.Path, cfg.fresh = path, false
	nw, nr, err := openConns(cfg)
	if err != nil {
		return err
	}
	next := &DB{log: db.log, cfg: cfg, write: newPool(nw), read: newPool(nr)}
	next.path.Store(&path)
	fail := func(err error) error {
		next.Close()
		return fmt.Errorf("projections: adopt %s: %w", path, err)
	}
	if err := next.setup(ctx, r.cfg.Projections); err != nil {
		return fail(err)
	}
	replay := func() error {
		_, err := ReplayWith(ctx, ReplayConfig{DB: next, Log: r.cfg.Log, Projections: r.cfg.Projections, Now: r.cfg.Now})
		return err
	}
	if err := replay(); err != nil {
		return fail(err)
	}
	for _, w := range r.workers {
		w.mu.Lock()
		w.commitLocked()
	}
	unlock := func() {
		for _, w := range r.workers {
			w.mu.Unlock()
		}
	}
	if err := replay(); err != nil {
		unlock()
		return fail(err)
	}
	cps := make([]uint64, len(r.workers))
	for i, w := range r.workers {
		if cps[i], err = next.Checkpoint(ctx, w.p.Name()); err != nil {
			unlock()
			return fail(err)
		}
		if cps[i] < w.committed.Load() {
			unlock()
			return fail(fmt.Errorf("%s reached %d, the old file %d", w.p.Name(), cps[i], w.committed.Load()))
		}
	}
	oldW, oldR := db.write.db(), db.read.db()
	db.write.p.Store(nw)
	db.read.p.Store(nr)
	db.path.Store(&path)
	for i, w := range r.workers {
		w.applied = cps[i]
		w.committed.Store(cps[i])
	}
	unlock()
	r.notifyAdvanced()
	r.cfg.Logger.Info("read models switched to a rebuilt file", "file", path, "previous", old)
	if err := errors.Join(oldR.Close(), oldW.Close()); err != nil {
		r.cfg.Logger.Warn("closing the previous read-model file", "file", old, "err", err)
	}
	removeDBFiles(old)
	return nil
}

// FollowRebuilds watches the pointer file of dir every interval (default 1 s) until ctx ends,
// and adopts the file it names when it changes (Adopt). A file that fails to be adopted is
// logged and not tried again until the pointer changes.
func (r *Runner) FollowRebuilds(ctx context.Context, dir string, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failed := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		path, err := CurrentPath(dir)
		if err != nil {
			if failed != "!" {
				r.cfg.Logger.Error("read-model pointer unreadable", "dir", dir, "err", err)
			}
			failed = "!"
			continue
		}
		if path == failed || filepath.Clean(path) == filepath.Clean(r.cfg.DB.Path()) {
			continue
		}
		if err := r.Adopt(ctx, path); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.cfg.Logger.Error("adopting rebuilt read models failed; still serving the previous file", "file", path, "err", err)
			failed = path
			continue
		}
		failed = ""
	}
}
