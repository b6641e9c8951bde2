package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/geoip"
)

// ErrBadFilter is returned by Activity for a filter value it cannot use (an outcome other
// than "success" or "failure", From after To).
var ErrBadFilter = errors.New("projections: invalid filter")

// ActivityFilter selects activity rows. Empty fields do not filter; Types matches any of
// the listed event types; From and To bound the event's time, both inclusive (zero: no
// bound). Limit and Cursor page as in ActiveSessions.
type ActivityFilter struct {
	AccountID string
	// OrgID selects the activity of the organisation's current members (the Orgs
	// projection's org_members).
	OrgID       string
	IP          string
	CountryCode string // ISO 3166-1 alpha-2, any case
	Types       []string
	Outcome     string // "success", "failure" or "" for both
	From, To    time.Time
	Limit       int
	Cursor      string
}

// ActivityRow is one activity log entry: API.md's /me/activity item plus account_id,
// as_org and description.
type ActivityRow struct {
	ID        string    `json:"id"`       // event id
	Position  uint64    `json:"position"` // global position of the event
	AccountID string    `json:"account_id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Outcome   string    `json:"outcome"` // "success" | "failure"
	IP        string    `json:"ip"`      // "" when the event came from no request
	// Location is nil (null) when unknown.
	Location      *geoip.Location `json:"location"`
	ASN           uint            `json:"asn"`    // 0 when unknown
	ASOrg         string          `json:"as_org"` // "" when unknown
	AccessType    string          `json:"access_type"`
	AccessDetails string          `json:"access_details"`
	// Client is nil (null) when the event named none.
	Client *ClientRef `json:"client"`
	// ActorAccountID is nil (null) unless someone else (a delegate, an admin) acted.
	ActorAccountID *string         `json:"actor_account_id"`
	Details        json.RawMessage `json:"details"`
	Description    string          `json:"description"`
}

const activityColumns = `position, id, account_id, time, type, outcome, ip, ` + placeColumns + `,
	access_type, access_details, client_id, client_name, actor_account_id, details, description`

// Activity returns the activity rows that match f, newest first (by position), at most
// f.Limit (see DefaultLimit and MaxLimit), after f.Cursor. next is the cursor of the
// following page, "" on the last one. It returns ErrBadCursor or ErrBadFilter for values it
// cannot use. Safe for concurrent use; it sees the last committed batch.
func (db *DB) Activity(ctx context.Context, f ActivityFilter) (items []ActivityRow, next string, err error) {
	limit := clampLimit(f.Limit)
	after, err := decodeCursor("a", f.Cursor)
	if err != nil {
		return nil, "", err
	}
	var c conditions
	add := c.add
	if f.AccountID != "" {
		add("account_id = ?", f.AccountID)
	}
	if f.OrgID != "" {
		add("account_id IN (SELECT account_id FROM org_members WHERE org_id = ?)", f.OrgID)
	}
	if f.IP != "" {
		add("ip = ?", f.IP)
	}
	if f.CountryCode != "" {
		add("country_code = ?", strings.ToUpper(f.CountryCode))
	}
	if len(f.Types) > 0 {
		ts := make([]any, len(f.Types))
		for i, t := range f.Types {
			ts[i] = t
		}
		add("type IN ("+placeholders(len(ts))+")", ts...)
	}
	switch f.Outcome {
	case "":
	case "success", "failure":
		add("outcome = ?", f.Outcome)
	default:
		return nil, "", fmt.Errorf("%w: outcome %q", ErrBadFilter, f.Outcome)
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		return nil, "", fmt.Errorf("%w: from is after to", ErrBadFilter)
	}
	// A time window is also a position range (see time_max and time_min), found in the
	// same snapshot by two index lookups; no row in the window makes it NULL: no rows.
	if !f.From.IsZero() {
		add("time >= ?", nanos(f.From))
		add(`position >= (SELECT position FROM activity INDEXED BY activity_time_max WHERE time_max >= ?
			ORDER BY time_max, position LIMIT 1)`, nanos(f.From))
	}
	if !f.To.IsZero() {
		add("time <= ?", nanos(f.To))
		add(`position <= (SELECT position FROM activity INDEXED BY activity_time_min WHERE time_min <= ?
			ORDER BY time_min DESC, position DESC LIMIT 1)`, nanos(f.To))
	}
	if after != 0 {
		add("position < ?", after)
	}
	q := `SELECT ` + activityColumns + ` FROM activity ` + activityIndex(f)
	return page(ctx, db, "activity", "a", q, c, limit, scanActivity, func(r ActivityRow) uint64 { return r.Position })
}

// activityIndex chooses how a query reads the log, without statistics to guess from: by
// the index of its most selective equality, whose rows come in position order (a page reads
// about a page of rows, within the position range of a time window); else newest first along
// the positions (of the window), skipping the rows other filters refuse.
func activityIndex(f ActivityFilter) string {
	switch {
	case f.AccountID != "", f.OrgID != "":
		return `INDEXED BY activity_account`
	case f.IP != "":
		return `INDEXED BY activity_ip`
	case f.CountryCode != "":
		return `INDEXED BY activity_country`
	case len(f.Types) == 1:
		return `INDEXED BY activity_type`
	}
	return `NOT INDEXED`
}

func scanActivity(sc interface{ Scan(...any) error }) (ActivityRow, error) {
	var (
		r                           ActivityRow
		pl                          scannedPlace
		t                           int64
		clientID, clientName, actor string
		det                         string
	)
	dest := []any{&r.Position, &r.ID, &r.AccountID, &t, &r.Type, &r.Outcome, &r.IP}
	dest = append(dest, pl.dest()...)
	dest = append(dest, &r.AccessType, &r.AccessDetails, &clientID, &clientName, &actor, &det, &r.Description)
	if err := sc.Scan(dest...); err != nil {
		return ActivityRow{}, err
	}
	r.Time = fromNanos(t)
	r.Location, r.ASN, r.ASOrg = pl.location(), uint(pl.asn), pl.asOrg
	r.Client = clientRef(clientID, clientName)
	if actor != "" {
		r.ActorAccountID = &actor
	}
	r.Details = json.RawMessage(det)
	return r, nil
}

// ActivityEntry returns the entry of event id in accountID's activity log; ok is false
// when it has none (an unknown id, or another account's entry). It reads the account's
// rows by the account index: an account's log, not the whole table.
func (db *DB) ActivityEntry(ctx context.Context, accountID, id string) (row ActivityRow, ok bool, err error) {
	return lookup(ctx, db, "activity "+id, `SELECT `+activityColumns+` FROM activity INDEXED BY activity_account
		WHERE account_id = ? AND id = ?`, []any{accountID, id}, scanActivity)
}
