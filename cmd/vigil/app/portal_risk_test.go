package app

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// riskPortalApp starts the portal app with the risk tests' city database and an unusual
// sign-in already judged: bob registered and signed in from London with Firefox, then from
// São Paulo with Chrome seconds later (all three signals). It answers the base URL and
// bob's account id.
func riskPortalApp(t *testing.T) (base, bob string) {
	t.Helper()
	city := filepath.Join(t.TempDir(), "risk-city.mmdb")
	riskCityDB(t, city)
	base = portalApp(t, func(c *Config) { c.GeoIPCityDB = city })
	code, m := postJSON(t, base+"/api/v1/accounts", fmt.Sprintf(`{"email":"bob@example.com","password":%q,"first_name":"Bob","last_name":"Lee"}`, browserPassword),
		"X-Forwarded-For", ipLondon, "User-Agent", uaFirefox)
	bob, _ = m["account_id"].(string)
	if code != 201 {
		t.Fatalf("register bob: %d %v", code, m)
	}
	if code, m, _ := apiLogin(t, base, "bob@example.com", "X-Forwarded-For", ipLondon, "User-Agent", uaFirefox); code != 200 {
		t.Fatalf("login: %d %v", code, m)
	}
	if code, m, _ := apiLogin(t, base, "bob@example.com", "X-Forwarded-For", ipSaoPaulo, "User-Agent", uaChromeMac); code != 200 {
		t.Fatalf("login: %d %v", code, m)
	}
	return base, bob
}

// teamClient is the admin ada (in --admin-emails) with a second factor, signed in to the
// portal; it waits until the detector's record of bob's sign-in shows.
func teamClient(t *testing.T, base string) *portalClient {
	t.Helper()
	admin := newPortalClient(t, base)
	admin.signUp("ada@example.com")
	admin.enableTOTP()
	testwait.Until(t, 10*time.Second, "the risk record to show on /audit/signals", func() (bool, string) {
		a := admin.get("/audit/signals")
		_, tbl, _ := strings.Cut(a.body, `id="activity"`)
		return strings.Contains(a.body, "Unusual sign-in"), fmt.Sprintf("%d %.1500s", a.status, tbl)
	})
	return admin
}

func TestPortalRiskPages(t *testing.T) {
	base, bob := riskPortalApp(t)
	admin := teamClient(t, base)

	a := admin.get("/audit/signals")
	_, rows, _ := strings.Cut(a.body, `<table class="responsive" id="activity">`)
	if a.status != 200 || !strings.Contains(rows, "Unusual sign-in: new device, new country, impossible travel") ||
		!strings.Contains(rows, "São Paulo") || !strings.Contains(rows, bob) || !strings.Contains(rows, `class="risk-badge"`) {
		t.Errorf("signals list: %d %.800s", a.status, rows)
	}
	for q, want := range map[string]bool{
		"?signal=impossible_travel": true, "?kind=signal&account=" + bob: true, "?kind=report": false,
		"?from=2001-01-01&to=2001-01-02": false, "?from=" + time.Now().UTC().Format("2006-01-02"): true,
	} {
		a := admin.get("/audit/signals" + q)
		_, rows, _ := strings.Cut(a.body, `<table class="responsive" id="activity">`)
		if a.status != 200 || strings.Contains(rows, "Unusual sign-in") != want {
			t.Errorf("signals%s: %d, a row %v, want %v", q, a.status, !want, want)
		}
	}
	for q, field := range map[string]string{"?signal=bogus": "signal", "?kind=x": "kind", "?kind=report&signal=new_device": "signal",
		"?account=not%20an%20id": "account", "?from=yesterday": "from", "?from=2026-02-02&to=2026-02-01": "to", "?cursor=zzz": "cursor"} {
		a := admin.get("/audit/signals" + q)
		if a.status != 400 || (field != "cursor" && !strings.Contains(a.body, `id="`+field+`-error"`)) || strings.Contains(a.body, "Unusual sign-in:") {
			t.Errorf("signals%s: %d, want 400 naming %s", q, a.status, field)
		}
	}

	// The sign-in itself is marked on the activity across accounts.
	a = admin.get("/audit?type=LoginSucceeded&account=" + bob)
	if !strings.Contains(a.body, "Unusual: new device, new country, impossible travel") {
		t.Errorf("the sign-in is not marked: %.800s", a.body)
	}

	// The overview: totals, two bar charts and the 2FA share (ada has it, bob not).
	a = admin.get("/audit/overview")
	for _, want := range []string{`id="total-signals">1<`, `id="total-2fa">50%<`, `<svg class="chart"`, `class="bar-signins"`,
		`class="bar-signals"`, `class="bar-twofactor"`, "1 of 2 accounts"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("overview lacks %s: %.1500s", want, a.body)
		}
	}
	if m := regexp.MustCompile(`id="total-signins">(\d+)<`).FindStringSubmatch(a.body); m == nil || m[1] < "3" {
		t.Errorf("sign-ins total: %v", m)
	}
	if a := admin.get("/audit/overview?days=1000"); a.status != 400 || !strings.Contains(a.body, `id="days-error"`) {
		t.Errorf("bad period: %d", a.status)
	}
	// Not for everyone.
	user := newPortalClient(t, base)
	user.signUp("carl@example.com")
	for _, p := range []string{"/audit/signals", "/audit/overview"} {
		if a := user.get(p); a.status != 403 {
			t.Errorf("%s for a plain account: %d", p, a.status)
		}
	}
}

// TestPortalRiskInChromium: bob's own activity page marks the unusual sign-in with a
// visible badge; the security team's list and overview render their rows and charts.
func TestPortalRiskInChromium(t *testing.T) {
	base, _ := riskPortalApp(t)
	admin := teamClient(t, base)
	b := newBrowser(t, base)

	b.signIn("bob@example.com")
	b.open("/activity")
	// São Paulo's sign-in and the record about it (and, once judged, this one).
	if n := b.count("#activity tbody tr .risk-badge"); n < 2 {
		t.Errorf("%d badges", n)
	}
	if rows := b.text("#activity tbody"); !strings.Contains(rows, "Unusual: new device, new country, impossible travel") {
		t.Errorf("São Paulo's sign-in is not marked: %s", rows)
	}
	b.shot("risk-activity")
	b.signOut()

	// The admin's portal session (with its second factor) in the browser.
	u, _ := http.NewRequest(http.MethodGet, base, nil)
	for _, c := range admin.jar.Cookies(u.URL) {
		if _, err := chromedp.Call(b.ctx, network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: base}); err != nil {
			t.Fatal(err)
		}
	}
	b.open("/audit/signals")
	if n := b.count("#activity tbody tr .risk-badge"); n < 1 {
		t.Errorf("badges on the list: %d", n)
	}
	if rows := b.text("#activity tbody"); !strings.Contains(rows, "impossible travel") {
		t.Errorf("list rows: %s", rows)
	}
	b.shot("risk-signals")
	b.submit("filter reports", chromedp.SetValue(chromedp.ID("kind"), "report"), chromedp.Click(chromedp.CSS(`form[action="/audit/signals"] button`)))
	if rows := b.text("#activity tbody"); !strings.Contains(rows, "Nothing matches") {
		t.Errorf("reports only: %s", rows)
	}
	b.open("/audit/overview")
	if n := b.count("#chart-signins svg rect.bar-signins"); n != 14+1 { // a bar a day and the legend's
		t.Errorf("sign-in bars: %d", n)
	}
	if n := b.count("#chart-signals svg rect.bar-signals"); n != 14+1 {
		t.Errorf("signal bars: %d", n)
	}
	if w := b.attr("#chart-2fa svg rect.bar-twofactor", "width"); w == "" || w == "0.0" {
		t.Errorf("2FA bar width %q", w)
	}
	if txt := b.text("#totals"); !strings.Contains(txt, "50%") {
		t.Errorf("totals %q", txt)
	}
	b.shot("risk-overview")
}
