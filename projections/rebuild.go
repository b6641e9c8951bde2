package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The read models of a data directory live in one SQLite file; which one is named by the
// pointer file CurrentFile (absent: DefaultFile). Rebuild writes a fresh file beside the
// current one and replaces the pointer (an atomic rename) when the file has caught up with
// the log; a serving runner that follows the directory (projections/runner) adopts it between
// two batches, and a server that starts later opens it directly.
const (
	// DefaultFile is the read-model file of a directory without a pointer file.
	DefaultFile = "projections.db"
	// CurrentFile holds the name of the directory's current read-model file.
	CurrentFile = "projections.current"
	// rebuildLockFile is held (flock) by a rebuild, so that two never run at once and stale
	// files are only cleaned up while none runs.
	rebuildLockFile = "projections.rebuild.lock"
	// rebuiltPrefix starts the names of rebuilt files: projections-<unix nanoseconds>.db.
	rebuiltPrefix = "projections-"
)

// ErrRebuildRunning is returned by Rebuild when another rebuild holds the directory.
var ErrRebuildRunning = errors.New("projections: another rebuild of this directory is running")

// CurrentPath returns the read-model file the directory dir currently uses: the file named by
// its pointer file, or DefaultFile without one. A pointer that names anything but a
// read-model file in dir is an error (the directory was tampered with).
func CurrentPath(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, CurrentFile))
	if errors.Is(err, os.ErrNotExist) {
		return filepath.Join(dir, DefaultFile), nil
	}
	if err != nil {
		return "", fmt.Errorf("projections: read %s: %w", CurrentFile, err)
	}
	name := strings.TrimSpace(string(b))
	if !validFileName(name) {
		return "", fmt.Errorf("projections: %s names %q, not a read-model file", filepath.Join(dir, CurrentFile), name)
	}
	return filepath.Join(dir, name), nil
}

// validFileName reports whether name is DefaultFile or a rebuilt file's name.
func validFileName(name string) bool {
	if name == DefaultFile {
		return true
	}
	digits, ok := strings.CutPrefix(name, rebuiltPrefix)
	if !ok {
		return false
	}
	digits, ok = strings.CutSuffix(digits, ".db")
	if !ok || digits == "" {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 64)
	return err == nil
}

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Dir is the data directory whose read models are rebuilt. Required.
	Dir string
	// Log is the event log. Required.
	Log LogInfo
	// Projections to build: the same list the server runs (projections.BuiltinWith with the
	// server's GeoIP databases, so that locations come out the same).
	Projections []Projection
	// Progress, when set, is called after each committed batch.
	Progress func(ReplayProgress)
	// BatchSize: see ReplayConfig; default 4000.
	BatchSize int
	Logger    *slog.Logger
	// Now names the file and stamps checkpoints; default time.Now.
	Now func() time.Time
}

// RebuildResult describes a finished rebuild.
type RebuildResult struct {
	Path     string        // the new current read-model file
	Previous string        // the file it replaced (removed by the server that adopts the new one)
	Position uint64        // the log position the new file had reached when it was swapped in
	Events   int           // events applied
	Elapsed  time.Duration // from start to swap
}

// Rebuild builds every read model of cfg.Dir from the whole log into a fresh file, then makes
// it the directory's current file with an atomic rename of the pointer file. The current file
// is not touched: a server keeps answering from it during the rebuild, and adopts the new one
// when it notices the pointer (runner.Runner.FollowRebuilds), applying first whatever the log
// gained since. Aggregate snapshots are not carried over (they are a cache; the next load of each
// account writes a new one).
//
// The fresh file is written without a journal and without syncs (nothing reads it until the
// swap, and an interrupted rebuild leaves only an unreferenced file that the next server start
// removes); it is switched to WAL and synced to disk before the pointer moves. Only one
// rebuild runs per directory at a time (ErrRebuildRunning). Cancelling ctx stops the rebuild
// and leaves the current file in place.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildResult, error) {
	if cfg.Dir == "" || cfg.Log == nil {
		return RebuildResult{}, errors.New("projections: RebuildConfig needs Dir and Log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	unlock, err := lockRebuild(cfg.Dir, true)
	if err != nil {
		return RebuildResult{}, err
	}
	defer unlock()
	prev, err := CurrentPath(cfg.Dir)
	if err != nil {
		return RebuildResult{}, err
	}
	start := cfg.Now()
	name := rebuiltPrefix + strconv.FormatInt(start.UnixNano(), 10) + ".db"
	path := filepath.Join(cfg.Dir, name)
	if _, err := os.Stat(path); err == nil {
		return RebuildResult{}, fmt.Errorf("projections: rebuild: %s already exists", path)
	}
	fresh, err := Open(Config{Path: path, Logger: cfg.Logger, Unjournaled: true})
	if err != nil {
		return RebuildResult{}, err
	}
	discard := func() {
		fresh.Close()
		RemoveFile(path)
	}
	pos, events, err := replayParallel(ctx, cfg, fresh, path)
	if err != nil {
		discard()
		return RebuildResult{}, err
	}
	// Serving settings, then everything on disk before anyone can open the file.
	if err := fresh.EnableWAL(ctx); err != nil {
		discard()
		return RebuildResult{}, fmt.Errorf("projections: rebuild: %w", err)
	}
	if err := fresh.Close(); err != nil {
		RemoveFile(path)
		return RebuildResult{}, fmt.Errorf("projections: rebuild: close: %w", err)
	}
	if err := syncFile(path); err != nil {
		RemoveFile(path)
		return RebuildResult{}, err
	}
	if err := ctx.Err(); err != nil {
		RemoveFile(path)
		return RebuildResult{}, err
	}
	if err := writePointer(cfg.Dir, name); err != nil {
		RemoveFile(path)
		return RebuildResult{}, err
	}
	res := RebuildResult{Path: path, Previous: prev, Position: pos, Events: events, Elapsed: cfg.Now().Sub(start)}
	cfg.Logger.Info("read models rebuilt and swapped in", "file", path, "previous", prev, "position", pos, "elapsed", res.Elapsed)
	return res, nil
}

// writePointer makes name the current read-model file of dir: a new pointer file synced to
// disk, renamed over the old one, and the directory synced, so that after a crash the pointer
// names either the old file or the new one, complete.
func writePointer(dir, name string) error {
	tmp := filepath.Join(dir, CurrentFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("projections: write pointer: %w", err)
	}
	_, err = f.WriteString(name + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, CurrentFile))
	}
	if err == nil {
		err = syncFile(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("projections: write pointer: %w", err)
	}
	return nil
}

// syncFile fsyncs a file or directory.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("projections: sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("projections: sync %s: %w", path, err)
	}
	return nil
}

// RemoveFile removes a read-model file with its WAL and shared-memory files (a file the DB
// has moved away from, see DB.Switch).
func RemoveFile(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		_ = os.Remove(p)
	}
}

// lockRebuild takes the directory's rebuild lock: waiting for nothing, it fails with
// ErrRebuildRunning when another process holds it. The returned function releases it.
func lockRebuild(dir string, create bool) (func(), error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(dir, rebuildLockFile), flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("projections: rebuild lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrRebuildRunning
		}
		return nil, fmt.Errorf("projections: rebuild lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// RemoveStale removes the read-model files of dir that are not current (left by an
// interrupted rebuild, or replaced while no server was running), unless a rebuild is running.
// A server calls it at start, before opening the current file.
func RemoveStale(dir string) error {
	unlock, err := lockRebuild(dir, true)
	if errors.Is(err, ErrRebuildRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := CurrentPath(dir)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("projections: remove stale files: %w", err)
	}
	for _, e := range entries {
		base, _, _ := strings.Cut(e.Name(), "-wal")
		base, _, _ = strings.Cut(base, "-shm")
		base, _, _ = strings.Cut(base, "-journal")
		base, _, _ = strings.Cut(base, partInfix)
		if !validFileName(base) || filepath.Join(dir, base) == cur {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("projections: remove stale files: %w", err)
		}
	}
	return nil
}
