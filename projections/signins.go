package projections

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
)

// SignInsName is the name (and checkpoint key) of the SignIns projection.
const SignInsName = "signins"

// SignIns is each account's sign-in history, what the sign-in risk detector (package risk)
// compares a new sign-in with: one row for the registration (AccountRegistered) and one for
// every successful sign-in (LoginSucceeded) of the account's own (a delegate's acting
// session is someone else's device and place), with its time, its device (browser family
// and OS family from the request's user agent, "Firefox on Linux": see DeviceFamily) and
// where its address was when the event was applied (country, coordinates and the
// database's accuracy radius, from GeoIP). Rows are keyed by the event's global position,
// so that a query can ask for the history as it was before a given sign-in. The IP address
// itself is not kept. AccountErased drops the account's rows.
type SignIns struct {
	// GeoIP locates the addresses; nil means no location (never an error).
	GeoIP *geoip.Resolver
}

var _ Projection = SignIns{}

// Name implements Projection.
func (SignIns) Name() string { return SignInsName }

// Schema implements Projection.
func (SignIns) Schema() []string {
	return []string{`CREATE TABLE IF NOT EXISTS signin_history (
		position     INTEGER PRIMARY KEY, -- global position of the event
		id           TEXT NOT NULL,       -- event id
		account_id   TEXT NOT NULL,
		kind         TEXT NOT NULL,       -- registration | signin
		session_id   TEXT NOT NULL,       -- '' for the registration
		time         INTEGER NOT NULL,    -- Unix nanoseconds, UTC
		device       TEXT NOT NULL,       -- "Firefox on Linux"; '' when the user agent says nothing
		located      INTEGER NOT NULL,
		country      TEXT NOT NULL,
		country_code TEXT NOT NULL,
		city         TEXT NOT NULL,
		latitude     REAL NOT NULL,
		longitude    REAL NOT NULL,
		accuracy_km  INTEGER NOT NULL     -- 0 when the database gives none
	)`,
		// Ends in the rowid (position): an account's rows newest first, or before a position.
		`CREATE INDEX IF NOT EXISTS signin_history_account ON signin_history (account_id)`,
	}
}

// Kinds of signin_history rows.
const (
	signInKindRegistration = "registration"
	signInKindSignIn       = "signin"
)

// signInsReducers is the SignIns projection's table.
var signInsReducers = reducers[SignIns]{
	domain.EventAccountRegistered: on(SignIns.registered),
	domain.EventLoginSucceeded:    on(SignIns.signedIn),
	domain.EventAccountErased:     SignIns.forgetAccount,
}

// Apply implements Projection.
func (p SignIns) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	return signInsReducers.apply(SignInsName, p, ctx, tx, ev)
}

func (p SignIns) registered(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.AccountRegistered) error {
	id := e.AccountID
	if id == "" {
		id = streamID(ev.StreamID, domain.StreamPrefixAccount)
	}
	return p.record(ctx, tx, ev, id, signInKindRegistration, "")
}

func (p SignIns) signedIn(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.LoginSucceeded) error {
	if !OwnSignIn(ev, e) {
		return nil
	}
	return p.record(ctx, tx, ev, e.AccountID, signInKindSignIn, e.SessionID)
}

// OwnSignIn reports whether a LoginSucceeded is the account holder's own sign-in, the kind
// the sign-in history keeps and the risk detector judges: not a delegate's acting session
// (whose device and place are the delegate's).
func OwnSignIn(ev domain.Envelope, e domain.LoginSucceeded) bool {
	return e.AccountID != "" && e.Method != domain.MethodDelegation && ev.Metadata.Actor.Type != domain.ActorDelegate
}

func (p SignIns) record(ctx context.Context, tx *sql.Tx, ev domain.Envelope, accountID, kind, sessionID string) error {
	if accountID == "" {
		return nil
	}
	pl := locate(ctx, p.GeoIP, ev.Metadata.IP) // radius: the coordinates' accuracy (km, 0 unknown)
	row := []any{ev.Position, ev.ID, accountID, kind, sessionID, nanos(eventTimeOf(ctx, ev)), DeviceFamily(ev.Metadata.UserAgent),
		pl.located, pl.country, pl.countryCode, pl.city, pl.lat, pl.lon, pl.radius}
	if inBatch(ctx, tx) { // written at the batch's end (writeBatch)
		st := stateOf(ctx, tx)
		st.signIns = append(st.signIns, row)
		return nil
	}
	return writeSignIns(ctx, tx, [][]any{row})
}

// signInsChunk is how many rows one INSERT of the sign-in history writes.
const signInsChunk = 128

// writeSignIns inserts rows of the sign-in history, signInsChunk per statement.
func writeSignIns(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	for len(rows) > 0 {
		n := min(len(rows), signInsChunk)
		args := make([]any, 0, n*14)
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		err := txExec(ctx, tx, `INSERT OR REPLACE INTO signin_history (position, id, account_id, kind, session_id, time, device,
			located, country, country_code, city, latitude, longitude, accuracy_km) VALUES `+tuples(n, 14), args...)
		if err != nil {
			return fmt.Errorf("signins: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// writeBatch writes the rows the batch kept in memory.
func (SignIns) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	rows := st.signIns
	st.signIns = nil
	return writeSignIns(ctx, tx, rows)
}

// forgetAccount drops the account's sign-in history.
func (p SignIns) forgetAccount(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if inBatch(ctx, tx) {
		if err := p.writeBatch(ctx, tx); err != nil { // the batch's rows first
			return err
		}
	}
	return forget(ctx, tx, ev, `DELETE FROM signin_history WHERE account_id = @id`)
}

// DeviceFamily is the device of a user agent as the sign-in history and the risk signals
// name it: the browser's family (its name without the version) and the operating system's,
// "Firefox on Linux", "Mobile Safari on iOS", "curl"; "" when the string says neither.
// Versions are left out so that a browser's update is not a new device.
func DeviceFamily(userAgent string) string {
	a := ParseUserAgent(userAgent)
	browser := strings.TrimRightFunc(a.Browser, func(r rune) bool { return unicode.IsDigit(r) || r == '.' })
	browser = strings.TrimSpace(browser)
	os := a.OS
	switch {
	case browser != "" && os != "":
		return browser + " on " + os
	case browser != "":
		return browser
	default:
		return os
	}
}
