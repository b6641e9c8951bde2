package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-auth/vigil/projections"
)

// Adopt moves the runner, and every query of its DB, to the read-model file at path (a
// rebuild's, see projections.Rebuild) while the service keeps serving:
//
//  1. the file is opened and caught up with the log without stopping anything;
//  2. every projection's pending batch is committed and the projections pause;
//  3. the file is caught up again, past everything the old file holds;
//  4. the DB switches to the new file (queries that already started finish on the old one),
//     each projection continues from the new file's checkpoint, and the old file is closed
//     and removed.
//
// Readers see the old read models until step 4 and the new ones after, never a mix within
// one query; nothing is applied twice or skipped (each projection skips what the new file
// already holds). On an error before the switch, the runner keeps the old file. Safe for
// concurrent use with Run; concurrent Adopt calls are serialised.
func (r *Runner) Adopt(ctx context.Context, path string) error {
	r.adoptMu.Lock()
	defer r.adoptMu.Unlock()
	db := r.cfg.DB
	old := db.Path()
	if filepath.Clean(path) == filepath.Clean(old) {
		return nil
	}
	next, err := db.Reopen(path)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		next.Close()
		return fmt.Errorf("runner: adopt %s: %w", path, err)
	}
	if err := next.Setup(ctx, r.cfg.Projections); err != nil {
		return fail(err)
	}
	replay := func() error {
		_, err := projections.ReplayWith(ctx, projections.ReplayConfig{DB: next, Log: r.cfg.Log, Projections: r.cfg.Projections, Now: r.cfg.Now})
		return err
	}
	if err := replay(); err != nil {
		return fail(err)
	}
	release := r.f.Hold(ctx)
	if err := replay(); err != nil {
		release(nil)
		return fail(err)
	}
	committed := r.f.Positions()
	at := make(map[string]uint64, len(r.cfg.Projections))
	for _, p := range r.cfg.Projections {
		cp, err := next.Checkpoint(ctx, p.Name())
		if err != nil {
			release(nil)
			return fail(err)
		}
		if cp < committed[p.Name()] {
			release(nil)
			return fail(fmt.Errorf("%s reached %d, the old file %d", p.Name(), cp, committed[p.Name()]))
		}
		at[p.Name()] = cp
	}
	prev := db.Switch(next)
	release(at)
	r.cfg.Logger.Info("read models switched to a rebuilt file", "file", path, "previous", old)
	if err := prev.Close(); err != nil {
		r.cfg.Logger.Warn("closing the previous read-model file", "file", old, "err", err)
	}
	projections.RemoveFile(old)
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
		path, err := projections.CurrentPath(dir)
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
