package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// Whoami returns the active session whose token this is, from the in-memory index (never
// the log). An unknown, signed-out or expired (lifetime or idle) token gives
// ErrSessionNotFound. The session comes with the organisations' 2FA policy applied (see
// effective: restricted when a policy requires a second factor it has not proved). It does
// not count as a use: call Touch for that.
func (s *Service) Whoami(ctx context.Context, token string) (domain.Session, error) {
	u, err := s.Use(ctx, token)
	return u.Session, err
}

// A SessionUse is a session Whoami found for a request, with what TouchUse needs to note
// that use without finding the session again: the index entry and the time of the check.
type SessionUse struct {
	Session domain.Session
	entry   *indexEntry
	at      time.Time
}

// Memo returns where an encoding of u.Session can be kept for the next Use of this state of
// the session (see SessionMemo).
func (u SessionUse) Memo() SessionMemo {
	return SessionMemo{entry: u.entry, restricted: u.Session.Restricted}
}

// A SessionMemo keeps one encoding of a session's state: the API's whoami answer, the hot
// path of relying applications, is then written without being built again. A state ends
// with each session event (a step-up, a recorded access, a sign-out: the index replaces
// its entry), and the two values of Restricted (the one field Use derives from outside the
// session, the organisations' 2FA policies) keep theirs apart. The zero SessionMemo keeps
// nothing.
type SessionMemo struct {
	entry      *indexEntry
	restricted bool
}

// Encoding returns the encoding kept for this state, or nil.
func (m SessionMemo) Encoding() []byte {
	if m.entry == nil {
		return nil
	}
	if p := m.entry.encodings[m.slot()].Load(); p != nil {
		return *p
	}
	return nil
}

// KeepEncoding keeps b for this state. b must be a function of the Session's fields other
// than LastAccessedAt (which a use changes within a state), and is never modified after.
func (m SessionMemo) KeepEncoding(b []byte) {
	if m.entry != nil {
		m.entry.encodings[m.slot()].Store(&b)
	}
}

func (m SessionMemo) slot() int {
	if m.restricted {
		return 1
	}
	return 0
}

// Use is Whoami for a request that may go on to use the session: TouchUse(u) notes the use
// once the request has passed its checks (a refused request is no use of the session), at
// the time the session was checked, without a second lookup or clock read (issue 16: the
// two were a tenth of the API's own CPU in whoami).
func (s *Service) Use(ctx context.Context, token string) (SessionUse, error) {
	if token == "" {
		return SessionUse{}, domain.ErrSessionNotFound
	}
	e, sess := s.index.lookupEntry(credential.HashSessionToken(token))
	if e == nil && s.cfg.CatchUp != nil {
		e, sess = s.lookupAfterCatchUp(ctx, token)
	}
	if e == nil {
		return SessionUse{}, domain.ErrSessionNotFound
	}
	now := s.now()
	if sess.ExpiredReason(now) != "" || !s.actingValid(sess, now) {
		return SessionUse{}, domain.ErrSessionNotFound
	}
	return SessionUse{Session: s.effective(sess), entry: e, at: now}, nil
}

// catchUpWait bounds Whoami's wait for the log feed on an unknown token.
const catchUpWait = time.Second

// lookupAfterCatchUp looks token up again once the indexes hold the log as it is now (at
// most catchUpWait): a session another instance started since this one last heard.
func (s *Service) lookupAfterCatchUp(ctx context.Context, token string) (*indexEntry, domain.Session) {
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	if s.cfg.CatchUp(ctx) != nil {
		return nil, domain.Session{}
	}
	return s.index.lookupEntry(credential.HashSessionToken(token))
}

// Touch notes a use of the session now: in memory on every call (the idle timeout counts
// from it), and as SessionAccessed at most once per Config.TouchInterval, appended with the
// session's expected version so that instances racing to record it write one event. It
// returns the position written (0 when nothing was) or ErrSessionNotFound.
func (s *Service) Touch(ctx context.Context, sessionID string) (uint64, error) {
	now := s.now()
	sess, recordedAt, version, ok := s.index.touch(sessionID, now)
	if !ok {
		return 0, domain.ErrSessionNotFound
	}
	return s.recordAccess(ctx, sess, recordedAt, version, now)
}

// TouchUse is Touch for the session of u, at the time Use checked it. When the index has
// replaced u's entry since (the session changed or ended meanwhile) it is Touch.
func (s *Service) TouchUse(ctx context.Context, u SessionUse) (uint64, error) {
	if u.entry == nil {
		return s.Touch(ctx, u.Session.ID)
	}
	recordedAt, version, ok := s.index.touchEntry(u.entry, u.at)
	if !ok {
		return s.Touch(ctx, u.Session.ID)
	}
	return s.recordAccess(ctx, u.Session, recordedAt, version, u.at)
}

// recordAccess appends SessionAccessed for a use of sess at now when the last one recorded
// (at recordedAt, the stream at version) is at least Config.TouchInterval old.
func (s *Service) recordAccess(ctx context.Context, sess domain.Session, recordedAt time.Time, version uint64, now time.Time) (uint64, error) {
	if now.Sub(recordedAt) < s.cfg.TouchInterval {
		return 0, nil
	}
	sessionID := sess.ID
	md := s.metadata(sess.AccountID, domain.Actor{Type: domain.ActorAccount, ID: sess.AccountID}, RequestMeta{ClientID: sess.ClientID})
	if sess.ActorAccountID != "" {
		md.Actor = domain.Actor{Type: domain.ActorDelegate, ID: sess.ActorAccountID}
	}
	events := []domain.Event{domain.SessionAccessed{At: now}}
	res, err := s.appendEvents(ctx, domain.SessionStream(sessionID), expect.Exact(version), events, md)
	if err == nil {
		s.index.advance(sessionID, version, events, res.NextVersion)
		return res.LastPosition, nil
	}
	if !errors.Is(err, expect.ErrWrongVersion) {
		return 0, err
	}
	// Someone else wrote to the session: decide again on the stream.
	res, _, err = s.updateSession(ctx, sessionID, func(*domain.SessionRecord) domain.Metadata { return md }, func(r *domain.SessionRecord) ([]domain.Event, error) {
		if ended, _ := r.EndState(); ended {
			return nil, domain.ErrSessionNotFound
		}
		return r.DecideAccess(s.now(), s.cfg.TouchInterval), nil
	})
	return res.LastPosition, err
}

// Logout signs the caller's own session out (reason logout). A restricted session may.
func (s *Service) Logout(ctx context.Context, caller domain.Session, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapSession)
	if err != nil {
		return 0, err
	}
	return s.signOut(ctx, cur.ID, cur.AccountID, reasons.SignOutLogout, s.callerMetadata(cur, rm))
}

// SignOut signs out one session of the caller's account (reason signed_out_by_user). A
// session of another account, or one that has ended, gives ErrSessionNotFound: a session
// can only be signed out by its own account. It fails whoami before SignOut returns. Ending
// the caller's own session needs CapSession, any other CapControl (a delegate may end only
// its acting session).
func (s *Service) SignOut(ctx context.Context, caller domain.Session, sessionID string, rm RequestMeta) (uint64, error) {
	need := domain.CapControl
	if sessionID == caller.ID {
		need = domain.CapSession
	}
	cur, err := s.authorize(caller, need)
	if err != nil {
		return 0, err
	}
	reason := reasons.SignOutByUser
	if sessionID == cur.ID {
		reason = reasons.SignOutLogout
	}
	return s.signOut(ctx, sessionID, cur.AccountID, reason, s.callerMetadata(cur, rm))
}

// SignOutResult tells how many sessions were signed out (by SignOutOthers, or by a
// ChangePassword that signed the other sessions out).
type SignOutResult struct {
	SignedOut int
	Position  uint64
}

// SignOutOthers signs out every other active session of the caller's account that the
// session index knows (reason signed_out_by_user). The index holds this instance's sessions
// and, when fed by the sessions projection, every instance's.
func (s *Service) SignOutOthers(ctx context.Context, caller domain.Session, rm RequestMeta) (SignOutResult, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return SignOutResult{}, err
	}
	n, pos, err := s.signOutAll(ctx, cur.AccountID, cur.ID, reasons.SignOutByUser, s.callerMetadata(cur, rm))
	return SignOutResult{SignedOut: n, Position: pos}, err
}

// AdminSignOut signs out any session (reason signed_out_by_admin). The HTTP layer has
// checked the role; rm.Actor names the admin.
func (s *Service) AdminSignOut(ctx context.Context, sessionID string, rm RequestMeta) (uint64, error) {
	return s.signOut(ctx, sessionID, "", reasons.SignOutByAdmin, s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
}

// AccountSessions returns the account's active sessions known to the index, oldest first.
func (s *Service) AccountSessions(accountID string) []domain.Session {
	now := s.now()
	var out []domain.Session
	for _, sess := range s.index.sessionsOf(accountID) {
		if sess.ExpiredReason(now) == "" {
			out = append(out, sess)
		}
	}
	return out
}

// signOut ends session sessionID with reason; ownerID, when set, must own it.
func (s *Service) signOut(ctx context.Context, sessionID, ownerID, reason string, md domain.Metadata) (uint64, error) {
	res, _, err := s.updateSession(ctx, sessionID, func(r *domain.SessionRecord) domain.Metadata {
		m := md
		m.SubjectAccountID = r.Session().AccountID
		return m
	}, func(r *domain.SessionRecord) ([]domain.Event, error) {
		if ownerID != "" && r.Session().AccountID != ownerID {
			return nil, domain.ErrSessionNotFound
		}
		return r.DecideSignOut(reason, s.now())
	})
	if err != nil {
		return 0, err
	}
	return res.LastPosition, nil
}

// signOutAll ends every indexed session of accountID except keep.
func (s *Service) signOutAll(ctx context.Context, accountID, keep, reason string, md domain.Metadata) (int, uint64, error) {
	n, pos := 0, uint64(0)
	for _, sess := range s.index.sessionsOf(accountID) {
		if sess.ID == keep {
			continue
		}
		p, err := s.signOut(ctx, sess.ID, accountID, reason, md)
		if errors.Is(err, domain.ErrSessionNotFound) {
			continue // ended meanwhile
		}
		if err != nil {
			return n, pos, err
		}
		n++
		pos = max(pos, p)
	}
	return n, pos, nil
}

// SweepResult lists the sessions Sweep expired.
type SweepResult struct {
	Expired  []string // session ids
	Position uint64
}

// Sweep appends DelegationExpired for every indexed delegation past its time (signing its
// acting sessions out, reason delegation_ended), then SessionExpired (reason lifetime or
// idle) for every indexed session past its
// absolute lifetime or idle timeout at now, and removes them from the index; it also drops
// stale throttling state, expired login tickets and old index tombstones. Several
// instances may sweep at once: the expected version lets one of them write each expiry.
// The idle decision uses the later of the recorded and this instance's in-memory last use.
func (s *Service) Sweep(ctx context.Context, now time.Time) (SweepResult, error) {
	now = now.UTC()
	var out SweepResult
	var errs []error
	// Delegations first: their acting sessions end with reason delegation_ended.
	if pos, err := s.sweepDelegations(ctx, now); err != nil {
		errs = append(errs, err)
	} else {
		out.Position = pos
	}
	for _, id := range s.index.expired(now) {
		local, _ := s.index.Get(id)
		md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}}
		res, _, err := s.updateSession(ctx, id, func(r *domain.SessionRecord) domain.Metadata {
			m := md
			sess := r.Session()
			m.SubjectAccountID, m.ClientID = sess.AccountID, sess.ClientID
			return m
		}, func(r *domain.SessionRecord) ([]domain.Event, error) {
			r.KeepAccess(local.LastAccessedAt)
			return r.DecideExpire(now), nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if res.LastPosition != 0 {
			out.Expired = append(out.Expired, id)
			out.Position = max(out.Position, res.LastPosition)
		}
	}
	s.index.prune(now)
	if err := s.cfg.Throttle.Store.Prune(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("prune throttling: %w", err))
	}
	s.tickets.Prune(ctx, now)
	return out, errors.Join(errs...)
}

// SessionByID returns an active session from the index by its id (not its token), or
// ErrSessionNotFound.
func (s *Service) SessionByID(sessionID string) (domain.Session, error) {
	sess, ok := s.index.Get(sessionID)
	if !ok || sess.ExpiredReason(s.now()) != "" || !s.actingValid(sess, s.now()) {
		return domain.Session{}, domain.ErrSessionNotFound
	}
	return sess, nil
}
