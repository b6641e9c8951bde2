package sharedstate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/throttle"
)

// Tickets is the NATS ephemeral.TicketStore: a ticket's tries are counted with
// compare-and-set, so that all instances together allow the ticket its tries exactly.
type Tickets struct{ s *State }

var _ ephemeral.TicketStore = (*Tickets)(nil)

// Put implements ephemeral.TicketStore.
func (t *Tickets) Put(ctx context.Context, tk ephemeral.LoginTicket) error {
	b, err := json.Marshal(tk)
	if err != nil {
		return err
	}
	err = t.s.put(ctx, bucketTickets, t.s.key(bucketTickets, tk.ID), b, 0)
	if errors.Is(err, errConflict) {
		return errors.New("sharedstate: ticket id taken") // 256 random bits: never
	}
	return err
}

// Attempt implements ephemeral.TicketStore.
func (t *Tickets) Attempt(ctx context.Context, id string, now time.Time, maxTries int) (ephemeral.LoginTicket, error) {
	key := t.s.key(bucketTickets, id)
	for range casRetries {
		e, err := t.s.get(ctx, bucketTickets, key)
		if err != nil {
			return ephemeral.LoginTicket{}, err
		}
		if e.revision == 0 {
			return ephemeral.LoginTicket{}, ephemeral.ErrTicketInvalid
		}
		var tk ephemeral.LoginTicket
		if err := json.Unmarshal(e.value, &tk); err != nil {
			return ephemeral.LoginTicket{}, fmt.Errorf("sharedstate: ticket: %w", err)
		}
		if !now.Before(tk.ExpiresAt) || tk.Tries >= maxTries {
			_ = t.s.remove(ctx, bucketTickets, key, e.revision)
			return ephemeral.LoginTicket{}, ephemeral.ErrTicketInvalid
		}
		tk.Tries++
		b, err := json.Marshal(tk)
		if err != nil {
			return ephemeral.LoginTicket{}, err
		}
		switch err := t.s.put(ctx, bucketTickets, key, b, e.revision); {
		case err == nil:
			return tk, nil
		case !errors.Is(err, errConflict):
			return ephemeral.LoginTicket{}, err
		}
	}
	return ephemeral.LoginTicket{}, fmt.Errorf("%w: too much contention on one ticket", ErrUnavailable)
}

// Consume implements ephemeral.TicketStore. An unreachable NATS answers false (the ticket
// is not known to be spent by this call).
func (t *Tickets) Consume(ctx context.Context, id string) bool {
	key := t.s.key(bucketTickets, id)
	for range casRetries {
		e, err := t.s.get(ctx, bucketTickets, key)
		if err != nil || e.revision == 0 {
			return false
		}
		switch err := t.s.remove(ctx, bucketTickets, key, e.revision); {
		case err == nil:
			return true
		case !errors.Is(err, errConflict):
			return false
		}
	}
	return false
}

// Prune implements ephemeral.TicketStore: the bucket's TTL drops old tickets.
func (t *Tickets) Prune(context.Context, time.Time) {}

// Ceremonies is the NATS ephemeral.CeremonyStore: Take removes the entry with
// compare-and-set, so that of concurrent takes on any instances exactly one gets it.
type Ceremonies struct{ s *State }

var _ ephemeral.CeremonyStore = (*Ceremonies)(nil)

// Put implements ephemeral.CeremonyStore.
func (c *Ceremonies) Put(ctx context.Context, cer ephemeral.Ceremony, _ time.Time) error {
	b, err := json.Marshal(cer)
	if err != nil {
		return err
	}
	err = c.s.put(ctx, bucketCeremonies, c.s.key(bucketCeremonies, cer.ID), b, 0)
	switch {
	case errors.Is(err, errConflict):
		return errors.New("sharedstate: ceremony id taken")
	case errors.Is(err, errFull): // as MemoryCeremonyStore when full: wait for old ones to expire
		return &throttle.Error{RetryAfter: time.Minute}
	}
	return err
}

// Take implements ephemeral.CeremonyStore.
func (c *Ceremonies) Take(ctx context.Context, id string, now time.Time) (ephemeral.Ceremony, error) {
	key := c.s.key(bucketCeremonies, id)
	e, err := c.s.get(ctx, bucketCeremonies, key)
	if err != nil {
		return ephemeral.Ceremony{}, err
	}
	if e.revision == 0 {
		return ephemeral.Ceremony{}, ephemeral.ErrCeremonyInvalid
	}
	switch err := c.s.remove(ctx, bucketCeremonies, key, e.revision); {
	case errors.Is(err, errConflict):
		return ephemeral.Ceremony{}, ephemeral.ErrCeremonyInvalid // taken by another caller
	case err != nil:
		return ephemeral.Ceremony{}, err
	}
	var cer ephemeral.Ceremony
	if err := json.Unmarshal(e.value, &cer); err != nil {
		return ephemeral.Ceremony{}, fmt.Errorf("sharedstate: ceremony: %w", err)
	}
	if !now.Before(cer.ExpiresAt) {
		return ephemeral.Ceremony{}, ephemeral.ErrCeremonyInvalid
	}
	return cer, nil
}

// Prune implements ephemeral.CeremonyStore: the bucket's TTL drops old ceremonies.
func (c *Ceremonies) Prune(context.Context, time.Time) {}

// Throttle is the NATS throttle.Store: each key's count is one entry updated with
// compare-and-set on its revision, so that Reserve is atomic per key across all instances
// (of concurrent reservations exactly as many go ahead as would one after the other).
type Throttle struct{ s *State }

var _ throttle.Store = (*Throttle)(nil)

// counts is a throttling entry (times in Unix nanoseconds, 0 for none).
type counts struct {
	Epoch       uint64 `json:"e"`
	Count       int    `json:"c"`
	LockedUntil int64  `json:"u,omitempty"`
	Last        int64  `json:"l"`
	ForgetAt    int64  `json:"f"`
	Recorded    int64  `json:"r,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}

// read returns key's counts and revision (zero counts and 0 when absent).
func (t *Throttle) read(ctx context.Context, key string) (counts, uint64, error) {
	e, err := t.s.get(ctx, bucketThrottle, key)
	if err != nil || e.revision == 0 {
		return counts{}, 0, err
	}
	var c counts
	if err := json.Unmarshal(e.value, &c); err != nil {
		return counts{}, 0, fmt.Errorf("sharedstate: throttle entry: %w", err)
	}
	return c, e.revision, nil
}

func (t *Throttle) write(ctx context.Context, key string, c counts, rev uint64) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return t.s.put(ctx, bucketThrottle, key, b, rev)
}

// Reserve implements throttle.Store.
func (t *Throttle) Reserve(ctx context.Context, name string, rule throttle.Rule, now time.Time) (throttle.Decision, error) {
	key := t.s.key(bucketThrottle, name)
	for range casRetries {
		c, rev, err := t.read(ctx, key)
		if err != nil {
			return throttle.Decision{}, err
		}
		locked := fromNanos(c.LockedUntil)
		if rev != 0 && now.Before(locked) {
			if c.Recorded == c.LockedUntil {
				return throttle.Decision{Wait: locked.Sub(now)}, nil
			}
			c.Recorded = c.LockedUntil
			switch err := t.write(ctx, key, c, rev); {
			case err == nil:
				return throttle.Decision{Wait: locked.Sub(now), First: true}, nil
			case errors.Is(err, errConflict):
				continue
			default:
				return throttle.Decision{}, err
			}
		}
		if rev == 0 || now.Sub(fromNanos(c.Last)) > rule.ForgetAfter {
			c = counts{Epoch: newEpoch()}
			locked = time.Time{}
		}
		c.Count++
		c.Last, c.ForgetAt = now.UnixNano(), now.Add(rule.ForgetAfter).UnixNano()
		r := throttle.Reservation{Epoch: c.Epoch}
		if over := c.Count - rule.Free; over > 0 {
			if until := now.Add(delay(rule, over)); until.After(locked) {
				r.Started, r.Before = until, locked
				c.LockedUntil = until.UnixNano()
			}
		}
		switch err := t.write(ctx, key, c, rev); {
		case err == nil:
			return throttle.Decision{Reservation: r}, nil
		case !errors.Is(err, errConflict):
			return throttle.Decision{}, err
		}
	}
	return throttle.Decision{}, fmt.Errorf("%w: too much contention on one throttling key", ErrUnavailable)
}

// delay is throttle.Rule's wait after the over-th counted attempt beyond the free ones.
func delay(r throttle.Rule, over int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < over && d < r.MaxDelay; i++ {
		d *= 2
	}
	return min(d, r.MaxDelay)
}

// Refund implements throttle.Store.
func (t *Throttle) Refund(ctx context.Context, name string, r throttle.Reservation) error {
	key := t.s.key(bucketThrottle, name)
	for range casRetries {
		c, rev, err := t.read(ctx, key)
		if err != nil {
			return err
		}
		if rev == 0 || c.Epoch != r.Epoch || c.Count == 0 {
			return nil
		}
		c.Count--
		if !r.Started.IsZero() && c.LockedUntil == r.Started.UnixNano() {
			c.LockedUntil = nanos(r.Before)
		}
		switch err := t.write(ctx, key, c, rev); {
		case err == nil:
			return nil
		case !errors.Is(err, errConflict):
			return err
		}
	}
	return fmt.Errorf("%w: too much contention on one throttling key", ErrUnavailable)
}

// Reset implements throttle.Store.
func (t *Throttle) Reset(ctx context.Context, name string) error {
	return t.s.remove(ctx, bucketThrottle, t.s.key(bucketThrottle, name), 0)
}

// Prune implements throttle.Store: the bucket's TTL (at least every rule's ForgetAfter)
// forgets the keys.
func (t *Throttle) Prune(context.Context, time.Time) error { return nil }
