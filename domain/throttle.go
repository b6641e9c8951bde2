package domain

import (
	"fmt"
	"sync"
	"time"
)

// ThrottleConfig configures sign-in throttling. Zero values take the defaults shown.
//
// Failures are counted in memory, per instance: behind a load balancer an attacker gets each
// instance's allowance. A successful sign-in resets the account's count; an IP's count is
// not reset by a success (an attacker's own account would otherwise wipe the count of the
// IP it stuffs credentials from) and is forgotten ForgetAfter its last failure.
type ThrottleConfig struct {
	// FreeFailures per account (keyed by the normalised email, so that unknown emails
	// throttle exactly like known ones and throttling reveals nothing); default 5.
	FreeFailures int
	// IPFreeFailures per client IP; default 20 (an office behind one NAT address shares it).
	IPFreeFailures int
	// BaseDelay is the wait after the first failure beyond the free ones; it doubles with
	// each further failure. Default 1s.
	BaseDelay time.Duration
	// MaxDelay caps the wait; default 15m.
	MaxDelay time.Duration
	// ForgetAfter: a key without a failure for this long is forgotten; default 1h.
	ForgetAfter time.Duration
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
	return nil
}

// throttler counts failures per key in memory. Its state is per instance: with several
// instances behind a load balancer an attacker gets each instance's allowance (bounded by
// the number of instances); a shared store would be the next step. Safe for concurrent use.
type throttler struct {
	cfg     ThrottleConfig
	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures    int
	lockedUntil time.Time
	lastFailure time.Time
	recorded    time.Time // lockedUntil of the window whose rejection was recorded
}

func newThrottler(cfg ThrottleConfig) *throttler {
	return &throttler{cfg: cfg, entries: map[string]*throttleEntry{}}
}

func accountThrottleKey(email string) string { return "email:" + email }
func ipThrottleKey(ip string) string         { return "ip:" + ip }

// check returns how long the key must wait at now (0: go ahead) and whether this is the
// first rejection of the current window (so that only it is recorded in the log).
func (t *throttler) check(key string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil || !now.Before(e.lockedUntil) {
		return 0, false
	}
	first := !e.recorded.Equal(e.lockedUntil)
	e.recorded = e.lockedUntil
	return e.lockedUntil.Sub(now), first
}

// fail counts a failure at now; beyond free failures the key waits BaseDelay, doubling per
// further failure up to MaxDelay.
func (t *throttler) fail(key string, free int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil || now.Sub(e.lastFailure) > t.cfg.ForgetAfter {
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.failures++
	e.lastFailure = now
	if over := e.failures - free; over > 0 {
		d := t.cfg.BaseDelay
		for i := 1; i < over && d < t.cfg.MaxDelay; i++ {
			d *= 2
		}
		d = min(d, t.cfg.MaxDelay)
		if until := now.Add(d); until.After(e.lockedUntil) {
			e.lockedUntil = until
		}
	}
}

// reset forgets the key's failures (a successful sign-in of the account).
func (t *throttler) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// prune forgets keys without a failure for ForgetAfter and not waiting any more.
func (t *throttler) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.entries {
		if now.Sub(e.lastFailure) > t.cfg.ForgetAfter && !now.Before(e.lockedUntil) {
			delete(t.entries, k)
		}
	}
}
