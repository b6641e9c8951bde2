package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/geoip/geoiptest"
)

// Plain-HTTP tests of the web portal through the real app: the security headers, CSRF
// refusals, bad form input answered next to its field with a 4xx, and the enrollment flow
// of a restricted session (an organisation's policy, here a static one).

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// geoiptestCity writes a city database that places 81.2.69.160/27 in London.
func geoiptestCity(t testing.TB, path string) {
	geoiptest.WriteCityDB(t, path, []geoiptest.CityEntry{{Network: "81.2.69.160/27", City: "London",
		Country: "United Kingdom", CountryCode: "GB", Lat: 51.5142, Lon: -0.0931}})
}

func waitHealthy(t testing.TB, base string) {
	t.Helper()
	waitServing(t, base)
}

// plainJar keeps cookies like a browser on http://localhost does (Secure cookies
// included, which net/http/cookiejar only sends over https).
type plainJar struct {
	mu sync.Mutex
	m  map[string]*http.Cookie
}

func (j *plainJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cs {
		if c.MaxAge < 0 {
			delete(j.m, c.Name)
			continue
		}
		j.m[c.Name] = c
	}
}

func (j *plainJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.m {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// portalClient is a browser-like HTTP client: cookies, redirects followed.
type portalClient struct {
	t    testing.TB
	base string
	jar  *plainJar
	http *http.Client
}

func newPortalClient(t testing.TB, base string) *portalClient {
	jar := &plainJar{m: map[string]*http.Cookie{}}
	return &portalClient{t: t, base: base, jar: jar, http: &http.Client{Jar: jar, Timeout: testwait.Deadline(10 * time.Second)}}
}

// answer is a page the client got: status, final path, headers, body.
type answer struct {
	status int
	path   string
	header http.Header
	body   string
}

func (c *portalClient) do(req *http.Request) answer {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, path: resp.Request.URL.Path, header: resp.Header, body: string(b)}
}

func (c *portalClient) get(path string) answer {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *portalClient) post(path string, form url.Values) answer {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the CSRF token of the forms of page (the hidden field).
func csrf(t testing.TB, page answer) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no csrf_token field on %s: %.300s", page.path, page.body)
	}
	return m[1]
}

// signUp registers through the sign-up form and answers the page it lands on.
func (c *portalClient) signUp(email string) answer {
	c.t.Helper()
	tok := csrf(c.t, c.get("/signup"))
	return c.post("/signup", url.Values{"csrf_token": {tok}, "email": {email}, "first_name": {"Grace"},
		"last_name": {"Hopper"}, "password": {browserPassword}})
}

func TestPortalHeadersAndCSRF(t *testing.T) {
	base := portalApp(t, nil)
	c := newPortalClient(t, base)

	// Every page has the CSP without inline script, and anonymous visitors see sign-in.
	home := c.get("/")
	if home.status != 200 || !strings.Contains(home.body, "<h1>Sign in</h1>") {
		t.Fatalf("GET /: %d %.200s", home.status, home.body)
	}
	csp := home.header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline: %q", csp)
	}
	if home.header.Get("X-Frame-Options") != "DENY" || home.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", home.header)
	}
	// No inline script, handler or style attribute in the pages.
	inline := regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+="|\sstyle="`)
	if inline.MatchString(home.body) {
		t.Errorf("inline script or style on /: %s", inline.FindString(home.body))
	}
	// The assets are served.
	if a := c.get("/assets/portal.js"); a.status != 200 || !strings.Contains(a.header.Get("Content-Type"), "javascript") {
		t.Errorf("portal.js: %d %s", a.status, a.header.Get("Content-Type"))
	}
	// The JSON API is still the API's.
	if a := c.get("/api/v1/whoami"); a.status != 401 || a.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("whoami: %d %s", a.status, a.header.Get("Content-Type"))
	}
	if a := c.get("/no/such/page"); a.status != 404 {
		t.Errorf("unknown path: %d", a.status)
	}

	// An anonymous form without its token (another site posting it) is refused.
	if a := c.post("/signin", url.Values{"email": {"x@example.com"}, "password": {"whatever"}}); a.status != 403 ||
		!strings.Contains(a.body, "not sent from this site") {
		t.Errorf("sign-in without CSRF token: %d %.200s", a.status, a.body)
	}
	// A token of another visitor's cookie does not work either.
	other := newPortalClient(t, base)
	otherTok := csrf(t, other.get("/signin"))
	if a := c.post("/signin", url.Values{"csrf_token": {otherTok}, "email": {"x@example.com"}, "password": {"x"}}); a.status != 403 {
		t.Errorf("sign-in with another visitor's token: %d", a.status)
	}

	// Signed in: a form without the session's token changes nothing.
	acct := c.signUp("grace@example.com")
	if acct.status != 200 || acct.path != "/account" {
		t.Fatalf("sign-up: %d %s %.300s", acct.status, acct.path, acct.body)
	}
	if inline.MatchString(acct.body) {
		t.Errorf("inline script or style on /account: %s", inline.FindString(acct.body))
	}
	a := c.post("/account", url.Values{"email": {"grace@example.com"}, "first_name": {"Mallory"}, "last_name": {"Hopper"}})
	if a.status != 403 || !strings.Contains(a.body, "not sent from this site") {
		t.Errorf("account form without CSRF token: %d %.200s", a.status, a.body)
	}
	a = c.post("/account", url.Values{"csrf_token": {otherTok}, "email": {"grace@example.com"}, "first_name": {"Mallory"}, "last_name": {"Hopper"}})
	if a.status != 403 {
		t.Errorf("account form with a foreign token: %d", a.status)
	}
	if page := c.get("/account"); !strings.Contains(page.body, `value="Grace"`) {
		t.Errorf("the refused forms changed the name: %.500s", page.body)
	}
	// The sign-out form needs the token too.
	if a := c.post("/signout", nil); a.status != 403 {
		t.Errorf("sign-out without token: %d", a.status)
	}
	if page := c.get("/account"); page.path != "/account" {
		t.Errorf("signed out by a forged form: at %s", page.path)
	}
}

func TestPortalBadInputIsShownNextToTheField(t *testing.T) {
	base := portalApp(t, nil)
	c := newPortalClient(t, base)

	// A weak password at sign-up: 400, the reason under the password field, the typed
	// values kept, no account.
	tok := csrf(t, c.get("/signup"))
	a := c.post("/signup", url.Values{"csrf_token": {tok}, "email": {"lin@example.com"}, "first_name": {"Lin"},
		"last_name": {"Chen"}, "password": {"short"}})
	if a.status != 400 || !strings.Contains(a.body, `id="password-error"`) || !strings.Contains(a.body, `value="lin@example.com"`) ||
		!strings.Contains(a.body, `aria-describedby="password-hint password-error"`) {
		t.Errorf("weak password: %d %.2000s", a.status, a.body)
	}
	if code, _ := postJSON(t, base+"/api/v1/login", `{"email":"lin@example.com","password":"short"}`); code != 401 {
		t.Errorf("an account was made: login %d", code)
	}
	// A wrong password at sign-in: 401 and a message, the email kept.
	c.signUp("lin@example.com")
	c.post("/signout", url.Values{"csrf_token": {csrf(t, c.get("/account"))}})
	tok = csrf(t, c.get("/signin"))
	a = c.post("/signin", url.Values{"csrf_token": {tok}, "email": {"lin@example.com"}, "password": {"not the password"}})
	if a.status != 401 || !strings.Contains(a.body, "The email or password is wrong.") || !strings.Contains(a.body, `value="lin@example.com"`) {
		t.Errorf("wrong password: %d %.500s", a.status, a.body)
	}
	tok = csrf(t, a)
	a = c.post("/signin", url.Values{"csrf_token": {tok}, "email": {"lin@example.com"}, "password": {browserPassword}})
	if a.path != "/account" {
		t.Fatalf("sign-in: %s", a.path)
	}

	// A bad telephone number in the profile: 400, the reason next to its field, nothing
	// saved.
	tok = csrf(t, a)
	a = c.post("/account/profile", url.Values{"csrf_token": {tok}, "telephone": {"call me"}, "city": {"Zürich"}})
	if a.status != 400 {
		t.Errorf("bad profile: %d", a.status)
	}
	for _, want := range []string{`id="p-telephone-error"`, `aria-invalid="true"`, `value="call me"`, `value="Zürich"`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("bad profile page lacks %s", want)
		}
	}
	if strings.Contains(a.body, `id="p-city-error"`) {
		t.Error("the good field has an error")
	}
	if page := c.get("/account"); strings.Contains(page.body, "Zürich") || strings.Contains(page.body, "call me") {
		t.Error("a refused profile was saved")
	}
	// A good one is saved.
	a = c.post("/account/profile", url.Values{"csrf_token": {tok}, "telephone": {"+41 44 668 18 00"}, "country": {"CH"}, "city": {"Zürich"}})
	if a.status != 200 || !strings.Contains(a.body, "Your profile was saved.") || !strings.Contains(a.body, `value="Zürich"`) {
		t.Errorf("good profile: %d %.300s", a.status, a.body)
	}
	// An activity filter that is not a date: 400 next to the field.
	a = c.get("/activity?from=yesterday")
	if a.status != 400 || !strings.Contains(a.body, `id="from-error"`) {
		t.Errorf("bad activity filter: %d", a.status)
	}
	// The security team's pages are not for everyone.
	if a := c.get("/audit"); a.status != 403 {
		t.Errorf("audit page for a plain account: %d", a.status)
	}
}

// staticPolicy requires 2FA of every account, in the name of one organisation.
type staticPolicy struct{}

func (staticPolicy) RequiredBy(context.Context, string) ([]string, error) {
	return []string{"org-1"}, nil
}

var _ command.TwoFactorPolicy = staticPolicy{}

var pendingTOTP = regexp.MustCompile(`data-secret="([A-Z2-7]+)"`)

func TestPortalEnrollmentRequired(t *testing.T) {
	base := portalApp(t, func(c *Config) { c.TwoFactorPolicy = staticPolicy{} })
	c := newPortalClient(t, base)

	// Signing up signs in with a restricted session: the enrollment page, and nothing else.
	a := c.signUp("kim@example.com")
	if a.path != "/enroll" || !strings.Contains(a.body, "Your organisation requires two-factor authentication") {
		t.Fatalf("sign-up with a 2FA policy: %s %.300s", a.path, a.body)
	}
	if a := c.get("/account"); a.path != "/enroll" {
		t.Errorf("a restricted session reached %s", a.path)
	}
	tok := csrf(t, a)
	if a := c.post("/account/profile", url.Values{"csrf_token": {tok}, "city": {"Oslo"}}); a.status != 403 {
		t.Errorf("a restricted session saved its profile: %d", a.status)
	}

	// Set up an authenticator app; a wrong code first.
	a = c.post("/security/totp", url.Values{"csrf_token": {tok}, "name": {"Phone"}})
	m := pendingTOTP.FindStringSubmatch(a.body)
	if m == nil || !strings.HasPrefix(a.path, "/security/totp/") {
		t.Fatalf("TOTP set-up page: %s %.500s", a.path, a.body)
	}
	setup := a.path
	bad := c.post(setup+"/confirm", url.Values{"csrf_token": {tok}, "code": {"000000"}})
	if bad.status != 403 || !strings.Contains(bad.body, `id="code-error"`) || !strings.Contains(bad.body, m[1]) {
		t.Errorf("wrong confirmation code: %d %.500s", bad.status, bad.body)
	}
	code, err := totp.GenerateCode(m[1], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a = c.post(setup+"/confirm", url.Values{"csrf_token": {tok}, "code": {code}})
	if a.status != 200 || !strings.Contains(a.body, "Your backup codes") || strings.Count(a.body, "<li><code>") != 10 {
		t.Fatalf("confirmation: %d %.500s", a.status, a.body)
	}
	if !strings.Contains(a.body, `href="data:text/plain;charset=utf-8,`) {
		t.Error("no download link for the codes")
	}
	// The restriction is lifted on this session; the codes are not served again.
	if a := c.get("/account"); a.path != "/account" {
		t.Errorf("after enrolling the session is at %s", a.path)
	}
	if a := c.get("/security"); strings.Contains(a.body, "<li><code>") || !strings.Contains(a.body, "10 of 10 codes left") {
		t.Errorf("security page after enrolling: %.300s", a.body)
	}
	// Turning 2FA off is refused while the organisation requires it.
	sec := c.get("/security")
	a = c.post("/security/two-factor/disable", url.Values{"csrf_token": {csrf(t, sec)}, "password": {browserPassword}})
	if a.status != 409 || !strings.Contains(a.body, "requires two-factor") {
		t.Errorf("disabling 2FA under a policy: %d %.300s", a.status, a.body)
	}
}

// TestPortalStepUp checks the step-up prompt: a password change after the step-up window
// sends the user to the re-authentication page, which sends them back; a wrong password
// there is shown next to the field; afterwards the change goes through and signs the other
// session out when asked to.
func TestPortalStepUp(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	base := portalApp(t, func(c *Config) { c.Now = clk.Now })
	c := newPortalClient(t, base)
	c.signUp("max@example.com")
	code, body := postJSON(t, base+"/api/v1/login", `{"email":"max@example.com","password":"`+browserPassword+`"}`)
	other, _ := body["session_token"].(string)
	if code != 200 || other == "" {
		t.Fatalf("second session: %d %v", code, body)
	}
	clk.Advance(10 * time.Minute)

	sec := c.get("/security")
	tok := csrf(t, sec)
	change := url.Values{"csrf_token": {tok}, "current_password": {browserPassword},
		"new_password": {"another long Passphrase 9!"}, "sign_out_other_sessions": {"on"}}
	a := c.post("/security/password", change)
	if a.path != "/reauth" || !strings.Contains(a.body, "This change needs a recent sign-in") {
		t.Fatalf("stale password change: %s %.300s", a.path, a.body)
	}
	bad := c.post("/reauth", url.Values{"csrf_token": {tok}, "next": {"/security"}, "password": {"wrong password"}})
	if bad.status != 403 || !strings.Contains(bad.body, `id="password-error"`) {
		t.Errorf("wrong re-auth password: %d %.300s", bad.status, bad.body)
	}
	// An off-site next is ignored.
	a = c.post("/reauth", url.Values{"csrf_token": {tok}, "next": {"//evil.example/"}, "password": {browserPassword}})
	if a.path != "/security" || !strings.Contains(a.body, "you can now make the change") {
		t.Fatalf("re-auth: %s %.300s", a.path, a.body)
	}
	a = c.post("/security/password", change)
	if a.path != "/security" || !strings.Contains(a.body, "Your password was changed.") {
		t.Fatalf("password change: %s %.300s", a.path, a.body)
	}
	if s := whoamiStatus(t, base, other); s != 401 {
		t.Errorf("the other session after the change: %d", s)
	}
	if a := c.get("/account"); a.path != "/account" {
		t.Errorf("this session after the change: %s", a.path)
	}
}

var backupCode = regexp.MustCompile(`<li><code>([^<]+)</code></li>`)

// TestPortalSecurityForms goes through the Security page's forms: an authenticator app set
// up and confirmed (backup codes shown once), new codes generated (the old ones stop
// working, the new ones are not served again), the app removed (2FA off), set up again and
// 2FA turned off with the password (a wrong one shown next to the field).
func TestPortalSecurityForms(t *testing.T) {
	base := portalApp(t, nil)
	c := newPortalClient(t, base)
	tok := csrf(t, c.signUp("ola@example.com"))

	enable := func() []string {
		t.Helper()
		a := c.post("/security/totp", url.Values{"csrf_token": {tok}, "name": {"Phone"}})
		m := pendingTOTP.FindStringSubmatch(a.body)
		if m == nil {
			t.Fatalf("set-up page: %s", a.path)
		}
		code, _ := totp.GenerateCode(m[1], time.Now())
		a = c.post(a.path+"/confirm", url.Values{"csrf_token": {tok}, "code": {code}})
		var codes []string
		for _, m := range backupCode.FindAllStringSubmatch(a.body, -1) {
			codes = append(codes, m[1])
		}
		if len(codes) != 10 {
			t.Fatalf("codes after confirming: %d %.300s", len(codes), a.body)
		}
		return codes
	}
	first := enable()

	a := c.post("/security/backup-codes", url.Values{"csrf_token": {tok}})
	var fresh []string
	for _, m := range backupCode.FindAllStringSubmatch(a.body, -1) {
		fresh = append(fresh, m[1])
	}
	if a.status != 200 || len(fresh) != 10 || fresh[0] == first[0] || !strings.Contains(a.body, "no longer work") {
		t.Fatalf("new codes: %d %v", a.status, fresh)
	}
	if page := c.get("/security"); strings.Contains(page.body, fresh[0]) {
		t.Error("the Security page serves the codes again")
	}
	// The old codes stop working, the new ones work (through the API's sign-in).
	login := func(code string) int {
		_, body := postJSON(t, base+"/api/v1/login", `{"email":"ola@example.com","password":"`+browserPassword+`"}`)
		ticket, _ := body["login_ticket"].(string)
		status, _ := postJSON(t, base+"/api/v1/login/second-factor", `{"login_ticket":"`+ticket+`","method":"backup_code","code":"`+code+`"}`)
		return status
	}
	if s := login(first[0]); s != 401 {
		t.Errorf("an old code: %d", s)
	}
	if s := login(fresh[0]); s != 200 {
		t.Errorf("a new code: %d", s)
	}

	// Remove the app: 2FA goes off.
	sec := c.get("/security")
	rm := regexp.MustCompile(`action="(/security/totp/[^/"]+/remove)"`).FindStringSubmatch(sec.body)
	if rm == nil {
		t.Fatalf("no remove form: %.500s", sec.body)
	}
	a = c.post(rm[1], url.Values{"csrf_token": {tok}})
	if !strings.Contains(a.body, "The authenticator app was removed.") || !strings.Contains(a.body, "Two-factor authentication is <strong>off</strong>") {
		t.Errorf("after removing: %.500s", a.body)
	}

	// Again, then off with the password.
	enable()
	a = c.post("/security/two-factor/disable", url.Values{"csrf_token": {tok}, "password": {"not it"}})
	if a.status != 403 || !strings.Contains(a.body, `id="disable_password-error"`) {
		t.Errorf("wrong password to turn 2FA off: %d", a.status)
	}
	a = c.post("/security/two-factor/disable", url.Values{"csrf_token": {tok}, "password": {browserPassword}})
	if !strings.Contains(a.body, "Two-factor authentication is off.") {
		t.Errorf("turning 2FA off: %d %.300s", a.status, a.body)
	}
}

// TestPortalSecurityTeam checks the security team's pages for an admin (--admin-emails):
// finding an account by email, its timeline and security state at a moment, activity
// filters with a bad value shown next to its field, and signing another account's session
// out (its token then fails whoami).
func TestPortalSecurityTeam(t *testing.T) {
	base := portalApp(t, nil)
	user := newPortalClient(t, base)
	user.signUp("bob@example.com")
	code, body, pos := apiLogin(t, base, "bob@example.com", "X-Forwarded-For", "81.2.69.165")
	token, _ := body["session_token"].(string)
	sess, _ := body["session"].(map[string]any)
	sid, _ := sess["session_id"].(string)
	if code != 200 || token == "" {
		t.Fatalf("login: %d %v", code, body)
	}
	admin := newPortalClient(t, base)
	tok := csrf(t, admin.signUp("ada@example.com"))
	// The team's pages need a session that proved a second factor.
	if a := admin.get("/audit"); a.status != 403 || !strings.Contains(a.body, "second factor") {
		t.Errorf("an admin without a second factor: %d %.300s", a.status, a.body)
	}
	admin.enableTOTP()

	a := admin.get("/audit?find=nobody@example.com")
	if a.status != 400 || !strings.Contains(a.body, `id="find-error"`) {
		t.Errorf("unknown account: %d", a.status)
	}
	a = admin.get("/audit?find=bob@example.com")
	if !strings.HasPrefix(a.path, "/audit/accounts/") || !strings.Contains(a.body, "AccountRegistered") || !strings.Contains(a.body, sid) {
		t.Fatalf("account page: %s %.300s", a.path, a.body)
	}
	accountPage := a.path
	if a := admin.get(accountPage + "?at=" + time.Now().UTC().Format("2006-01-02T15:04")); !strings.Contains(a.body, `id="state-at"`) {
		t.Errorf("security state now: %d", a.status)
	}
	if a := admin.get(accountPage + "?at=2001-01-01T00:00"); !strings.Contains(a.body, "did not exist yet") {
		t.Errorf("security state before the account: %d", a.status)
	}
	if a := admin.get(accountPage + "?at=noon"); a.status != 400 || !strings.Contains(a.body, `id="at-error"`) {
		t.Errorf("bad time: %d", a.status)
	}
	if a := admin.get("/audit?min_position=x"); a.status != 400 {
		t.Errorf("bad min_position: %d", a.status)
	}
	if a := admin.get("/audit?ip=not-an-ip&country=GB"); a.status != 400 || !strings.Contains(a.body, `id="ip-error"`) {
		t.Errorf("bad ip filter: %d", a.status)
	}
	a = admin.get("/audit?ip=81.2.69.165&country=gb&min_position=" + pos)
	_, rows, _ := strings.Cut(a.body, `<table class="responsive" id="activity">`)
	if a.status != 200 || !strings.Contains(rows, "LoginSucceeded") || !strings.Contains(rows, "London") {
		t.Errorf("ip filter: %d %.500s", a.status, rows)
	}
	if strings.Contains(rows, "AccountRegistered") {
		t.Error("the ip filter let another address's entries through")
	}

	a = admin.post("/audit/sessions/"+sid+"/sign-out", url.Values{"csrf_token": {tok}, "back": {accountPage}})
	if a.path != accountPage || !strings.Contains(a.body, "The session was signed out.") {
		t.Errorf("admin sign-out: %s %.300s", a.path, a.body)
	}
	if s := whoamiStatus(t, base, token); s != 401 {
		t.Errorf("whoami after the admin's sign-out: %d", s)
	}
}
