package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"
)

// AccountKey is the key of an account, by its normalised email (so that unknown emails
// throttle exactly like known ones).
func AccountKey(email string) string { return "email:" + email }

// TypedKey is the account key of an identifier that is no valid email: a digest, so that
// what was typed (perhaps a password) is kept nowhere, not even in a shared Store.
func TypedKey(typed string) string {
	sum := sha256.Sum256([]byte(typed))
	return "typed:" + hex.EncodeToString(sum[:16])
}

// IPKey is the key of a client address: an IPv6 address counts for its /64 (one customer's
// network; a host can take any address in it), an IPv4 or IPv4-mapped IPv6 address for
// itself. A string that is no address is used as it is.
func IPKey(ip string) string {
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

// Attempt is a sign-in attempt counted on its account key and, when there is one, its IP
// key, before the credential is checked. Exactly one of Failed, Succeeded or Settle's
// default (refund) ends it: Settle runs deferred.
type Attempt struct {
	store      Store
	key, ipKey string // "" for a key not counted
	res, ipRes Reservation
	outcome    int
}

const (
	attemptRefund    = iota // no credential was checked, or a right one short of a session
	attemptFailed           // a wrong credential: the counts stay
	attemptSucceeded        // a completed sign-in: the account's count is reset
)

// Failed keeps the attempt counted (a wrong credential).
func (a *Attempt) Failed() { a.outcome = attemptFailed }

// Succeeded ends the account's count and refunds the IP's reservation (a completed
// sign-in).
func (a *Attempt) Succeeded() { a.outcome = attemptSucceeded }

// Settle ends the attempt as Failed or Succeeded said, else refunds it. It is deferred by
// the commands that reserve; the store is told even when the request's context has ended.
// A nil Attempt does nothing.
func (a *Attempt) Settle(ctx context.Context) {
	if a == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	switch a.outcome {
	case attemptFailed:
		return
	case attemptSucceeded:
		if a.key != "" {
			_ = a.store.Reset(ctx, a.key)
		}
	default:
		if a.key != "" {
			_ = a.store.Refund(ctx, a.key, a.res)
		}
	}
	if a.ipKey != "" {
		_ = a.store.Refund(ctx, a.ipKey, a.ipRes)
	}
}

// Reserve counts an attempt on the account key (key, "" for none) and the IP key (ipKey,
// "" for none) at now, in c.Store (c filled). When either is waiting it refunds what it
// counted and answers the longer wait, and whether it is the first refusal of a wait on
// either key. A store error is returned wrapped (after refunding).
func (c *Config) Reserve(ctx context.Context, key, ipKey string, now time.Time) (*Attempt, Decision, error) {
	a := &Attempt{store: c.Store}
	if key != "" {
		d, err := c.Store.Reserve(ctx, key, c.AccountRule(), now)
		if err != nil {
			return nil, Decision{}, fmt.Errorf("throttle: %w", err)
		}
		if d.Wait > 0 {
			return nil, d, nil
		}
		a.key, a.res = key, d.Reservation
	}
	if ipKey != "" {
		d, err := c.Store.Reserve(ctx, ipKey, c.IPRule(), now)
		if err != nil || d.Wait > 0 {
			a.Settle(ctx) // gives back the account's reservation
		}
		if err != nil {
			return nil, Decision{}, fmt.Errorf("throttle: %w", err)
		}
		if d.Wait > 0 {
			return nil, d, nil
		}
		a.ipKey, a.ipRes = ipKey, d.Reservation
	}
	return a, Decision{}, nil
}
