package domain

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ThrottleConfig configures sign-in throttling. Zero values take the defaults shown.
//
// An attempt is counted (reserved) before its password or code is checked, in one atomic
// step of the ThrottleStore, so that a burst of parallel attempts gets no more checks than
// the same attempts one after the other: FreeFailures checks, plus the one whose reservation
// starts the first wait. A success gives the reservation back: the account's count is reset
// (a completed sign-in), an IP's reservation is refunded but its count is not reset (an
// attacker's own account would otherwise wipe the count of the IP it stuffs credentials
// from). A key is forgotten ForgetAfter its last counted attempt.
type ThrottleConfig struct {
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
	// Store keeps the counts; default a new in-memory store (NewMemoryThrottleStore): per
	// instance, so behind a load balancer an attacker gets each instance's allowance.
	Store ThrottleStore
}

func (c *ThrottleConfig) fill() error {
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
		c.Store = NewMemoryThrottleStore()
	}
	return nil
}

func (c *ThrottleConfig) accountRule() ThrottleRule {
	return ThrottleRule{Free: c.FreeFailures, BaseDelay: c.BaseDelay, MaxDelay: c.MaxDelay, ForgetAfter: c.ForgetAfter}
}

func (c *ThrottleConfig) ipRule() ThrottleRule {
	r := c.accountRule()
	r.Free = c.IPFreeFailures
	return r
}

// ThrottleRule is the limit a ThrottleStore applies to one key.
type ThrottleRule struct {
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
func (r ThrottleRule) delay(over int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < over && d < r.MaxDelay; i++ {
		d *= 2
	}
	return min(d, r.MaxDelay)
}

// ThrottleDecision is the answer of ThrottleStore.Reserve.
type ThrottleDecision struct {
	// Wait > 0: the key is waiting; nothing was counted and the attempt must be refused
	// without checking its credential. Wait == 0: the attempt was counted; check it.
	Wait time.Duration
	// First is true for the first refusal of a wait (only that one is recorded in the
	// log, so a flood cannot flood it).
	First bool
	// Reservation names the counted attempt (Wait == 0) for Refund.
	Reservation ThrottleReservation
}

// ThrottleReservation names one attempt counted by ThrottleStore.Reserve, so that Refund
// gives back exactly it.
type ThrottleReservation struct {
	// Epoch names the count the attempt joined (a store-defined number that changes when a
	// key's count starts again): a Refund after the key was reset or forgotten does nothing.
	Epoch uint64
	// Started is the end of the wait the attempt started, zero for none; Before is the end
	// of the key's wait before it (zero for none).
	Started, Before time.Time
}

// ThrottleStore keeps the attempt counts behind sign-in throttling, per key (an account or
// a client address). An attempt is counted before its credential is checked, so Reserve
// must be atomic per key: of any number of concurrent Reserve calls on one key, exactly as
// many go ahead as would one after the other (the free ones and the one that starts the
// wait), and the others see the wait. Implementations must be safe for concurrent use; one
// that shares the counts between instances (a key-value store with compare-and-set) gives
// the limits across all of them. An error means nothing was counted (Reserve) or changed;
// the Service refuses a sign-in whose Reserve failed and ignores a failed Refund or Reset
// (the attempt stays counted, the safe side).
type ThrottleStore interface {
	// Reserve counts one attempt on key at now under rule, unless the key is waiting: then
	// it counts nothing and answers the wait (and whether this is the wait's first
	// refusal). The count starts again from zero when the last counted attempt is older
	// than rule.ForgetAfter. When the new count exceeds rule.Free the key waits from now,
	// at once, for rule's delay of the attempts beyond Free (a wait is never shortened by a
	// later attempt); the attempt that starts a wait still goes ahead.
	Reserve(ctx context.Context, key string, rule ThrottleRule, now time.Time) (ThrottleDecision, error)
	// Refund gives back the attempt r counted on key (it was no failure: a right
	// credential, or none was checked): the count goes down by one and, when the key's wait
	// is still the one r started, the wait goes back to r.Before. It does nothing when the
	// key's count has started again since (r.Epoch) or the key is forgotten.
	Refund(ctx context.Context, key string, r ThrottleReservation) error
	// Reset forgets key's count and wait (a completed sign-in of the account).
	Reset(ctx context.Context, key string) error
	// Prune forgets the keys that are not waiting at now and whose last counted attempt is
	// older than the ForgetAfter they were counted under. A store whose entries expire by
	// themselves may do nothing.
	Prune(ctx context.Context, now time.Time) error
}

// throttleShards splits the in-memory counts so that unrelated keys rarely share a mutex
// and a Prune holds each part only briefly.
const throttleShards = 64

// memoryThrottle is the in-memory ThrottleStore: a map per shard, each behind its own
// mutex, which guards map updates only (no credential is ever checked under it).
type memoryThrottle struct {
	seed   maphash.Seed
	epochs atomic.Uint64 // the last epoch given to a new count
	shards []throttleShard
}

type throttleShard struct {
	mu      sync.Mutex
	entries map[string]*throttleEntry
	_       [40]byte // keep neighbouring shards' mutexes off one cache line
}

type throttleEntry struct {
	epoch       uint64
	count       int       // attempts counted and not refunded
	lockedUntil time.Time // the key waits until then
	last        time.Time // the last counted attempt
	forgetAt    time.Time // last + the rule's ForgetAfter
	recorded    time.Time // lockedUntil of the wait whose first refusal was answered
}

var _ ThrottleStore = (*memoryThrottle)(nil)

// NewMemoryThrottleStore returns an in-memory ThrottleStore: per process, safe for
// concurrent use, never failing. Keys are spread over shards with their own mutex, so
// attempts on unrelated accounts do not wait for one another.
func NewMemoryThrottleStore() ThrottleStore { return newMemoryThrottle(throttleShards) }

func newMemoryThrottle(shards int) *memoryThrottle {
	m := &memoryThrottle{seed: maphash.MakeSeed(), shards: make([]throttleShard, shards)}
	for i := range m.shards {
		m.shards[i].entries = map[string]*throttleEntry{}
	}
	return m
}

func (m *memoryThrottle) shard(key string) *throttleShard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

// Reserve implements ThrottleStore.
func (m *memoryThrottle) Reserve(_ context.Context, key string, rule ThrottleRule, now time.Time) (ThrottleDecision, error) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[key]
	if e != nil && now.Before(e.lockedUntil) {
		first := !e.recorded.Equal(e.lockedUntil)
		e.recorded = e.lockedUntil
		return ThrottleDecision{Wait: e.lockedUntil.Sub(now), First: first}, nil
	}
	if e == nil || now.Sub(e.last) > rule.ForgetAfter {
		e = &throttleEntry{epoch: m.epochs.Add(1)}
		sh.entries[key] = e
	}
	e.count++
	e.last, e.forgetAt = now, now.Add(rule.ForgetAfter)
	r := ThrottleReservation{Epoch: e.epoch}
	if over := e.count - rule.Free; over > 0 {
		if until := now.Add(rule.delay(over)); until.After(e.lockedUntil) {
			r.Started, r.Before = until, e.lockedUntil
			e.lockedUntil = until
		}
	}
	return ThrottleDecision{Reservation: r}, nil
}

// Refund implements ThrottleStore.
func (m *memoryThrottle) Refund(_ context.Context, key string, r ThrottleReservation) error {
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

// Reset implements ThrottleStore.
func (m *memoryThrottle) Reset(_ context.Context, key string) error {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.entries, key)
	return nil
}

// Prune implements ThrottleStore, one shard at a time.
func (m *memoryThrottle) Prune(_ context.Context, now time.Time) error {
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

func accountThrottleKey(email string) string { return "email:" + email }

// ipThrottleKey is the key of a client address: an IPv6 address counts for its /64 (one
// customer's network; a host can take any address in it), an IPv4 or IPv4-mapped IPv6
// address for itself. A string that is no address is used as it is.
func ipThrottleKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "ip:" + ip
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return "ip:" + addr.String()
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return "ip:" + addr.String()
	}
	return "ip:" + p.String()
}

// attempt is a sign-in attempt counted on its account key and, when there is one, its IP
// key, before the credential is checked. Exactly one of failed, succeeded or settle's
// default (refund) ends it: settle runs deferred.
type attempt struct {
	s          *Service
	key, ipKey string // "" for a key not counted
	res, ipRes ThrottleReservation
	outcome    int
}

const (
	attemptRefund    = iota // no credential was checked, or a right one short of a session
	attemptFailed           // a wrong credential: the counts stay
	attemptSucceeded        // a completed sign-in: the account's count is reset
)

// failed keeps the attempt counted (a wrong credential).
func (a *attempt) failed() { a.outcome = attemptFailed }

// succeeded ends the account's count and refunds the IP's reservation (a completed
// sign-in).
func (a *attempt) succeeded() { a.outcome = attemptSucceeded }

// settle ends the attempt as failed or succeeded said, else refunds it. It is deferred by
// the commands that reserve; the store is told even when the request's context has ended.
func (a *attempt) settle(ctx context.Context) {
	if a == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	th := a.s.cfg.Throttle
	switch a.outcome {
	case attemptFailed:
		return
	case attemptSucceeded:
		if a.key != "" {
			_ = th.Store.Reset(ctx, a.key)
		}
	default:
		if a.key != "" {
			_ = th.Store.Refund(ctx, a.key, a.res)
		}
	}
	if a.ipKey != "" {
		_ = th.Store.Refund(ctx, a.ipKey, a.ipRes)
	}
}

// reserve counts an attempt on the account key (key, "" for none) and the IP key (ipKey,
// "" for none) at now. When either is waiting it refunds what it counted and answers the
// longer wait, and whether it is the first refusal of a wait on either key. A store error
// is returned as it is (after refunding).
func (s *Service) reserve(ctx context.Context, key, ipKey string, now time.Time) (*attempt, ThrottleDecision, error) {
	th := s.cfg.Throttle
	a := &attempt{s: s}
	if key != "" {
		d, err := th.Store.Reserve(ctx, key, th.accountRule(), now)
		if err != nil {
			return nil, ThrottleDecision{}, fmt.Errorf("throttle: %w", err)
		}
		if d.Wait > 0 {
			return nil, d, nil
		}
		a.key, a.res = key, d.Reservation
	}
	if ipKey != "" {
		d, err := th.Store.Reserve(ctx, ipKey, th.ipRule(), now)
		if err != nil || d.Wait > 0 {
			a.settle(ctx) // gives back the account's reservation
		}
		if err != nil {
			return nil, ThrottleDecision{}, fmt.Errorf("throttle: %w", err)
		}
		if d.Wait > 0 {
			return nil, d, nil
		}
		a.ipKey, a.ipRes = ipKey, d.Reservation
	}
	return a, ThrottleDecision{}, nil
}
