package app

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// openCheckpointer loads the log signing key (making it on first start when it is the default
// file) and prepares the checkpointer of the backend's chain; Run starts and stops it.
func openCheckpointer(cfg Config, raw eventstore.Store) (*chain.KeyRing, *chain.Checkpointer, error) {
	var (
		keys *chain.KeyRing
		err  error
	)
	if cfg.LogSigningKeyFile != "" {
		if keys, err = chain.LoadKeyRing(cfg.LogSigningKeyFile); err != nil {
			return nil, nil, fmt.Errorf("--log-signing-key-file: %w", err)
		}
	} else {
		path := filepath.Join(cfg.DataDir, LogSigningKeyFile)
		var created bool
		if keys, created, err = chain.EnsureKeyRing(path, time.Now()); err != nil {
			return nil, nil, fmt.Errorf("--data-dir: the log signing key %s: %w", path, err)
		}
		if created {
			cfg.Logger.Info("created a new log signing key", "path", path, "key_id", keys.ActiveKeyID())
		}
	}
	log, ok := raw.(eventstore.Chain)
	if !ok {
		return nil, nil, fmt.Errorf("--store: %T keeps no hash chain", raw)
	}
	return keys, chain.NewCheckpointer(chain.CheckpointerConfig{Log: log, Keys: keys, Interval: cfg.CheckpointInterval, Logger: cfg.Logger}), nil
}

// LogKeys is the log signing key ring: its Keys() answer GET /api/v1/log/keys.
func (a *App) LogKeys() *chain.KeyRing { return a.logKeys }

// LogChain is the backend's chain: its Checkpoints(ctx, after, limit) answer GET
// /api/v1/log/checkpoints.
func (a *App) LogChain() eventstore.Chain { return a.checkpointer.Log() }

// logIntegrity serves the integrity routes: the key ring's public keys and the chain's
// checkpoints.
type logIntegrity struct {
	*chain.KeyRing
	eventstore.Chain
}
