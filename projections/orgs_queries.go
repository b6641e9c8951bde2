package projections

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

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
