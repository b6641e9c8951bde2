package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/vigil-auth/vigil/projections"
)

// rebuildGCPercent is the garbage collector's target (GOGC) while Rebuild runs.
const rebuildGCPercent = 300

// readModelFile returns the read-model file of dataDir (the one `vigil projections rebuild`
// last swapped in, or projections.DefaultFile), after removing the files an interrupted or
// unadopted rebuild left behind.
func readModelFile(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("--data-dir: %w", err)
	}
	if err := projections.RemoveStale(dataDir); err != nil {
		return "", fmt.Errorf("--data-dir: read models: %w", err)
	}
	path, err := projections.CurrentPath(dataDir)
	if err != nil {
		return "", fmt.Errorf("--data-dir: read models: %w", err)
	}
	return path, nil
}

// Rebuild rebuilds the read models of cfg.DataDir from the log of cfg.Store into a fresh file
// and swaps it in (projections.Rebuild), with the projections and GeoIP databases a server
// with cfg runs, so that the result equals what that server builds live. A server running on
// the same data directory keeps serving and adopts the new file within
// RebuildPollInterval. progress, when set, is called after each committed batch.
func Rebuild(ctx context.Context, cfg Config, progress func(projections.ReplayProgress)) (projections.RebuildResult, error) {
	if err := cfg.fill(); err != nil {
		return projections.RebuildResult{}, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return projections.RebuildResult{}, fmt.Errorf("--data-dir: %w", err)
	}
	raw, err := openStore(ctx, cfg)
	if err != nil {
		return projections.RebuildResult{}, err
	}
	// The read models hold personal data in clear: the rebuild reads the log through the
	// sealing, with the server's key (made here, as serve would, when no server ran on the
	// directory yet: a seeded log, for example).
	key, err := serverKey(cfg, true, cfg.Logger)
	if err != nil {
		raw.Close()
		return projections.RebuildResult{}, err
	}
	store, _, err := sealLog(ctx, cfg, raw, key)
	if err != nil {
		raw.Close()
		return projections.RebuildResult{}, err
	}
	geo, err := openGeoIP(cfg)
	if err != nil {
		store.Close()
		return projections.RebuildResult{}, err
	}
	// The rebuild allocates a page of events and its decoded rows per batch, most of it
	// garbage a moment later: a less eager collector spends less of the two cores on it (the
	// heap stays within a few hundred MiB at the default batch size).
	defer debug.SetGCPercent(debug.SetGCPercent(rebuildGCPercent))
	res, err := projections.Rebuild(ctx, projections.RebuildConfig{
		Dir:         cfg.DataDir,
		Log:         store,
		Projections: projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo}),
		Progress:    progress,
		Logger:      cfg.Logger,
	})
	return res, errors.Join(err, geo.Close(), store.Close())
}
