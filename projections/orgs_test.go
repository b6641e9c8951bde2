package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

func allMembers(t *testing.T, db *projections.DB, org string, limit int) []projections.OrgMemberRow {
	t.Helper()
	var out []projections.OrgMemberRow
	cursor := ""
	for {
		rows, next, err := db.OrgMembers(context.Background(), org, limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
		if next == "" {
			return out
		}
		cursor = next
	}
}

func TestOrgsReducer(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(projections.Orgs{})
	t0 := testStart
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	md := func(id string) domain.Metadata { return domain.Metadata{Actor: self(id), SubjectAccountID: id} }
	e.emit(domain.AccountStream("a"), md("a"), domain.AccountRegistered{AccountID: "a", Email: "a@example.com", At: at(0)})
	e.emit(domain.AccountStream("b"), md("b"), domain.AccountRegistered{AccountID: "b", Email: "b@example.com", At: at(0)})
	e.emit(domain.OrgStream("o"), md("a"), domain.OrgCreated{OrgID: "o", Name: "O", OwnerAccountID: "a", At: at(1)},
		domain.MemberAdded{OrgID: "o", AccountID: "b", Role: domain.OrgRoleAdmin, At: at(1)},
		domain.MemberAdded{OrgID: "o", AccountID: "ghost", Role: domain.OrgRoleMember, At: at(1)})
	// a: TOTP confirmed at 2, a second device at 3 (enrolled_at stays 2), email changed.
	e.emit(domain.AccountStream("a"), md("a"), domain.TOTPDeviceConfirmed{DeviceID: "d1", At: at(2)},
		domain.TOTPDeviceConfirmed{DeviceID: "d2", At: at(3)}, domain.EmailChanged{NewEmail: "a2@example.com", At: at(3)})
	// b: passkey at 4, removed at 5 (off again), then a TOTP device at 6 and 2FA disabled at 7.
	e.emit(domain.AccountStream("b"), md("b"), domain.PasskeyRegistered{PasskeyID: "p1", At: at(4)},
		domain.PasskeyRemoved{PasskeyID: "p1", At: at(5)}, domain.TOTPDeviceConfirmed{DeviceID: "d3", At: at(6)},
		domain.TwoFactorDisabled{At: at(7)})
	// Sign-ins: a's own counts, a delegate acting for b does not.
	e.emit(domain.SessionStream("s1"), md("a"), domain.LoginSucceeded{AccountID: "a", SessionID: "s1", Method: domain.MethodPassword, At: at(8)})
	e.emit(domain.SessionStream("s2"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorDelegate, ID: "a"}, SubjectAccountID: "b"},
		domain.LoginSucceeded{AccountID: "b", SessionID: "s2", Method: domain.MethodDelegation, At: at(9)})
	pos := e.emit(domain.OrgStream("o"), md("a"), domain.MemberRoleChanged{OrgID: "o", AccountID: "b", OldRole: "admin", Role: "member", At: at(10)},
		domain.MemberRemoved{OrgID: "o", AccountID: "ghost", At: at(10)})
	e.waitFor(r, pos)
	got := allMembers(t, e.db, "o", 1)
	want := []projections.OrgMemberRow{
		{AccountID: "a", Email: "a2@example.com", Role: "owner", TwoFactorEnabled: true, EnrolledAt: at(2), LastLoginAt: at(8)},
		{AccountID: "b", Email: "b@example.com", Role: "member"},
	}
	if !equalJSON(t, got, want) {
		t.Fatalf("members\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	if rows, _, err := e.db.OrgMembers(t.Context(), "nope", 10, ""); err != nil || len(rows) != 0 {
		t.Fatalf("unknown org: %v %v", rows, err)
	}
	if _, _, err := e.db.OrgMembers(t.Context(), "o", 10, "bogus"); !errors.Is(err, projections.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// TestTwoFactorReportOfAThousandMembers: 1,000 members, every other one with a second
// factor, every third one signed in; the organisation then requires 2FA. The report (paged)
// lists each member once with the right status, enrolment time and last sign-in, and the
// 2FA policy built from the same log applies to every member.
//
// Under the race detector on two cores, appending member by member while the router applied
// each event as it came took most of a 20 s deadline. The log is built in a few batched
// appends instead, and the read models come from the real projections both ways a server
// builds them: the accounts, sign-ins and membership by the catch-up of a runner started
// behind the log (the fast path a restarted server takes), the 2FA requirement live, through
// the router, while it serves.
func TestTwoFactorReportOfAThousandMembers(t *testing.T) {
	e := newEnv(t)
	const n = 1000
	t0 := testStart
	id := func(i int) string { return fmt.Sprintf("acc-%04d", i) }
	enrolledAt := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	loginAt := func(i int) time.Time { return t0.Add(time.Hour + time.Duration(i)*time.Second) }
	md := func(a string) domain.Metadata { return domain.Metadata{Actor: self(a), SubjectAccountID: a} }
	var accounts, signIns []pendingAppend
	for i := 0; i < n; i++ {
		evs := []domain.Event{domain.AccountRegistered{AccountID: id(i), Email: id(i) + "@example.com", At: t0}}
		if i%2 == 0 {
			evs = append(evs, domain.TOTPDeviceConfirmed{DeviceID: "d" + id(i), At: enrolledAt(i)})
		}
		accounts = append(accounts, pendingAppend{domain.AccountStream(id(i)), md(id(i)), evs})
		if i%3 == 0 {
			signIns = append(signIns, pendingAppend{domain.SessionStream("s" + id(i)), md(id(i)),
				[]domain.Event{domain.LoginSucceeded{AccountID: id(i), SessionID: "s" + id(i), Method: domain.MethodPassword, At: loginAt(i)}}})
		}
	}
	org := []domain.Event{domain.OrgCreated{OrgID: "big", Name: "Big", OwnerAccountID: id(0), At: t0}}
	for i := 1; i < n; i++ {
		org = append(org, domain.MemberAdded{OrgID: "big", AccountID: id(i), Role: domain.OrgRoleMember, At: t0})
	}

	start := time.Now()
	e.emitAll(accounts)
	e.emitAll(signIns) // after the registrations: a sign-in of an unknown account is ignored
	pos := e.emit(domain.OrgStream("big"), md(id(0)), org...)
	built := time.Now()
	r, _ := e.startWith(func(c *runner.Config) { c.CatchUpAfter = 1 }, projections.Builtin()...)
	e.waitFor(r, pos)
	caughtUp := time.Now()
	pos = e.emit(domain.OrgStream("big"), md(id(0)), domain.TwoFactorRequirementChanged{OrgID: "big", Required: true, ChangedBy: id(0), At: t0})
	e.waitFor(r, pos)
	t.Logf("%d events: appended in %v, caught up in %v, the last applied live in %v", pos, built.Sub(start).Round(time.Millisecond),
		caughtUp.Sub(built).Round(time.Millisecond), time.Since(caughtUp).Round(time.Millisecond))

	report := allMembers(t, e.db, "big", 300)
	if len(report) != n {
		t.Fatalf("%d rows, want %d", len(report), n)
	}
	enrolled := 0
	for i, row := range report {
		if row.AccountID != id(i) || row.Email != id(i)+"@example.com" {
			t.Fatalf("row %d: %+v", i, row)
		}
		wantOn := i%2 == 0
		if row.TwoFactorEnabled != wantOn || (wantOn && !row.EnrolledAt.Equal(enrolledAt(i))) || (!wantOn && !row.EnrolledAt.IsZero()) {
			t.Fatalf("row %d 2FA: %+v", i, row)
		}
		if (i%3 == 0) != !row.LastLoginAt.IsZero() || (i%3 == 0 && !row.LastLoginAt.Equal(loginAt(i))) {
			t.Fatalf("row %d last sign-in: %+v", i, row)
		}
		if row.TwoFactorEnabled {
			enrolled++
		}
	}
	if enrolled != n/2 {
		t.Fatalf("%d enrolled, want %d", enrolled, n/2)
	}
	// The policy, from the same log: everyone is required by "big".
	all, err := e.store.ReadAll(t.Context(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	idx := command.NewOrgIndex()
	for _, ev := range all {
		if err := idx.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if got, _ := idx.RequiredBy(t.Context(), id(i)); !slices.Equal(got, []string{"big"}) {
			t.Fatalf("%s required by %v", id(i), got)
		}
	}
	// The organisation's activity: its members' rows only.
	rows, _, err := e.db.Activity(t.Context(), projections.ActivityFilter{OrgID: "big", Types: []string{"LoginSucceeded"}, Limit: 500})
	if err != nil || len(rows) != (n+2)/3 {
		t.Fatalf("org activity: %d rows, %v", len(rows), err)
	}
}

// A batch keeps the people's own sign-in times in memory and writes the latest one per
// person at its end (a rebuild carries them further): the table ends as event-by-event
// processing leaves it, also for a sign-in before the person's row exists, out of time order,
// and before the row is removed and made again.
func TestOrgsSignInTimesKeptInABatchEqualLiveOnes(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(projections.Orgs{})
	at := func(i int) time.Time { return testStart.Add(time.Duration(i) * time.Minute) }
	md := func(id string) domain.Metadata { return domain.Metadata{Actor: self(id), SubjectAccountID: id} }
	n := 0
	login := func(account string, i int) uint64 {
		n++
		sid := fmt.Sprintf("s%d", n)
		return e.emit(domain.SessionStream(sid), md(account), domain.LoginSucceeded{AccountID: account, SessionID: sid, Method: domain.MethodPassword, At: at(i)})
	}
	register := func(account string, i int) uint64 {
		return e.emit(domain.AccountStream(account), md(account), domain.AccountRegistered{AccountID: account, Email: account + "@example.com", At: at(i)})
	}
	register("a", 0)
	login("a", 8)
	login("a", 5) // an older time: the later one stays
	login("c", 3) // before c's row exists: nothing to update
	register("c", 4)
	login("a", 9)
	register("d", 5)
	login("d", 6)
	e.emit(domain.AccountStream("d"), md("d"), domain.AccountErased{At: at(7)})
	pos := register("d", 8) // made again after the removal: no sign-in of the first one
	e.waitFor(r, pos)

	want := []string{"a|" + fmt.Sprint(at(9).UnixNano()), "c|0", "d|0"}
	if got := dump(t, e.db, `SELECT account_id, last_login_at FROM org_people`); !slices.Equal(got, want) {
		t.Fatalf("live: %v, want %v", got, want)
	}
	// The whole log in one batch, and in batches of two carried from one to the next.
	for _, batch := range []int{0, 2} {
		if got := e.rebuiltDump(projections.Orgs{}, batch, `SELECT account_id, last_login_at FROM org_people`); !slices.Equal(got, want) {
			t.Errorf("rebuilt in batches of %d: %v, want %v", batch, got, want)
		}
	}
}
