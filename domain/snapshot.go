package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-auth/vigil/domain/ephemeral"
)

// accountSnapshotSchema is the version of the account snapshot JSON. Bump it whenever
// accountState or the meaning of an event's apply changes: snapshots of another version are
// ignored and the account is replayed in full (and snapshotted again).
const accountSnapshotSchema = 3 // 2: erased_at; 3: recovery (email_verified, verify, reset, reported)

type accountSnapshot struct {
	Schema int          `json:"schema"`
	State  accountState `json:"state"`
}

// marshalAccountSnapshot returns the versioned JSON snapshot of a.
func marshalAccountSnapshot(a *Account) ([]byte, error) {
	return json.Marshal(accountSnapshot{Schema: accountSnapshotSchema, State: a.s})
}

// unmarshalAccountSnapshot restores an Account from a snapshot taken at version. ok is
// false (and the snapshot must be ignored) for another schema version, malformed JSON, or
// a snapshot of another account or version.
func unmarshalAccountSnapshot(accountID string, version uint64, data []byte) (*Account, bool) {
	var probe struct {
		Schema int `json:"schema"`
	}
	if json.Unmarshal(data, &probe) != nil || probe.Schema != accountSnapshotSchema {
		return nil, false
	}
	var snap accountSnapshot
	if json.Unmarshal(data, &snap) != nil || snap.State.ID != accountID || snap.State.Version != version {
		return nil, false
	}
	return &Account{s: snap.State}, true
}

// AccountRepository loads accounts from a snapshot plus the events after it, and writes a
// new snapshot once Every events were replayed on top of the last one (the command layer's
// Config.SnapshotEvery).
type AccountRepository struct {
	// Store is the event log.
	Store EventStore
	// Snapshots keeps the account snapshots.
	Snapshots ephemeral.SnapshotStore
	// Every: a snapshot is written when a load replayed at least this many events after the
	// last one.
	Every int
	// PageSize is the page size of stream reads.
	PageSize int
}

// Load returns the account at its latest version, or an error wrapping ErrNotFound when the
// stream is empty. It starts from the latest usable snapshot and reads the events after it
// in pages; a snapshot that does not continue cleanly is ignored (full replay).
func (r *AccountRepository) Load(ctx context.Context, accountID string) (*Account, error) {
	a, err := r.loadFrom(ctx, accountID, true)
	if errors.Is(err, errBadSnapshot) {
		a, err = r.loadFrom(ctx, accountID, false)
	}
	return a, err
}

var errBadSnapshot = errors.New("snapshot does not continue the stream")

func (r *AccountRepository) loadFrom(ctx context.Context, accountID string, useSnapshot bool) (*Account, error) {
	stream := AccountStream(accountID)
	var a *Account
	if useSnapshot {
		if v, data, ok, err := r.Snapshots.Get(ctx, stream); err == nil && ok {
			a, _ = unmarshalAccountSnapshot(accountID, v, data)
		}
	}
	fromSnapshot := a != nil
	if a == nil {
		a = &Account{s: accountState{ID: accountID}}
	}
	base := a.s.Version
	for {
		events, err := r.Store.ReadStream(ctx, stream, a.s.Version+1, r.PageSize)
		if err != nil {
			return nil, fmt.Errorf("load account %s: %w", accountID, err)
		}
		if len(events) == 0 {
			break
		}
		if err := a.replay(events); err != nil {
			if fromSnapshot {
				return nil, fmt.Errorf("%w: %w", errBadSnapshot, err)
			}
			return nil, err
		}
		if len(events) < r.PageSize {
			break
		}
	}
	if a.s.Version == 0 {
		return nil, fmt.Errorf("account %s: %w", accountID, ErrNotFound)
	}
	if a.s.Version-base >= uint64(r.Every) {
		if data, err := marshalAccountSnapshot(a); err == nil {
			_ = r.Snapshots.Put(ctx, stream, a.s.Version, data) // best effort: an optimisation
		}
	}
	return a, nil
}
