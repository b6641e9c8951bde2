package projections_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/projections"
)

// TestAccountErasedForgetsEveryReadModel: after AccountErased every built-in read model has
// forgotten the account (its sessions, activity, membership and email), the rows where it
// acted for another account keep the fact but not its address or place, and the other
// account is untouched.
func TestAccountErasedForgetsEveryReadModel(t *testing.T) {
	e := newEnv(t)
	geo := writeGeoDBs(t, t.TempDir())
	r, _ := e.start(projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo})...)
	ctx := context.Background()
	t0 := testStart
	md := func(acc, actor, ip string) domain.Metadata {
		return domain.Metadata{Actor: self(actor), SubjectAccountID: acc, IP: ip, UserAgent: uaChromeMac}
	}
	for _, acc := range []string{"gone", "kept"} {
		e.emit(domain.AccountStream(acc), md(acc, acc, ipLondon),
			domain.AccountRegistered{AccountID: acc, Email: acc + "@example.com", FirstName: "F", LastName: "L", At: t0})
		sid := "s-" + acc
		e.emit(domain.SessionStream(sid), md(acc, acc, ipLondon),
			domain.LoginSucceeded{AccountID: acc, SessionID: sid, Method: domain.MethodPassword,
				AMR: []string{domain.AMRPassword}, AAL: domain.AAL1, At: t0}, started(sid, acc, t0))
	}
	e.emit(domain.OrgStream("o"), md("kept", "kept", ipLondon),
		domain.OrgCreated{OrgID: "o", Name: "Org", At: t0},
		domain.MemberAdded{OrgID: "o", AccountID: "kept", Role: domain.OrgRoleAdmin, At: t0},
		domain.MemberAdded{OrgID: "o", AccountID: "gone", Role: domain.OrgRoleMember, At: t0})
	// "gone" acts for "kept" (a delegate's session) from Sweden.
	acting := started("s-acting", "kept", t0)
	acting.ActorAccountID = "gone"
	e.emit(domain.SessionStream("s-acting"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorDelegate, ID: "gone"},
		SubjectAccountID: "kept", IP: ipSweden, UserAgent: uaFirefoxWin}, acting)
	e.emit(domain.AccountStream("kept"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorDelegate, ID: "gone"},
		SubjectAccountID: "kept", IP: ipSweden, UserAgent: uaFirefoxWin}, domain.NameChanged{FirstName: "K", LastName: "P", At: t0})
	pos := e.emit(domain.AccountStream("gone"), md("gone", "gone", ipLondon), domain.AccountErased{At: t0})
	e.waitFor(r, pos)

	if rows, _, err := e.db.ActiveSessions(ctx, "gone", 0, ""); err != nil || len(rows) != 0 {
		t.Errorf("sessions of the erased account: %v, %v", sessionIDs(rows), err)
	}
	if rows, _, err := e.db.ActiveSessions(ctx, "kept", 0, ""); err != nil || strings.Join(sessionIDs(rows), ",") != "s-kept" {
		t.Errorf("sessions of the other account: %v, %v (want s-kept only: the erased delegate's session goes)", sessionIDs(rows), err)
	}
	if rows, _, err := e.db.Activity(ctx, projections.ActivityFilter{AccountID: "gone"}); err != nil || len(rows) != 0 {
		t.Errorf("activity of the erased account: %d rows, %v", len(rows), err)
	}
	kept, _, err := e.db.Activity(ctx, projections.ActivityFilter{AccountID: "kept"})
	if err != nil || len(kept) < 3 {
		t.Fatalf("activity of the other account: %d rows, %v", len(kept), err)
	}
	for _, row := range kept {
		if row.IP == ipSweden || (row.Location != nil && row.Location.Country == "Sweden") {
			t.Errorf("the erased delegate's address stays in %s: %+v", row.Type, row)
		}
		if row.Type == domain.EventNameChanged && row.IP != "" {
			t.Errorf("the delegate's row keeps an address: %q", row.IP)
		}
	}
	members, _, err := e.db.OrgMembers(ctx, "o", 0, "")
	if err != nil || len(members) != 1 || members[0].AccountID != "kept" {
		t.Errorf("members after erasure: %+v, %v", members, err)
	}
	if st, ok, err := e.db.Security(ctx, "gone"); err != nil || (ok && (len(st.TOTPDevices) != 0 || len(st.Passkeys) != 0)) {
		t.Errorf("security state of the erased account: %+v %v %v", st, ok, err)
	}
	var n int
	if err := e.db.Read().QueryRowContext(ctx, `SELECT count(*) FROM org_people WHERE email LIKE 'gone@%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the erased email stays in org_people: %d, %v", n, err)
	}
}
