package sealed

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// KeySize is the size of a data key: 256 bits, for AES-256-GCM.
const KeySize = 32

// Errors of key stores and of reading sealed values. Compare with errors.Is.
var (
	// ErrKeyDestroyed: the key was destroyed (its account erased); it is never created again.
	ErrKeyDestroyed = errors.New("sealed: data key destroyed")
	// ErrKeyNotFound: the key store never held the key.
	ErrKeyNotFound = errors.New("sealed: data key not found")
	// ErrUnknownKey: a sealed value names a key the key store never held (a key store that is
	// not the log's, or a log altered to name another key).
	ErrUnknownKey = errors.New("sealed: a sealed value names a key the key store never held")
	// ErrTampered: a sealed value does not parse, or does not open under its key with its
	// event id and member (altered, or copied from another event).
	ErrTampered = errors.New("sealed: a sealed value was altered or moved")
	// ErrWrongServerKey: the server key is not the one the key store was made with.
	ErrWrongServerKey = errors.New("the server key does not open the key store")
)

// KeyStore holds the data keys, outside the log. eventstore/sealed/keystore has one on SQLite
// (<data-dir>/keys.db) and one on KurrentDB. Implementations are safe for concurrent use.
type KeyStore interface {
	// Key returns the 32-byte data key keyID. When the store never held it, Key creates it if
	// create is true (atomically: concurrent creators all get the one key that was stored, and
	// it is durable before Key returns), else it returns an error wrapping ErrKeyNotFound. A
	// destroyed key gives an error wrapping ErrKeyDestroyed, create or not.
	Key(ctx context.Context, keyID string, create bool) ([]byte, error)
	// Destroy removes the keys for good: afterwards Key answers ErrKeyDestroyed for each, and
	// once the store is closed cleanly its files hold no trace of their bytes. Destroying a key
	// that does not exist (yet) records it as destroyed too.
	Destroy(ctx context.Context, keyIDs ...string) error
	// Close releases the store.
	Close() error
}

// cachedKey is a key as the cache holds it: the AEAD, or destroyed.
type cachedKey struct {
	aead      cipher.AEAD // nil when destroyed
	destroyed bool
	expires   time.Time
}

const cacheShards = 32

// keyCache keeps opened keys (and the fact that a key is destroyed) in memory, bounded, so that
// appends and reads rarely ask the key store. Entries expire after a TTL so that a key destroyed
// by another process sharing the key store is noticed; a destroy in this process evicts at once.
type keyCache struct {
	seed     maphash.Seed
	perShard int
	ttl      time.Duration
	now      func() time.Time
	shards   [cacheShards]struct {
		mu sync.Mutex
		m  map[string]cachedKey
	}
}

func newKeyCache(size int, ttl time.Duration, now func() time.Time) *keyCache {
	c := &keyCache{seed: maphash.MakeSeed(), perShard: max(1, size/cacheShards), ttl: ttl, now: now}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cachedKey)
	}
	return c
}

func (c *keyCache) shard(id string) int { return int(maphash.String(c.seed, id) % cacheShards) }

func (c *keyCache) get(id string) (cachedKey, bool) {
	sh := &c.shards[c.shard(id)]
	sh.mu.Lock()
	e, ok := sh.m[id]
	sh.mu.Unlock()
	if !ok || c.now().After(e.expires) {
		return cachedKey{}, false
	}
	return e, true
}

func (c *keyCache) put(id string, e cachedKey) {
	e.expires = c.now().Add(c.ttl)
	sh := &c.shards[c.shard(id)]
	sh.mu.Lock()
	if _, ok := sh.m[id]; !ok && len(sh.m) >= c.perShard {
		for k := range sh.m { // map order is random: evict an arbitrary entry
			delete(sh.m, k)
			break
		}
	}
	sh.m[id] = e
	sh.mu.Unlock()
}

func (c *keyCache) evict(id string) {
	sh := &c.shards[c.shard(id)]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// newAEAD makes the AES-256-GCM of a data key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealed: data key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// keyFor returns the cached key keyID, asking the key store on a miss. A destroyed key gives a
// cachedKey with destroyed set and no error.
func (s *Store) keyFor(ctx context.Context, keyID string, create bool) (cachedKey, error) {
	if e, ok := s.cache.get(keyID); ok {
		return e, nil
	}
	raw, err := s.keys.Key(ctx, keyID, create)
	switch {
	case errors.Is(err, ErrKeyDestroyed):
		e := cachedKey{destroyed: true}
		s.cache.put(keyID, e)
		return e, nil
	case err != nil:
		return cachedKey{}, err
	}
	aead, err := newAEAD(raw)
	clear(raw)
	if err != nil {
		return cachedKey{}, err
	}
	e := cachedKey{aead: aead}
	s.cache.put(keyID, e)
	return e, nil
}
