package command

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// The state of the in-memory indexes an instance fills from the log (sessions,
// organisations, delegations, service tokens), encoded so that a new instance can start from
// it instead of reading the whole log (README "Read-model snapshots"): MarshalStates encodes
// them as they are, RestoreStates puts them back, and the log feed goes on after the
// position the state was taken at.
//
// Restored state plus the events after that position equals a replay of the whole log: every
// index keeps, per stream, the stream version it reflects and ignores an envelope at or
// below it, so an event the state already holds (an instance's own commands update its
// indexes before the feed brings the same events) changes nothing when it comes again.
//
// The encoding is JSON with short keys, entries sorted by id (the same state always gives
// the same bytes), times as Unix nanoseconds in UTC. Token hashes only: the state never
// holds a session or service token. IndexStateFormat names it.

// IndexStateFormat is the version of the encoding of IndexState.State. A state of another
// format is refused by RestoreStates (ErrIndexStateFormat).
const IndexStateFormat = 1

// The names of the indexes in MarshalStates' result.
const (
	IndexSessions      = "sessions"
	IndexOrgs          = "orgs"
	IndexDelegations   = "delegations"
	IndexServiceTokens = "service_tokens"
)

// ErrIndexStateFormat: a state written in another IndexStateFormat, or without one of the
// indexes.
var ErrIndexStateFormat = errors.New("index state of another format")

// IndexState is the encoded state of one in-memory index.
type IndexState struct {
	Name   string // IndexSessions, IndexOrgs, IndexDelegations or IndexServiceTokens
	Format int    // IndexStateFormat of the writer
	State  []byte
}

// LogIndexes are the in-memory indexes the log feed fills: the Service's sessions,
// organisations and delegations, and the service tokens. Apply feeds all of them.
type LogIndexes struct {
	Sessions *SessionIndex
	Orgs     *OrgIndex
	Tokens   *ServiceTokenIndex
	dels     *delegationIndex
}

// NewLogIndexes returns empty indexes (to build their state from a log, away from a server).
func NewLogIndexes() *LogIndexes {
	return &LogIndexes{Sessions: newSessionIndex(), Orgs: NewOrgIndex(), Tokens: NewServiceTokenIndex(), dels: newDelegationIndex()}
}

// LogIndexes returns the service's indexes with tokens (the ServiceTokens' index): the ones
// its commands and the log feed update.
func (s *Service) LogIndexes(tokens *ServiceTokenIndex) *LogIndexes {
	return &LogIndexes{Sessions: s.index, Orgs: s.orgs, Tokens: tokens, dels: s.dels}
}

// Apply feeds one envelope of the log to every index.
func (x *LogIndexes) Apply(env domain.Envelope) error {
	return errors.Join(x.Sessions.Apply(env), x.Orgs.Apply(env), x.dels.apply(env), x.Tokens.Apply(env))
}

// PruneTombstones drops the session tombstones that are past their time at now, as the
// sweeper does on a server.
func (x *LogIndexes) PruneTombstones(now time.Time) { x.Sessions.prune(now) }

// MarshalStates encodes every index (each under its own lock: take the log position the
// state reflects before calling it).
func (x *LogIndexes) MarshalStates() ([]IndexState, error) {
	var out []IndexState
	for _, m := range []struct {
		name string
		f    func() ([]byte, error)
	}{
		{IndexSessions, x.Sessions.marshalState},
		{IndexOrgs, x.Orgs.marshalState},
		{IndexDelegations, x.dels.marshalState},
		{IndexServiceTokens, x.Tokens.marshalState},
	} {
		b, err := m.f()
		if err != nil {
			return nil, fmt.Errorf("index state of %s: %w", m.name, err)
		}
		out = append(out, IndexState{Name: m.name, Format: IndexStateFormat, State: b})
	}
	return out, nil
}

// RestoreStates puts states (MarshalStates' of another instance) into the indexes. Every
// index must be there in IndexStateFormat (else ErrIndexStateFormat); all are decoded before
// any index changes, so on an error the indexes are as they were. An entry the index already
// holds at the same or a newer stream version is kept.
func (x *LogIndexes) RestoreStates(states []IndexState) error {
	byName := map[string][]byte{}
	for _, s := range states {
		if s.Format != IndexStateFormat {
			return fmt.Errorf("%w: %s is format %d, this server reads %d", ErrIndexStateFormat, s.Name, s.Format, IndexStateFormat)
		}
		byName[s.Name] = s.State
	}
	for _, name := range []string{IndexSessions, IndexOrgs, IndexDelegations, IndexServiceTokens} {
		if _, ok := byName[name]; !ok {
			return fmt.Errorf("%w: no state for %s", ErrIndexStateFormat, name)
		}
	}
	sess, err := decodeSessions(byName[IndexSessions])
	if err != nil {
		return fmt.Errorf("index state of %s: %w", IndexSessions, err)
	}
	orgs, err := decodeOrgs(byName[IndexOrgs])
	if err != nil {
		return fmt.Errorf("index state of %s: %w", IndexOrgs, err)
	}
	dels, err := decodeDelegations(byName[IndexDelegations])
	if err != nil {
		return fmt.Errorf("index state of %s: %w", IndexDelegations, err)
	}
	toks, err := decodeTokens(byName[IndexServiceTokens])
	if err != nil {
		return fmt.Errorf("index state of %s: %w", IndexServiceTokens, err)
	}
	x.Sessions.restore(sess)
	for _, o := range orgs {
		x.Orgs.publish(o)
	}
	for _, d := range dels {
		x.dels.publish(d)
	}
	x.Tokens.restore(toks)
	return nil
}

// nanos encodes t as Unix nanoseconds (0 for the zero time).
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is nanos' inverse, in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// sessionsState is the encoded SessionIndex.
type sessionsState struct {
	Sessions   []sessionState   `json:"s"`
	Tombstones []tombstoneState `json:"t"`
}

// sessionState is one held session: what its record holds, and its latest use seen.
type sessionState struct {
	ID               string   `json:"id"`
	Version          uint64   `json:"v"`
	TokenHash        string   `json:"th"`
	AccountID        string   `json:"a"`
	ActorAccountID   string   `json:"aa,omitempty"`
	DelegationID     string   `json:"d,omitempty"`
	ClientID         string   `json:"c,omitempty"`
	AAL              string   `json:"aal"`
	AMR              []string `json:"amr"`
	Restricted       bool     `json:"r,omitempty"`
	StartedAt        int64    `json:"st"`
	AuthenticatedAt  int64    `json:"au"`
	ExpiresAt        int64    `json:"ex"`
	LastAccessedAt   int64    `json:"la"`
	RecordedAccessAt int64    `json:"ra"`
	IdleSeconds      int64    `json:"idle"`
}

type tombstoneState struct {
	ID    string `json:"id"`
	Until int64  `json:"u"`
}

func (x *SessionIndex) marshalState() ([]byte, error) {
	stripe := x.mu.RLock()
	st := sessionsState{Sessions: make([]sessionState, 0, len(x.byID)), Tombstones: make([]tombstoneState, 0, len(x.tombstones))}
	for id, e := range x.byID {
		sess, key := e.session(), e.rec.TokenKey()
		st.Sessions = append(st.Sessions, sessionState{
			ID: id, Version: e.rec.Version(), TokenHash: hex.EncodeToString(key[:]),
			AccountID: sess.AccountID, ActorAccountID: sess.ActorAccountID, DelegationID: sess.DelegationID,
			ClientID: sess.ClientID, AAL: sess.AAL, AMR: sess.AMR, Restricted: sess.Restricted,
			StartedAt: nanos(sess.StartedAt), AuthenticatedAt: nanos(sess.AuthenticatedAt),
			ExpiresAt: nanos(sess.ExpiresAt), LastAccessedAt: nanos(sess.LastAccessedAt),
			RecordedAccessAt: nanos(e.rec.RecordedAccessAt()), IdleSeconds: int64(sess.IdleTimeout / time.Second),
		})
	}
	for id, until := range x.tombstones {
		st.Tombstones = append(st.Tombstones, tombstoneState{ID: id, Until: nanos(until)})
	}
	x.mu.RUnlock(stripe)
	slices.SortFunc(st.Sessions, func(a, b sessionState) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Tombstones, func(a, b tombstoneState) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(st)
}

// decodedSessions is a decoded SessionIndex state: records and tombstones.
type decodedSessions struct {
	records    []*domain.SessionRecord
	tombstones map[string]time.Time
}

// decodeSessions rebuilds each session's record through the session aggregate: a
// SessionStarted with the session's current values, a ReauthSucceeded when it was
// authenticated again since, and a SessionAccessed at its last recorded use; then its
// latest use and its stream version. The record equals the one its stream's events give.
func decodeSessions(b []byte) (decodedSessions, error) {
	var st sessionsState
	if err := json.Unmarshal(b, &st); err != nil {
		return decodedSessions{}, err
	}
	out := decodedSessions{records: make([]*domain.SessionRecord, 0, len(st.Sessions)), tombstones: make(map[string]time.Time, len(st.Tombstones))}
	for _, s := range st.Sessions {
		if s.ID == "" || s.Version == 0 {
			return decodedSessions{}, fmt.Errorf("session %q at version %d", s.ID, s.Version)
		}
		started := fromNanos(s.StartedAt)
		events := []domain.Event{domain.SessionStarted{
			SessionID: s.ID, AccountID: s.AccountID, ActorAccountID: s.ActorAccountID, DelegationID: s.DelegationID,
			TokenHash: s.TokenHash, ClientID: s.ClientID, AMR: s.AMR, AAL: s.AAL, Restricted: s.Restricted,
			StartedAt: started, ExpiresAt: fromNanos(s.ExpiresAt), IdleTimeoutSeconds: s.IdleSeconds,
		}}
		if auth := fromNanos(s.AuthenticatedAt); !auth.Equal(started) {
			events = append(events, domain.ReauthSucceeded{AMR: s.AMR, AAL: s.AAL, At: auth})
		}
		events = append(events, domain.SessionAccessed{At: fromNanos(s.RecordedAccessAt)})
		r, err := domain.Next(domain.NewSessionRecord(s.ID), events, s.Version)
		if err != nil {
			return decodedSessions{}, fmt.Errorf("session %s: %w", s.ID, err)
		}
		r.KeepAccess(fromNanos(s.LastAccessedAt))
		out.records = append(out.records, r)
	}
	for _, t := range st.Tombstones {
		out.tombstones[t.ID] = fromNanos(t.Until)
	}
	return out, nil
}

// restore adds decoded sessions and tombstones (an entry held at a newer version, or a
// session held as ended, stays as it is).
func (x *SessionIndex) restore(d decodedSessions) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, until := range d.tombstones {
		if e := x.byID[id]; e != nil { // ended: out of the index, as putLocked does
			x.putLocked(endedCopy(e.rec))
		}
		if cur, ok := x.tombstones[id]; !ok || until.After(cur) {
			x.tombstones[id] = until
		}
	}
	for _, r := range d.records {
		id := r.Session().ID
		if _, dead := x.tombstones[id]; dead {
			continue
		}
		if cur := x.byID[id]; cur != nil && cur.rec.Version() >= r.Version() {
			continue
		}
		x.putLocked(r)
	}
}

// endedCopy returns r signed out (to remove it from the index by putLocked).
func endedCopy(r *domain.SessionRecord) *domain.SessionRecord {
	c, err := domain.Next(r, []domain.Event{domain.SessionSignedOut{}}, r.Version())
	if err != nil {
		return r
	}
	return c
}

// orgState is one organisation of the directory.
type orgState struct {
	ID       string      `json:"id"`
	Version  uint64      `json:"v"`
	Name     string      `json:"n"`
	Members  [][2]string `json:"m"` // account id, role; sorted by account
	Required bool        `json:"req,omitempty"`
	Managed  []string    `json:"mg,omitempty"` // in order of addition
}

func (x *OrgIndex) marshalState() ([]byte, error) {
	x.mu.RLock()
	out := make([]orgState, 0, len(x.orgs))
	for id, o := range x.orgs {
		st := orgState{ID: id, Version: o.Version(), Name: o.Name(), Required: o.TwoFactorRequired(), Managed: o.ManagedOrgs()}
		for _, a := range o.Members() {
			st.Members = append(st.Members, [2]string{a, o.Role(a)})
		}
		out = append(out, st)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b orgState) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(out)
}

// decodeOrgs rebuilds each organisation through its aggregate: created (with no owner: the
// members follow with their roles), its policy, the organisations it manages, its stream
// version. Only the creation time is not kept (nothing reads it from the directory).
func decodeOrgs(b []byte) ([]*domain.Org, error) {
	var sts []orgState
	if err := json.Unmarshal(b, &sts); err != nil {
		return nil, err
	}
	out := make([]*domain.Org, 0, len(sts))
	for _, st := range sts {
		if st.ID == "" || st.Version == 0 {
			return nil, fmt.Errorf("organisation %q at version %d", st.ID, st.Version)
		}
		events := []domain.Event{domain.OrgCreated{OrgID: st.ID, Name: st.Name}, domain.MemberRemoved{OrgID: st.ID}}
		for _, m := range st.Members {
			events = append(events, domain.MemberAdded{OrgID: st.ID, AccountID: m[0], Role: m[1]})
		}
		events = append(events, domain.TwoFactorRequirementChanged{OrgID: st.ID, Required: st.Required})
		for _, m := range st.Managed {
			events = append(events, domain.ManagedOrgAdded{OrgID: st.ID, ManagedOrgID: m})
		}
		o, err := domain.Next(domain.NewOrg(st.ID), events, st.Version)
		if err != nil {
			return nil, fmt.Errorf("organisation %s: %w", st.ID, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// delegationState is one delegation of the index.
type delegationState struct {
	domain.Delegation
	Version uint64 `json:"v"`
}

func (x *delegationIndex) marshalState() ([]byte, error) {
	x.mu.RLock()
	out := make([]delegationState, 0, len(x.byID))
	for _, d := range x.byID {
		out = append(out, delegationState{Delegation: *d, Version: d.Version()})
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b delegationState) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(out)
}

func decodeDelegations(b []byte) ([]*domain.Delegation, error) {
	var sts []delegationState
	if err := json.Unmarshal(b, &sts); err != nil {
		return nil, err
	}
	out := make([]*domain.Delegation, 0, len(sts))
	for _, st := range sts {
		if st.ID == "" || st.Version == 0 {
			return nil, fmt.Errorf("delegation %q at version %d", st.ID, st.Version)
		}
		d := st.Delegation
		for _, t := range []*time.Time{&d.ExpiresAt, &d.GrantedAt} {
			if !t.IsZero() {
				*t = t.UTC()
			}
		}
		c, err := domain.Next(&d, nil, st.Version)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// tokenState is one service token of the index: never the token, its SHA-256.
type tokenState struct {
	ID        string   `json:"id"`
	Version   uint64   `json:"v"`
	Hash      string   `json:"h"`
	Name      string   `json:"n"`
	Scopes    []string `json:"sc"`
	CreatedAt int64    `json:"ca"`
	CreatedBy string   `json:"cb,omitempty"`
	Revoked   bool     `json:"r,omitempty"`
	RevokedAt int64    `json:"ra,omitempty"`
}

func (x *ServiceTokenIndex) marshalState() ([]byte, error) {
	x.mu.RLock()
	out := make([]tokenState, 0, len(x.byID))
	for id, r := range x.byID {
		out = append(out, tokenState{ID: id, Version: r.version, Hash: hex.EncodeToString(r.hash[:]), Name: r.tok.Name,
			Scopes: r.tok.Scopes, CreatedAt: nanos(r.tok.CreatedAt), CreatedBy: r.tok.CreatedBy,
			Revoked: r.tok.Revoked, RevokedAt: nanos(r.tok.RevokedAt)})
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b tokenState) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(out)
}

func decodeTokens(b []byte) ([]*tokenRecord, error) {
	var sts []tokenState
	if err := json.Unmarshal(b, &sts); err != nil {
		return nil, err
	}
	out := make([]*tokenRecord, 0, len(sts))
	for _, st := range sts {
		raw, err := hex.DecodeString(st.Hash)
		if err != nil || len(raw) != 32 || st.ID == "" || st.Version == 0 {
			return nil, fmt.Errorf("service token %q: bad hash or version", st.ID)
		}
		r := &tokenRecord{tok: ServiceToken{ID: st.ID, Name: st.Name, Scopes: slices.Clone(st.Scopes),
			CreatedAt: fromNanos(st.CreatedAt), CreatedBy: st.CreatedBy, Revoked: st.Revoked,
			RevokedAt: fromNanos(st.RevokedAt)}, version: st.Version}
		copy(r.hash[:], raw)
		out = append(out, r)
	}
	return out, nil
}

// restore adds decoded tokens (one held at the same or a newer version stays).
func (x *ServiceTokenIndex) restore(recs []*tokenRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range recs {
		if cur := x.byID[r.tok.ID]; cur != nil {
			if cur.version >= r.version {
				continue
			}
			delete(x.byHash, cur.hash)
		}
		x.byID[r.tok.ID] = r
		x.byHash[r.hash] = r
	}
}
