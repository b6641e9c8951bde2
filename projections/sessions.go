package projections

import (
	"context"
	"database/sql"
	"encoding/json"

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
	pl := locate(ctx, p.GeoIP, ev.Metadata.IP)
	amr, _ := json.Marshal(nonNil(e.AMR))
	args := []any{id, ev.Position, e.AccountID, e.ActorAccountID, ag.OS, ag.Browser, ag.Device, ev.Metadata.IP}
	args = append(args, pl.args()...)
	args = append(args, clientID, cname, e.AAL, string(amr), e.Restricted,
		nanos(e.StartedAt), nanos(e.StartedAt), nanos(e.ExpiresAt), e.IdleTimeoutSeconds)
	return txExec(ctx, tx, `INSERT OR REPLACE INTO sessions (id, position, account_id, actor_account_id,
		os, browser, device, ip, `+placeColumns+`, client_id, client_name, aal, amr, restricted,
		started_at, last_accessed_at, expires_at, idle_timeout_seconds)
		VALUES (`+placeholders(len(args))+`)`, args...)
}

func (Sessions) accessed(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.SessionAccessed) error {
	return txExec(ctx, tx, `UPDATE sessions SET last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`,
		nanos(e.At), streamID(ev.StreamID, domain.StreamPrefixSession))
}

// reauthenticated moves last_accessed_at forward and takes the new assurance; a second
// factor lifts a restriction.
func (Sessions) reauthenticated(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.ReauthSucceeded) error {
	amr, _ := json.Marshal(nonNil(e.AMR))
	return txExec(ctx, tx, `UPDATE sessions SET aal = ?, amr = ?, restricted = restricted AND ? <> ?,
			last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`,
		e.AAL, string(amr), e.AAL, domain.AAL2, nanos(e.At), streamID(ev.StreamID, domain.StreamPrefixSession))
}

// ended removes a signed-out or expired session.
func (Sessions) ended(ctx context.Context, tx *sql.Tx, ev domain.Envelope, _ domain.Event) error {
	return txExec(ctx, tx, `DELETE FROM sessions WHERE id = ?`, streamID(ev.StreamID, domain.StreamPrefixSession))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
