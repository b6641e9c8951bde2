package projections_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/projections"
)

func TestParseUserAgent(t *testing.T) {
	cases := []struct {
		ua   string
		want projections.Agent
	}{
		{uaChromeMac, projections.Agent{Browser: "Chrome 126", OS: "macOS", Device: "Desktop", FormFactor: "desktop", IsBrowser: true,
			Details: "Chrome 126 on macOS (desktop)"}},
		{uaSafariIOS, projections.Agent{Browser: "Safari 17", OS: "iOS", Device: "iPhone", FormFactor: "mobile", IsBrowser: true,
			Details: "Safari 17 on iOS (iPhone)"}},
		{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
			projections.Agent{Browser: "Safari 17", OS: "iOS", Device: "iPad", FormFactor: "tablet", IsBrowser: true, Details: "Safari 17 on iOS (iPad)"}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
			projections.Agent{Browser: "Chrome 126", OS: "Android", Device: "Pixel 8", FormFactor: "mobile", IsBrowser: true,
				Details: "Chrome 126 on Android (Pixel 8)"}},
		{uaFirefoxWin, projections.Agent{Browser: "Firefox 127", OS: "Windows", Device: "Desktop", FormFactor: "desktop", IsBrowser: true,
			Details: "Firefox 127 on Windows (desktop)"}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
			projections.Agent{Browser: "Edge 126", OS: "Windows", Device: "Desktop", FormFactor: "desktop", IsBrowser: true,
				Details: "Edge 126 on Windows (desktop)"}},
		{uaCurl, projections.Agent{Browser: "curl 8", Details: "curl 8.5.0"}},
		{"python-requests/2.32.3", projections.Agent{Browser: "python-requests 2", Details: "python-requests 2.32.3"}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			projections.Agent{Browser: "Googlebot 2", FormFactor: "bot", Details: "Googlebot 2.1 (bot)"}},
		{"", projections.Agent{}},
		{"garbage (with; parentheses)", projections.Agent{}},
		{strings.Repeat("x", 5000), projections.Agent{}},
	}
	for _, c := range cases {
		got := projections.ParseUserAgent(c.ua)
		if got != c.want {
			t.Errorf("ParseUserAgent(%.60q) = %+v\nwant %+v", c.ua, got, c.want)
		}
		if again := projections.ParseUserAgent(c.ua); again != got {
			t.Errorf("ParseUserAgent(%.60q) is not stable: %+v then %+v", c.ua, got, again)
		}
		wantType := "api"
		if c.want.IsBrowser {
			wantType = "browser"
		}
		if got.AccessType() != wantType {
			t.Errorf("AccessType(%.60q) = %s", c.ua, got.AccessType())
		}
	}
}

func TestBuiltin(t *testing.T) {
	var names []string
	for _, p := range projections.Builtin() {
		names = append(names, p.Name())
	}
	if !slices.Equal(names, []string{"streams", "sessions", "activity", "security", "orgs", "signins"}) {
		t.Fatalf("Builtin() = %v", names)
	}
	// Without GeoIP the projections run and simply locate nothing.
	e := newEnv(t)
	r, _ := e.start(projections.Builtin()...)
	pos := e.emit("session-s1", mdNoGeo, started("s1", "acc-a", testStart))
	e.waitFor(r, pos)
	rows, _, err := e.db.ActiveSessions(t.Context(), "acc-a", 10, "")
	if err != nil || len(rows) != 1 || rows[0].Location != nil || rows[0].IP != ipLondon {
		t.Fatalf("sessions without GeoIP: %+v %v", rows, err)
	}
}

var mdNoGeo = domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ipLondon, UserAgent: uaChromeMac}
