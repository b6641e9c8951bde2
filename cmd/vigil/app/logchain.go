package app

import (
	"context"
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
	if _, shared := SharedSQLitePath(cfg.Store); shared {
		if err := checkSigningKey(context.Background(), log, keys, cfg.LogSigningKeyFile != ""); err != nil {
			return nil, nil, err
		}
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

// checkSigningKey stops a start whose log signing key did not sign the log's latest
// checkpoints: instances sharing one log (sqlite://PATH) must share the key, or each would
// sign with its own and verifiers would trust only one of them. It looks for a checkpoint
// near the head (a few indexed reads); a log without checkpoints passes. Only the SQLite
// backend's checkpoint reads are indexed, so KurrentDB is not checked here.
func checkSigningKey(ctx context.Context, log eventstore.Chain, keys *chain.KeyRing, explicit bool) error {
	head, _, err := log.ChainHead(ctx)
	if err != nil || head == 0 {
		return nil // an unreadable log is reported by the steps that need it
	}
	var cp *chain.Checkpoint
	for back := uint64(1); cp == nil; back *= 2 {
		after := uint64(0)
		if head > back {
			after = head - back
		}
		cps, err := log.Checkpoints(ctx, after, 1)
		if err != nil {
			return nil
		}
		if len(cps) > 0 {
			cp = &cps[0]
		} else if after == 0 {
			return nil
		}
	}
	if err := keys.Public().Verify(*cp); err != nil {
		flag := "--data-dir: the log signing key " + LogSigningKeyFile
		if explicit {
			flag = "--log-signing-key-file"
		}
		return fmt.Errorf("%s does not verify the log's checkpoint at position %d (key_id %s): every instance sharing a log needs the same --log-signing-key-file", flag, cp.Position, cp.KeyID)
	}
	return nil
}
