package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sealed/keystore"
)

// KeysFile holds the accounts' data keys of the embedded store (API.md "Personal data and
// erasure"): outside the log, wrapped under the server key, secure_delete on.
const KeysFile = "keys.db"

// serverKey reads the server key (--secret-key-file, else <data-dir>/secret.key), creating
// the default file on first start when create is set (serve does; the offline commands do
// not: a key they made could not open anything).
func serverKey(cfg Config, create bool, log *slog.Logger) ([]byte, error) {
	if cfg.SecretKeyFile != "" {
		key, err := ReadSecretKey(cfg.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--secret-key-file: %w", err)
		}
		return key, nil
	}
	path := filepath.Join(cfg.DataDir, SecretKeyFile)
	if !create {
		key, err := ReadSecretKey(path)
		if err != nil {
			return nil, fmt.Errorf("--data-dir: the secret key %s: %w", path, err)
		}
		return key, nil
	}
	key, created, err := EnsureSecretKey(path)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: the secret key %s: %w", path, err)
	}
	if created {
		// Kept even if New fails below: another process may already use it.
		log.Info("created a new secret key", "path", path)
	}
	return key, nil
}

// sealLog wraps the raw log so that personal members and the request's IP and user agent are
// sealed under their account's data key before the append and opened on every read
// (eventstore/sealed). The keys live in <data-dir>/keys.db for the embedded store and in one
// key stream per account on KurrentDB. A server key that does not open the key store stops
// the start with sealed.ErrWrongServerKey's message.
func sealLog(ctx context.Context, cfg Config, raw eventstore.Store, key []byte) (*sealed.Store, *sealed.Hasher, error) {
	h, err := sealed.NewHasher(key)
	if err != nil {
		return nil, nil, fmt.Errorf("--secret-key-file: %w", err)
	}
	var keys sealed.KeyStore
	if isSQLite(cfg.Store) {
		_, path := sqlitePaths(cfg)
		k, err := keystore.OpenSQLite(path, key)
		switch {
		case errors.Is(err, sealed.ErrWrongServerKey) && cfg.Store != StoreSQLite:
			return nil, nil, fmt.Errorf("--secret-key-file: the server key does not open the data keys %s of the shared log %s: every instance sharing a log needs the same --secret-key-file", path, cfg.Store)
		case err != nil:
			return nil, nil, fmt.Errorf("--data-dir: the data keys %s: %w", path, err)
		}
		keys = k
	} else {
		k, err := keystore.OpenKurrentDB(ctx, cfg.Store, key)
		if err != nil {
			return nil, nil, fmt.Errorf("--store: the data keys: %w", err)
		}
		keys = k
	}
	st, err := sealed.New(raw, sealed.Config{Keys: keys, Personal: sealed.RegistryPersonal, Owner: sealed.DefaultOwner(h, "attempted_email")})
	if err != nil {
		_ = keys.Close()
		return nil, nil, err
	}
	return st, h, nil
}

// OpenSealing is serve's sealing for `vigil log migrate`, which seals an old log's events into
// a new log of cfg.DataDir so that a server there opens them: the server key (made when absent,
// as serve does) and raw wrapped in the data directory's key store. cfg needs DataDir, Store
// and Logger; SecretKeyFile as serve's.
func OpenSealing(ctx context.Context, cfg Config, raw eventstore.Store) (*sealed.Store, []byte, error) {
	key, err := serverKey(cfg, true, cfg.Logger)
	if err != nil {
		return nil, nil, err
	}
	st, _, err := sealLog(ctx, cfg, raw, key)
	return st, key, err
}
