package domain

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain/validate"
)

// MaxDelegationLifetime is the longest a delegation may last (API.md: at most 90 days).
const MaxDelegationLifetime = 90 * 24 * time.Hour

// Delegation is the aggregate of a delegation-<id> stream: the owner lets the delegate act
// for them until ExpiresAt, unless it was revoked or expired first. It is a value; it is
// built only by Rebuild.
type Delegation struct {
	ID                string
	OwnerAccountID    string
	DelegateAccountID string
	ExpiresAt         time.Time
	GrantedAt         time.Time
	// Ended is set once the delegation was revoked or expired; EndReason is the event type
	// that ended it (DelegationRevoked or DelegationExpired).
	Ended     bool
	EndReason string
	version   uint64
}

var errNotDelegationEvent = errors.New("event does not belong on a delegation stream")

// rebuildDelegation rebuilds a delegation from its stream: events
// from version 1 on, in order, starting with DelegationGranted. An empty stream is
// ErrNotFound.
func rebuildDelegation(id string, events []Envelope) (*Delegation, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("delegation %s: %w", id, ErrNotFound)
	}
	d := &Delegation{ID: id}
	for _, env := range events {
		if err := d.applyEnvelope(env); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Delegation) applyEnvelope(env Envelope) error {
	e, err := decodeNext("delegation", d.ID, d.version, env)
	if err != nil {
		return err
	}
	if _, ok := e.(DelegationGranted); ok != (d.version == 0) {
		return fmt.Errorf("delegation %s v%d: %s: %w", d.ID, env.Version, env.Type, errNotDelegationEvent)
	}
	if err := d.apply(e); err != nil {
		return fmt.Errorf("delegation %s v%d: %w", d.ID, env.Version, err)
	}
	d.version = env.Version
	return nil
}

func (d *Delegation) apply(e Event) error {
	switch e := e.(type) {
	case DelegationGranted:
		d.OwnerAccountID, d.DelegateAccountID, d.ExpiresAt, d.GrantedAt = e.OwnerAccountID, e.DelegateAccountID, e.ExpiresAt, e.At
	case DelegationRevoked:
		if !d.Ended {
			d.Ended, d.EndReason = true, EventDelegationRevoked
		}
	case DelegationExpired:
		if !d.Ended {
			d.Ended, d.EndReason = true, EventDelegationExpired
		}
	default:
		return fmt.Errorf("%s: %w", e.eventType(), errNotDelegationEvent)
	}
	return nil
}

// Version returns the stream version the delegation was read at.
func (d *Delegation) Version() uint64 { return d.version }

// ActiveAt reports whether the delegation may be used at now: not ended and before
// ExpiresAt.
func (d *Delegation) ActiveAt(now time.Time) bool { return !d.Ended && now.Before(d.ExpiresAt) }

// DecideGrantDelegation checks the grant and returns its event: the delegate is another
// account, expiresAt is after now and at most MaxDelegationLifetime ahead.
func DecideGrantDelegation(id, ownerID, delegateID string, expiresAt, now time.Time) ([]Event, error) {
	switch {
	case delegateID == ownerID:
		return nil, validate.Invalid("delegate_email", "must be another account's email")
	case expiresAt.IsZero():
		return nil, validate.Invalid("expires_at", "is required")
	case !expiresAt.After(now):
		return nil, validate.Invalid("expires_at", "must be in the future")
	case expiresAt.Sub(now) > MaxDelegationLifetime:
		return nil, validate.Invalid("expires_at", "must be at most 90 days ahead")
	}
	return []Event{DelegationGranted{DelegationID: id, OwnerAccountID: ownerID, DelegateAccountID: delegateID,
		ExpiresAt: expiresAt.UTC(), At: now}}, nil
}

// DecideRevoke ends the delegation; callerID must be its owner or its delegate (else
// ErrNotFound: its existence is not revealed). An ended one is ErrNotFound too.
func (d *Delegation) DecideRevoke(callerID string, now time.Time) ([]Event, error) {
	if callerID != d.OwnerAccountID && callerID != d.DelegateAccountID {
		return nil, fmt.Errorf("delegation %s: %w", d.ID, ErrNotFound)
	}
	if d.Ended {
		return nil, fmt.Errorf("delegation %s has ended: %w", d.ID, ErrNotFound)
	}
	return []Event{DelegationRevoked{DelegationID: d.ID, At: now}}, nil
}

// DecideExpire returns DelegationExpired when the delegation is past its time and not
// ended yet.
func (d *Delegation) DecideExpire(now time.Time) []Event {
	if d.Ended || now.Before(d.ExpiresAt) {
		return nil
	}
	return []Event{DelegationExpired{DelegationID: d.ID, At: now}}
}
