package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

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

// orgsReducers is the Orgs projection's table: the organisation streams' members, and the
// account streams' email, second factors and own sign-ins.
var orgsReducers = reducers[Orgs]{
	domain.EventOrgCreated:        on(Orgs.orgCreated),
	domain.EventMemberAdded:       on(Orgs.memberAdded),
	domain.EventMemberRoleChanged: on(Orgs.memberRoleChanged),
	domain.EventMemberRemoved:     on(Orgs.memberRemoved),
	domain.EventAccountRegistered: on(Orgs.accountRegistered),
	domain.EventEmailChanged:      on(Orgs.emailChanged),
	domain.EventTOTPDeviceConfirmed: factorChange(func(e domain.TOTPDeviceConfirmed) func([]string) []string {
		return addFactor("t:" + e.DeviceID)
	}),
	domain.EventTOTPDeviceRemoved: factorChange(func(e domain.TOTPDeviceRemoved) func([]string) []string {
		return dropFactor("t:" + e.DeviceID)
	}),
	domain.EventPasskeyRegistered: factorChange(func(e domain.PasskeyRegistered) func([]string) []string {
		return addFactor("p:" + e.PasskeyID)
	}),
	domain.EventPasskeyRemoved: factorChange(func(e domain.PasskeyRemoved) func([]string) []string {
		return dropFactor("p:" + e.PasskeyID)
	}),
	domain.EventTwoFactorDisabled: factorChange(func(domain.TwoFactorDisabled) func([]string) []string {
		return func([]string) []string { return nil }
	}),
	domain.EventLoginSucceeded: on(Orgs.loginSucceeded),
	domain.EventAccountErased:  Orgs.forgetAccount,
}

// Apply implements Projection.
func (p Orgs) Apply(ctx context.Context, tx *sql.Tx, ev domain.Envelope) error {
	return orgsReducers.apply(OrgsName, p, ctx, tx, ev)
}

func (Orgs) orgCreated(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.OrgCreated) error {
	return setMember(ctx, tx, streamID(ev.StreamID, domain.StreamPrefixOrg), e.OwnerAccountID, domain.OrgRoleOwner)
}

func (Orgs) memberAdded(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.MemberAdded) error {
	return setMember(ctx, tx, streamID(ev.StreamID, domain.StreamPrefixOrg), e.AccountID, e.Role)
}

func (Orgs) memberRoleChanged(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.MemberRoleChanged) error {
	return setMember(ctx, tx, streamID(ev.StreamID, domain.StreamPrefixOrg), e.AccountID, e.Role)
}

func (Orgs) memberRemoved(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.MemberRemoved) error {
	return txExec(ctx, tx, `DELETE FROM org_members WHERE org_id = ? AND account_id = ?`,
		streamID(ev.StreamID, domain.StreamPrefixOrg), e.AccountID)
}

func (Orgs) accountRegistered(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.AccountRegistered) error {
	if err := flushOrgLogin(ctx, tx, streamID(ev.StreamID, domain.StreamPrefixAccount)); err != nil {
		return err
	}
	return txExec(ctx, tx, `INSERT INTO org_people (account_id, email, factors, enrolled_at, last_login_at)
			VALUES (?, ?, '[]', 0, 0) ON CONFLICT (account_id) DO UPDATE SET email = excluded.email`,
		streamID(ev.StreamID, domain.StreamPrefixAccount), e.Email)
}

func (Orgs) emailChanged(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.EmailChanged) error {
	return txExec(ctx, tx, `UPDATE org_people SET email = ? WHERE account_id = ?`,
		e.NewEmail, streamID(ev.StreamID, domain.StreamPrefixAccount))
}

// loginSucceeded records an own sign-in: a delegate's acting session is not the account's.
func (Orgs) loginSucceeded(ctx context.Context, tx *sql.Tx, ev domain.Envelope, e domain.LoginSucceeded) error {
	if ev.Metadata.Actor.Type == domain.ActorDelegate || e.Method == domain.MethodDelegation {
		return nil
	}
	t := nanos(eventTimeOf(ctx, ev))
	if inBatch(ctx, tx) {
		// Kept until the batch ends (or longer: Applier.carry) with the latest time per account,
		// as the UPDATE would leave it: a rebuild signs a person in many times. It moves past
		// the other statements on the row, which do not touch last_login_at, and past its
		// removal (an UPDATE of no row either way), but not past the row's creation
		// (flushOrgLogin), which also comes first when a removed row is made again.
		st := stateOf(ctx, tx)
		if st.orgLogins == nil {
			st.orgLogins = map[string]int64{}
		}
		if last, ok := st.orgLogins[e.AccountID]; !ok || t > last {
			st.orgLogins[e.AccountID] = t
		}
		return nil
	}
	return setLastLogin(ctx, tx, e.AccountID, t)
}

// setLastLogin moves accountID's last sign-in time to t unless it is later already.
func setLastLogin(ctx context.Context, tx *sql.Tx, accountID string, t int64) error {
	return txExec(ctx, tx, `UPDATE org_people SET last_login_at = max(last_login_at, ?) WHERE account_id = ?`, t, accountID)
}

// flushOrgLogin writes the batch's kept sign-in time of accountID, before the statement that
// creates its row.
func flushOrgLogin(ctx context.Context, tx *sql.Tx, accountID string) error {
	if !inBatch(ctx, tx) {
		return nil
	}
	st := stateOf(ctx, tx)
	t, ok := st.orgLogins[accountID]
	if !ok {
		return nil
	}
	delete(st.orgLogins, accountID)
	return setLastLogin(ctx, tx, accountID, t)
}

// orgLoginsChunk is how many accounts one statement of writeBatch updates.
const orgLoginsChunk = 256

// writeBatch writes the batch's kept sign-in times, in key order.
func (Orgs) writeBatch(ctx context.Context, tx *sql.Tx) error {
	st := stateOf(ctx, tx)
	if len(st.orgLogins) == 0 || st.keep { // kept for a later batch (Applier.carry)
		return nil
	}
	ids := slices.Sorted(maps.Keys(st.orgLogins))
	for len(ids) > 0 {
		n := min(len(ids), orgLoginsChunk)
		args := make([]any, 0, 2*n)
		for _, id := range ids[:n] {
			args = append(args, id, st.orgLogins[id])
		}
		if err := txExec(ctx, tx, `UPDATE org_people SET last_login_at = max(org_people.last_login_at, v.column2)
			FROM (VALUES `+tuples(n, 2)+`) AS v WHERE org_people.account_id = v.column1`, args...); err != nil {
			return fmt.Errorf("orgs: %w", err)
		}
		ids = ids[n:]
	}
	st.orgLogins = nil
	return nil
}

// factorChange makes the reducer of an event that changes the account's factor list: change
// returns, for the event, the function that rewrites the list (see changeFactors).
func factorChange[E domain.Event](change func(E) func([]string) []string) reducer[Orgs] {
	return on(func(_ Orgs, ctx context.Context, tx *sql.Tx, ev domain.Envelope, e E) error {
		return changeFactors(ctx, tx, streamID(ev.StreamID, domain.StreamPrefixAccount), nanos(eventTimeOf(ctx, ev)), change(e))
	})
}

func setMember(ctx context.Context, tx *sql.Tx, orgID, accountID, role string) error {
	return txExec(ctx, tx, `INSERT INTO org_members (org_id, account_id, role) VALUES (?, ?, ?)
		ON CONFLICT (org_id, account_id) DO UPDATE SET role = excluded.role`, orgID, accountID, role)
}

// addFactor returns the change that adds the factor id to a list.
func addFactor(id string) func([]string) []string {
	return func(f []string) []string {
		if slices.Contains(f, id) {
			return f
		}
		return append(f, id)
	}
}

// dropFactor returns the change that removes the factor id from a list.
func dropFactor(id string) func([]string) []string {
	return func(f []string) []string {
		return slices.DeleteFunc(f, func(x string) bool { return x == id })
	}
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
