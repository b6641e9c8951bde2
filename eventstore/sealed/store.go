package sealed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

// Config configures New. Keys and Personal are required.
type Config struct {
	// Keys holds the data keys. The Store owns it: Close closes it after the inner store.
	Keys KeyStore
	// Personal lists the top-level data members of an event type and schema version that are
	// personal (the registry's FieldPersonal members), nil or empty for none. It must answer
	// the same for a type and version forever: reads use it to know which members to open. It
	// is called on every append and read, so it should be a map lookup.
	Personal PersonalFunc
	// Owner names the key that seals an event's personal values: any string ValidKeyID
	// accepts; false means no owner, and the values are sealed under UnownedKeyID. Build it with
	// DefaultOwner unless the domain knows better. Required.
	Owner OwnerFunc
	// CacheSize bounds the number of keys kept opened in memory. Default 65,536.
	CacheSize int
	// CacheTTL is how long a key (or the fact it was destroyed) is trusted from memory; a
	// destroy through this Store evicts at once, so the TTL only matters when other processes
	// share the key store (KurrentDB, or a shared SQLite log). Default 1s.
	CacheTTL time.Duration
	// Now is the cache's clock; default time.Now.
	Now func() time.Time
}

// subjectReader is the SQLite store's subject index (handlers.SubjectReader).
type subjectReader interface {
	ReadSubject(ctx context.Context, accountID string, after uint64, limit int) ([]domain.Envelope, error)
}

// Store is an eventstore.Store that seals personal values on Append and opens them on every
// read (see the package doc). It is safe for concurrent use.
//
// It deliberately has no Unwrap method: eventstore.Unwrap must not hand callers the inner
// store, whose reads are sealed. Reach the inner store's extra methods through Inner, knowing
// that what they return is sealed.
type Store struct {
	inner    eventstore.Store
	subjects subjectReader // nil when inner has no subject index
	keys     KeyStore
	personal PersonalFunc
	owner    OwnerFunc
	cache    *keyCache
}

var _ eventstore.Store = (*Store)(nil)

// New wraps inner so that personal values are sealed in it. It checks cfg and does not contact
// the key store.
func New(inner eventstore.Store, cfg Config) (*Store, error) {
	if inner == nil || cfg.Keys == nil || cfg.Personal == nil || cfg.Owner == nil {
		return nil, errors.New("sealed: New needs an inner store, Config.Keys, Config.Personal and Config.Owner")
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 65536
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{inner: inner, keys: cfg.Keys, personal: cfg.Personal, owner: cfg.Owner,
		cache: newKeyCache(cfg.CacheSize, cfg.CacheTTL, cfg.Now)}
	if sr, ok := inner.(subjectReader); ok {
		s.subjects = sr
	}
	return s, nil
}

// Inner returns the wrapped store. Its reads return sealed values: use it only for what works
// on the log as stored (hash chain verification, export).
func (s *Store) Inner() eventstore.Store { return s.inner }

// Expect passes an announced append on to the inner store (domain.Expecter): its append
// reaches the inner store with the caller's context, which carries the expectation.
func (s *Store) Expect(at time.Time) *domain.Expectation { return domain.ExpectAppend(s.inner, at) }

// CreateKey creates the data key keyID now (at registration, so that the first append does
// not wait for it), or does nothing when it exists. A destroyed key gives ErrKeyDestroyed.
func (s *Store) CreateKey(ctx context.Context, keyID string) error {
	if !ValidKeyID(keyID) {
		return fmt.Errorf("sealed: invalid key id %q", truncate(keyID))
	}
	e, err := s.keyFor(ctx, keyID, true)
	if err != nil {
		return err
	}
	if e.destroyed {
		return fmt.Errorf("sealed: key %s: %w", keyID, ErrKeyDestroyed)
	}
	return nil
}

// Destroy destroys the data keys (an account's AccountKeyID and the IdentifierKeyID of each
// email it held): from then on every personal value sealed under them reads as "[erased]", and
// values appended under them are erased on arrival.
func (s *Store) Destroy(ctx context.Context, keyIDs ...string) error {
	err := s.keys.Destroy(ctx, keyIDs...)
	for _, id := range keyIDs {
		s.cache.evict(id) // even on error: part of the destroy may have happened
	}
	return err
}

// Append seals the personal values of events, then appends them to the inner store.
// Sealing errors (a key store that cannot be reached, an invalid key id from Owner) fail the
// append before anything is written.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []domain.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	out := events
	for i := range events {
		ev, changed, err := s.seal(ctx, stream, events[i])
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		if changed {
			if &out[0] == &events[0] { // copy on first change: the caller's slice stays as it was
				out = append([]domain.EventData(nil), events...)
			}
			out[i] = ev
		}
	}
	return s.inner.Append(ctx, stream, expected, out)
}

// ReadStream implements eventstore.Store, opening sealed values.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error) {
	evs, err := s.inner.ReadStream(ctx, stream, fromVersion, limit)
	if err != nil {
		return nil, err
	}
	return s.openAll(ctx, evs)
}

// ReadAll implements eventstore.Store, opening sealed values.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error) {
	evs, err := s.inner.ReadAll(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	return s.openAll(ctx, evs)
}

// ErrNoSubjectIndex: ReadSubject on a Store whose inner store has no subject index.
var ErrNoSubjectIndex = errors.New("sealed: the inner store has no subject index")

// HasSubjectIndex reports whether ReadSubject works (the inner store has ReadSubject, as the
// SQLite store does). Hand the Store to the audit as its subject reader only then.
func (s *Store) HasSubjectIndex() bool { return s.subjects != nil }

// ReadSubject reads the inner store's subject index (handlers.SubjectReader), opening sealed
// values; without one it fails with ErrNoSubjectIndex.
func (s *Store) ReadSubject(ctx context.Context, accountID string, after uint64, limit int) ([]domain.Envelope, error) {
	if s.subjects == nil {
		return nil, ErrNoSubjectIndex
	}
	evs, err := s.subjects.ReadSubject(ctx, accountID, after, limit)
	if err != nil {
		return nil, err
	}
	return s.openAll(ctx, evs)
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) { return s.inner.Head(ctx) }

// Close closes the inner store, then the key store.
func (s *Store) Close() error {
	return errors.Join(s.inner.Close(), s.keys.Close())
}

// openAll opens the sealed values of evs in place.
func (s *Store) openAll(ctx context.Context, evs []domain.Envelope) ([]domain.Envelope, error) {
	for i := range evs {
		if err := s.open(ctx, &evs[i]); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// errNoChain: the inner log keeps no hash chain.
var errNoChain = errors.New("sealed: the inner log keeps no hash chain")

// ChainHead implements eventstore.Chain over the inner log: the chain covers the events as
// stored, sealed values included, so erasing a person never breaks it.
func (s *Store) ChainHead(ctx context.Context) (uint64, chain.Sum, error) {
	c, ok := s.inner.(eventstore.Chain)
	if !ok {
		return 0, chain.Sum{}, errNoChain
	}
	return c.ChainHead(ctx)
}

// Checkpoints implements eventstore.Chain over the inner log.
func (s *Store) Checkpoints(ctx context.Context, after uint64, limit int) ([]chain.Checkpoint, error) {
	c, ok := s.inner.(eventstore.Chain)
	if !ok {
		return nil, errNoChain
	}
	return c.Checkpoints(ctx, after, limit)
}

// AppendCheckpoint implements eventstore.Chain over the inner log.
func (s *Store) AppendCheckpoint(ctx context.Context, cp chain.Checkpoint) error {
	c, ok := s.inner.(eventstore.Chain)
	if !ok {
		return errNoChain
	}
	return c.AppendCheckpoint(ctx, cp)
}
