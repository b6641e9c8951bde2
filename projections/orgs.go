package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// OrgsName is the name (and checkpoint key) of the Orgs projection.
const OrgsName = "orgs"

// Orgs is the read model of organisation members behind GET /orgs/{id}/members,
// /orgs/{id}/two-factor-report and /orgs/{id}/activity: who belongs to which organisation
// with which role (org-<id> streams), and for every account its email, whether 2FA is on,
// since when (the time the first second factor of the current run was confirmed) and its
// last sign-in. Acting sessions (a delegate's) do not count as the account's sign-ins.
//
// 2FA follows the account stream's factor events: a confirmed TOTP device or a registered
// passkey adds a factor, their removal takes it away, TwoFactorDisabled drops them all; 2FA
// is on while one remains (API.md's definition).
type Orgs struct{}

var _ Projection = Orgs{}

// Name implements Projection.
func (Orgs) Name() string { return OrgsName }

// Schema implements Projection.
func (Orgs) Schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS org_members (
			org_id     TEXT NOT NULL,
			account_id TEXT NOT NULL,
			role       TEXT NOT NULL,
			PRIMARY KEY (org_id, account_id)
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS org_people (
			account_id    TEXT PRIMARY KEY,
			email         TEXT NOT NULL,  -- personal data
			factors       TEXT NOT NULL,  -- JSON array of the confirmed factor ids ("t:<id>", "p:<id>")
			enrolled_at   INTEGER NOT NULL, -- Unix ns when 2FA last went on; 0 while off
			last_login_at INTEGER NOT NULL  -- Unix ns of the last own sign-in; 0 for none
		) WITHOUT ROWID`,
	}
}

// Apply implements Projection.
func (Orgs) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	if err := applyOrgs(ctx, tx, ev); err != nil {
		return fmt.Errorf("orgs: %s at position %d: %w", ev.Type, ev.Position, err)
	}
	return nil
}

func applyOrgs(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	switch ev.Type {
	case domain.EventOrgCreated, domain.EventMemberAdded, domain.EventMemberRemoved, domain.EventMemberRoleChanged,
		domain.EventAccountRegistered, domain.EventEmailChanged, domain.EventTOTPDeviceConfirmed, domain.EventTOTPDeviceRemoved,
		domain.EventPasskeyRegistered, domain.EventPasskeyRemoved, domain.EventTwoFactorDisabled, domain.EventLoginSucceeded:
	default:
		return nil
	}
	e, err := decode(ev)
	if err != nil {
		return err
	}
	orgID := streamID(ev.StreamID, domain.StreamPrefixOrg)
	account := streamID(ev.StreamID, domain.StreamPrefixAccount)
	t := nanos(eventTime(ev))
	switch e := e.(type) {
	case domain.OrgCreated:
		return setMember(ctx, tx, orgID, e.OwnerAccountID, domain.OrgRoleOwner)
	case domain.MemberAdded:
		return setMember(ctx, tx, orgID, e.AccountID, e.Role)
	case domain.MemberRoleChanged:
		return setMember(ctx, tx, orgID, e.AccountID, e.Role)
	case domain.MemberRemoved:
		return txExec(ctx, tx, `DELETE FROM org_members WHERE org_id = ? AND account_id = ?`, orgID, e.AccountID)
	case domain.AccountRegistered:
		return txExec(ctx, tx, `INSERT INTO org_people (account_id, email, factors, enrolled_at, last_login_at)
			VALUES (?, ?, '[]', 0, 0) ON CONFLICT (account_id) DO UPDATE SET email = excluded.email`, account, e.Email)
	case domain.EmailChanged:
		return txExec(ctx, tx, `UPDATE org_people SET email = ? WHERE account_id = ?`, e.NewEmail, account)
	case domain.TOTPDeviceConfirmed:
		return changeFactors(ctx, tx, account, t, func(f []string) []string { return addFactor(f, "t:"+e.DeviceID) })
	case domain.TOTPDeviceRemoved:
		return changeFactors(ctx, tx, account, t, func(f []string) []string { return dropFactor(f, "t:"+e.DeviceID) })
	case domain.PasskeyRegistered:
		return changeFactors(ctx, tx, account, t, func(f []string) []string { return addFactor(f, "p:"+e.PasskeyID) })
	case domain.PasskeyRemoved:
		return changeFactors(ctx, tx, account, t, func(f []string) []string { return dropFactor(f, "p:"+e.PasskeyID) })
	case domain.TwoFactorDisabled:
		return changeFactors(ctx, tx, account, t, func([]string) []string { return nil })
	case domain.LoginSucceeded:
		if ev.Metadata.Actor.Type == domain.ActorDelegate || e.Method == domain.MethodDelegation {
			return nil
		}
		return txExec(ctx, tx, `UPDATE org_people SET last_login_at = max(last_login_at, ?) WHERE account_id = ?`, t, e.AccountID)
	}
	return nil
}

func setMember(ctx context.Context, tx *sql.Tx, orgID, accountID, role string) error {
	return txExec(ctx, tx, `INSERT INTO org_members (org_id, account_id, role) VALUES (?, ?, ?)
		ON CONFLICT (org_id, account_id) DO UPDATE SET role = excluded.role`, orgID, accountID, role)
}

func addFactor(f []string, id string) []string {
	if slices.Contains(f, id) {
		return f
	}
	return append(f, id)
}

func dropFactor(f []string, id string) []string {
	return slices.DeleteFunc(f, func(x string) bool { return x == id })
}

// changeFactors rewrites an account's factor list; enrolled_at becomes t when the list goes
// from empty to not empty, 0 when it empties.
func changeFactors(ctx context.Context, tx *sql.Tx, accountID string, t int64, change func([]string) []string) error {
	var raw string
	var enrolled int64
	err := txScan(ctx, tx, `SELECT factors, enrolled_at FROM org_people WHERE account_id = ?`, []any{accountID}, &raw, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // an account whose registration this read model never saw
	}
	if err != nil {
		return err
	}
	var f []string
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		return err
	}
	before := len(f)
	f = change(f)
	switch {
	case len(f) == 0:
		enrolled = 0
		f = []string{}
	case before == 0:
		enrolled = t
	}
	out, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return txExec(ctx, tx, `UPDATE org_people SET factors = ?, enrolled_at = ? WHERE account_id = ?`, string(out), enrolled, accountID)
}

// OrgMemberRow is one member of an organisation: API.md's members item and two-factor
// report item. EnrolledAt and LastLoginAt are zero when unknown (no 2FA, never signed in).
type OrgMemberRow struct {
	AccountID        string
	Email            string
	Role             string
	TwoFactorEnabled bool
	EnrolledAt       time.Time
	LastLoginAt      time.Time
}

// encodeMemberCursor makes the cursor of the org member list that resumes after the
// member accountID.
func encodeMemberCursor(accountID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("m:" + accountID))
}

// decodeMemberCursor returns the account id a member-list cursor resumes after; "" gives
// "" (the first page). Only the cursors encodeMemberCursor makes are accepted.
func decodeMemberCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	k, id, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok || k != "m" || id == "" || encodeMemberCursor(id) != cursor {
		return "", ErrBadCursor
	}
	return id, nil
}

// OrgMembers returns the members of an organisation ordered by account id, at most limit
// (clamped like the other lists) after cursor; next is the cursor of the following page, ""
// on the last one. An unknown organisation has no members. ErrBadCursor for a cursor this
// list did not issue. Safe for concurrent use.
func (db *DB) OrgMembers(ctx context.Context, orgID string, limit int, cursor string) ([]OrgMemberRow, string, error) {
	limit = clampLimit(limit)
	after, err := decodeMemberCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT m.account_id, coalesce(p.email, ''), m.role,
			coalesce(p.enrolled_at, 0), coalesce(p.last_login_at, 0)
		FROM org_members m LEFT JOIN org_people p ON p.account_id = m.account_id
		WHERE m.org_id = ? AND m.account_id > ? ORDER BY m.account_id LIMIT ?`, orgID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("projections: org members: %w", err)
	}
	defer rows.Close()
	var out []OrgMemberRow
	for rows.Next() {
		var r OrgMemberRow
		var enrolled, last int64
		if err := rows.Scan(&r.AccountID, &r.Email, &r.Role, &enrolled, &last); err != nil {
			return nil, "", fmt.Errorf("projections: org members: %w", err)
		}
		r.TwoFactorEnabled = enrolled != 0
		if enrolled != 0 {
			r.EnrolledAt = fromNanos(enrolled)
		}
		if last != 0 {
			r.LastLoginAt = fromNanos(last)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("projections: org members: %w", err)
	}
	if len(out) > limit {
		out = out[:limit]
		return out, encodeMemberCursor(out[limit-1].AccountID), nil
	}
	return out, "", nil
}
