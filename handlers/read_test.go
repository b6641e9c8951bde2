package handlers_test

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/geoip/geoiptest"
	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// User agents of the tests.
const (
	uaChromeMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	uaFirefoxWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
	uaCurl       = "curl/8.5.0"
)

// The test GeoIP databases: 81.2.69.160/27 is London, GB, in AS 20712; 89.160.20.128/25
// is Linköping, SE, in AS 29518.
const (
	ipLondon = "81.2.69.160"
	ipSweden = "89.160.20.130"
)

// withGeoIP writes the test City and ASN databases and configures them.
func withGeoIP(t *testing.T) envOption {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteCityDB(t, city, []geoiptest.CityEntry{
		{Network: "81.2.69.160/27", City: "London", Region: "England", Country: "United Kingdom", CountryCode: "GB", Lat: 51.5142, Lon: -0.0931},
		{Network: "89.160.20.128/25", City: "Linköping", Region: "Östergötland County", Country: "Sweden", CountryCode: "SE", Lat: 58.4167, Lon: 15.6167},
	})
	geoiptest.WriteASNDB(t, asn, []geoiptest.ASNEntry{
		{Network: "81.2.69.0/24", ASN: 20712, Org: "Andrews & Arnold Ltd"},
		{Network: "89.160.20.0/24", ASN: 29518, Org: "Bredband2 AB"},
	})
	return func(c *handlertest.Config) { c.GeoIPCityDB, c.GeoIPASNDB = city, asn }
}

// withTrustedProxies believes the X-Forwarded-For of the test client (127.0.0.1).
func withTrustedProxies() envOption {
	return func(c *handlertest.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }
}

// loginWith signs in with the password and the request headers h; it returns the session
// and the answer's Vigil-Position.
func (e *env) loginWith(email string, h hdr) (session, string) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/login", map[string]string{"email": email, "password": testPassword}, h)
	m := e.expect(r, 200, "")
	if m["status"] != "authenticated" {
		e.t.Fatalf("login status %v: %s", m["status"], r.body)
	}
	return e.sessionFrom(r, m), r.header.Get("Vigil-Position")
}

// list GETs a page and returns its items and next_cursor, checking the page's shape.
func (e *env) list(path string, h hdr) ([]map[string]any, string) {
	e.t.Helper()
	r := e.do("GET", path, nil, h)
	m := e.expect(r, 200, "")
	raw, ok := m["items"].([]any)
	if !ok {
		e.t.Fatalf("GET %s: no items array: %s", path, r.body)
	}
	for k := range m {
		if k != "items" && k != "next_cursor" {
			e.t.Errorf("GET %s: unexpected member %q", path, k)
		}
	}
	next := ""
	if v, ok := m["next_cursor"]; ok {
		next, _ = v.(string)
		if next == "" {
			e.t.Errorf("GET %s: empty next_cursor (it must be absent on the last page): %s", path, r.body)
		}
	}
	items := make([]map[string]any, len(raw))
	for i, x := range raw {
		items[i] = x.(map[string]any)
	}
	return items, next
}

// all follows next_cursor from path (which must have a query) and returns every item.
func (e *env) all(path string, h hdr) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	items, next := e.list(path, h)
	out = append(out, items...)
	for n := 0; next != ""; n++ {
		if n > 100 {
			e.t.Fatalf("GET %s: too many pages", path)
		}
		items, next = e.list(path+"&cursor="+url.QueryEscape(next), h)
		out = append(out, items...)
	}
	return out
}

// expectBad sends GETs that must answer 400 invalid_request and write nothing.
func (e *env) expectBad(h hdr, paths ...string) {
	e.t.Helper()
	before := e.head()
	for _, p := range paths {
		r := e.do("GET", p, nil, h)
		if r.code != 400 || r.json(e.t)["code"] != "invalid_request" {
			e.t.Errorf("GET %s: %d %s, want 400 invalid_request", p, r.code, r.body)
		}
	}
	if h := e.head(); h != before {
		e.t.Errorf("refused reads wrote to the log: %d -> %d", before, h)
	}
}

func types(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["type"].(string))
	}
	return out
}

func TestMySessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	e.register("bob@example.com")
	mac, _ := e.loginWith("ann@example.com", hdr{"User-Agent": uaChromeMac})
	e.clk.Advance(time.Minute)
	win, pos := e.loginWith("ann@example.com", hdr{"User-Agent": uaFirefoxWin, "X-Vigil-Client": "portal"})
	bob, _ := e.loginWith("bob@example.com", hdr{"User-Agent": uaCurl})

	e.expect(e.do("GET", "/api/v1/me/sessions", nil, nil), 401, "unauthenticated")
	items, next := e.list("/api/v1/me/sessions?min_position="+pos, mac.auth())
	if len(items) != 2 || next != "" {
		t.Fatalf("sessions %v next %q", items, next)
	}
	want := []string{"browser", "client", "current", "device", "expires_at", "id", "ip", "last_accessed_at", "location", "os", "started_at"}
	if got := keysOf(items[0]); !slices.Equal(got, want) {
		t.Errorf("session fields %v, want %v", got, want)
	}
	// Newest first: the Windows session, then the caller's own.
	w, m := items[0], items[1]
	if w["id"] != win.id || w["current"] != false || w["os"] != "Windows" || w["browser"] != "Firefox 127" || w["device"] != "Desktop" ||
		w["ip"] != "127.0.0.1" || w["location"] != nil || w["started_at"] != "2026-03-02T09:01:01Z" || w["expires_at"] != "2026-03-02T21:01:01Z" {
		t.Errorf("windows session %v", w)
	}
	if c, _ := w["client"].(map[string]any); c["id"] != "portal" || c["name"] != "Vigil portal" {
		t.Errorf("client %v", w["client"])
	}
	if m["id"] != mac.id || m["current"] != true || m["os"] != "macOS" || m["browser"] != "Chrome 126" || m["client"] != nil ||
		m["started_at"] != "2026-03-02T09:00:01Z" {
		t.Errorf("own session %v", m)
	}
	// The last access this instance knows counts (the table records one a minute at most).
	if m["last_accessed_at"] != "2026-03-02T09:01:01Z" {
		t.Errorf("last_accessed_at %v", m["last_accessed_at"])
	}
	// From the other session, current moves; Bob sees only his own.
	items, _ = e.list("/api/v1/me/sessions", win.auth())
	if len(items) != 2 || items[0]["current"] != true || items[1]["current"] != false {
		t.Errorf("sessions seen from the other one %v", items)
	}
	items, _ = e.list("/api/v1/me/sessions", bob.auth())
	if len(items) != 1 || items[0]["id"] != bob.id || items[0]["os"] != "" || items[0]["browser"] != "curl 8" || items[0]["device"] != "" {
		t.Errorf("bob's sessions %v", items)
	}

	// Paging and the limit rules.
	items, next = e.list("/api/v1/me/sessions?limit=1", mac.auth())
	if len(items) != 1 || items[0]["id"] != win.id || next == "" {
		t.Fatalf("first page %v %q", items, next)
	}
	items, next2 := e.list("/api/v1/me/sessions?limit=1&cursor="+url.QueryEscape(next), mac.auth())
	if len(items) != 1 || items[0]["id"] != mac.id || next2 != "" {
		t.Errorf("second page %v %q", items, next2)
	}
	if items, _ := e.list("/api/v1/me/sessions?limit=600", mac.auth()); len(items) != 2 {
		t.Errorf("limit=600: %v", items)
	}
	e.expectBad(mac.auth(), "/api/v1/me/sessions?limit=0", "/api/v1/me/sessions?limit=-1", "/api/v1/me/sessions?limit=abc",
		"/api/v1/me/sessions?limit=", "/api/v1/me/sessions?limit=1.5", "/api/v1/me/sessions?cursor=nonsense",
		"/api/v1/me/sessions?cursor="+strings.Repeat("A", 600), "/api/v1/me/sessions?min_position=x")

	// Sign the other one out: it leaves the list.
	r := e.do("DELETE", "/api/v1/me/sessions/"+win.id, nil, mac.auth())
	e.expect(r, 204, "")
	items, _ = e.list("/api/v1/me/sessions?min_position="+r.header.Get("Vigil-Position"), mac.auth())
	if len(items) != 1 || items[0]["id"] != mac.id {
		t.Errorf("after signing the other out %v", items)
	}

	// A session past its idle timeout is not listed, even before the sweeper records it.
	e.clk.Advance(2*time.Hour + time.Second)
	fresh, _ := e.loginWith("ann@example.com", nil)
	items, _ = e.list("/api/v1/me/sessions", fresh.auth())
	if len(items) != 1 || items[0]["id"] != fresh.id || items[0]["current"] != true {
		t.Errorf("sessions after the idle timeout %v", items)
	}
}

func TestMySessionsRestricted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *handlertest.Config) { c.TwoFactorPolicy = requireAll{} })
	e.register("ann@example.com")
	r := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil)
	s := e.sessionFrom(r, e.expect(r, 200, ""))
	e.expect(e.do("GET", "/api/v1/me/sessions", nil, s.auth()), 403, "enrollment_required")
	e.expect(e.do("GET", "/api/v1/me/activity", nil, s.auth()), 403, "enrollment_required")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, s.auth()), 403, "enrollment_required")
}

func TestMyActivity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ann := e.register("ann@example.com")
	e.register("bob@example.com")
	e.clk.Advance(time.Minute) // 09:01:01
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": "wrong-password-123"},
		hdr{"User-Agent": uaChromeMac}), 401, "invalid_credentials")
	e.clk.Advance(time.Minute) // 09:02:01
	s, pos := e.loginWith("ann@example.com", hdr{"User-Agent": uaCurl})
	bob, _ := e.loginWith("bob@example.com", nil)

	e.expect(e.do("GET", "/api/v1/me/activity", nil, nil), 401, "unauthenticated")
	items, next := e.list("/api/v1/me/activity?min_position="+pos, s.auth())
	if next != "" || !slices.Equal(types(items), []string{"LoginSucceeded", "LoginFailed", "AccountRegistered"}) {
		t.Fatalf("activity %v", items)
	}
	want := []string{"access_details", "access_type", "actor_account_id", "as_org", "asn", "client", "description", "details",
		"id", "ip", "location", "outcome", "position", "time", "type"}
	if got := keysOf(items[0]); !slices.Equal(got, want) {
		t.Errorf("activity fields %v, want %v", got, want)
	}
	ok, failed, reg := items[0], items[1], items[2]
	if ok["outcome"] != "success" || ok["time"] != "2026-03-02T09:02:01Z" || ok["ip"] != "127.0.0.1" || ok["location"] != nil ||
		ok["asn"] != nil || ok["access_type"] != "api" || ok["access_details"] != "curl 8.5.0" || ok["client"] != nil ||
		ok["actor_account_id"] != nil || ok["details"].(map[string]any)["session_id"] != s.id {
		t.Errorf("sign-in %v", ok)
	}
	if failed["outcome"] != "failure" || failed["time"] != "2026-03-02T09:01:01Z" || failed["access_type"] != "browser" ||
		failed["access_details"] != "Chrome 126 on macOS (desktop)" || failed["details"].(map[string]any)["reason"] != "invalid_credentials" {
		t.Errorf("failed sign-in %v", failed)
	}
	if reg["outcome"] != "success" || reg["time"] != "2026-03-02T09:00:01Z" {
		t.Errorf("registration %v", reg)
	}
	if !(ok["position"].(float64) > failed["position"].(float64) && failed["position"].(float64) > reg["position"].(float64)) {
		t.Errorf("not newest first: %v", items)
	}
	// Bob's log holds only Bob's.
	for _, it := range e.all("/api/v1/me/activity?limit=500", bob.auth()) {
		if d, _ := it["details"].(map[string]any); d["session_id"] == s.id {
			t.Errorf("bob sees ann's activity %v", it)
		}
	}
	_ = ann

	// Paging: limit 1 walks the three entries in order.
	var walked []string
	items, next = e.list("/api/v1/me/activity?limit=1", s.auth())
	walked = append(walked, types(items)...)
	for next != "" {
		items, next = e.list("/api/v1/me/activity?limit=1&cursor="+url.QueryEscape(next), s.auth())
		walked = append(walked, types(items)...)
	}
	if !slices.Equal(walked, []string{"LoginSucceeded", "LoginFailed", "AccountRegistered"}) {
		t.Errorf("paged %v", walked)
	}

	// The type filter.
	items, _ = e.list("/api/v1/me/activity?type=LoginFailed", s.auth())
	if !slices.Equal(types(items), []string{"LoginFailed"}) {
		t.Errorf("type=LoginFailed %v", types(items))
	}
	items, _ = e.list("/api/v1/me/activity?type=LoginFailed,%20LoginSucceeded,", s.auth())
	if !slices.Equal(types(items), []string{"LoginSucceeded", "LoginFailed"}) {
		t.Errorf("two types %v", types(items))
	}
	if items, _ = e.list("/api/v1/me/activity?type=OrgCreated", s.auth()); len(items) != 0 {
		t.Errorf("type=OrgCreated (an API.md type not yet written) %v", items)
	}
	// from and to, inclusive.
	items, _ = e.list("/api/v1/me/activity?from=2026-03-02T09:01:01Z", s.auth())
	if !slices.Equal(types(items), []string{"LoginSucceeded", "LoginFailed"}) {
		t.Errorf("from %v", types(items))
	}
	items, _ = e.list("/api/v1/me/activity?to=2026-03-02T09:01:01Z", s.auth())
	if !slices.Equal(types(items), []string{"LoginFailed", "AccountRegistered"}) {
		t.Errorf("to %v", types(items))
	}
	items, _ = e.list("/api/v1/me/activity?from=2026-03-02T10:01:01%2B01:00&to=2026-03-02T09:01:30Z&type=LoginFailed", s.auth())
	if !slices.Equal(types(items), []string{"LoginFailed"}) {
		t.Errorf("from, to and type %v", types(items))
	}

	e.expectBad(s.auth(),
		"/api/v1/me/activity?limit=0", "/api/v1/me/activity?limit=-1", "/api/v1/me/activity?limit=abc",
		"/api/v1/me/activity?cursor=abc", "/api/v1/me/activity?type=loginfailed", "/api/v1/me/activity?type=Bogus",
		"/api/v1/me/activity?type=LoginFailed,Nope", "/api/v1/me/activity?from=yesterday", "/api/v1/me/activity?to=2026-03-02",
		"/api/v1/me/activity?from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z")
	// A sessions cursor is no activity cursor.
	_, sc := e.list("/api/v1/me/sessions?limit=1", s.auth())
	if sc != "" {
		e.expectBad(s.auth(), "/api/v1/me/activity?cursor="+url.QueryEscape(sc))
	}
}

// TestActivityLimitAbove500 checks that a limit above 500 answers pages of 500.
func TestActivityLimitAbove500(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	var pos string
	for i := range 505 {
		r := e.do("PATCH", "/api/v1/me", map[string]any{"profile": map[string]any{"city": fmt.Sprintf("City %d", i)}}, s.auth())
		e.expect(r, 200, "")
		pos = r.header.Get("Vigil-Position")
	}
	// 505 ProfileUpdated, LoginSucceeded and AccountRegistered.
	items, next := e.list("/api/v1/me/activity?limit=600&min_position="+pos, s.auth())
	if len(items) != 500 || next == "" {
		t.Fatalf("limit=600: %d items, next %q", len(items), next)
	}
	items, next = e.list("/api/v1/me/activity?limit=99999999999999999999999&cursor="+url.QueryEscape(next), s.auth())
	if len(items) != 7 || next != "" || items[6]["type"] != "AccountRegistered" {
		t.Errorf("second page: %d items, next %q", len(items), next)
	}
	if items, _ := e.list("/api/v1/me/activity", s.auth()); len(items) != 50 {
		t.Errorf("default page: %d items", len(items))
	}
}

func TestActivityLocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withGeoIP(t), withTrustedProxies())
	e.register("ann@example.com")
	s, pos := e.loginWith("ann@example.com", hdr{"User-Agent": uaChromeMac, "X-Forwarded-For": ipLondon})
	items, _ := e.list("/api/v1/me/activity?type=LoginSucceeded&min_position="+pos, s.auth())
	if len(items) != 1 {
		t.Fatalf("activity %v", items)
	}
	it := items[0]
	loc, _ := it["location"].(map[string]any)
	if it["ip"] != ipLondon || loc["city"] != "London" || loc["region"] != "England" || loc["country"] != "United Kingdom" ||
		loc["country_code"] != "GB" || loc["latitude"] != 51.5142 || loc["longitude"] != -0.0931 || len(loc) != 6 {
		t.Errorf("located sign-in %v", it)
	}
	if it["asn"] != float64(20712) || it["as_org"] != "Andrews & Arnold Ltd" {
		t.Errorf("asn %v %v", it["asn"], it["as_org"])
	}
	// The session has the same location.
	sessions, _ := e.list("/api/v1/me/sessions", s.auth())
	if len(sessions) != 1 || !equalJSON(sessions[0]["location"], loc) || sessions[0]["ip"] != ipLondon {
		t.Errorf("session %v", sessions)
	}
	// A private address is not located.
	_, pos = e.loginWith("ann@example.com", hdr{"X-Forwarded-For": "10.1.2.3"})
	items, _ = e.list("/api/v1/me/activity?type=LoginSucceeded&limit=1&min_position="+pos, s.auth())
	if items[0]["ip"] != "10.1.2.3" || items[0]["location"] != nil || items[0]["asn"] != nil {
		t.Errorf("private address %v", items[0])
	}

	// Without a trusted proxy the header is ignored: the peer is the client.
	plain := newEnv(t, withGeoIP(t))
	plain.register("ann@example.com")
	s, pos = plain.loginWith("ann@example.com", hdr{"X-Forwarded-For": ipLondon})
	items, _ = plain.list("/api/v1/me/activity?type=LoginSucceeded&min_position="+pos, s.auth())
	if len(items) != 1 || items[0]["ip"] != "127.0.0.1" || items[0]["location"] != nil || items[0]["asn"] != nil {
		t.Errorf("untrusted forwarded header %v", items)
	}
}

func TestAuditForbidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAdmins("root@example.com"))
	ann := e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	before := e.head()
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/v1/audit/accounts/" + ann + "/events"},
		{"GET", "/api/v1/audit/accounts/" + ann + "/security?at=2026-03-02T09:00:00Z"},
		{"GET", "/api/v1/audit/activity"},
		{"GET", "/api/v1/audit/sessions"},
		{"DELETE", "/api/v1/audit/sessions/" + s.id},
	} {
		e.expect(e.do(rt.method, rt.path, nil, s.auth()), 403, "forbidden")
		e.expect(e.do(rt.method, rt.path, nil, nil), 401, "unauthenticated")
	}
	if h := e.head(); h != before {
		t.Errorf("refused audit requests wrote to the log: %d -> %d", before, h)
	}
	e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
}

func TestAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAdmins("root@example.com"), withGeoIP(t), withTrustedProxies())
	e.register("root@example.com")
	audID := e.register("aud@example.com")
	ann := e.register("ann@example.com")
	bob := e.register("bob@example.com")
	root := e.teamLogin("root@example.com")
	aud := e.teamLogin("aud@example.com")

	// An auditor only once granted the role; an --admin-emails account is one already.
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, aud.auth()), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, root.auth()), 200, "")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+audID+"/roles", map[string]string{"role": "auditor"}, root.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, aud.auth()), 200, "")
	// An auditor is no admin.
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, aud.auth()), 403, "forbidden")

	// Ann signs in from London (and fails once from Sweden), enrolls TOTP; Bob signs in
	// from Sweden; someone tries an unknown email.
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": "wrong-password-123"},
		hdr{"X-Forwarded-For": ipSweden}), 401, "invalid_credentials")
	as, _ := e.loginWith("ann@example.com", hdr{"X-Forwarded-For": ipLondon, "User-Agent": uaChromeMac})
	deviceID, _, _ := e.enrollTOTP(as)
	bs, _ := e.loginWith("bob@example.com", hdr{"X-Forwarded-For": ipSweden})
	r := e.do("POST", "/api/v1/login", map[string]string{"email": "nobody@example.com", "password": "wrong-password-123"},
		hdr{"X-Forwarded-For": ipSweden})
	e.expect(r, 401, "invalid_credentials")
	pos := strconv.FormatUint(e.head(), 10)

	// --- Raw events, in global order.
	events := e.all("/api/v1/audit/accounts/"+ann+"/events?min_position="+pos, aud.auth())
	var evTypes []string
	var last float64
	for i, ev := range events {
		if got := keysOf(ev); !slices.Equal(got, []string{"data", "hash", "id", "metadata", "position", "schema_version", "stream", "time", "type", "version"}) {
			t.Fatalf("event fields %v", got)
		}
		if h, _ := ev["hash"].(string); len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Errorf("event %d hash %q: want 64 lowercase hex digits", i, ev["hash"])
		}
		if p := ev["position"].(float64); p <= last {
			t.Errorf("event %d at position %v after %v", i, p, last)
		} else {
			last = p
		}
		if md := ev["metadata"].(map[string]any); md["subject_account_id"] != ann {
			t.Errorf("event of another subject %v", ev)
		}
		evTypes = append(evTypes, ev["type"].(string))
	}
	for _, want := range []string{"AccountRegistered", "LoginFailed", "LoginSucceeded", "SessionStarted", "TOTPDeviceAdded",
		"TOTPDeviceConfirmed", "BackupCodesGenerated"} {
		if !slices.Contains(evTypes, want) {
			t.Errorf("events %v lack %s", evTypes, want)
		}
	}
	// The registration (with its email reservation) comes first.
	if i := slices.Index(evTypes, "AccountRegistered"); i > 1 {
		t.Errorf("events %v", evTypes)
	}
	// Credential material is not shown.
	for _, ev := range events {
		d := ev["data"].(map[string]any)
		for _, k := range []string{"password_hash", "token_hash", "secret"} {
			if v, ok := d[k]; ok && v != "[redacted]" {
				t.Errorf("%s data.%s = %v", ev["type"], k, v)
			}
		}
		if ev["type"] == "AccountRegistered" && d["password_hash"] != "[redacted]" {
			t.Errorf("AccountRegistered data %v", d)
		}
		if ev["type"] == "BackupCodesGenerated" {
			if hs, _ := d["code_hashes"].([]any); len(hs) != 10 || hs[0] != "[redacted]" {
				t.Errorf("code hashes %v", d["code_hashes"])
			}
		}
	}
	// after is exclusive; pages of 2 give the same events.
	p2 := strconv.FormatFloat(events[1]["position"].(float64), 'f', 0, 64)
	after, _ := e.list("/api/v1/audit/accounts/"+ann+"/events?after="+p2, aud.auth())
	if len(after) != len(events)-2 || after[0]["id"] != events[2]["id"] {
		t.Errorf("after=%s: %d events, first %v", p2, len(after), after[0]["type"])
	}
	// A position past any the log can hold (above SQLite's largest integer) has nothing after it.
	for _, far := range []string{"9223372036854775807", "9223372036854775808", "18446744073709551615"} {
		if got, _ := e.list("/api/v1/audit/accounts/"+ann+"/events?after="+far, aud.auth()); len(got) != 0 {
			t.Errorf("after=%s: %d events", far, len(got))
		}
	}
	paged := e.all("/api/v1/audit/accounts/"+ann+"/events?limit=2", aud.auth())
	if len(paged) != len(events) {
		t.Errorf("paged %d events, want %d", len(paged), len(events))
	}
	for i := range paged {
		if i < len(events) && paged[i]["id"] != events[i]["id"] {
			t.Errorf("page item %d differs", i)
		}
	}
	_, annCursor := e.list("/api/v1/audit/accounts/"+ann+"/events?limit=1", aud.auth())
	e.expect(e.do("GET", "/api/v1/audit/accounts/no-such-account/events", nil, aud.auth()), 404, "not_found")
	e.expectBad(aud.auth(),
		"/api/v1/audit/accounts/"+ann+"/events?after=abc", "/api/v1/audit/accounts/"+ann+"/events?after=-1",
		"/api/v1/audit/accounts/"+ann+"/events?limit=0", "/api/v1/audit/accounts/"+ann+"/events?cursor=zzz",
		"/api/v1/audit/accounts/"+bob+"/events?cursor="+url.QueryEscape(annCursor))

	// --- The security state at a time: before and after the TOTP confirmation.
	var confirmedAt, registeredAt time.Time
	for _, ev := range events {
		tm, err := time.Parse(time.RFC3339Nano, ev["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		switch ev["type"] {
		case "TOTPDeviceConfirmed":
			confirmedAt = tm
		case "AccountRegistered":
			registeredAt = tm
		}
	}
	at := func(tm time.Time) string { return url.QueryEscape(tm.Format(time.RFC3339Nano)) }
	sec := e.expect(e.do("GET", "/api/v1/audit/accounts/"+ann+"/security?at="+at(confirmedAt.Add(-time.Nanosecond)), nil, aud.auth()), 200, "")
	devs := sec["totp_devices"].([]any)
	if sec["two_factor_enabled"] != false || len(devs) != 1 || devs[0].(map[string]any)["confirmed"] != false ||
		sec["backup_codes"].(map[string]any)["remaining"] != float64(0) {
		t.Errorf("security before the confirmation %v", sec)
	}
	sec = e.expect(e.do("GET", "/api/v1/audit/accounts/"+ann+"/security?at="+at(confirmedAt), nil, aud.auth()), 200, "")
	devs = sec["totp_devices"].([]any)
	if sec["two_factor_enabled"] != true || len(devs) != 1 || devs[0].(map[string]any)["id"] != deviceID ||
		devs[0].(map[string]any)["confirmed"] != true || sec["backup_codes"].(map[string]any)["remaining"] != float64(10) {
		t.Errorf("security after the confirmation %v", sec)
	}
	// The same shape as /me/security, which shows the same state now.
	now := e.expect(e.do("GET", "/api/v1/me/security", nil, as.auth()), 200, "")
	if !slices.Equal(keysOf(now), keysOf(sec)) || !equalJSON(now["totp_devices"], sec["totp_devices"]) {
		t.Errorf("/me/security %v, audit %v", now, sec)
	}
	e.expect(e.do("GET", "/api/v1/audit/accounts/"+ann+"/security?at="+at(registeredAt.Add(-time.Second)), nil, aud.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/audit/accounts/no-such-account/security?at="+at(confirmedAt), nil, aud.auth()), 404, "not_found")
	e.expectBad(aud.auth(), "/api/v1/audit/accounts/"+ann+"/security", "/api/v1/audit/accounts/"+ann+"/security?at=",
		"/api/v1/audit/accounts/"+ann+"/security?at=yesterday", "/api/v1/audit/accounts/"+ann+"/security?at=1700000000")

	// --- Activity across accounts, with filters.
	all := e.all("/api/v1/audit/activity?limit=500", aud.auth())
	var unknownFailure bool
	for _, it := range all {
		if _, ok := it["account_id"]; !ok {
			t.Fatalf("audit activity item without account_id %v", it)
		}
		if it["account_id"] == nil && it["type"] == "LoginFailed" {
			unknownFailure = true
		}
	}
	if !unknownFailure {
		t.Error("the failed sign-in of an unknown email is not in the audit activity")
	}
	check := func(query string, ok func(it map[string]any) bool, wantMin int) {
		t.Helper()
		items := e.all("/api/v1/audit/activity?"+query, aud.auth())
		if len(items) < wantMin {
			t.Errorf("%s: %d items, want at least %d", query, len(items), wantMin)
		}
		n := 0
		for _, it := range all {
			if ok(it) {
				n++
			}
		}
		if n != len(items) {
			t.Errorf("%s: %d items, the unfiltered log has %d matching", query, len(items), n)
		}
		for _, it := range items {
			if !ok(it) {
				t.Errorf("%s: %v", query, it)
			}
		}
	}
	country := func(it map[string]any) string {
		if l, ok := it["location"].(map[string]any); ok {
			return l["country_code"].(string)
		}
		return ""
	}
	check("account="+ann, func(it map[string]any) bool { return it["account_id"] == ann }, 5)
	check("ip="+ipSweden, func(it map[string]any) bool { return it["ip"] == ipSweden }, 3)
	check("country=gb", func(it map[string]any) bool { return country(it) == "GB" }, 1)
	check("country=SE&outcome=failure", func(it map[string]any) bool {
		return country(it) == "SE" && it["outcome"] == "failure"
	}, 2)
	check("type=LoginSucceeded&account="+bob, func(it map[string]any) bool {
		return it["type"] == "LoginSucceeded" && it["account_id"] == bob
	}, 1)
	check("outcome=success&type=TOTPDeviceConfirmed,TOTPDeviceAdded", func(it map[string]any) bool {
		return it["outcome"] == "success" && (it["type"] == "TOTPDeviceConfirmed" || it["type"] == "TOTPDeviceAdded")
	}, 2)
	check("from=2026-03-02T09:00:01Z&to=2026-03-02T09:00:01Z&account="+ann, func(it map[string]any) bool {
		return it["account_id"] == ann && it["time"] == "2026-03-02T09:00:01Z"
	}, 1)
	e.expectBad(aud.auth(), "/api/v1/audit/activity?ip=not-an-ip", "/api/v1/audit/activity?country=GBR",
		"/api/v1/audit/activity?country=1A", "/api/v1/audit/activity?outcome=maybe", "/api/v1/audit/activity?type=Nope",
		"/api/v1/audit/activity?account=a%20b", "/api/v1/audit/activity?from=x", "/api/v1/audit/activity?limit=-5",
		"/api/v1/audit/activity?cursor=x")

	// --- Sessions across accounts.
	sessions := e.all("/api/v1/audit/sessions?limit=500", aud.auth())
	ids := map[string]map[string]any{}
	for _, it := range sessions {
		ids[it["id"].(string)] = it
	}
	for _, want := range []struct{ id, account string }{{root.id, ""}, {aud.id, audID}, {as.id, ann}, {bs.id, bob}} {
		it, ok := ids[want.id]
		if !ok {
			t.Errorf("session %s not listed", want.id)
			continue
		}
		if want.account != "" && it["account_id"] != want.account {
			t.Errorf("session %s account %v", want.id, it["account_id"])
		}
		if it["current"] != (want.id == aud.id) {
			t.Errorf("session %s current %v", want.id, it["current"])
		}
	}
	if l, _ := ids[as.id]["location"].(map[string]any); l["city"] != "London" || ids[as.id]["browser"] != "Chrome 126" {
		t.Errorf("ann's session %v", ids[as.id])
	}
	annSessions, _ := e.list("/api/v1/audit/sessions?account="+ann, aud.auth())
	if len(annSessions) != 1 || annSessions[0]["id"] != as.id {
		t.Errorf("ann's sessions %v", annSessions)
	}
	e.expectBad(aud.auth(), "/api/v1/audit/sessions?account=%00", "/api/v1/audit/sessions?limit=abc", "/api/v1/audit/sessions?cursor=x")

	// --- Signing a session out.
	before := e.head()
	e.expect(e.do("DELETE", "/api/v1/audit/sessions/no-such-session", nil, aud.auth()), 404, "not_found")
	if h := e.head(); h != before {
		t.Errorf("a refused sign-out wrote to the log")
	}
	r = e.do("DELETE", "/api/v1/audit/sessions/"+as.id, nil, aud.auth())
	e.expect(r, 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, as.auth()), 401, "unauthenticated")
	e.expect(e.do("DELETE", "/api/v1/audit/sessions/"+as.id, nil, aud.auth()), 404, "not_found")
	pos = r.header.Get("Vigil-Position")
	if got, _ := e.list("/api/v1/audit/sessions?account="+ann+"&min_position="+pos, aud.auth()); len(got) != 0 {
		t.Errorf("ann's sessions after the sign-out %v", got)
	}
	out, _ := e.list("/api/v1/audit/activity?type=SessionSignedOut&account="+ann+"&min_position="+pos, aud.auth())
	if len(out) != 1 || out[0]["actor_account_id"] != audID || out[0]["details"].(map[string]any)["reason"] != "signed_out_by_admin" {
		t.Errorf("sign-out in the activity log %v", out)
	}
	// Bob is still signed in; an admin may sign sessions out too.
	e.expect(e.do("GET", "/api/v1/whoami", nil, bs.auth()), 200, "")
	e.expect(e.do("DELETE", "/api/v1/audit/sessions/"+bs.id, nil, root.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, bs.auth()), 401, "unauthenticated")
}
