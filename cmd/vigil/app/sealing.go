package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/eventtype"
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
	if cfg.Store == StoreSQLite {
		path := filepath.Join(cfg.DataDir, KeysFile)
		k, err := keystore.OpenSQLite(path, key)
		if err != nil {
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
	st, err := sealed.New(raw, sealed.Config{Keys: keys, Personal: personalMembers, Owner: sealed.DefaultOwner(h, "attempted_email")})
	if err != nil {
		_ = keys.Close()
		return nil, nil, err
	}
	return st, h, nil
}

// personalCache holds the registry's personal members per event type and schema version:
// sealing asks on every append and read.
var personalCache sync.Map // "type\x00version" -> []string

// personalMembers is sealed.PersonalFunc over the domain registry's declarations (members
// declared eventtype.FieldPersonal).
func personalMembers(eventType string, schemaVersion int) []string {
	k := fmt.Sprint(eventType, "\x00", schemaVersion)
	if v, ok := personalCache.Load(k); ok {
		return v.([]string)
	}
	var out []string
	if d, ok := domain.EventDataFields(eventType, schemaVersion); ok {
		for _, m := range d.Keys() {
			if d.Class(m) == eventtype.FieldPersonal {
				out = append(out, m)
			}
		}
	}
	personalCache.Store(k, out)
	return out
}

// dataKeys destroys an erased account's keys in the sealed log's key store: its own, and the
// identifier keys of the emails it held (failed sign-ins that typed them before they named it).
type dataKeys struct {
	st *sealed.Store
	h  *sealed.Hasher
}

// DestroyAccount implements command.DataKeys.
func (d dataKeys) DestroyAccount(ctx context.Context, accountID string, emails []string) error {
	ids := []string{sealed.AccountKeyID(accountID)}
	for _, e := range emails {
		ids = append(ids, d.h.IdentifierKeyID(e))
	}
	return d.st.Destroy(ctx, ids...)
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
