package projections_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

func TestDeviceFamily(t *testing.T) {
	for ua, want := range map[string]string{
		uaChromeMac:  "Chrome on macOS",
		uaSafariIOS:  "Safari on iOS",
		uaFirefoxWin: "Firefox on Windows",
		uaCurl:       "curl",
		"":           "",
		// A browser's update is the same device.
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36": "Chrome on macOS",
	} {
		if got := projections.DeviceFamily(ua); got != want {
			t.Errorf("DeviceFamily(%q) = %q, want %q", ua, got, want)
		}
	}
}

// The history as it stood before a sign-in: devices and countries of the registration and
// of the sign-ins within the window, the newest located sign-in; delegates' acting sessions
// are not the holder's; an erasure forgets the account.
func TestSignInHistory(t *testing.T) {
	e, r := startGeo(t, func(g *geoip.Resolver) projections.Projection { return projections.SignIns{GeoIP: g} })
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	md := func(ip, ua string) domain.Metadata {
		return domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ip, UserAgent: ua}
	}
	login := func(sid string, at time.Time, m domain.Metadata) uint64 {
		return e.emit(domain.SessionStream(sid), m, domain.LoginSucceeded{AccountID: "acc-a", SessionID: sid,
			Method: domain.MethodPassword, AMR: []string{"pwd"}, AAL: domain.AAL1, At: at})
	}
	reg := e.emit(domain.AccountStream("acc-a"), md(ipSweden, uaFirefoxWin), domain.AccountRegistered{AccountID: "acc-a",
		Email: "a@example.com", At: t0})
	old := login("s1", t0.Add(time.Hour), md(ipGoogle, uaSafariIOS))                    // US, iPhone
	recent := login("s2", t0.Add(100*24*time.Hour), md(ipLondon, uaChromeMac))          // GB, Mac
	unknown := login("s3", t0.Add(100*24*time.Hour+time.Minute), md(ipTelstra, uaCurl)) // not located
	delegate := domain.Metadata{Actor: domain.Actor{Type: domain.ActorDelegate, ID: "acc-d"}, IP: ipGoogle, UserAgent: uaCurl}
	acting := e.emit(domain.SessionStream("s4"), delegate, domain.LoginSucceeded{AccountID: "acc-a", SessionID: "s4",
		Method: domain.MethodDelegation, At: t0.Add(101 * 24 * time.Hour)})
	e.waitFor(r, acting)

	cur, ok, err := e.db.SignInAt(ctx, unknown)
	if err != nil || !ok || cur.Registration || cur.SessionID != "s3" || cur.Device != "curl" || cur.Location != nil || cur.AccountID != "acc-a" {
		t.Fatalf("SignInAt(unknown) = %+v %v %v", cur, ok, err)
	}
	if _, ok, _ := e.db.SignInAt(ctx, acting); ok {
		t.Error("a delegate's acting session is in the holder's history")
	}
	since := cur.Time.Add(-90 * 24 * time.Hour)
	h, err := e.db.SignInHistory(ctx, "acc-a", unknown, since)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(h.Devices)
	slices.Sort(h.Countries)
	// The registration counts whatever its age; the sign-in of 100 days ago does not.
	if !slices.Equal(h.Devices, []string{"Chrome on macOS", "Firefox on Windows"}) || !slices.Equal(h.Countries, []string{"GB", "SE"}) {
		t.Errorf("history before %d: devices %v countries %v", unknown, h.Devices, h.Countries)
	}
	if p := h.Previous; p == nil || p.Position != recent || p.Location == nil || p.Location.CountryCode != "GB" || p.Location.Latitude != 51.5142 {
		t.Errorf("previous located sign-in = %+v", p)
	}
	// Before the first sign-in: only the registration, and no located sign-in.
	h, err = e.db.SignInHistory(ctx, "acc-a", old, t0.Add(-90*24*time.Hour))
	if err != nil || !slices.Equal(h.Devices, []string{"Firefox on Windows"}) || !slices.Equal(h.Countries, []string{"SE"}) || h.Previous != nil {
		t.Errorf("history before the first sign-in: %+v %v", h, err)
	}
	if _, ok, _ := e.db.SignInAt(ctx, reg); !ok {
		t.Error("the registration is not in the history")
	}

	erased := e.emit(domain.AccountStream("acc-a"), md("", ""), domain.AccountErased{At: t0.Add(200 * 24 * time.Hour)})
	e.waitFor(r, erased)
	if h, err := e.db.SignInHistory(ctx, "acc-a", erased, time.Time{}); err != nil || len(h.Devices) != 0 || h.Previous != nil {
		t.Errorf("after the erasure: %+v %v", h, err)
	}
}
