package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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

// Apply implements Projection.
func (p Sessions) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	switch ev.Type {
	case domain.EventSessionStarted, domain.EventSessionAccessed, domain.EventReauthSucceeded,
		domain.EventSessionSignedOut, domain.EventSessionExpired, domain.EventClientRegistered:
	default:
		return nil
	}
	e, err := decode(ev)
	if err != nil {
		return err
	}
	sid := streamID(ev.StreamID, domain.StreamPrefixSession)
	switch e := e.(type) {
	case domain.SessionStarted:
		err = p.started(ctx, tx, ev, e)
	case domain.SessionAccessed:
		err = txExec(ctx, tx, `UPDATE sessions SET last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`,
			nanos(e.At), sid)
	case domain.ReauthSucceeded:
		amr, _ := json.Marshal(nonNil(e.AMR))
		err = txExec(ctx, tx, `UPDATE sessions SET aal = ?, amr = ?, restricted = restricted AND ? <> ?,
			last_accessed_at = max(last_accessed_at, ?) WHERE id = ?`,
			e.AAL, string(amr), e.AAL, domain.AAL2, nanos(e.At), sid)
	case domain.SessionSignedOut, domain.SessionExpired:
		err = txExec(ctx, tx, `DELETE FROM sessions WHERE id = ?`, sid)
	case domain.ClientRegistered:
		err = applyClientRegistered(ctx, tx, "sessions_clients", e)
	}
	if err != nil {
		return fmt.Errorf("sessions: %s at position %d: %w", ev.Type, ev.Position, err)
	}
	return nil
}

func (p Sessions) started(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.SessionStarted) error {
	id := e.SessionID
	if id == "" {
		id = streamID(ev.StreamID, domain.StreamPrefixSession)
	}
	clientID := e.ClientID
	if clientID == "" {
		clientID = ev.Metadata.ClientID
	}
	cname, err := clientName(ctx, tx, "sessions_clients", clientID)
	if err != nil {
		return err
	}
	ag := ParseUserAgent(ev.Metadata.UserAgent)
	pl := locate(p.GeoIP, ev.Metadata.IP)
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SessionRow is one active session: API.md's /me/sessions item (with `current` left false
// for the caller to set) plus the account, the network and the session's assurance.
type SessionRow struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	// ActorAccountID is the delegate acting for AccountID; "" (absent) otherwise.
	ActorAccountID string `json:"actor_account_id,omitempty"`
	// Current is never set by the query: the handler marks the caller's own session.
	Current bool   `json:"current"`
	OS      string `json:"os"`
	Browser string `json:"browser"`
	Device  string `json:"device"`
	IP      string `json:"ip"`
	// Location is where IP was when the session started; nil (null) when unknown.
	Location *geoip.Location `json:"location"`
	ASN      uint            `json:"asn"`    // 0 when unknown
	ASOrg    string          `json:"as_org"` // "" when unknown
	// Client is the application signed in through; nil (null) when the sign-in named none.
	Client         *ClientRef `json:"client"`
	AAL            string     `json:"aal"`
	AMR            []string   `json:"amr"`
	Restricted     bool       `json:"restricted"`
	StartedAt      time.Time  `json:"started_at"`
	LastAccessedAt time.Time  `json:"last_accessed_at"` // as recorded (at most once a minute)
	ExpiresAt      time.Time  `json:"expires_at"`       // absolute end
	// IdleExpiresAt is when the session ends unless it is used again (from the recorded last
	// access; the in-memory index of the instance that serves it may know a later one).
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// Position is the global position of SessionStarted: the list's order.
	Position uint64 `json:"-"`
}

const sessionColumns = `id, position, account_id, actor_account_id, os, browser, device, ip, ` + placeColumns + `,
	client_id, client_name, aal, amr, restricted, started_at, last_accessed_at, expires_at, idle_timeout_seconds`

func scanSession(sc interface{ Scan(...any) error }) (SessionRow, error) {
	var (
		r                                SessionRow
		pl                               scannedPlace
		clientID, clientName, amr        string
		started, accessed, expires, idle int64
	)
	dest := []any{&r.ID, &r.Position, &r.AccountID, &r.ActorAccountID, &r.OS, &r.Browser, &r.Device, &r.IP}
	dest = append(dest, pl.dest()...)
	dest = append(dest, &clientID, &clientName, &r.AAL, &amr, &r.Restricted, &started, &accessed, &expires, &idle)
	if err := sc.Scan(dest...); err != nil {
		return SessionRow{}, err
	}
	r.Location, r.ASN, r.ASOrg = pl.location(), uint(pl.asn), pl.asOrg
	r.Client = clientRef(clientID, clientName)
	if err := json.Unmarshal([]byte(amr), &r.AMR); err != nil {
		return SessionRow{}, fmt.Errorf("amr of session %s: %w", r.ID, err)
	}
	r.StartedAt, r.LastAccessedAt, r.ExpiresAt = fromNanos(started), fromNanos(accessed), fromNanos(expires)
	if idle > 0 {
		r.IdleExpiresAt = r.LastAccessedAt.Add(time.Duration(idle) * time.Second)
	}
	return r, nil
}

// ActiveSessions returns the active sessions of accountID ("" = every account), newest
// first (by the position of their SessionStarted), at most limit (see DefaultLimit and
// MaxLimit), after cursor ("" for the first page). next is the cursor of the following page,
// "" on the last one. A cursor this query did not issue gives ErrBadCursor. Safe for
// concurrent use; it sees the last committed batch.
func (db *DB) ActiveSessions(ctx context.Context, accountID string, limit int, cursor string) (items []SessionRow, next string, err error) {
	limit = clampLimit(limit)
	after, err := decodeCursor("s", cursor)
	if err != nil {
		return nil, "", err
	}
	var (
		where []string
		args  []any
	)
	if accountID != "" {
		where, args = append(where, "account_id = ?"), append(args, accountID)
	}
	if after != 0 {
		where, args = append(where, "position < ?"), append(args, after)
	}
	q := `SELECT ` + sessionColumns + ` FROM sessions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return page(ctx, db, "sessions", "s", q, args, limit, scanSession, func(r SessionRow) uint64 { return r.Position })
}

// Session returns one active session; ok is false when the table does not hold it (unknown,
// signed out or expired).
func (db *DB) Session(ctx context.Context, sessionID string) (row SessionRow, ok bool, err error) {
	row, err = scanSession(db.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, sessionID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return SessionRow{}, false, nil
	case err != nil:
		return SessionRow{}, false, fmt.Errorf("projections: session %s: %w", sessionID, err)
	}
	return row, true, nil
}

// SessionOwner returns the account of an active session; ok is false when the table does
// not hold it (unknown, signed out or expired).
func (db *DB) SessionOwner(ctx context.Context, sessionID string) (accountID string, ok bool, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT account_id FROM sessions WHERE id = ?`, sessionID).Scan(&accountID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("projections: session %s: %w", sessionID, err)
	}
	return accountID, true, nil
}
