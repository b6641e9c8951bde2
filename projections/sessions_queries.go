package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/geoip"
)

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
	var c conditions
	if accountID != "" {
		c.add("account_id = ?", accountID)
	}
	if after != 0 {
		c.add("position < ?", after)
	}
	return page(ctx, db, "sessions", "s", `SELECT `+sessionColumns+` FROM sessions`, c, limit, scanSession, func(r SessionRow) uint64 { return r.Position })
}

// Session returns one active session; ok is false when the table does not hold it (unknown,
// signed out or expired).
func (db *DB) Session(ctx context.Context, sessionID string) (row SessionRow, ok bool, err error) {
	return lookup(ctx, db, "session "+sessionID, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, []any{sessionID}, scanSession)
}

// SessionOwner returns the account of an active session; ok is false when the table does
// not hold it (unknown, signed out or expired).
func (db *DB) SessionOwner(ctx context.Context, sessionID string) (accountID string, ok bool, err error) {
	return lookup(ctx, db, "session "+sessionID, `SELECT account_id FROM sessions WHERE id = ?`, []any{sessionID}, scanString)
}
