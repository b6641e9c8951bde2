package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/projections"
)

// TestRebuildInMemoryRowsEqualLive covers the rows that projections keep in memory during a
// batch (sessions and their changes, activity rows and sessions, sign-ins, client names, the
// stream catalogue and the security state) and carry from batch to batch in a rebuild: a
// history where a session is accessed and re-authenticated before and after batch ends, a
// client is renamed between two sessions, activity times go backwards past many rows, a
// risk signal marks a sign-in of the same batch, and an account is erased while its rows are
// still in memory. A rebuild in batches of 1, 2, 3, 5 and all events, carrying or writing the
// rows at each batch's end, equals the live runner's read models.
func TestRebuildInMemoryRowsEqualLive(t *testing.T) {
	e := newEnv(t)
	geo := writeGeoDBs(t, t.TempDir())
	builtin := func() []projections.Projection { return projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo}) }
	r, _ := e.start(builtin()...)
	ctx := context.Background()
	t0 := testStart
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	md := func(acc, ip string) domain.Metadata {
		return domain.Metadata{Actor: self(acc), SubjectAccountID: acc, IP: ip, UserAgent: uaChromeMac, ClientID: "c1"}
	}
	anon := func(ip string) domain.Metadata { return domain.Metadata{IP: ip, UserAgent: uaFirefoxWin} }

	e.emit(domain.ClientStream("c1"), anon(ipLondon), domain.ClientRegistered{ClientID: "c1", Name: "Old name", At: at(0)})
	for _, acc := range []string{"a", "b"} {
		e.emit(domain.AccountStream(acc), md(acc, ipLondon),
			domain.AccountRegistered{AccountID: acc, Email: acc + "@example.com", FirstName: "F", LastName: "L", At: at(1)})
	}
	login := func(sid, acc, ip string, min int) uint64 {
		s := started(sid, acc, at(min))
		s.ClientID, s.Restricted = "c1", true
		return e.emit(domain.SessionStream(sid), md(acc, ip),
			domain.LoginSucceeded{AccountID: acc, SessionID: sid, Method: domain.MethodPassword, AMR: []string{domain.AMRPassword},
				AAL: domain.AAL1, At: at(min)}, s)
	}
	loginPos := login("s1", "a", ipLondon, 2)
	for i, min := range []int{5, 4, 9, 7} {
		e.emit(domain.SessionStream("s1"), domain.Metadata{IP: ipLondon}, domain.SessionAccessed{At: at(min)})
		if i == 1 {
			e.emit(domain.SessionStream("s1"), md("a", ipLondon),
				domain.ReauthSucceeded{Method: domain.MethodPassword, AMR: []string{domain.AMRPassword}, AAL: domain.AAL1, At: at(8)})
		}
	}
	// Failed sign-ins recorded late: their times go back past the rows before them.
	for i := range 12 {
		e.emit(domain.AccountStream("a"), md("a", ipSweden), domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials,
			Stage: domain.StagePassword, Method: domain.MethodPassword, At: at(30 - 2*i)})
	}
	loginEvents, err := e.store.ReadAll(ctx, loginPos-2, 1)
	if err != nil || len(loginEvents) != 1 || loginEvents[0].Type != domain.EventLoginSucceeded {
		t.Fatalf("the sign-in: %v, %v", loginEvents, err)
	}
	e.emit(domain.AccountStream("a"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem, ID: "risk"}},
		domain.SignInRiskDetected{SessionID: "s1", LoginEventID: loginEvents[0].ID, Signals: []string{domain.SignalNewCountry},
			Country: "United Kingdom", At: at(31)})
	e.emit(domain.ClientStream("c1"), anon(ipLondon), domain.ClientRegistered{ClientID: "c1", Name: "New name", At: at(31)})
	login("s2", "a", ipGoogle, 32)
	login("s3", "b", ipSweden, 33)
	e.emit(domain.SessionStream("s3"), md("b", ipSweden), domain.SessionAccessed{At: at(34)})
	e.emit(domain.SessionStream("s1"), md("a", ipLondon),
		domain.ReauthSucceeded{Method: domain.MethodTOTP, AMR: []string{domain.AMRPassword, "otp"}, AAL: domain.AAL2, At: at(35)})
	e.emit(domain.SessionStream("s2"), md("a", ipGoogle), domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: at(36)})
	e.emit(domain.AccountStream("b"), md("b", ipSweden), domain.AccountErased{At: at(37)})
	e.emit(domain.SessionStream("s1"), domain.Metadata{}, domain.SessionExpired{Reason: reasons.ExpiredIdle, At: at(40)})
	login("s4", "a", ipTelstra, 41)
	e.emit(domain.SessionStream("s4"), md("a", ipTelstra), domain.SessionAccessed{At: at(42)})
	head := e.emit(domain.SessionStream("s4"), md("a", ipTelstra),
		domain.ReauthSucceeded{Method: domain.MethodTOTP, AMR: []string{domain.AMRPassword, "otp"}, AAL: domain.AAL2, At: at(43)})
	e.waitFor(r, head)

	for _, batch := range []int{1, 2, 3, 5, 1000} {
		for _, carry := range []int{0, 1} {
			t.Run(fmt.Sprintf("batch %d carry %d", batch, carry), func(t *testing.T) {
				if carry > 0 {
					defer projections.SetCarryLimit(carry)()
				}
				res, err := projections.Rebuild(ctx, projections.RebuildConfig{Dir: t.TempDir(), Log: e.store,
					Projections: builtin(), BatchSize: batch, Logger: quiet})
				if err != nil || res.Position != head {
					t.Fatalf("Rebuild = %+v, %v; want position %d", res, err, head)
				}
				rebuilt, err := projections.Open(projections.Config{Path: res.Path, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				defer rebuilt.Close()
				compareTables(t, e.db, rebuilt)
			})
		}
	}
	// The history reached what it meant to: s4 is the only session left (its restriction
	// lifted by the second factor), the risk signal
	// marks the sign-in, the client's new name is on s2's rows, b is gone.
	if rows := dump(t, e.db, `SELECT id || ' ' || client_name || ' ' || restricted FROM sessions`); fmt.Sprint(rows) != "[s4 New name 0]" {
		t.Errorf("sessions %v", rows)
	}
	if rows := dump(t, e.db, `SELECT json_extract(details, '$.signals') FROM activity WHERE id = '`+loginEvents[0].ID+`'`); fmt.Sprint(rows) != `[["new_country"]]` {
		t.Errorf("the sign-in's signals: %v", rows)
	}
	if rows := dump(t, e.db, `SELECT DISTINCT client_name FROM activity WHERE type = 'SessionSignedOut'`); fmt.Sprint(rows) != "[New name]" {
		t.Errorf("client of s2's sign-out: %v", rows)
	}
	if rows := dump(t, e.db, `SELECT COUNT(*) FROM activity WHERE account_id = 'b'`); fmt.Sprint(rows) != "[0]" {
		t.Errorf("b's activity rows: %v", rows)
	}
	if rows := dump(t, e.db, `SELECT COUNT(*) FROM activity WHERE time_min < time - 20 * 60 * 1000000000`); fmt.Sprint(rows) == "[0]" {
		t.Errorf("no row's time_min was lowered by the late failures")
	}
}
