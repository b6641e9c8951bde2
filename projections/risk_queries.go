package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// The security team's views of issue 15 (the portal's /audit/signals and /audit/overview),
// read from the activity log and the security state.

// RiskFilter selects risk records: SignInRiskDetected (the detector's signals) and
// SuspiciousActivityReported ("this wasn't me"). Kind is "signal", "report" or "" for both;
// Signal (one of domain.Signal*) keeps the records that list it (and implies Kind
// "signal"); AccountID, From and To (inclusive) as in ActivityFilter. Limit and Cursor page
// as in ActiveSessions.
type RiskFilter struct {
	Kind      string
	Signal    string
	AccountID string
	From, To  time.Time
	Limit     int
	Cursor    string
}

// Kinds of RiskFilter.
const (
	RiskKindSignal = "signal"
	RiskKindReport = "report"
)

// RiskRecords returns the activity rows of the risk records that match f, newest first. The
// two types are rare, so the rows come from the type index (a sort of few rows), not from a
// scan of the log. A filter value it cannot use is ErrBadFilter; a cursor it did not issue
// ErrBadCursor.
func (db *DB) RiskRecords(ctx context.Context, f RiskFilter) ([]ActivityRow, string, error) {
	limit := clampLimit(f.Limit)
	after, err := decodeCursor("r", f.Cursor)
	if err != nil {
		return nil, "", err
	}
	var c conditions
	switch {
	case f.Signal != "":
		if _, ok := signalNames[f.Signal]; !ok {
			return nil, "", fmt.Errorf("%w: signal %q", ErrBadFilter, f.Signal)
		}
		if f.Kind == RiskKindReport {
			return nil, "", fmt.Errorf("%w: a signal filter with kind report", ErrBadFilter)
		}
		c.add("type = ?", domain.EventSignInRiskDetected)
		c.add("EXISTS (SELECT 1 FROM json_each(details, '$.signals') WHERE value = ?)", f.Signal)
	case f.Kind == RiskKindSignal:
		c.add("type = ?", domain.EventSignInRiskDetected)
	case f.Kind == RiskKindReport:
		c.add("type = ?", domain.EventSuspiciousActivityReported)
	case f.Kind == "":
		c.add("type IN (?, ?)", domain.EventSignInRiskDetected, domain.EventSuspiciousActivityReported)
	default:
		return nil, "", fmt.Errorf("%w: kind %q", ErrBadFilter, f.Kind)
	}
	if f.AccountID != "" {
		c.add("account_id = ?", f.AccountID)
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		return nil, "", fmt.Errorf("%w: from is after to", ErrBadFilter)
	}
	if !f.From.IsZero() {
		c.add("time >= ?", nanos(f.From))
	}
	if !f.To.IsZero() {
		c.add("time <= ?", nanos(f.To))
	}
	if after != 0 {
		c.add("position < ?", after)
	}
	return page(ctx, db, "risk records", "r", `SELECT `+activityColumns+` FROM activity INDEXED BY activity_type`, c, limit,
		scanActivity, func(r ActivityRow) uint64 { return r.Position })
}

// DayCounts are one UTC day's numbers of the security overview.
type DayCounts struct {
	Day      time.Time // midnight UTC
	SignIns  int       // LoginSucceeded
	Failures int       // LoginFailed
	Signals  int       // SignInRiskDetected
	Reports  int       // SuspiciousActivityReported
}

// maxOverviewDays bounds DailyCounts.
const maxOverviewDays = 366

// DailyCounts returns, for each UTC day from the day of from to the day of to (at most 366
// days), the sign-ins, failed sign-ins, risk signals and "this wasn't me" reports of the
// activity log, oldest first; days without any are there with zeros.
func (db *DB) DailyCounts(ctx context.Context, from, to time.Time) ([]DayCounts, error) {
	first := from.UTC().Truncate(24 * time.Hour)
	last := to.UTC().Truncate(24 * time.Hour)
	if last.Before(first) {
		return nil, fmt.Errorf("%w: from is after to", ErrBadFilter)
	}
	n := int(last.Sub(first)/(24*time.Hour)) + 1
	if n > maxOverviewDays {
		return nil, fmt.Errorf("%w: more than %d days", ErrBadFilter, maxOverviewDays)
	}
	days := make([]DayCounts, n)
	for i := range days {
		days[i].Day = first.Add(time.Duration(i) * 24 * time.Hour)
	}
	const day = int64(24 * time.Hour)
	// Each type through its index (which ends in the position), from the first position of
	// the window (see Activity's time_max).
	start, end := nanos(first), nanos(last.Add(24*time.Hour))
	rows, err := db.read.QueryContext(ctx, `SELECT type, (time - ?) / ?, COUNT(*) FROM activity INDEXED BY activity_type
		WHERE type IN (?, ?, ?, ?) AND time >= ? AND time < ?
			AND position >= (SELECT position FROM activity INDEXED BY activity_time_max WHERE time_max >= ?
				ORDER BY time_max, position LIMIT 1)
		GROUP BY 1, 2`,
		start, day, domain.EventLoginSucceeded, domain.EventLoginFailed, domain.EventSignInRiskDetected,
		domain.EventSuspiciousActivityReported, start, end, start)
	if err != nil {
		return nil, fmt.Errorf("projections: daily counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			typ    string
			i, cnt int
		)
		if err := rows.Scan(&typ, &i, &cnt); err != nil {
			return nil, fmt.Errorf("projections: daily counts: %w", err)
		}
		if i < 0 || i >= n {
			continue
		}
		switch typ {
		case domain.EventLoginSucceeded:
			days[i].SignIns = cnt
		case domain.EventLoginFailed:
			days[i].Failures = cnt
		case domain.EventSignInRiskDetected:
			days[i].Signals = cnt
		case domain.EventSuspiciousActivityReported:
			days[i].Reports = cnt
		}
	}
	return days, rows.Err()
}

// TwoFactorShare counts the accounts (not erased) and those with two-factor authentication
// on, from the security state.
func (db *DB) TwoFactorShare(ctx context.Context) (accounts, withTwoFactor int, err error) {
	var on *int
	err = db.read.QueryRowContext(ctx, `SELECT COUNT(*), SUM(json_extract(state, '$.TwoFactorEnabled')) FROM security_state
		WHERE json_extract(CAST(fold AS TEXT), '$.erased_at') IS NULL`).Scan(&accounts, &on)
	if err != nil {
		return 0, 0, fmt.Errorf("projections: two-factor share: %w", err)
	}
	if on != nil {
		withTwoFactor = *on
	}
	return accounts, withTwoFactor, nil
}

// RowSignals returns the risk signals an activity row carries in its details (a
// SignInRiskDetected, or a sign-in the detector marked); nil when none.
func RowSignals(details json.RawMessage) []string {
	if len(details) == 0 {
		return nil
	}
	var d struct {
		Signals []string `json:"signals"`
	}
	if json.Unmarshal(details, &d) != nil {
		return nil
	}
	return d.Signals
}
