package ephemeral

import (
	"context"
	"sync"
)

// SnapshotStore keeps the latest snapshot of a stream's aggregate, so that loading it reads
// only the events after the snapshot. Snapshots are an optimisation: losing them costs a
// full replay, never correctness. The state bytes hold the same credential material as the
// events (password hashes, sealed TOTP secrets, backup code hashes) and need the log's
// protection. Implementations must be safe for concurrent use.
type SnapshotStore interface {
	// Get returns the latest snapshot of stream: the stream version it was taken at and the
	// state bytes. ok is false when there is none.
	Get(ctx context.Context, stream string) (version uint64, state []byte, ok bool, err error)
	// Put stores a snapshot taken at version. A store may ignore a snapshot older than the
	// one it holds.
	Put(ctx context.Context, stream string, version uint64, state []byte) error
}

// MemorySnapshotStore is an in-memory SnapshotStore (per process; for tests and a single
// instance). It keeps only the newest snapshot per stream. The zero value is not usable;
// call NewMemorySnapshotStore. It is safe for concurrent use.
type MemorySnapshotStore struct {
	mu    sync.RWMutex
	snaps map[string]memSnapshot
}

type memSnapshot struct {
	version uint64
	state   []byte
}

var _ SnapshotStore = (*MemorySnapshotStore)(nil)

// NewMemorySnapshotStore returns an empty store.
func NewMemorySnapshotStore() *MemorySnapshotStore {
	return &MemorySnapshotStore{snaps: map[string]memSnapshot{}}
}

// Get implements SnapshotStore.
func (m *MemorySnapshotStore) Get(_ context.Context, stream string) (uint64, []byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.snaps[stream]
	if !ok {
		return 0, nil, false, nil
	}
	return s.version, append([]byte(nil), s.state...), true, nil
}

// Put implements SnapshotStore; a snapshot not newer than the stored one is ignored.
func (m *MemorySnapshotStore) Put(_ context.Context, stream string, version uint64, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.snaps[stream]; ok && cur.version >= version {
		return nil
	}
	m.snaps[stream] = memSnapshot{version: version, state: append([]byte(nil), state...)}
	return nil
}
