// Package throttle holds sign-in throttling: the limits (Config, Rule), the Store that keeps
// the attempt counts per key (an account or a client address) with its in-memory
// implementation, and the Attempt a sign-in command reserves before it checks a credential.
//
// It depends on the standard library only, never on package domain: domain imports it, and
// so may another Store implementation beside the in-memory one.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures sign-in throttling. Zero values take the defaults shown.
//
// An attempt is counted (reserved) before its password or code is checked, in one atomic
// step of the Store, so that a burst of parallel attempts gets no more checks than
// the same attempts one after the other: FreeFailures checks, plus the one whose reservation
// starts the first wait. A success gives the reservation back: the account's count is reset
// (a completed sign-in), an IP's reservation is refunded but its count is not reset (an
// attacker's own account would otherwise wipe the count of the IP it stuffs credentials
// from). A key is forgotten ForgetAfter its last counted attempt.
type Config struct {
	// FreeFailures per account (keyed by the normalised email, so that unknown emails
	// throttle exactly like known ones and throttling reveals nothing); default 5.
	FreeFailures int
	// IPFreeFailures per client IP (an IPv6 address counts for its /64); default 20 (an
	// office behind one NAT address shares it).
	IPFreeFailures int
	// BaseDelay is the wait after the first failure beyond the free ones; it doubles with
	// each further failure. Default 1s.
	BaseDelay time.Duration
	// MaxDelay caps the wait; default 15m.
	MaxDelay time.Duration
	// ForgetAfter: a key without a failure for this long is forgotten; default 1h.
	ForgetAfter time.Duration
	// Store keeps the counts; default a new in-memory store (NewMemoryStore): per
	// instance, so behind a load balancer an attacker gets each instance's allowance
	// unless the instances share one (sharedstate.Throttle, in NATS JetStream).
	Store Store
}

// Fill sets the defaults of the zero fields and checks the result: the Service calls it once
// when it starts, so that a bad configuration fails there and not at the first sign-in.
func (c *Config) Fill() error {
	if c.FreeFailures == 0 {
		c.FreeFailures = 5
	}
	if c.IPFreeFailures == 0 {
		c.IPFreeFailures = 20
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = time.Hour
	}
	if c.FreeFailures < 0 || c.IPFreeFailures < 0 || c.BaseDelay < 0 || c.MaxDelay < c.BaseDelay || c.ForgetAfter < c.MaxDelay {
		return fmt.Errorf("throttle: bad config %+v", *c)
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	return nil
}

// AccountRule is the limit on an account key (FreeFailures).
func (c *Config) AccountRule() Rule {
	return Rule{Free: c.FreeFailures, BaseDelay: c.BaseDelay, MaxDelay: c.MaxDelay, ForgetAfter: c.ForgetAfter}
}

// IPRule is the limit on a client-address key (IPFreeFailures).
func (c *Config) IPRule() Rule {
	r := c.AccountRule()
	r.Free = c.IPFreeFailures
	return r
}

// Rule is the limit a Store applies to one key.
type Rule struct {
	// Free attempts are counted without a wait.
	Free int
	// BaseDelay is the wait set by the first counted attempt beyond Free, doubling with
	// each further one, capped at MaxDelay.
	BaseDelay, MaxDelay time.Duration
	// ForgetAfter: the count of a key without a counted attempt for this long starts again
	// from zero (ForgetAfter >= MaxDelay).
	ForgetAfter time.Duration
}

// delay is the wait after the over-th counted attempt beyond the free ones (over >= 1).
func (r Rule) delay(over int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < over && d < r.MaxDelay; i++ {
		d *= 2
	}
	return min(d, r.MaxDelay)
}

// Decision is the answer of Store.Reserve.
type Decision struct {
	// Wait > 0: the key is waiting; nothing was counted and the attempt must be refused
	// without checking its credential. Wait == 0: the attempt was counted; check it.
	Wait time.Duration
	// First is true for the first refusal of a wait (only that one is recorded in the
	// log, so a flood cannot flood it).
	First bool
	// Reservation names the counted attempt (Wait == 0) for Refund.
	Reservation Reservation
}

// Reservation names one attempt counted by Store.Reserve, so that Refund
// gives back exactly it.
type Reservation struct {
	// Epoch names the count the attempt joined (a store-defined number that changes when a
	// key's count starts again): a Refund after the key was reset or forgotten does nothing.
	Epoch uint64
	// Started is the end of the wait the attempt started, zero for none; Before is the end
	// of the key's wait before it (zero for none).
	Started, Before time.Time
}

// Store keeps the attempt counts behind sign-in throttling, per key (an account or
// a client address). An attempt is counted before its credential is checked, so Reserve
// must be atomic per key: of any number of concurrent Reserve calls on one key, exactly as
// many go ahead as would one after the other (the free ones and the one that starts the
// wait), and the others see the wait. Implementations must be safe for concurrent use; one
// that shares the counts between instances (a key-value store with compare-and-set) gives
// the limits across all of them. An error means nothing was counted (Reserve) or changed;
// the domain Service refuses a sign-in whose Reserve failed and ignores a failed Refund or Reset
// (the attempt stays counted, the safe side).
type Store interface {
	// Reserve counts one attempt on key at now under rule, unless the key is waiting: then
	// it counts nothing and answers the wait (and whether this is the wait's first
	// refusal). The count starts again from zero when the last counted attempt is older
	// than rule.ForgetAfter. When the new count exceeds rule.Free the key waits from now,
	// at once, for rule's delay of the attempts beyond Free (a wait is never shortened by a
	// later attempt); the attempt that starts a wait still goes ahead.
	Reserve(ctx context.Context, key string, rule Rule, now time.Time) (Decision, error)
	// Refund gives back the attempt r counted on key (it was no failure: a right
	// credential, or none was checked): the count goes down by one and, when the key's wait
	// is still the one r started, the wait goes back to r.Before. It does nothing when the
	// key's count has started again since (r.Epoch) or the key is forgotten.
	Refund(ctx context.Context, key string, r Reservation) error
	// Reset forgets key's count and wait (a completed sign-in of the account).
	Reset(ctx context.Context, key string) error
	// Prune forgets the keys that are not waiting at now and whose last counted attempt is
	// older than the ForgetAfter they were counted under. A store whose entries expire by
	// themselves may do nothing.
	Prune(ctx context.Context, now time.Time) error
}

// shardCount splits the in-memory counts so that unrelated keys rarely share a mutex
// and a Prune holds each part only briefly.
const shardCount = 64

// memoryStore is the in-memory Store: a map per shard, each behind its own
// mutex, which guards map updates only (no credential is ever checked under it).
type memoryStore struct {
	seed   maphash.Seed
	epochs atomic.Uint64 // the last epoch given to a new count
	shards []shard
}

type shard struct {
	mu      sync.Mutex
	entries map[string]*entry
	_       [40]byte // keep neighbouring shards' mutexes off one cache line
}

type entry struct {
	epoch       uint64
	count       int       // attempts counted and not refunded
	lockedUntil time.Time // the key waits until then
	last        time.Time // the last counted attempt
	forgetAt    time.Time // last + the rule's ForgetAfter
	recorded    time.Time // lockedUntil of the wait whose first refusal was answered
}

var _ Store = (*memoryStore)(nil)

// NewMemoryStore returns an in-memory Store: per process, safe for
// concurrent use, never failing. Keys are spread over shards with their own mutex, so
// attempts on unrelated accounts do not wait for one another.
func NewMemoryStore() Store { return newMemoryStore(shardCount) }

func newMemoryStore(shards int) *memoryStore {
	m := &memoryStore{seed: maphash.MakeSeed(), shards: make([]shard, shards)}
	for i := range m.shards {
		m.shards[i].entries = map[string]*entry{}
	}
	return m
}

func (m *memoryStore) shard(key string) *shard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

// Reserve implements Store.
func (m *memoryStore) Reserve(_ context.Context, key string, rule Rule, now time.Time) (Decision, error) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[key]
	if e != nil && now.Before(e.lockedUntil) {
		first := !e.recorded.Equal(e.lockedUntil)
		e.recorded = e.lockedUntil
		return Decision{Wait: e.lockedUntil.Sub(now), First: first}, nil
	}
	if e == nil || now.Sub(e.last) > rule.ForgetAfter {
		e = &entry{epoch: m.epochs.Add(1)}
		sh.entries[key] = e
	}
	e.count++
	e.last, e.forgetAt = now, now.Add(rule.ForgetAfter)
	r := Reservation{Epoch: e.epoch}
	if over := e.count - rule.Free; over > 0 {
		if until := now.Add(rule.delay(over)); until.After(e.lockedUntil) {
			r.Started, r.Before = until, e.lockedUntil
			e.lockedUntil = until
		}
	}
	return Decision{Reservation: r}, nil
}

// Refund implements Store.
func (m *memoryStore) Refund(_ context.Context, key string, r Reservation) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[key]
	if e == nil || e.epoch != r.Epoch || e.count == 0 {
		return nil
	}
	e.count--
	if !r.Started.IsZero() && e.lockedUntil.Equal(r.Started) {
		e.lockedUntil = r.Before
	}
	return nil
}

// Reset implements Store.
func (m *memoryStore) Reset(_ context.Context, key string) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.entries, key)
	return nil
}

// Prune implements Store, one shard at a time.
func (m *memoryStore) Prune(_ context.Context, now time.Time) error {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, e := range sh.entries {
			if now.After(e.forgetAt) && !now.Before(e.lockedUntil) {
				delete(sh.entries, k)
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

// ErrUnavailable: a Store shared between instances (or another shared store of short-lived
// sign-in state, such as login tickets) cannot be reached. The sign-in is refused, never let
// through unthrottled; the HTTP layer answers 503.
var ErrUnavailable = errors.New("the shared sign-in state (NATS) is unavailable")

// Error: too many failed attempts for this account or client IP; the caller must wait
// RetryAfter (rounded up to whole seconds for a Retry-After header) before trying again.
type Error struct {
	RetryAfter time.Duration
}

// Error says how long to wait.
func (e *Error) Error() string {
	return fmt.Sprintf("too many attempts: retry after %s", e.RetryAfter)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1: the value of the
// HTTP Retry-After header.
func (e *Error) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
