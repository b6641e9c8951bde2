package domain

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain/reasons"
)

// Session is what a relying application learns about a session (API.md's whoami), and what
// the self-service commands take as the caller's identity. It is a value: later changes to
// the session do not show in a copy.
type Session struct {
	ID             string
	AccountID      string
	ActorAccountID string // a delegate acting for AccountID; empty otherwise
	DelegationID   string // the delegation an acting session uses; empty otherwise
	ClientID       string // empty when the sign-in named no client
	AAL            string // AAL1 or AAL2
	AMR            []string
	Restricted     bool // may only enroll a second factor (an organisation requires one)
	StartedAt      time.Time
	// AuthenticatedAt is the last time the user proved a credential in this session (sign-in
	// or re-authentication); step-up checks compare it with the window.
	AuthenticatedAt time.Time
	ExpiresAt       time.Time     // absolute end
	LastAccessedAt  time.Time     // last use known to this instance
	IdleTimeout     time.Duration // the session ends after this long without use
}

// IdleExpiresAt is when the session ends if it is not used again.
func (s Session) IdleExpiresAt() time.Time { return s.LastAccessedAt.Add(s.IdleTimeout) }

// ExpiredReason says why the session is over at now ("" while it is active).
func (s Session) ExpiredReason(now time.Time) string {
	switch {
	case !now.Before(s.ExpiresAt):
		return reasons.ExpiredLifetime
	case s.IdleTimeout > 0 && !now.Before(s.IdleExpiresAt()):
		return reasons.ExpiredIdle
	}
	return ""
}

func (s Session) clone() Session {
	s.AMR = slices.Clone(s.AMR)
	return s
}

// SessionRecord is the aggregate of a session-<id> stream. Its fields are unexported; it is
// built only by Rebuild.
type SessionRecord struct {
	sess             Session
	tokenHash        string
	version          uint64
	ended            bool
	endReason        string
	recordedAccessAt time.Time // At of the last SessionAccessed (or the start)
}

// rebuildSession rebuilds a session from its stream: events from
// version 1 on, in order, with SessionStarted among the first two. It returns ErrSessionNotFound
// for an empty stream and an error for a gap or an event that does not belong there.
func rebuildSession(sessionID string, events []Envelope) (*SessionRecord, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("session %s: %w", sessionID, ErrSessionNotFound)
	}
	r := &SessionRecord{sess: Session{ID: sessionID}}
	for _, env := range events {
		e, err := decodeNext("session", sessionID, r.version, env)
		if err != nil {
			return nil, err
		}
		if err := r.apply(e); err != nil {
			return nil, fmt.Errorf("session %s v%d: %w", sessionID, env.Version, err)
		}
		r.version = env.Version
	}
	if r.tokenHash == "" {
		return nil, fmt.Errorf("session %s: stream has no SessionStarted", sessionID)
	}
	return r, nil
}

var errNotSessionEvent = errors.New("event does not belong on a session stream")

func (r *SessionRecord) apply(e Event) error {
	switch e := e.(type) {
	case LoginSucceeded:
		// The sign-in record; the session's state comes from SessionStarted.
	case SessionStarted:
		r.sess = sessionFromStarted(e)
		r.tokenHash = e.TokenHash
		r.recordedAccessAt = e.StartedAt
	case SessionAccessed:
		if e.At.After(r.sess.LastAccessedAt) {
			r.sess.LastAccessedAt = e.At
		}
		r.recordedAccessAt = e.At
	case ReauthSucceeded:
		r.sess.AuthenticatedAt = e.At
		r.sess.AMR, r.sess.AAL = slices.Clone(e.AMR), e.AAL
		if e.AAL == AAL2 {
			r.sess.Restricted = false
		}
		if e.At.After(r.sess.LastAccessedAt) {
			r.sess.LastAccessedAt = e.At
		}
	case SessionSignedOut:
		r.ended, r.endReason = true, e.Reason
	case SessionExpired:
		r.ended, r.endReason = true, e.Reason
	default:
		return fmt.Errorf("%s: %w", e.eventType(), errNotSessionEvent)
	}
	return nil
}

func sessionFromStarted(e SessionStarted) Session {
	return Session{ID: e.SessionID, AccountID: e.AccountID, ActorAccountID: e.ActorAccountID, DelegationID: e.DelegationID, ClientID: e.ClientID,
		AAL: e.AAL, AMR: slices.Clone(e.AMR), Restricted: e.Restricted, StartedAt: e.StartedAt,
		AuthenticatedAt: e.StartedAt, ExpiresAt: e.ExpiresAt, LastAccessedAt: e.StartedAt,
		IdleTimeout: time.Duration(e.IdleTimeoutSeconds) * time.Second}
}

// session returns a copy of the session's state.
func (r *SessionRecord) Session() Session { return r.sess.clone() }

// Version returns the stream version the record was read at.
func (r *SessionRecord) Version() uint64 { return r.version }

// EndState reports whether the session was signed out or expired, and why.
func (r *SessionRecord) EndState() (bool, string) { return r.ended, r.endReason }

// TokenKey is the key of r in the session index: its token hash as bytes (the zero key
// when the record has none).
func (r *SessionRecord) TokenKey() [32]byte {
	var k [32]byte
	b, err := hex.DecodeString(r.tokenHash)
	if err == nil && len(b) == len(k) {
		copy(k[:], b)
	}
	return k
}

// RecordedAccessAt returns the At of the session's last SessionAccessed (or its start): the
// use the log knows of.
func (r *SessionRecord) RecordedAccessAt() time.Time { return r.recordedAccessAt }

// KeepAccess makes at the session's last use when it is later than the one held: a use
// this instance saw that the log does not record (yet) still counts for the idle timeout.
func (r *SessionRecord) KeepAccess(at time.Time) {
	if at.After(r.sess.LastAccessedAt) {
		r.sess.LastAccessedAt = at
	}
}

// DecideAccess records a use at now unless the last recorded one is less than interval ago.
func (r *SessionRecord) DecideAccess(now time.Time, interval time.Duration) []Event {
	if r.ended || now.Sub(r.recordedAccessAt) < interval || r.sess.ExpiredReason(now) != "" {
		return nil
	}
	return []Event{SessionAccessed{At: now}}
}

// DecideReauth renews authenticated_at with method (whose amr value is amr).
func (r *SessionRecord) DecideReauth(method, amr string, now time.Time) ([]Event, error) {
	if r.ended || r.sess.ExpiredReason(now) != "" {
		return nil, fmt.Errorf("session %s: %w", r.sess.ID, ErrSessionNotFound)
	}
	newAMR := r.sess.AMR
	if !slices.Contains(newAMR, amr) {
		newAMR = append(slices.Clone(newAMR), amr)
	}
	return []Event{ReauthSucceeded{Method: method, AMR: newAMR, AAL: aalOf(newAMR), At: now}}, nil
}

// DecideSignOut ends the session with reason; an ended session is ErrSessionNotFound.
func (r *SessionRecord) DecideSignOut(reason string, now time.Time) ([]Event, error) {
	if r.ended {
		return nil, fmt.Errorf("session %s: %w", r.sess.ID, ErrSessionNotFound)
	}
	return []Event{SessionSignedOut{Reason: reason, At: now}}, nil
}

// DecideExpire returns SessionExpired when the session is past its lifetime or idle limit at
// now and not ended yet.
func (r *SessionRecord) DecideExpire(now time.Time) []Event {
	if r.ended {
		return nil
	}
	if reason := r.sess.ExpiredReason(now); reason != "" {
		return []Event{SessionExpired{Reason: reason, At: now}}
	}
	return nil
}

// aalOf: aal2 as soon as a second factor (otp, backup code, passkey) is among the methods.
func aalOf(amr []string) string {
	for _, m := range amr {
		if m == AMROTP || m == AMRBackupCode || m == AMRPasskey {
			return AAL2
		}
	}
	return AAL1
}

// SessionStart is the input of DecideStartSession.
type SessionStart struct {
	SessionID, AccountID, ActorAccountID, ClientID string
	DelegationID                                   string
	TokenHash                                      string
	Method                                         string
	AMR                                            []string
	Restricted                                     bool
	Lifetime, IdleTimeout                          time.Duration
}

// DecideStartSession returns the first two events of a new session stream.
func DecideStartSession(in SessionStart, now time.Time) []Event {
	aal := aalOf(in.AMR)
	return []Event{
		LoginSucceeded{AccountID: in.AccountID, SessionID: in.SessionID, Method: in.Method, AMR: in.AMR, AAL: aal,
			ClientID: in.ClientID, At: now},
		SessionStarted{SessionID: in.SessionID, AccountID: in.AccountID, ActorAccountID: in.ActorAccountID, DelegationID: in.DelegationID,
			TokenHash: in.TokenHash, ClientID: in.ClientID, AMR: in.AMR, AAL: aal, Restricted: in.Restricted,
			StartedAt: now, ExpiresAt: now.Add(in.Lifetime), IdleTimeoutSeconds: int64(in.IdleTimeout / time.Second)},
	}
}
