package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
)

// SessionsName is the name (and checkpoint key) of the Sessions projection.
const SessionsName = "sessions"

// Sessions is the table of active sessions behind GET /me/sessions and /audit/sessions: one
// row per session from SessionStarted until SessionSignedOut or SessionExpired removes it,
// with the operating system, browser and device parsed from the sign-in's user agent
// (ParseUserAgent), the sign-in's IP address and its location and network (looked up with
// GeoIP when the event is applied: a rebuild after the database was updated may place an
// old session differently), the client, and the times. SessionAccessed and ReauthSucceeded
// move last_accessed_at forward; a second factor shown by ReauthSucceeded lifts a
// restriction. It keeps its own table of client names, fed by ClientRegistered.
//
// A session past its expiry stays in the table until the sweeper writes SessionExpired: the
// projection takes time only from events.
type Sessions struct {
	// GeoIP locates the addresses; nil means no location (never an error).
	GeoIP *geoip.Resolver
}

var _ Projection = Sessions{}

// Name implements Projection.
func (Sessions) Name() string { return SessionsName }

// Schema implements Projection.
func (Sessions) Schema() []string {
	return []string{`CREATE TABLE IF NOT EXISTS sessions (
		id                   TEXT PRIMARY KEY,
		position             INTEGER NOT NULL, -- of SessionStarted: the list's order and cursor
		account_id           TEXT NOT NULL,
		actor_account_id     TEXT NOT NULL,    -- '' unless a delegate acts for account_id
		os                   TEXT NOT NULL,
		browser              TEXT NOT NULL,
		device               TEXT NOT NULL,
		ip                   TEXT NOT NULL,
		` + placeDDL + `,
		client_id            TEXT NOT NULL,
		client_name          TEXT NOT NULL,
		aal                  TEXT NOT NULL,
		amr                  TEXT NOT NULL,    -- JSON array
		restricted           INTEGER NOT NULL,
		started_at           INTEGER NOT NULL, -- Unix nanoseconds, UTC
		last_accessed_at     INTEGER NOT NULL,
		expires_at           INTEGER NOT NULL,
		idle_timeout_seconds INTEGER NOT NULL
	) WITHOUT ROWID`,
		`CREATE UNIQUE INDEX IF NOT EXISTS sessions_position ON sessions (position)`,
		`CREATE INDEX IF NOT EXISTS sessions_account ON sessions (account_id, position)`,
		clientSchema("sessions_clients"),
	}
}

// sessionsReducers is the Sessions projection's table.
var sessionsReducers = reducers[Sessions]{
	domain.EventSessionStarted:   on(Sessions.started),
	domain.EventSessionAccessed:  on(Sessions.accessed),
	domain.EventReauthSucceeded:  on(Sessions.reauthenticated),
	domain.EventSessionSignedOut: on(Sessions.ended),
	domain.EventSessionExpired:   on(Sessions.ended),
	domain.EventClientRegistered: clientRegistered[Sessions]("sessions_clients"),
	domain.EventAccountErased:    Sessions.forgetAccount,
}

// Apply implements Projection.
func (p Sessions) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	return sessionsReducers.apply(SessionsName, p, ctx, tx, ev)
}

// startedSession returns the id and client of a started session: the event's, else those of
// its stream and its request.
func startedSession(ev domain.Envelope, e domain.SessionStarted) (id, clientID string) {
	id, clientID = e.SessionID, e.ClientID
	if id == "" {
		id = streamID(ev.StreamID, domain.StreamPrefixSession)
	}
	if clientID == "" {
		clientID = ev.Metadata.ClientID
	}
	return id, clientID
}

// started adds the session's row, with its sign-in's agent, place and client.
func (p Sessions) started(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.SessionStarted) error {
	id, clientID := startedSession(ev, e)
	cname, err := clientName(ctx, tx, "sessions_clients", clientID)
	if err != nil {
		return err
	}
	ag := ParseUserAgent(ev.Metadata.UserAgent)
	amr, _ := json.Marshal(nonNil(e.AMR))
	row := &sessionRow{id: id, position: ev.Position, account: e.AccountID, actor: e.ActorAccountID,
		os: ag.OS, browser: ag.Browser, device: ag.Device, ip: ev.Metadata.IP, place: locate(ctx, p.GeoIP, ev.Metadata.IP),
		clientID: clientID, clientName: cname, aal: e.AAL, amr: string(amr), restricted: e.Restricted,
		started: nanos(e.StartedAt), lastAccessed: nanos(e.StartedAt), expires: nanos(e.ExpiresAt), idle: e.IdleTimeoutSeconds}
	if c := sessionChangeOf(ctx, tx, id); c != nil {
		*c = sessionChange{row: row}
		return nil
	}
	return writeSessionRows(ctx, tx, []*sessionRow{row})
}

func (Sessions) accessed(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.SessionAccessed) error {
	id, at := streamID(ev.StreamID, domain.StreamPrefixSession), nanos(e.At)
	if c := sessionChangeOf(ctx, tx, id); c != nil {
		c.access(at)
		return nil
	}
	return txExec(ctx, tx, `UPDATE sessions SET last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`, at, id)
}

// reauthenticated moves last_accessed_at forward and takes the new assurance; a second
// factor lifts a restriction.
func (Sessions) reauthenticated(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.ReauthSucceeded) error {
	amr, _ := json.Marshal(nonNil(e.AMR))
	id, at := streamID(ev.StreamID, domain.StreamPrefixSession), nanos(e.At)
	if c := sessionChangeOf(ctx, tx, id); c != nil {
		c.reauth(e.AAL, string(amr), at)
		return nil
	}
	return txExec(ctx, tx, `UPDATE sessions SET aal = ?, amr = ?, restricted = restricted AND ? <> ?,
			last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`,
		e.AAL, string(amr), e.AAL, domain.AAL2, at, id)
}

// ended removes a signed-out or expired session.
func (Sessions) ended(ctx context.Context, tx *sql.Tx, ev domain.Envelope, _ domain.Event) error {
	id := streamID(ev.StreamID, domain.StreamPrefixSession)
	if c := sessionChangeOf(ctx, tx, id); c != nil {
		*c = sessionChange{deleted: true}
		return nil
	}
	return txExec(ctx, tx, `DELETE FROM sessions WHERE id = ?`, id)
}

// Inside Applier.Apply the sessions projection changes its rows in memory, one change per
// session for the whole batch, and writes them at its end (writeBatch) with multi-row
// statements: a session started and ended in the batch is never written, and its many
// SessionAccessed are one write. An AccountErased writes the batch's changes first (its
// DELETE must see them).

// sessionRow is a session's row of the sessions table.
type sessionRow struct {
	id                                   string
	position                             uint64
	account, actor, os, browser, device  string
	ip                                   string
	place                                place
	clientID, clientName, aal, amr       string
	restricted                           bool
	started, lastAccessed, expires, idle int64
}

func (r *sessionRow) args() []any {
	args := []any{r.id, r.position, r.account, r.actor, r.os, r.browser, r.device, r.ip}
	args = append(args, r.place.args()...)
	return append(args, r.clientID, r.clientName, r.aal, r.amr, r.restricted, r.started, r.lastAccessed, r.expires, r.idle)
}

// sessionChange is what the batch did to one session: its whole row (started in the batch),
// its removal, or changes of a row written before the batch (accessed, re-authenticated).
type sessionChange struct {
	row     *sessionRow
	deleted bool
	// changes of a row written before the batch
	accessedAt int64 // the latest access (max with the row's); 0: none
	reauthed   bool  // re-authenticated: aal and amr are the last re-authentication's
	aal, amr   string
	lift       bool // a re-authentication with a second factor lifts a restriction
}

func (c *sessionChange) access(at int64) {
	switch {
	case c.deleted: // an update of no row
	case c.row != nil:
		c.row.lastAccessed = max(c.row.lastAccessed, at)
	default:
		c.accessedAt = max(c.accessedAt, at)
	}
}

func (c *sessionChange) reauth(aal, amr string, at int64) {
	switch {
	case c.deleted:
	case c.row != nil:
		c.row.aal, c.row.amr = aal, amr
		c.row.restricted = c.row.restricted && aal != domain.AAL2
		c.row.lastAccessed = max(c.row.lastAccessed, at)
	default:
		c.reauthed, c.aal, c.amr = true, aal, amr
		c.lift = c.lift || aal == domain.AAL2
		c.accessedAt = max(c.accessedAt, at)
	}
}

// sessionChangeOf returns the batch's change of session id, creating it; nil outside
// Applier.Apply (write at once).
func sessionChangeOf(ctx context.Context, tx *sql.Tx, id string) *sessionChange {
	if !inBatch(ctx, tx) {
		return nil
	}
	st := stateOf(ctx, tx)
	if st.sessions == nil {
		st.sessions = map[string]*sessionChange{}
	}
	c := st.sessions[id]
	if c == nil {
		c = &sessionChange{}
		st.sessions[id] = c
	}
	return c
}

// sessionsChunk is how many rows one statement of the sessions batch writes.
const sessionsChunk = 64

// writeBatch writes the batch's session changes: removals, rows, then changes of older rows.
func (Sessions) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	if len(st.sessions) == 0 || st.keep { // kept for a later batch (Applier.carry)
		return nil
	}
	ids := slices.Sorted(maps.Keys(st.sessions)) // in key order: neighbouring rows land in the same pages
	var deleted []any
	var rows []*sessionRow
	var accessed, reauthed []any
	for _, id := range ids {
		switch c := st.sessions[id]; {
		case c.deleted:
			deleted = append(deleted, id)
		case c.row != nil:
			rows = append(rows, c.row)
		case c.reauthed:
			reauthed = append(reauthed, id, c.aal, c.amr, c.lift, c.accessedAt)
		case c.accessedAt != 0:
			accessed = append(accessed, id, c.accessedAt)
		}
	}
	st.sessions = nil
	for len(deleted) > 0 {
		n := min(len(deleted), sessionsChunk)
		if err := txExec(ctx, tx, `DELETE FROM sessions WHERE id IN (`+placeholders(n)+`)`, deleted[:n]...); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		deleted = deleted[n:]
	}
	if err := writeSessionRows(ctx, tx, rows); err != nil {
		return err
	}
	for len(accessed) > 0 {
		n := min(len(accessed)/2, sessionsChunk)
		err := txExec(ctx, tx, `UPDATE sessions SET last_accessed_at = max(sessions.last_accessed_at, v.column2)
			FROM (VALUES `+tuples(n, 2)+`) AS v WHERE sessions.id = v.column1`, accessed[:2*n]...)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		accessed = accessed[2*n:]
	}
	for len(reauthed) > 0 {
		n := min(len(reauthed)/5, sessionsChunk)
		err := txExec(ctx, tx, `UPDATE sessions SET aal = v.column2, amr = v.column3,
				restricted = sessions.restricted AND NOT v.column4,
				last_accessed_at = max(sessions.last_accessed_at, v.column5)
			FROM (VALUES `+tuples(n, 5)+`) AS v WHERE sessions.id = v.column1`, reauthed[:5*n]...)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		reauthed = reauthed[5*n:]
	}
	return nil
}

// writeSessionRows inserts (or replaces) whole session rows, sessionsChunk per statement.
func writeSessionRows(ctx context.Context, tx *sql.Tx, rows []*sessionRow) error {
	for len(rows) > 0 {
		n := min(len(rows), sessionsChunk)
		args := make([]any, 0, n*sessionRowColumns)
		for _, r := range rows[:n] {
			args = append(args, r.args()...)
		}
		err := txExec(ctx, tx, `INSERT OR REPLACE INTO sessions (id, position, account_id, actor_account_id,
			os, browser, device, ip, `+placeColumns+`, client_id, client_name, aal, amr, restricted,
			started_at, last_accessed_at, expires_at, idle_timeout_seconds)
			VALUES `+tuples(n, sessionRowColumns), args...)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// sessionRowColumns is the number of columns of the sessions table.
const sessionRowColumns = 26

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
