package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/geoip"
)

// SignInRecord is one row of an account's sign-in history (the SignIns projection): its
// registration or one of its own successful sign-ins.
type SignInRecord struct {
	Position     uint64
	EventID      string
	AccountID    string
	Registration bool   // the registration, else a sign-in
	SessionID    string // "" for the registration
	Time         time.Time
	Device       string // DeviceFamily of the user agent, "" when unknown
	// Location is where the address was when the event was applied, with its accuracy
	// radius; nil when unknown.
	Location *geoip.Location
}

const signInColumns = `position, id, account_id, kind, session_id, time, device, located, country, country_code, city,
	latitude, longitude, accuracy_km`

func scanSignIn(sc interface{ Scan(...any) error }) (SignInRecord, error) {
	var (
		r       SignInRecord
		kind    string
		t       int64
		located bool
		l       geoip.Location
	)
	if err := sc.Scan(&r.Position, &r.EventID, &r.AccountID, &kind, &r.SessionID, &t, &r.Device, &located,
		&l.Country, &l.CountryCode, &l.City, &l.Latitude, &l.Longitude, &l.AccuracyRadiusKM); err != nil {
		return SignInRecord{}, err
	}
	r.Registration, r.Time = kind == signInKindRegistration, fromNanos(t)
	if located {
		r.Location = &l
	}
	return r, nil
}

// SignInAt returns the history row of the event at position; ok is false when the
// projection holds none (not applied yet, not a sign-in of the account's own, or erased).
func (db *DB) SignInAt(ctx context.Context, position uint64) (row SignInRecord, ok bool, err error) {
	return lookup(ctx, db, fmt.Sprintf("sign-in at %d", position),
		`SELECT `+signInColumns+` FROM signin_history WHERE position = ?`, []any{position}, scanSignIn)
}

// SignInHistory is an account's sign-in history as it stood before a given event.
type SignInHistory struct {
	// Devices are the devices of the registration and of the sign-ins since the window's
	// start, each once ("" is the device of a request whose user agent said nothing).
	Devices []string
	// Countries are the ISO codes of the located registration and sign-ins since the
	// window's start, each once.
	Countries []string
	// Previous is the newest located sign-in (of any age); nil when there is none.
	Previous *SignInRecord
}

// SignInHistory returns accountID's history before position (the rows of earlier events
// only): the devices and countries of its registration and of its sign-ins at or after
// since, and its newest located sign-in.
func (db *DB) SignInHistory(ctx context.Context, accountID string, before uint64, since time.Time) (SignInHistory, error) {
	var h SignInHistory
	window := `account_id = ? AND position < ? AND (kind = '` + signInKindRegistration + `' OR time >= ?)`
	args := []any{accountID, before, nanos(since)}
	var err error
	if h.Devices, err = db.strings(ctx, `SELECT DISTINCT device FROM signin_history WHERE `+window, args); err != nil {
		return h, err
	}
	if h.Countries, err = db.strings(ctx, `SELECT DISTINCT country_code FROM signin_history WHERE `+window+
		` AND located AND country_code != ''`, args); err != nil {
		return h, err
	}
	prev, ok, err := lookup(ctx, db, "previous sign-in of "+accountID, `SELECT `+signInColumns+` FROM signin_history
		WHERE account_id = ? AND position < ? AND kind = '`+signInKindSignIn+`' AND located ORDER BY position DESC LIMIT 1`,
		[]any{accountID, before}, scanSignIn)
	if err != nil {
		return h, err
	}
	if ok {
		h.Previous = &prev
	}
	return h, nil
}

// strings runs a query of one text column.
func (db *DB) strings(ctx context.Context, q string, args []any) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("projections: sign-in history: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("projections: sign-in history: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
