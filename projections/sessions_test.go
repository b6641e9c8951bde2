package projections_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

func started(sid, account string, at time.Time) domain.SessionStarted {
	return domain.SessionStarted{SessionID: sid, AccountID: account, TokenHash: "hash-" + sid, AMR: []string{domain.AMRPassword},
		AAL: domain.AAL1, StartedAt: at, ExpiresAt: at.Add(24 * time.Hour), IdleTimeoutSeconds: 7200}
}

// sessionIDs lists the ids of rows.
func sessionIDs(rows []projections.SessionRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

func TestSessionsReducer(t *testing.T) {
	e, r := startGeo(t, func(geo *geoip.Resolver) projections.Projection { return projections.Sessions{GeoIP: geo} })
	ctx := context.Background()
	t0 := testStart
	mdA := func(ip, ua, client string) domain.Metadata {
		return domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ip, UserAgent: ua, ClientID: client}
	}
	get := func(t *testing.T, id string) (projections.SessionRow, bool) {
		t.Helper()
		row, ok, err := e.db.Session(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return row, ok
	}
	list := func(t *testing.T, account string) []string {
		t.Helper()
		rows, next, err := e.db.ActiveSessions(ctx, account, 0, "")
		if err != nil || next != "" {
			t.Fatalf("ActiveSessions(%q) = next %q, %v", account, next, err)
		}
		return sessionIDs(rows)
	}

	cases := []struct {
		name  string
		apply func() uint64
		check func(t *testing.T)
	}{
		{"ClientRegistered names the client of later sessions", func() uint64 {
			return e.emit(domain.ClientStream("c1"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}},
				domain.ClientRegistered{ClientID: "c1", Name: "Acme CRM", At: t0})
		}, func(t *testing.T) {
			if got := list(t, ""); len(got) != 0 {
				t.Fatalf("sessions after a client registration: %v", got)
			}
		}},
		{"SessionStarted with a client, London, Chrome on macOS, restricted", func() uint64 {
			s := started("s1", "acc-a", t0)
			s.ClientID, s.Restricted = "c1", true
			return e.emit(domain.SessionStream("s1"), mdA(ipLondon, uaChromeMac, "c1"),
				domain.LoginSucceeded{AccountID: "acc-a", SessionID: "s1", Method: domain.MethodPassword,
					AMR: []string{domain.AMRPassword}, AAL: domain.AAL1, ClientID: "c1", At: t0}, s)
		}, func(t *testing.T) {
			row, ok := get(t, "s1")
			want := projections.SessionRow{ID: "s1", AccountID: "acc-a", OS: "macOS", Browser: "Chrome 126", Device: "Desktop",
				IP: ipLondon, Location: &geoip.Location{City: londonCity, Region: "England", Country: "United Kingdom",
					CountryCode: "GB", Latitude: 51.5142, Longitude: -0.0931},
				ASN: 20712, ASOrg: "Andrews & Arnold Ltd", Client: &projections.ClientRef{ID: "c1", Name: "Acme CRM"},
				AAL: domain.AAL1, AMR: []string{"pwd"}, Restricted: true, StartedAt: t0, LastAccessedAt: t0,
				ExpiresAt: t0.Add(24 * time.Hour), IdleExpiresAt: t0.Add(2 * time.Hour), Position: row.Position}
			if !ok || !equalJSON(t, row, want) || row.Position == 0 {
				t.Fatalf("row %s\nwant %s", mustJSON(t, row), mustJSON(t, want))
			}
		}},
		{"SessionStarted through the portal, iPhone, Mountain View", func() uint64 {
			s := started("s2", "acc-a", t0.Add(time.Minute))
			s.ClientID = domain.PortalClientID
			return e.emit(domain.SessionStream("s2"), mdA(ipGoogle, uaSafariIOS, domain.PortalClientID), s)
		}, func(t *testing.T) {
			row, ok := get(t, "s2")
			if !ok || row.OS != "iOS" || row.Browser != "Safari 17" || row.Device != "iPhone" || row.Location == nil ||
				row.Location.City != "Mountain View" || row.ASN != 15169 || row.Client == nil || row.Client.Name != domain.PortalClientName {
				t.Fatalf("row %s", mustJSON(t, row))
			}
		}},
		{"SessionStarted of a delegate with an API client from a private address", func() uint64 {
			s := started("s3", "acc-b", t0.Add(2*time.Minute))
			s.ActorAccountID = "acc-d"
			return e.emit(domain.SessionStream("s3"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorDelegate, ID: "acc-d"},
				SubjectAccountID: "acc-b", IP: ipPrivate, UserAgent: uaCurl}, s)
		}, func(t *testing.T) {
			row, ok := get(t, "s3")
			if !ok || row.ActorAccountID != "acc-d" || row.Location != nil || row.ASN != 0 || row.Client != nil ||
				row.Browser != "curl 8" || row.OS != "" || row.Device != "" || row.IP != ipPrivate {
				t.Fatalf("row %s", mustJSON(t, row))
			}
			if owner, ok, err := e.db.SessionOwner(ctx, "s3"); owner != "acc-b" || !ok || err != nil {
				t.Fatalf("SessionOwner(s3) = %q %v %v", owner, ok, err)
			}
		}},
		{"SessionStarted from an address with a network but no location", func() uint64 {
			return e.emit(domain.SessionStream("s4"), mdA(ipTelstra, uaFirefoxWin, ""), started("s4", "acc-a", t0.Add(3*time.Minute)))
		}, func(t *testing.T) {
			row, ok := get(t, "s4")
			if !ok || row.Location != nil || row.ASN != 1221 || row.ASOrg != "Telstra Pty Ltd" || row.Browser != "Firefox 127" || row.OS != "Windows" {
				t.Fatalf("row %s", mustJSON(t, row))
			}
			if got := list(t, "acc-a"); !slices.Equal(got, []string{"s4", "s2", "s1"}) {
				t.Fatalf("acc-a sessions newest first = %v", got)
			}
			if got := list(t, ""); !slices.Equal(got, []string{"s4", "s3", "s2", "s1"}) {
				t.Fatalf("all sessions newest first = %v", got)
			}
		}},
		{"SessionAccessed moves last_accessed_at", func() uint64 {
			return e.emit(domain.SessionStream("s1"), mdA("", "", "c1"), domain.SessionAccessed{At: t0.Add(5 * time.Minute)})
		}, func(t *testing.T) {
			row, _ := get(t, "s1")
			if !row.LastAccessedAt.Equal(t0.Add(5*time.Minute)) || !row.IdleExpiresAt.Equal(t0.Add(125*time.Minute)) {
				t.Fatalf("after access: %s", mustJSON(t, row))
			}
		}},
		{"SessionAccessed older than the last one does not move it back", func() uint64 {
			return e.emit(domain.SessionStream("s1"), mdA("", "", "c1"), domain.SessionAccessed{At: t0.Add(time.Minute)})
		}, func(t *testing.T) {
			row, _ := get(t, "s1")
			if !row.LastAccessedAt.Equal(t0.Add(5 * time.Minute)) {
				t.Fatalf("late access moved last_accessed_at to %s", row.LastAccessedAt)
			}
		}},
		{"ReauthSucceeded with a second factor lifts the restriction", func() uint64 {
			return e.emit(domain.SessionStream("s1"), mdA(ipLondon, uaChromeMac, "c1"),
				domain.ReauthSucceeded{Method: domain.MethodTOTP, AMR: []string{"pwd", "otp"}, AAL: domain.AAL2, At: t0.Add(6 * time.Minute)})
		}, func(t *testing.T) {
			row, _ := get(t, "s1")
			if row.Restricted || row.AAL != domain.AAL2 || !slices.Equal(row.AMR, []string{"pwd", "otp"}) || !row.LastAccessedAt.Equal(t0.Add(6*time.Minute)) {
				t.Fatalf("after reauth: %s", mustJSON(t, row))
			}
		}},
		{"SessionSignedOut removes the session", func() uint64 {
			return e.emit(domain.SessionStream("s2"), mdA(ipGoogle, uaSafariIOS, domain.PortalClientID),
				domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: t0.Add(7 * time.Minute)})
		}, func(t *testing.T) {
			if _, ok := get(t, "s2"); ok {
				t.Fatal("signed-out session still listed")
			}
			if _, ok, err := e.db.SessionOwner(ctx, "s2"); ok || err != nil {
				t.Fatalf("SessionOwner of a signed-out session: %v %v", ok, err)
			}
		}},
		{"SessionExpired removes the session", func() uint64 {
			return e.emit(domain.SessionStream("s4"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: "acc-a"},
				domain.SessionExpired{Reason: reasons.ExpiredIdle, At: t0.Add(3 * time.Hour)})
		}, func(t *testing.T) {
			if got := list(t, "acc-a"); !slices.Equal(got, []string{"s1"}) {
				t.Fatalf("acc-a sessions after expiry = %v", got)
			}
		}},
		{"events of an ended session do not bring it back", func() uint64 {
			return e.emit(domain.SessionStream("s2"), mdA("", "", ""), domain.SessionAccessed{At: t0.Add(8 * time.Minute)},
				domain.ReauthSucceeded{Method: domain.MethodPassword, AMR: []string{"pwd"}, AAL: domain.AAL1, At: t0.Add(8 * time.Minute)})
		}, func(t *testing.T) {
			if got := list(t, ""); !slices.Equal(got, []string{"s3", "s1"}) {
				t.Fatalf("sessions = %v", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.waitFor(r, c.apply())
			c.check(t)
		})
	}

	t.Run("paging", func(t *testing.T) {
		first, next, err := e.db.ActiveSessions(ctx, "", 1, "")
		if err != nil || !slices.Equal(sessionIDs(first), []string{"s3"}) || next == "" {
			t.Fatalf("page 1 = %v %q %v", sessionIDs(first), next, err)
		}
		second, next2, err := e.db.ActiveSessions(ctx, "", 1, next)
		if err != nil || !slices.Equal(sessionIDs(second), []string{"s1"}) || next2 != "" {
			t.Fatalf("page 2 = %v %q %v", sessionIDs(second), next2, err)
		}
		if _, _, err := e.db.ActiveSessions(ctx, "", 1, "bogus!"); !errors.Is(err, projections.ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
		if _, _, err := e.db.Activity(ctx, projections.ActivityFilter{Cursor: next}); !errors.Is(err, projections.ErrBadCursor) {
			t.Fatalf("a sessions cursor accepted by the activity query: %v", err)
		}
	})
}
