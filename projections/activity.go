package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
)

// ActivityName is the name (and checkpoint key) of the Activity projection.
const ActivityName = "activity"

// activityKinds lists the event types the activity log shows, each with how to describe it.
// Adding a type is one line here: the organisation and delegation events, once they exist,
// e.g.
//
//	"OrgCreated":        {describe: fixed("Organisation created", "org_id", "name")},
//	"DelegationGranted": {describe: fixed("Access delegated", "delegation_id", "expires_at")},
//
// (fixed copies the named fields of the event's data into details). Types not listed are
// not shown.
var activityKinds = map[string]activityKind{
	domain.EventAccountRegistered:     {describe: fixed("Account created")},
	domain.EventEmailChanged:          {describe: fixed("Email address changed")},
	domain.EventNameChanged:           {describe: fixed("Name changed")},
	domain.EventProfileUpdated:        {describe: fixed("Profile updated")},
	domain.EventPasswordChanged:       {describe: fixed("Password changed")},
	domain.EventTOTPDeviceAdded:       {describe: describeTOTP},
	domain.EventTOTPDeviceConfirmed:   {describe: describeTOTP},
	domain.EventTOTPDeviceRemoved:     {describe: describeTOTP},
	domain.EventTOTPCodeAccepted:      {describe: describeTOTP},
	domain.EventBackupCodesGenerated:  {describe: describeBackupCodes},
	domain.EventBackupCodeUsed:        {describe: describeBackupCodes},
	domain.EventPasskeyRegistered:     {describe: describePasskey},
	domain.EventPasskeyRenamed:        {describe: describePasskey},
	domain.EventPasskeyRemoved:        {describe: describePasskey},
	domain.EventPasskeyUsed:           {describe: describePasskey},
	domain.EventPasskeyCloneSuspected: {failure: true, describe: describePasskey},
	domain.EventTwoFactorDisabled:     {describe: describeTwoFactorDisabled},
	domain.EventRoleGranted:           {describe: describeRole},
	domain.EventRoleRevoked:           {describe: describeRole},
	domain.EventLoginSucceeded:        {describe: describeLoginSucceeded},
	domain.EventLoginFailed:           {failure: true, describe: describeLoginFailed},
	domain.EventReauthSucceeded:       {describe: describeReauth},
	domain.EventSessionSignedOut:      {describe: describeSessionEnd},
	domain.EventSessionExpired:        {describe: describeSessionEnd},
	// organisations and delegations (activity_org.go)
	domain.EventOrgCreated:                  {describe: describeOrg},
	domain.EventMemberAdded:                 {describe: describeOrg},
	domain.EventMemberRemoved:               {describe: describeOrg},
	domain.EventMemberRoleChanged:           {describe: describeOrg},
	domain.EventTwoFactorRequirementChanged: {describe: describeOrg},
	domain.EventManagedOrgAdded:             {describe: describeOrg},
	domain.EventDelegationGranted:           {describe: describeDelegation},
	domain.EventDelegationRevoked:           {describe: describeDelegation},
	domain.EventDelegationExpired:           {describe: describeDelegation},
}

// ActivityTypes returns the event types the activity log shows, sorted.
func ActivityTypes() []string {
	out := make([]string, 0, len(activityKinds))
	for t := range activityKinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// activityKind says how one event type appears in the activity log.
type activityKind struct {
	// failure marks the type's outcome "failure" (else "success").
	failure bool
	// describe returns the one-line sentence and the details object (non-secret
	// particulars only: never hashes, secrets, key material or codes). It may read and
	// write the projection's helper tables through in.tx.
	describe func(in *activityEvent) (string, details, error)
}

// details is the details object of an activity row; encoding/json writes its keys sorted,
// so rows are byte-for-byte reproducible.
type details map[string]any

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
		`CREATE INDEX IF NOT EXISTS activity_time_max ON activity (time_max)`,
		`CREATE INDEX IF NOT EXISTS activity_time_min ON activity (time_min)`,
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

// Apply implements Projection.
func (p Activity) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if err := p.apply(ctx, tx, ev); err != nil {
		return fmt.Errorf("activity: %s at position %d: %w", ev.Type, ev.Position, err)
	}
	return nil
}

func (p Activity) apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	switch ev.Type {
	case domain.EventClientRegistered:
		e, err := decode(ev)
		if err != nil {
			return err
		}
		return applyClientRegistered(ctx, tx, "activity_clients", e.(domain.ClientRegistered))
	case domain.EventSessionStarted:
		e, err := decode(ev)
		if err != nil {
			return err
		}
		s := e.(domain.SessionStarted)
		id := s.SessionID
		if id == "" {
			id = streamID(ev.StreamID, domain.StreamPrefixSession)
		}
		clientID := s.ClientID
		if clientID == "" {
			clientID = ev.Metadata.ClientID
		}
		return txExec(ctx, tx, `INSERT OR REPLACE INTO activity_sessions
			(session_id, account_id, actor_account_id, client_id, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)`,
			id, s.AccountID, s.ActorAccountID, clientID, ev.Metadata.IP, ev.Metadata.UserAgent)
	}
	kind, ok := activityKinds[ev.Type]
	if !ok {
		return nil
	}
	in := &activityEvent{ctx: ctx, tx: tx, env: ev}
	e, err := decode(ev)
	switch {
	case errors.Is(err, domain.ErrUnknownEvent):
		// A type listed before the domain knows it: described from its raw data.
	case err != nil:
		return err
	default:
		in.event = e
	}
	// The session's own record is needed only to attribute an event whose metadata names no
	// subject, and for an expiry (no request of its own).
	if sid := streamID(ev.StreamID, domain.StreamPrefixSession); sid != "" {
		_, isLogin := in.event.(domain.LoginSucceeded)
		if (ev.Metadata.SubjectAccountID == "" && !isLogin) || ev.Type == domain.EventSessionExpired {
			if in.session, err = lookupSession(ctx, tx, sid); err != nil {
				return err
			}
		}
	}
	in.account = in.subject()
	desc, det, err := kind.describe(in)
	if err != nil {
		return err
	}
	if det == nil {
		det = details{}
	}
	detJSON, err := json.Marshal(det)
	if err != nil {
		return err
	}
	md := ev.Metadata
	ip, ua, clientID := md.IP, md.UserAgent, md.ClientID
	if e, ok := in.event.(domain.LoginSucceeded); ok && clientID == "" {
		clientID = e.ClientID
	}
	if in.session != nil {
		if clientID == "" {
			clientID = in.session.clientID
		}
		// An expiry is no request: show where the session was used from.
		if ev.Type == domain.EventSessionExpired && ip == "" && ua == "" {
			ip, ua = in.session.ip, in.session.userAgent
		}
	}
	cname, err := clientName(ctx, tx, "activity_clients", clientID)
	if err != nil {
		return err
	}
	outcome := "success"
	if kind.failure {
		outcome = "failure"
	}
	ag := ParseUserAgent(ua)
	pl := locate(p.GeoIP, ip)
	t := nanos(eventTime(ev))
	timeMax, err := keepTimeBounds(ctx, tx, ev.Position, t)
	if err != nil {
		return err
	}
	args := []any{ev.Position, ev.ID, in.account, t, timeMax, t, ev.Type, outcome, ip}
	args = append(args, pl.args()...)
	args = append(args, ag.AccessType(), ag.Details, clientID, cname, actorAccount(md, in.account), string(detJSON), desc)
	if err := txExec(ctx, tx, `INSERT OR REPLACE INTO activity (position, id, account_id, time, time_max, time_min, type, outcome, ip,
		`+placeColumns+`, access_type, access_details, client_id, client_name, actor_account_id, details, description)
		VALUES (`+placeholders(len(args))+`)`, args...); err != nil {
		return err
	}
	switch ev.Type {
	case domain.EventSessionSignedOut, domain.EventSessionExpired:
		err = txExec(ctx, tx, `DELETE FROM activity_sessions WHERE session_id = ?`,
			streamID(ev.StreamID, domain.StreamPrefixSession))
	}
	return err
}

// keepTimeBounds prepares the row at position pos with time t (rows are added in position
// order): it returns the row's time_max and lowers time_min of the newer-timed rows before
// it to t. Only the primary key is used, so Apply needs no secondary index; the rows to
// lower are the few whose time is later than t (events committed slightly out of time order).
//
// The transaction remembers the rows it wrote (the last time_max, and a window of the last
// rows with their time_min), so that a batch written in order reads nothing back. Memory is
// only trusted for a later position than the last row written: an event applied again (after
// a failed attempt rolled back to its savepoint) forgets it and reads the table.
func keepTimeBounds(ctx context.Context, tx *sql.Tx, pos uint64, t int64) (int64, error) {
	ts := stateOf(tx)
	if ts.lastActivity == 0 || pos <= ts.lastActivity {
		ts.lastActivity, ts.recentActivity = 0, ts.recentActivity[:0]
	}
	timeMax, err := timeBounds(ctx, tx, ts, pos, t)
	if err != nil {
		ts.lastActivity, ts.recentActivity = 0, ts.recentActivity[:0]
		return 0, err
	}
	ts.lastActivity, ts.lastActivityMax = pos, timeMax
	if len(ts.recentActivity) == recentActivityWindow {
		ts.recentActivity = append(ts.recentActivity[:0], ts.recentActivity[1:]...)
	}
	ts.recentActivity = append(ts.recentActivity, activityBound{pos: pos, tmin: t})
	return timeMax, nil
}

// recentActivityWindow is how many of its last activity rows a transaction remembers.
const recentActivityWindow = 256

func timeBounds(ctx context.Context, tx *sql.Tx, ts *txState, pos uint64, t int64) (int64, error) {
	var prevMax int64
	if ts.lastActivity != 0 {
		prevMax = ts.lastActivityMax
	} else {
		err := txScan(ctx, tx, `SELECT time_max FROM activity WHERE position < ? ORDER BY position DESC LIMIT 1`, []any{pos}, &prevMax)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return t, nil
		case err != nil:
			return 0, err
		}
	}
	if prevMax <= t {
		return t, nil // in order: no earlier row has a later time, so no time_min is above t
	}
	// time_min never decreases with the position, so the rows to lower are those from the
	// first one whose time_min is above t up to this one: found in the remembered rows, newest
	// first, then in the table, and lowered with one statement.
	first := uint64(0)
	i := len(ts.recentActivity) - 1
	for ; i >= 0 && ts.recentActivity[i].tmin > t; i-- {
		first = ts.recentActivity[i].pos
	}
	if i < 0 {
		upper := pos
		if first != 0 {
			upper = first
		}
		const chunk = 64
		for searching := true; searching; {
			st, err := prepared(ctx, tx, `SELECT position, time_min FROM activity WHERE position < ? ORDER BY position DESC LIMIT `+strconv.Itoa(chunk))
			if err != nil {
				return 0, err
			}
			rows, err := st.QueryContext(ctx, upper)
			if err != nil {
				return 0, err
			}
			n := 0
			for rows.Next() {
				var p uint64
				var m int64
				if err := rows.Scan(&p, &m); err != nil {
					rows.Close()
					return 0, err
				}
				n++
				if m <= t {
					searching = false
					break
				}
				first, upper = p, p
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, err
			}
			if n < chunk {
				searching = false
			}
		}
	}
	if first == 0 {
		return prevMax, nil
	}
	if err := txExec(ctx, tx, `UPDATE activity SET time_min = ? WHERE position >= ? AND position < ?`, t, first, pos); err != nil {
		return 0, err
	}
	for j := i + 1; j < len(ts.recentActivity); j++ {
		ts.recentActivity[j].tmin = t
	}
	return prevMax, nil
}

func lookupSession(ctx context.Context, tx *sql.Tx, sessionID string) (*sessionInfo, error) {
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

// fixed describes an event with a fixed sentence, copying the named top-level fields of its
// data (when present) into details. Name only non-secret, non-personal fields.
func fixed(sentence string, fields ...string) func(*activityEvent) (string, details, error) {
	return func(in *activityEvent) (string, details, error) {
		if len(fields) == 0 {
			return sentence, nil, nil
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(in.env.Data, &raw); err != nil {
			return "", nil, err
		}
		d := details{}
		for _, f := range fields {
			if v, ok := raw[f]; ok {
				d[f] = v
			}
		}
		return sentence, d, nil
	}
}

// named quotes a device name for a sentence: ` "Phone"`, or "" without a name.
func named(name string) string {
	if name == "" {
		return ""
	}
	return ` "` + name + `"`
}

var purposeSuffix = map[string]string{"login": " to sign in", "reauth": " to confirm your identity"}

func describeTOTP(in *activityEvent) (string, details, error) {
	var id, name string
	var err error
	switch e := in.event.(type) {
	case domain.TOTPDeviceAdded:
		id, name = e.DeviceID, e.Name
		if err := in.setDeviceName(id, name); err != nil {
			return "", nil, err
		}
		return "Authenticator app" + named(name) + " added (not yet confirmed)", details{"device_id": id, "device_name": name}, nil
	case domain.TOTPDeviceConfirmed:
		id = e.DeviceID
		if name, err = in.deviceName(id); err != nil {
			return "", nil, err
		}
		return "Authenticator app" + named(name) + " confirmed", details{"device_id": id, "device_name": name}, nil
	case domain.TOTPDeviceRemoved:
		id = e.DeviceID
		if name, err = in.deviceName(id); err != nil {
			return "", nil, err
		}
		if err := in.forgetDevice(id); err != nil {
			return "", nil, err
		}
		return "Authenticator app" + named(name) + " removed", details{"device_id": id, "device_name": name}, nil
	case domain.TOTPCodeAccepted:
		id = e.DeviceID
		if name, err = in.deviceName(id); err != nil {
			return "", nil, err
		}
		d := details{"device_id": id, "device_name": name}
		if e.Purpose != "" {
			d["purpose"] = e.Purpose
		}
		return "Authenticator app" + named(name) + " code used" + purposeSuffix[e.Purpose], d, nil
	}
	return "", nil, unexpected(in)
}

func describeBackupCodes(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.BackupCodesGenerated:
		n := len(e.CodeHashes)
		return "New backup codes generated (" + strconv.Itoa(n) + ")", details{"count": n}, nil
	case domain.BackupCodeUsed:
		d := details{}
		if e.Purpose != "" {
			d["purpose"] = e.Purpose
		}
		return "Backup code used" + purposeSuffix[e.Purpose], d, nil
	}
	return "", nil, unexpected(in)
}

func describePasskey(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.PasskeyRegistered:
		if err := in.setDeviceName(e.PasskeyID, e.Name); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(e.Name) + " added",
			details{"passkey_id": e.PasskeyID, "name": e.Name, "backup_eligible": e.BackupEligible, "backed_up": e.BackupState}, nil
	case domain.PasskeyRenamed:
		old, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		if err := in.setDeviceName(e.PasskeyID, e.Name); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(old) + " renamed to" + named(e.Name),
			details{"passkey_id": e.PasskeyID, "name": e.Name, "old_name": old}, nil
	case domain.PasskeyRemoved:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		if err := in.forgetDevice(e.PasskeyID); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " removed", details{"passkey_id": e.PasskeyID, "name": name}, nil
	case domain.PasskeyUsed:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " used", details{"passkey_id": e.PasskeyID, "name": name, "backed_up": e.BackupState}, nil
	case domain.PasskeyCloneSuspected:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " refused: it may have been cloned",
			details{"passkey_id": e.PasskeyID, "name": name, "stored_sign_count": e.StoredSignCount,
				"received_sign_count": e.ReceivedSignCount}, nil
	}
	return "", nil, unexpected(in)
}

func describeTwoFactorDisabled(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.TwoFactorDisabled)
	if !ok {
		return "", nil, unexpected(in)
	}
	if err := txExec(in.ctx, in.tx, `DELETE FROM activity_devices WHERE account_id = ?`, in.account); err != nil {
		return "", nil, err
	}
	desc := "Two-factor authentication turned off"
	if e.Reason == domain.TwoFactorDisabledLastFactorGone {
		desc += ": the last second factor was removed"
	}
	return desc, details{"reason": e.Reason}, nil
}

func describeRole(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.RoleGranted:
		return "Role" + named(e.Role) + " granted", details{"role": e.Role}, nil
	case domain.RoleRevoked:
		return "Role" + named(e.Role) + " revoked", details{"role": e.Role}, nil
	}
	return "", nil, unexpected(in)
}

// Human names of sign-in methods and amr values.
var (
	methodNames = map[string]string{domain.MethodPassword: "password", domain.MethodTOTP: "authenticator app",
		domain.MethodBackupCode: "backup code", domain.MethodPasskey: "passkey"}
	amrNames = map[string]string{domain.AMRPassword: "password", domain.AMROTP: "authenticator app",
		domain.AMRBackupCode: "backup code", domain.AMRPasskey: "passkey"}
)

func humanName(names map[string]string, v string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return strings.ReplaceAll(v, "_", " ")
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func amrPhrase(amr []string, method string) string {
	var words []string
	for _, a := range amr {
		words = append(words, humanName(amrNames, a))
	}
	if len(words) == 0 && method != "" {
		words = append(words, humanName(methodNames, method))
	}
	return joinAnd(words)
}

func describeLoginSucceeded(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.LoginSucceeded)
	if !ok {
		return "", nil, unexpected(in)
	}
	desc := "Signed in"
	if e.Method == domain.MethodDelegation {
		desc = "Delegate started acting for the account"
	} else if p := amrPhrase(e.AMR, e.Method); p != "" {
		desc += " with " + p
	}
	return desc, details{"session_id": e.SessionID, "method": e.Method, "amr": nonNil(e.AMR), "aal": e.AAL}, nil
}

func describeReauth(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.ReauthSucceeded)
	if !ok {
		return "", nil, unexpected(in)
	}
	desc := "Identity confirmed"
	if e.Method != "" {
		desc += " with " + humanName(methodNames, e.Method)
	}
	return desc, details{"session_id": streamID(in.env.StreamID, domain.StreamPrefixSession), "method": e.Method,
		"amr": nonNil(e.AMR), "aal": e.AAL}, nil
}

func describeLoginFailed(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.LoginFailed)
	if !ok {
		return "", nil, unexpected(in)
	}
	d := details{"reason": e.Reason, "stage": e.Stage}
	if e.Method != "" {
		d["method"] = e.Method
	}
	if e.SessionID != "" {
		d["session_id"] = e.SessionID
	}
	if e.RetryAfterMS > 0 {
		d["retry_after_ms"] = e.RetryAfterMS
	}
	what := "Sign-in"
	if e.Stage == domain.StageReauth {
		what = "Identity confirmation"
	}
	var why string
	switch e.Reason {
	case domain.LoginFailedThrottled:
		return what + " blocked: too many failed attempts", d, nil
	case domain.LoginFailedInvalidCredentials:
		why = "wrong password"
		if e.Method == domain.MethodPasskey {
			why = "passkey not accepted"
		}
	case domain.LoginFailedUnknownAccount:
		why = "unknown email address"
		if e.Method == domain.MethodPasskey {
			why = "unknown passkey"
		}
	case domain.LoginFailedInvalidSecondFactor:
		switch e.Method {
		case domain.MethodTOTP:
			why = "wrong authenticator app code"
		case domain.MethodBackupCode:
			why = "wrong backup code"
		case domain.MethodPasskey:
			why = "passkey not accepted"
		default:
			why = "wrong second factor"
		}
	case domain.LoginFailedPasskeyCloneSuspected:
		why = "the passkey may have been cloned"
	default:
		why = strings.ReplaceAll(e.Reason, "_", " ")
	}
	return what + " failed: " + why, d, nil
}

func describeSessionEnd(in *activityEvent) (string, details, error) {
	sid := streamID(in.env.StreamID, domain.StreamPrefixSession)
	switch e := in.event.(type) {
	case domain.SessionSignedOut:
		d := details{"session_id": sid, "reason": e.Reason, "signed_out_by": string(in.env.Metadata.Actor.Type)}
		switch e.Reason {
		case domain.SignOutLogout:
			return "Signed out", d, nil
		case domain.SignOutByUser:
			return "Session signed out from another session", d, nil
		case domain.SignOutByAdmin:
			return "Session signed out by an administrator", d, nil
		case domain.SignOutPasswordChanged:
			return "Session signed out after a password change", d, nil
		case domain.SignOutDelegationEnded:
			return "Delegated session ended with its delegation", d, nil
		}
		return "Session signed out (" + strings.ReplaceAll(e.Reason, "_", " ") + ")", d, nil
	case domain.SessionExpired:
		d := details{"session_id": sid, "reason": e.Reason}
		switch e.Reason {
		case domain.ExpiredIdle:
			return "Session expired after inactivity", d, nil
		case domain.ExpiredLifetime:
			return "Session expired (maximum lifetime reached)", d, nil
		}
		return "Session expired", d, nil
	}
	return "", nil, unexpected(in)
}

func unexpected(in *activityEvent) error {
	return fmt.Errorf("cannot describe %s data %T", in.env.Type, in.event)
}

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
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
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
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return page(ctx, db, "activity", "a", q, args, limit, scanActivity, func(r ActivityRow) uint64 { return r.Position })
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
