package app

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/handlers/portal/portaltest"
)

// The portal's redirects after a form go only to a path of its own origin (issue 11,
// finding 5): a `next` that a browser could read as another host is ignored. Each hostile
// value goes through the real app (sign-in page, sign-in form, step-up form) and the
// answer's Location is resolved as a browser's URL parser would.

// hostileNexts are `next` values (as the form delivers them, already percent-decoded once)
// that must never send the browser elsewhere.
var hostileNexts = []string{
	"/\t/evil.example/x", // the finding: /signin?next=/%09/evil.example/x
	"/\n/evil.example/x",
	"/\r/evil.example/x",
	"/\r\n/evil.example/x",
	"/\t\t/evil.example",
	"/\t\\evil.example",
	"\t//evil.example",
	"\n/\\evil.example",
	" //evil.example",
	"//evil.example",
	"///evil.example",
	"/\\evil.example",
	"/\\\\evil.example",
	"\\\\evil.example",
	"/\\/evil.example",
	"/x/..\\..\\\\evil.example",
	"/a/..\\evil.example",
	"/%5Cevil.example",
	"/%5C%5Cevil.example",
	"/%2F%2Fevil.example",
	"/%2f/evil.example",
	"/%09/evil.example",
	"/%0a/evil.example",
	"/..//evil.example",
	"/.//evil.example",
	"/./\t/evil.example",
	"/%2e%2e//evil.example",
	"/a/../\\evil.example",
	"https://evil.example/",
	"http:evil.example",
	"https:/evil.example",
	"javascript:alert(1)",
	"//user@evil.example",
	"/@evil.example",
	"@evil.example",
	"/\x00//evil.example",
	"/\x0b/evil.example",
	"/\x0c/evil.example",
	"/\x1f/evil.example",
	"/\x7f/evil.example",
	"/\u00a0/evil.example",
	"/\u2028/evil.example",
	"/\u3000//evil.example",
	"/\ufeff/evil.example",
	"/\u200b/evil.example",
	"\u2028//evil.example",
	"/" + strings.Repeat("a", 600),
}

// checkSameOrigin fails unless a browser would stay on base's origin following loc, and
// loc is a plain path.
func checkSameOrigin(t *testing.T, base *url.URL, next, loc string) {
	t.Helper()
	if err := portaltest.SameOrigin(base, loc); err != nil {
		t.Errorf("next %q: %v", next, err)
	}
}

var nextField = regexp.MustCompile(`name="next" value="([^"]*)"`)

// rawLocation moves each answer's Location to X-Test-Location: the client then neither
// follows it nor refuses the answer for a Location it cannot parse (net/http does).
type rawLocation struct{ rt http.RoundTripper }

func (r rawLocation) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if resp != nil {
		if l, ok := resp.Header["Location"]; ok {
			resp.Header["X-Test-Location"] = l
			delete(resp.Header, "Location")
		}
	}
	return resp, err
}

// noFollow is a portal client that shows redirects, as sent, instead of following them.
func noFollow(t *testing.T, base string) *portalClient {
	c := newPortalClient(t, base)
	c.http.Transport = rawLocation{http.DefaultTransport}
	return c
}

func TestPortalRedirectsStayOnSite(t *testing.T) {
	base := portalApp(t, nil)
	origin, _ := url.Parse(base)
	newPortalClient(t, base).signUp("rita@example.com")

	signIn := func(next string) (page, loc string) {
		c := noFollow(t, base)
		p := c.get("/signin?next=" + url.QueryEscape(next))
		if p.status != 200 {
			t.Fatalf("GET /signin?next=%q: %d", next, p.status)
		}
		m := nextField.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no next field on the sign-in page: %.300s", p.body)
		}
		a := c.post("/signin", url.Values{"csrf_token": {csrf(t, p)}, "email": {"rita@example.com"},
			"password": {browserPassword}, "next": {next}})
		if a.status != http.StatusSeeOther {
			t.Fatalf("sign-in with next %q: %d %.300s", next, a.status, a.body)
		}
		return html.UnescapeString(m[1]), a.header.Get("X-Test-Location")
	}

	for _, next := range hostileNexts {
		field, loc := signIn(next)
		if field != "" {
			checkSameOrigin(t, origin, next, field)
		}
		checkSameOrigin(t, origin, next, loc)
	}
	// Good values are kept.
	for _, next := range []string{"/security", "/audit?q=a%2Fb&x=1", "/account#profile", "/orgs/o-1/members"} {
		if field, loc := signIn(next); field != next || loc != next {
			t.Errorf("next %q: field %q, Location %q", next, field, loc)
		}
	}

	// The step-up form: the same rule, and "done=reauth" lands in the query.
	c := noFollow(t, base)
	tok := csrf(t, c.get("/signin"))
	if a := c.post("/signin", url.Values{"csrf_token": {tok}, "email": {"rita@example.com"}, "password": {browserPassword}}); a.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", a.status)
	}
	tok = csrf(t, c.get("/security"))
	for _, next := range hostileNexts {
		page := c.get("/reauth?next=" + url.QueryEscape(next))
		if m := nextField.FindStringSubmatch(page.body); m == nil {
			t.Fatalf("no next field on the step-up page: %d %.300s", page.status, page.body)
		} else {
			checkSameOrigin(t, origin, next, html.UnescapeString(m[1]))
		}
		a := c.post("/reauth", url.Values{"csrf_token": {tok}, "next": {next}, "password": {browserPassword}})
		if a.status != http.StatusSeeOther {
			t.Fatalf("re-auth with next %q: %d %.300s", next, a.status, a.body)
		}
		checkSameOrigin(t, origin, next, a.header.Get("X-Test-Location"))
	}
	for next, want := range map[string]string{
		"/security":         "/security?done=reauth",
		"/account?tab=x":    "/account?tab=x&done=reauth",
		"/account#profile":  "/account?done=reauth#profile",
		"/account?a=1#prof": "/account?a=1&done=reauth#prof",
	} {
		a := c.post("/reauth", url.Values{"csrf_token": {tok}, "next": {next}, "password": {browserPassword}})
		if loc := a.header.Get("X-Test-Location"); loc != want {
			t.Errorf("re-auth with next %q: Location %q, want %q", next, loc, want)
		}
	}
}
