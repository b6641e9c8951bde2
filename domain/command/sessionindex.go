package command

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/stripe"
)

// SessionIndex is the in-memory index of active sessions that answers whoami without
// reading the log: token hash -> session in O(1), plus session id -> session and account ->
// sessions. It is safe for concurrent use (a RWMutex: lookups share the read lock).
//
// Two feeds keep it current. The Service's commands update it synchronously after each
// append, so a session this instance signed out fails Lookup before the sign-out returns;
// and Apply takes envelopes from a projection of the whole log, for the sessions of other
// instances. Both go through the session aggregate's apply, and each entry remembers the
// stream version it reflects, so an envelope the index already saw (or an older one,
// delivered late by the projection) is ignored; an ended session leaves a tombstone so that
// a late SessionStarted cannot bring it back.
//
// The index is keyed by the SHA-256 of the token, so looking a token up needs no
// constant-time comparison: the map's timing can only depend on the hash of the presented
// token, and learning about a hash of the attacker's own guess reveals nothing about the
// hashes (let alone tokens) that exist, by SHA-256's preimage resistance.
//
// Every whoami notes a use (touch) under the read lock: an entry's latest use is an atomic
// beside its record, so that concurrent requests do not queue behind a write lock (on a
// busy machine a descheduled lock holder stalled them all). Records are replaced, never
// changed, under the write lock. The lock is striped (stripe.RWMutex): a whoami's read lock
// takes only the stripe of the core the request runs on, so that whoamis on two cores do not
// pass the lock's cache line back and forth; and a use is written only when it is
// accessGranularity newer than the one held, for the entry's own line (a touch that writes
// nothing takes no lock at all: touchEntry).
type SessionIndex struct {
	mu         stripe.RWMutex
	byHash     map[[32]byte]*indexEntry
	byID       map[string]*indexEntry
	byAccount  map[string]map[string]*indexEntry
	tombstones map[string]time.Time // ended session id -> when the tombstone may go
}

// accessGranularity is the precision of an entry's latest use: a use less than this after
// the one held is not written (the idle timeout is minutes). A session in use by concurrent
// requests on several cores would otherwise have its entry written on every request, and
// every other core's read of the entry miss.
const accessGranularity = time.Millisecond

// indexEntry is a session the index holds: its record (never changed once stored) and its
// latest use seen here (Unix nanoseconds; at least the record's LastAccessedAt).
type indexEntry struct {
	rec      *domain.SessionRecord
	accessed atomic.Int64
	// gone is set (under the write lock) when the index replaces or removes the entry; a
	// touch of a gone entry (touchEntry) finds the session again.
	gone atomic.Bool
	// encodings are what SessionMemo.KeepEncoding kept of this state of the session, one
	// for each value of Restricted.
	encodings [2]atomic.Pointer[[]byte]
}

func newIndexEntry(r *domain.SessionRecord) *indexEntry {
	e := &indexEntry{rec: r}
	if t := r.Session().LastAccessedAt; !t.IsZero() {
		e.accessed.Store(t.UnixNano())
	}
	return e
}

// session is the entry's session with its latest use.
func (e *indexEntry) session() domain.Session {
	sess := e.rec.Session()
	if n := e.accessed.Load(); n != 0 && n > sess.LastAccessedAt.UnixNano() {
		sess.LastAccessedAt = time.Unix(0, n).UTC()
	}
	return sess
}

// keepAccess makes at the entry's latest use when it is later than the one held by at
// least accessGranularity.
func (e *indexEntry) keepAccess(at time.Time) {
	n := at.UnixNano()
	for {
		cur := e.accessed.Load()
		if cur > n-int64(accessGranularity) || e.accessed.CompareAndSwap(cur, n) {
			return
		}
	}
}

// tombstoneGrace is how long after its absolute expiry (or its end, when that is unknown)
// an ended session's tombstone is kept; Prune drops older ones.
const tombstoneGrace = 48 * time.Hour

// newSessionIndex returns an empty index.
func newSessionIndex() *SessionIndex {
	return &SessionIndex{
		byHash:     map[[32]byte]*indexEntry{},
		byID:       map[string]*indexEntry{},
		byAccount:  map[string]map[string]*indexEntry{},
		tombstones: map[string]time.Time{},
	}
}

// Lookup returns the session whose token has this SHA-256 (see credential.HashSessionToken), as the
// index knows it; it does not check expiry (the Service's Whoami does).
func (x *SessionIndex) Lookup(tokenHash [32]byte) (domain.Session, bool) {
	e, sess := x.lookupEntry(tokenHash)
	return sess, e != nil
}

// lookupEntry is Lookup that also returns the entry (nil when the index does not hold the
// token), for touchEntry.
func (x *SessionIndex) lookupEntry(tokenHash [32]byte) (*indexEntry, domain.Session) {
	defer x.mu.RUnlock(x.mu.RLock())
	e := x.byHash[tokenHash]
	if e == nil {
		return nil, domain.Session{}
	}
	return e, e.session()
}

// Get returns the session with this id, if the index holds it.
func (x *SessionIndex) Get(sessionID string) (domain.Session, bool) {
	defer x.mu.RUnlock(x.mu.RLock())
	e := x.byID[sessionID]
	if e == nil {
		return domain.Session{}, false
	}
	return e.session(), true
}

// sessionsOf returns the account's sessions the index holds, oldest first.
func (x *SessionIndex) sessionsOf(accountID string) []domain.Session {
	stripe := x.mu.RLock()
	out := make([]domain.Session, 0, len(x.byAccount[accountID]))
	for _, e := range x.byAccount[accountID] {
		out = append(out, e.session())
	}
	x.mu.RUnlock(stripe)
	slices.SortFunc(out, func(a, b domain.Session) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Len returns the number of sessions held.
func (x *SessionIndex) Len() int {
	defer x.mu.RUnlock(x.mu.RLock())
	return len(x.byID)
}

// Apply feeds one envelope from the log. Envelopes of other streams, and of other event
// types, are ignored (a projection may feed the whole log); so are envelopes the index has
// already reflected. Only an undecodable session event gives an error.
func (x *SessionIndex) Apply(env domain.Envelope) error {
	id, ok := strings.CutPrefix(env.StreamID, domain.StreamPrefixSession)
	if !ok {
		return nil
	}
	switch env.Type {
	case domain.EventSessionStarted, domain.EventSessionAccessed, domain.EventReauthSucceeded, domain.EventSessionSignedOut, domain.EventSessionExpired:
	default:
		return nil
	}
	e, err := domain.DecodeEvent(env)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, dead := x.tombstones[id]; dead {
		return nil
	}
	cur := x.byID[id]
	if cur != nil && env.Version <= cur.rec.Version() {
		return nil
	}
	var base *domain.SessionRecord
	switch {
	case cur != nil:
		base = cur.rec
	case env.Type == domain.EventSessionStarted:
		base = domain.NewSessionRecord(id)
	case env.Type == domain.EventSessionSignedOut || env.Type == domain.EventSessionExpired:
		x.tombstones[id] = env.RecordedAt.Add(tombstoneGrace)
		return nil
	default:
		return nil // the start of this session never reached the index
	}
	next, err := domain.Next(base, []domain.Event{e}, env.Version)
	if err != nil {
		return err
	}
	if cur != nil {
		next.KeepAccess(cur.session().LastAccessedAt)
	} else {
		next.KeepAccess(base.Session().LastAccessedAt)
	}
	x.putLocked(next)
	return nil
}

// observe records the state of a session a command has just read or written: newer than the
// held entry replaces it (keeping the later local access time); ended removes it.
func (x *SessionIndex) observe(r *domain.SessionRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id := r.Session().ID
	if _, dead := x.tombstones[id]; dead {
		return
	}
	cur := x.byID[id]
	if cur != nil && r.Version() < cur.rec.Version() {
		return
	}
	next, _ := domain.Next(r, nil, r.Version()) // a copy: no event to apply
	if cur != nil {
		next.KeepAccess(cur.session().LastAccessedAt)
	}
	x.putLocked(next)
}

// putLocked stores r, or removes and tombstones it when it has ended. x.mu must be held.
func (x *SessionIndex) putLocked(r *domain.SessionRecord) {
	sess := r.Session()
	id := sess.ID
	if old := x.byID[id]; old != nil {
		old.gone.Store(true)
		oldAccount := old.rec.Session().AccountID
		delete(x.byHash, old.rec.TokenKey())
		delete(x.byID, id)
		if m := x.byAccount[oldAccount]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(x.byAccount, oldAccount)
			}
		}
	}
	if ended, _ := r.EndState(); ended {
		x.tombstones[id] = sess.ExpiresAt.Add(tombstoneGrace)
		return
	}
	e := newIndexEntry(r)
	x.byHash[r.TokenKey()] = e
	x.byID[id] = e
	m := x.byAccount[sess.AccountID]
	if m == nil {
		m = map[string]*indexEntry{}
		x.byAccount[sess.AccountID] = m
	}
	m[id] = e
}

// touch notes a use of the session at at, in memory only. It returns the session, the time
// of its last recorded SessionAccessed and the entry's stream version, or false when the
// index does not hold it or it has expired at at (an expired session is not revived). It
// takes the read lock only: the write lock that replaces entries waits for it, so the use
// lands on the entry that is current, and concurrent touches meet at the atomic.
func (x *SessionIndex) touch(sessionID string, at time.Time) (domain.Session, time.Time, uint64, bool) {
	defer x.mu.RUnlock(x.mu.RLock())
	e := x.byID[sessionID]
	if e == nil {
		return domain.Session{}, time.Time{}, 0, false
	}
	sess := e.session()
	if sess.ExpiredReason(at) != "" {
		return domain.Session{}, time.Time{}, 0, false
	}
	e.keepAccess(at)
	if at.After(sess.LastAccessedAt) {
		sess.LastAccessedAt = at
	}
	return sess, e.rec.RecordedAccessAt(), e.rec.Version(), true
}

// touchEntry is touch for an entry lookupEntry returned, checked at at (not expired then):
// it returns false when the entry is gone (replaced or removed since), and the caller finds
// the session again. A use keepAccess would not write (within accessGranularity of the one
// held: most uses of a busy session) needs no lock, since nothing is written that a
// replacement could lose and the entry's record never changes; any other takes the read lock
// for the reason touch does.
func (x *SessionIndex) touchEntry(e *indexEntry, at time.Time) (time.Time, uint64, bool) {
	if e.accessed.Load() > at.UnixNano()-int64(accessGranularity) && !e.gone.Load() {
		return e.rec.RecordedAccessAt(), e.rec.Version(), true
	}
	defer x.mu.RUnlock(x.mu.RLock())
	if e.gone.Load() {
		return time.Time{}, 0, false
	}
	e.keepAccess(at)
	return e.rec.RecordedAccessAt(), e.rec.Version(), true
}

// expired returns the ids of held sessions that are past their lifetime or idle limit at
// now.
func (x *SessionIndex) expired(now time.Time) []string {
	defer x.mu.RUnlock(x.mu.RLock())
	var ids []string
	for id, e := range x.byID {
		if e.session().ExpiredReason(now) != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// prune drops tombstones that are past their time at now. The Service's Sweep calls it.
func (x *SessionIndex) prune(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, until := range x.tombstones {
		if now.After(until) {
			delete(x.tombstones, id)
		}
	}
}

// advance applies events a command of this instance appended to a session stream at
// version from (now at version to), if the index's entry is still at from; otherwise the
// projection feed will bring the entry up to date.
func (x *SessionIndex) advance(sessionID string, from uint64, events []domain.Event, to uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.byID[sessionID]
	if cur == nil || cur.rec.Version() != from {
		return
	}
	next, err := domain.Next(cur.rec, events, to)
	if err != nil {
		return
	}
	next.KeepAccess(cur.session().LastAccessedAt)
	x.putLocked(next)
}

// actingAs returns the sessions in which actorID acts for another account (a delegate's).
func (x *SessionIndex) actingAs(actorID string) []domain.Session {
	defer x.mu.RUnlock(x.mu.RLock())
	var out []domain.Session
	for _, e := range x.byID {
		if sess := e.session(); sess.ActorAccountID == actorID {
			out = append(out, sess)
		}
	}
	return out
}
