package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
)

// ErrBadCursor is returned by the list queries for a cursor they did not issue (or issued
// by another list). The HTTP layer answers 400 invalid_request.
var ErrBadCursor = errors.New("projections: invalid cursor")

// Page sizes of the list queries: a limit of zero or less means DefaultLimit, above
// MaxLimit means MaxLimit (API.md: default 50, max 500).
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// encodeCursor makes the opaque cursor of a list (kind tells the lists apart) that resumes
// after the row at position pos.
func encodeCursor(kind string, pos uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatUint(pos, 10)))
}

// decodeCursor returns the position of a cursor of kind; "" gives 0 (the first page). Only
// the cursors encodeCursor makes are accepted.
func decodeCursor(kind, cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, ErrBadCursor
	}
	k, p, ok := strings.Cut(string(raw), ":")
	if !ok || k != kind {
		return 0, ErrBadCursor
	}
	pos, err := strconv.ParseUint(p, 10, 63)
	if err != nil || pos == 0 || encodeCursor(kind, pos) != cursor {
		// The last check refuses what the decoders let through but encodeCursor never
		// writes ("a:07", a newline, other trailing bits): one position, one cursor.
		return 0, ErrBadCursor
	}
	return pos, nil
}

// ClientRef names the application a session or an activity came from: API.md's
// `client:{id, name}`.
type ClientRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func clientRef(id, name string) *ClientRef {
	if id == "" {
		return nil
	}
	return &ClientRef{ID: id, Name: name}
}

// clientSchema is the DDL of a projection's own table of client names, fed by
// ClientRegistered (each projection keeps its own, so that each can be rebuilt alone).
func clientSchema(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
		client_id TEXT PRIMARY KEY,
		name      TEXT NOT NULL
	) WITHOUT ROWID`
}

func applyClientRegistered(ctx context.Context, tx *sql.Tx, table string, e domain.ClientRegistered) error {
	return txExec(ctx, tx, `INSERT INTO `+table+` (client_id, name) VALUES (?, ?)
		ON CONFLICT (client_id) DO UPDATE SET name = excluded.name`, e.ClientID, e.Name)
}

// clientName returns the name of a client: the built-in portal, or a registered one ("" when
// the id is empty or unknown).
func clientName(ctx context.Context, tx *sql.Tx, table, id string) (string, error) {
	switch id {
	case "":
		return "", nil
	case domain.PortalClientID:
		return domain.PortalClientName, nil
	}
	var name string
	err := txScan(ctx, tx, `SELECT name FROM `+table+` WHERE client_id = ?`, []any{id}, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

// place is where an IP address is, as stored in the sessions and activity rows.
type place struct {
	located                            bool
	city, region, country, countryCode string
	lat, lon                           float64
	asn                                uint
	asOrg                              string
}

// locate looks ip up (no lookup without an address or a resolver).
func locate(r *geoip.Resolver, ip string) place {
	if ip == "" {
		return place{}
	}
	res := r.LookupString(ip)
	p := place{asn: res.ASN, asOrg: res.ASOrg}
	if l := res.Location; l != nil {
		p.located = true
		p.city, p.region, p.country, p.countryCode = l.City, l.Region, l.Country, l.CountryCode
		p.lat, p.lon = l.Latitude, l.Longitude
	}
	return p
}

// placeColumns is the column list of a place, in the order of place.args and scanPlace.
const placeColumns = `located, city, region, country, country_code, latitude, longitude, asn, as_org`

const placeDDL = `located      INTEGER NOT NULL,
		city         TEXT NOT NULL,
		region       TEXT NOT NULL,
		country      TEXT NOT NULL,
		country_code TEXT NOT NULL,
		latitude     REAL NOT NULL,
		longitude    REAL NOT NULL,
		asn          INTEGER NOT NULL,
		as_org       TEXT NOT NULL`

func (p place) args() []any {
	return []any{p.located, p.city, p.region, p.country, p.countryCode, p.lat, p.lon, int64(p.asn), p.asOrg}
}

// scannedPlace receives the place columns of a row.
type scannedPlace struct {
	located                            bool
	city, region, country, countryCode string
	lat, lon                           float64
	asn                                int64
	asOrg                              string
}

func (s *scannedPlace) dest() []any {
	return []any{&s.located, &s.city, &s.region, &s.country, &s.countryCode, &s.lat, &s.lon, &s.asn, &s.asOrg}
}

func (s *scannedPlace) location() *geoip.Location {
	if !s.located {
		return nil
	}
	return &geoip.Location{City: s.city, Region: s.region, Country: s.country, CountryCode: s.countryCode,
		Latitude: s.lat, Longitude: s.lon}
}

// nanos stores a time as Unix nanoseconds, UTC; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// eventTime is the time of the decision an event records: its data's "at" (or
// "started_at"), else the store's RecordedAt.
func eventTime(ev domain.Envelope) time.Time {
	var t struct {
		At        time.Time `json:"at"`
		StartedAt time.Time `json:"started_at"`
	}
	if json.Unmarshal(ev.Data, &t) == nil {
		switch {
		case !t.At.IsZero():
			return t.At.UTC()
		case !t.StartedAt.IsZero():
			return t.StartedAt.UTC()
		}
	}
	return ev.RecordedAt.UTC()
}

// streamID returns the id part of a stream id with the given prefix ("" when it has
// another prefix).
func streamID(stream, prefix string) string {
	id, ok := strings.CutPrefix(stream, prefix)
	if !ok {
		return ""
	}
	return id
}

func decode(ev domain.Envelope) (domain.Event, error) {
	if e, ok := decoded.get(ev); ok {
		return e, nil
	}
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("%s at position %d: %w", ev.Type, ev.Position, err)
	}
	decoded.put(ev, e)
	return e, nil
}

// decoded remembers the last few events decoded, so that the projections applying one event
// after another (a replay applies every projection to an event before the next) decode it
// once. Decoded events are values that reducers only read.
var decoded decodeCache

type decodeCache struct {
	mu      sync.Mutex
	next    int
	entries [8]struct {
		id  string
		pos uint64
		ev  domain.Event
	}
}

func (c *decodeCache) get(env domain.Envelope) (domain.Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if e := &c.entries[i]; e.ev != nil && e.pos == env.Position && e.id == env.ID {
			return e.ev, true
		}
	}
	return nil, false
}

func (c *decodeCache) put(env domain.Envelope, ev domain.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[c.next]
	e.id, e.pos, e.ev = env.ID, env.Position, ev
	c.next = (c.next + 1) % len(c.entries)
}

// placeholders returns "?, ?, ..., ?" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// preparedCache keeps the statements prepared in the transactions being applied: SQLite
// compiles a statement on every Exec otherwise, which is most of the cost of a small write.
// Statements prepared in a transaction are closed by database/sql when it ends, so the
// cache forgets transactions in bulk once it holds more than a few.
var preparedCache = struct {
	sync.Mutex
	m map[*sql.Tx]*txState
}{m: map[*sql.Tx]*txState{}}

const preparedTxs = 16

// txState is what the reducers remember about one transaction: its prepared statements and
// the last activity row written in it (see keepTimeBounds).
type txState struct {
	stmts map[string]*sql.Stmt

	lastActivity    uint64 // position of the last activity row written in the transaction, 0: none
	lastActivityMax int64  // its time_max
	// recentActivity are the last activity rows written in the transaction, oldest first,
	// with their time_min as the table holds it (see keepTimeBounds).
	recentActivity []activityBound
}

// activityBound is an activity row's position and time_min.
type activityBound struct {
	pos  uint64
	tmin int64
}

// stateOf returns the state of tx, creating it.
func stateOf(tx *sql.Tx) *txState {
	preparedCache.Lock()
	defer preparedCache.Unlock()
	st := preparedCache.m[tx]
	if st == nil {
		if len(preparedCache.m) >= preparedTxs {
			clear(preparedCache.m)
		}
		st = &txState{stmts: map[string]*sql.Stmt{}}
		preparedCache.m[tx] = st
	}
	return st
}

// prepared returns query prepared in tx, preparing it on first use. A transaction is used by
// one goroutine at a time (the batch that owns it), so its state needs no lock of its own.
func prepared(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	ts := stateOf(tx)
	if st := ts.stmts[query]; st != nil {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ts.stmts[query] = st
	return st, nil
}

// txExec is tx.ExecContext with the statement prepared once per transaction.
func txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	st, err := prepared(ctx, tx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

// txScan runs a one-row query with the statement prepared once per transaction and scans
// it into dest; no row is sql.ErrNoRows.
func txScan(ctx context.Context, tx *sql.Tx, query string, args []any, dest ...any) error {
	st, err := prepared(ctx, tx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// page runs a newest-first keyset query q (its WHERE already holds the cursor's bound) with
// LIMIT limit+1, scans the rows, and returns at most limit of them with the cursor of the next
// page (kind-tagged, from the last row's position), or "" on the last page. name labels errors.
func page[T any](ctx context.Context, db *DB, name, kind, q string, args []any, limit int,
	scan func(interface{ Scan(...any) error }) (T, error), pos func(T) uint64) ([]T, string, error) {
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY position DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("projections: %s: %w", name, err)
	}
	defer rows.Close()
	var items []T
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("projections: %s: %w", name, err)
		}
		items = append(items, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("projections: %s: %w", name, err)
	}
	if len(items) > limit {
		items = items[:limit]
		return items, encodeCursor(kind, pos(items[limit-1])), nil
	}
	return items, "", nil
}
