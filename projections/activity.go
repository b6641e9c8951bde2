package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
)

// ActivityName is the name (and checkpoint key) of the Activity projection.
const ActivityName = "activity"

// Activity is the activity log behind GET /me/activity, /orgs/{id}/activity and
// /audit/activity: one row per event a person cares about (see activityKinds), with its
// time, outcome, IP address, location and network (GeoIP at apply time), access type and
// details (from the user agent, see ParseUserAgent), client, who acted when it was someone
// else, the event's particulars and a one-line description. Failed sign-ins of unknown
// emails are rows without an account (account_id ""), visible to the audit query only.
//
// It keeps three helper tables of its own: client names (ClientRegistered), the active
// sessions' account, client and sign-in address (SessionStarted, so that a session's later
// events are attributed and an expiry shows where the session was), and second-factor
// device names (so that `Authenticator app "Phone" removed` can name it).
type Activity struct {
	// GeoIP locates the addresses; nil means no location (never an error).
	GeoIP *geoip.Resolver
}

var _ Projection = Activity{}

// Name implements Projection.
func (Activity) Name() string { return ActivityName }

// Schema implements Projection.
func (Activity) Schema() []string {
	return []string{`CREATE TABLE IF NOT EXISTS activity (
		position         INTEGER PRIMARY KEY, -- global position of the event
		id               TEXT NOT NULL,       -- event id
		account_id       TEXT NOT NULL,       -- subject; '' for unknown emails
		time             INTEGER NOT NULL,    -- Unix nanoseconds, UTC
		-- Times are nearly, not strictly, in position order. time_max is the latest time of
		-- the rows up to this one, time_min the earliest of the rows from this one on: both
		-- grow with the position, so a time window maps to a position range exactly.
		time_max         INTEGER NOT NULL,
		time_min         INTEGER NOT NULL,
		type             TEXT NOT NULL,
		outcome          TEXT NOT NULL,       -- success | failure
		ip               TEXT NOT NULL,
		` + placeDDL + `,
		access_type      TEXT NOT NULL,       -- browser | api
		access_details   TEXT NOT NULL,
		client_id        TEXT NOT NULL,
		client_name      TEXT NOT NULL,
		actor_account_id TEXT NOT NULL,       -- '' unless someone else acted
		details          TEXT NOT NULL,       -- JSON object
		description      TEXT NOT NULL
	)`,
		// Each index ends in the rowid (position), so an equality on its column also serves
		// ORDER BY position DESC; Activity picks one per filter (see activityIndex). The
		// outcome has two values: a scan of the newest rows finds a page faster.
		`CREATE INDEX IF NOT EXISTS activity_account ON activity (account_id)`,
		`CREATE INDEX IF NOT EXISTS activity_ip ON activity (ip)`,
		`CREATE INDEX IF NOT EXISTS activity_country ON activity (country_code)`,
		`CREATE INDEX IF NOT EXISTS activity_type ON activity (type)`,
		activityTimeMaxIndex,
		activityTimeMinIndex,
		clientSchema("activity_clients"),
		`CREATE TABLE IF NOT EXISTS activity_sessions (
			session_id       TEXT PRIMARY KEY,
			account_id       TEXT NOT NULL,
			actor_account_id TEXT NOT NULL,
			client_id        TEXT NOT NULL,
			ip               TEXT NOT NULL,
			user_agent       TEXT NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS activity_devices (
			account_id TEXT NOT NULL,
			device_id  TEXT NOT NULL, -- TOTP device or passkey id
			name       TEXT NOT NULL,
			PRIMARY KEY (account_id, device_id)
		) WITHOUT ROWID`,
		activityOrgsDDL,
	}
}

// The activity log's time bounds grow with the log's position (an event's time is that of
// its writing, give or take a clock), so a replay appends their index entries in order: kept
// up while the rows are inserted they cost the replay's two cores little, where built after
// it they cost its one-core tail about half a second on the 1M log (inOrderIndexed).
const (
	activityTimeMaxIndex = `CREATE INDEX IF NOT EXISTS activity_time_max ON activity (time_max)`
	activityTimeMinIndex = `CREATE INDEX IF NOT EXISTS activity_time_min ON activity (time_min)`
)

func (Activity) inOrderIndexes() []string {
	return []string{activityTimeMaxIndex, activityTimeMinIndex}
}

// activityEvent is one event being turned into an activity row.
type activityEvent struct {
	ctx     context.Context
	tx      *sql.Tx
	env     domain.Envelope
	event   domain.Event // nil for a type the domain registry does not know (yet)
	account string       // the subject account, "" when none
	session *sessionInfo // the session of a session-stream event, when known
}

// sessionInfo is what the activity log remembers of an active session.
type sessionInfo struct {
	accountID, actorAccountID, clientID, ip, userAgent string
}

// activityReducers is the activity log's table: a row for every type activityKinds
// describes (Activity.record), after which a session's end also forgets the session; and the
// two events that only feed the helper tables.
var activityReducers = func() reducers[Activity] {
	r := reducers[Activity]{
		domain.EventClientRegistered: clientRegistered[Activity]("activity_clients"),
		domain.EventSessionStarted:   on(Activity.sessionStarted),
		domain.EventAccountErased:    Activity.forgetAccount,
	}
	for typ, kind := range activityKinds {
		if r[typ] != nil {
			panic("projections: activity: " + typ + " both feeds a helper table and is described")
		}
		r[typ] = func(p Activity, ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
			return p.record(ctx, tx, ev, kind)
		}
	}
	for _, typ := range []string{domain.EventSessionSignedOut, domain.EventSessionExpired} {
		r[typ] = thenForgetSession(r[typ])
	}
	return r
}()

// Apply implements Projection.
func (p Activity) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	return activityReducers.apply(ActivityName, p, ctx, tx, ev)
}

// sessionStarted remembers the session's account, client and sign-in address, so that its
// later events are attributed and an expiry shows where the session was used from.
func (Activity) sessionStarted(ctx context.Context, tx *sql.Tx, ev domain.Envelope, s domain.SessionStarted) error {
	id, clientID := startedSession(ev, s)
	if inBatch(ctx, tx) {
		st := stateOf(ctx, tx)
		if st.activitySessions == nil {
			st.activitySessions = map[string]*sessionInfo{}
		}
		st.activitySessions[id] = &sessionInfo{accountID: s.AccountID, actorAccountID: s.ActorAccountID,
			clientID: clientID, ip: ev.Metadata.IP, userAgent: ev.Metadata.UserAgent}
		return nil
	}
	return txExec(ctx, tx, `INSERT OR REPLACE INTO activity_sessions
		(session_id, account_id, actor_account_id, client_id, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)`,
		id, s.AccountID, s.ActorAccountID, clientID, ev.Metadata.IP, ev.Metadata.UserAgent)
}

// thenForgetSession runs reduce, then drops the session of the event's stream from
// activity_sessions: its end is its last event the log shows.
func thenForgetSession(reduce reducer[Activity]) reducer[Activity] {
	return func(p Activity, ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
		if err := reduce(p, ctx, tx, ev); err != nil {
			return err
		}
		id := streamID(ev.StreamID, domain.StreamPrefixSession)
		if inBatch(ctx, tx) {
			st := stateOf(ctx, tx)
			if st.activitySessions == nil {
				st.activitySessions = map[string]*sessionInfo{}
			}
			st.activitySessions[id] = nil // removed
			return nil
		}
		return txExec(ctx, tx, `DELETE FROM activity_sessions WHERE session_id = ?`, id)
	}
}

// record writes the activity row of an event of a type activityKinds lists, described by
// kind: who it is about (see subject), the request it came from (see source), its place,
// access, client and time bounds.
func (p Activity) record(ctx context.Context, tx *sql.Tx, ev domain.Envelope, kind activityKind) error {
	in, err := readActivityEvent(ctx, tx, ev)
	if err != nil {
		return err
	}
	desc, det, err := kind.describe(in)
	if err != nil {
		return err
	}
	if det == nil {
		det = details{}
	}
	detJSON, err := marshalDetails(det)
	if err != nil {
		return err
	}
	ip, ua, clientID := in.source()
	cname, err := clientName(ctx, tx, "activity_clients", clientID)
	if err != nil {
		return err
	}
	outcome := "success"
	if kind.failure {
		outcome = "failure"
	}
	ag := ParseUserAgent(ua)
	pl := locate(ctx, p.GeoIP, ip)
	t := nanos(eventTimeOf(ctx, ev))
	timeMax, err := keepTimeBounds(ctx, tx, ev.Position, t)
	if err != nil {
		return err
	}
	args := make([]any, 0, activityRowColumns)
	args = append(args, ev.Position, ev.ID, in.account, t, timeMax, t, ev.Type, outcome, ip)
	args = append(args, pl.args()...)
	args = append(args, ag.AccessType(), ag.Details, clientID, cname, actorAccount(ev.Metadata, in.account), string(detJSON), desc)
	if inBatch(ctx, tx) {
		st := stateOf(ctx, tx)
		st.activityRows = append(st.activityRows, activityRow{pos: ev.Position, args: args})
		return nil
	}
	return writeActivityRows(ctx, tx, []activityRow{{pos: ev.Position, args: args}})
}

// Inside Applier.Apply the activity projection keeps the batch's rows in memory (lowering
// their time_min there, see keepTimeBounds) and writes them at its end, or before a
// statement that reads or changes the table (an erasure, a sign-in's risk signals), with
// multi-row statements; so it does the sessions it remembers (activity_sessions) and the
// client names it looked up.

// activityRow is a row of the activity table not written yet: its position and its
// columns in the order of writeActivityRows (time_min at activityTimeMin).
type activityRow struct {
	pos  uint64
	args []any
}

const (
	activityRowColumns = 25 // of the activity table
	activityTimeMin    = 5  // the index of time_min in activityRow.args
	activityChunk      = 64 // rows per statement
)

// writeActivityRows inserts rows (in position order), activityChunk per statement.
func writeActivityRows(ctx context.Context, tx *sql.Tx, rows []activityRow) error {
	args := make([]any, 0, min(len(rows), activityChunk)*activityRowColumns)
	for len(rows) > 0 {
		n := min(len(rows), activityChunk)
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.args...)
		}
		err := txExec(ctx, tx, `INSERT OR REPLACE INTO activity (position, id, account_id, time, time_max, time_min, type, outcome, ip,
			`+placeColumns+`, access_type, access_details, client_id, client_name, actor_account_id, details, description)
			VALUES `+tuples(n, activityRowColumns), args...)
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// writeBatch writes what the batch kept in memory: its activity rows and its changes of
// activity_sessions.
func (Activity) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	if len(st.activityRows) > 0 {
		if err := writeActivityRows(ctx, tx, st.activityRows); err != nil {
			return fmt.Errorf("activity: %w", err)
		}
		st.activityRows = st.activityRows[:0]
	}
	if len(st.activitySessions) == 0 || st.keep { // kept for a later batch (Applier.carry)
		return nil
	}
	ids := slices.Sorted(maps.Keys(st.activitySessions))
	var gone, kept []any
	for _, id := range ids {
		if s := st.activitySessions[id]; s == nil {
			gone = append(gone, id)
		} else {
			kept = append(kept, id, s.accountID, s.actorAccountID, s.clientID, s.ip, s.userAgent)
		}
	}
	st.activitySessions = nil
	for len(gone) > 0 {
		n := min(len(gone), activityChunk)
		if err := txExec(ctx, tx, `DELETE FROM activity_sessions WHERE session_id IN (`+placeholders(n)+`)`, gone[:n]...); err != nil {
			return fmt.Errorf("activity: %w", err)
		}
		gone = gone[n:]
	}
	for len(kept) > 0 {
		n := min(len(kept)/6, activityChunk)
		if err := txExec(ctx, tx, `INSERT OR REPLACE INTO activity_sessions
			(session_id, account_id, actor_account_id, client_id, ip, user_agent) VALUES `+tuples(n, 6), kept[:6*n]...); err != nil {
			return fmt.Errorf("activity: %w", err)
		}
		kept = kept[6*n:]
	}
	return nil
}

// flushActivity writes the batch's activity rows and sessions now (inside Applier.Apply),
// before a statement that must see them.
func flushActivity(ctx context.Context, tx *sql.Tx) error {
	if !inBatch(ctx, tx) {
		return nil
	}
	return Activity{}.writeBatch(ctx, tx)
}

// readActivityEvent decodes ev and finds its subject, with the session of a session-stream
// event when that is needed.
func readActivityEvent(ctx context.Context, tx *sql.Tx, ev domain.Envelope) (*activityEvent, error) {
	in := &activityEvent{ctx: ctx, tx: tx, env: ev}
	e, err := decode(ctx, ev)
	switch {
	case errors.Is(err, domain.ErrUnknownEvent):
		// A type listed before the domain knows it: described from its raw data.
	case err != nil:
		return nil, err
	default:
		in.event = e
	}
	// The session's own record is needed only to attribute an event whose metadata names no
	// subject, and for an expiry (no request of its own).
	if sid := streamID(ev.StreamID, domain.StreamPrefixSession); sid != "" {
		_, isLogin := in.event.(domain.LoginSucceeded)
		if (ev.Metadata.SubjectAccountID == "" && !isLogin) || ev.Type == domain.EventSessionExpired {
			if in.session, err = lookupSession(ctx, tx, sid); err != nil {
				return nil, err
			}
		}
	}
	in.account = in.subject()
	return in, nil
}

// source is where the event came from: the request's address, user agent and client, the
// client completed from the sign-in or the session; an expiry, no request, shows where the
// session was used from.
func (in *activityEvent) source() (ip, ua, clientID string) {
	md := in.env.Metadata
	ip, ua, clientID = md.IP, md.UserAgent, md.ClientID
	if e, ok := in.event.(domain.LoginSucceeded); ok && clientID == "" {
		clientID = e.ClientID
	}
	if in.session != nil {
		if clientID == "" {
			clientID = in.session.clientID
		}
		if in.env.Type == domain.EventSessionExpired && ip == "" && ua == "" {
			ip, ua = in.session.ip, in.session.userAgent
		}
	}
	return ip, ua, clientID
}

func lookupSession(ctx context.Context, tx *sql.Tx, sessionID string) (*sessionInfo, error) {
	if inBatch(ctx, tx) {
		if s, ok := stateOf(ctx, tx).activitySessions[sessionID]; ok {
			return s, nil // nil: removed in the batch
		}
	}
	var s sessionInfo
	err := txScan(ctx, tx, `SELECT account_id, actor_account_id, client_id, ip, user_agent
		FROM activity_sessions WHERE session_id = ?`, []any{sessionID}, &s.accountID, &s.actorAccountID, &s.clientID, &s.ip, &s.userAgent)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &s, nil
}

// subject is the account an event is about: the account of its account stream, else the
// metadata's subject, else the account its data or its session names; "" when none (a
// failed sign-in of an unknown email).
func (in *activityEvent) subject() string {
	if id := streamID(in.env.StreamID, domain.StreamPrefixAccount); id != "" {
		return id
	}
	if id := in.env.Metadata.SubjectAccountID; id != "" {
		return id
	}
	if e, ok := in.event.(domain.LoginSucceeded); ok && e.AccountID != "" {
		return e.AccountID
	}
	if in.session != nil {
		return in.session.accountID
	}
	return ""
}

// actorAccount is the account that acted when it is not the subject (a delegate, an
// admin), else "".
func actorAccount(md domain.Metadata, subject string) string {
	switch md.Actor.Type {
	case domain.ActorAccount, domain.ActorAdmin, domain.ActorDelegate:
		if md.Actor.ID != "" && md.Actor.ID != subject {
			return md.Actor.ID
		}
	}
	return ""
}

// deviceName returns the remembered name of a TOTP device or passkey ("" when unknown).
func (in *activityEvent) deviceName(id string) (string, error) {
	var name string
	err := txScan(in.ctx, in.tx, `SELECT name FROM activity_devices WHERE account_id = ? AND device_id = ?`,
		[]any{in.account, id}, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

func (in *activityEvent) setDeviceName(id, name string) error {
	return txExec(in.ctx, in.tx, `INSERT INTO activity_devices (account_id, device_id, name) VALUES (?, ?, ?)
		ON CONFLICT (account_id, device_id) DO UPDATE SET name = excluded.name`, in.account, id, name)
}

func (in *activityEvent) forgetDevice(id string) error {
	return txExec(in.ctx, in.tx, `DELETE FROM activity_devices WHERE account_id = ? AND device_id = ?`, in.account, id)
}
