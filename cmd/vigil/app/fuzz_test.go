package app

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets of the whole request path: the JSON bodies of the API and the forms and
// query strings of the portal, through the real app's handler (real domain service, real
// SQLite), signed in where the route needs it. API.md: nothing answers 500 to bad input.
// .ci/fuzz runs each for a few seconds; `go test` runs the seeds.

// fuzzApp is a running app for a fuzz target, its origin, a signed-in portal client
// (cookies and the session's form token) and an API session token of the same account.
type fuzzApp struct {
	a       *App
	origin  *url.URL
	cookies []*http.Cookie
	anonTok string // the anonymous forms' token of the client's pre-session cookie
	formTok string // the session's CSRF token of the portal's forms
	bearer  string
}

func newFuzzApp(f *testing.F) *fuzzApp {
	f.Helper()
	dir := f.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://localhost:" + port
	pub, _ := url.Parse(base)
	a, _ := runApp(f, Config{Logger: discardLogger(), Listener: ln, DataDir: filepath.Join(dir, "data"),
		PublicURL: pub, Argon2MemoryKiB: 8192, Argon2Iterations: 1, AdminEmails: []string{"fuzz@example.com"}})
	waitHealthy(f, a.URL())

	c := newPortalClient(f, base)
	if page := c.signUp("fuzz@example.com"); page.path != "/account" {
		f.Fatalf("sign-up: %d %s", page.status, page.path)
	}
	fa := &fuzzApp{a: a, origin: pub, formTok: csrf(f, c.get("/account")), anonTok: csrf(f, c.get("/signin"))}
	fa.cookies = c.jar.Cookies(nil)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/login", strings.NewReader(`{"email":"fuzz@example.com","password":"`+browserPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		f.Fatal(err)
	}
	defer resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "vigil_session" {
			fa.bearer = ck.Value
		}
	}
	if fa.bearer == "" {
		f.Fatalf("no session from /api/v1/login: %d", resp.StatusCode)
	}
	return fa
}

// serve sends req through the app's handler, as from 192.0.2.1.
func (fa *fuzzApp) serve(req *http.Request) *httptest.ResponseRecorder {
	req.RemoteAddr = "192.0.2.1:40000"
	rec := httptest.NewRecorder()
	fa.a.server.Handler().ServeHTTP(rec, req)
	return rec
}

// apiRoutes are the API routes that read a JSON body (true: with the bearer session).
// Sign-out, erasure and the like are left out: they would end the fuzzing account.
var apiRoutes = []struct {
	method, path string
	auth         bool
}{
	{"POST", "/api/v1/accounts", false}, {"POST", "/api/v1/login", false}, {"POST", "/api/v1/login/second-factor", false},
	{"POST", "/api/v1/login/passkey/options", false}, {"POST", "/api/v1/login/passkey", false},
	{"POST", "/api/v1/reauth", true}, {"POST", "/api/v1/reauth/passkey/options", true}, {"PATCH", "/api/v1/me", true},
	{"POST", "/api/v1/me/password", true}, {"POST", "/api/v1/me/totp", true}, {"POST", "/api/v1/me/passkeys/options", true},
	{"POST", "/api/v1/me/passkeys", true}, {"POST", "/api/v1/me/two-factor/disable", true}, {"POST", "/api/v1/orgs", true},
}

// FuzzAPIBody: any body and Content-Type on the API's JSON routes answers below 500, and
// every refusal is a problem document.
func FuzzAPIBody(f *testing.F) {
	fa := newFuzzApp(f)
	for i, s := range []string{
		`{"email":"new@example.com","password":"tq8#Lm2!vZ9pRw4x-other","first_name":"A","last_name":"B"}`,
		`{"email":"fuzz@example.com","password":"wrong"}`, `{"login_ticket":"x","method":"totp","code":"123456"}`, `{}`,
		`{"ceremony_id":"c","credential":{"type":"public-key","id":"AA"}}`, `{"password":"x"}`, `{}`,
		`{"first_name":"\u0000","profile":{"country":"ZZ"}}`, `{"current_password":"x","new_password":"y"}`, `{"name":"phone"}`,
		`{"name":"key"}`, `{"ceremony_id":"","credential":null}`, `{"password":""}`, `{"name":"` + strings.Repeat("o", 300) + `"}`,
	} {
		f.Add(uint8(i), "application/json", []byte(s))
	}
	for _, s := range []string{``, `null`, `[]`, `{"email":1}`, "{\"email\":\"\xff\"}", `{}{}`, `{"x":1}`, strings.Repeat(`[`, 10000)} {
		f.Add(uint8(1), "application/json", []byte(s))
		f.Add(uint8(7), "application/merge-patch+json", []byte(s))
	}
	f.Add(uint8(0), "text/plain", []byte(`{}`))
	f.Add(uint8(0), "application/json; charset=\"", []byte(`{}`))
	f.Fuzz(func(t *testing.T, route uint8, contentType string, body []byte) {
		r := apiRoutes[int(route)%len(apiRoutes)]
		req, err := http.NewRequest(r.method, fa.origin.String()+r.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if r.auth {
			req.Header.Set("Authorization", "Bearer "+fa.bearer)
		}
		rec := fa.serve(req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (%q) %q: %d %s", r.method, r.path, contentType, body, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s %q: %d answered as %q", r.method, r.path, body, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

// portalRoutes are the portal's forms and the pages that read a query (true: signed in).
var portalRoutes = []struct {
	method, path string
	auth         bool
}{
	{"GET", "/signin", false}, {"POST", "/signin", false}, {"POST", "/signin/second-factor", false}, {"POST", "/signup", false},
	{"GET", "/reauth", true}, {"POST", "/reauth", true}, {"POST", "/account", true}, {"POST", "/account/profile", true},
	{"POST", "/security/password", true}, {"POST", "/security/totp", true}, {"POST", "/security/two-factor/disable", true},
	{"GET", "/activity", true}, {"GET", "/audit", true}, {"GET", "/sessions", true}, {"POST", "/orgs", true},
}

// FuzzPortalForm: any form body and query on the portal's routes, with the right form
// token, answers below 500, and a redirect goes to a plain path of this origin.
func FuzzPortalForm(f *testing.F) {
	fa := newFuzzApp(f)
	for i, s := range []struct{ query, form string }{
		{"next=/%09/evil.example/x", ""}, {"", "email=fuzz%40example.com&password=" + url.QueryEscape(browserPassword) + "&next=/%0a/evil"},
		{"", "login_ticket=x&method=totp&code=1&next=//evil"}, {"", "email=a%40b.c&password=x&first_name=A&last_name=B"},
		{"next=/a/../%5Cevil", ""}, {"", "password=" + url.QueryEscape(browserPassword) + "&next=/%2F%2Fevil"},
		{"", "email=fuzz%40example.com&first_name=%00&last_name=B"}, {"", "title=x&country=%ff"},
		{"", "current_password=x&new_password=y"}, {"", "name=phone"}, {"", "password=x"}, {"type=LoginFailed&limit=0&cursor=%%", ""},
		{"q=%ff&cursor=YTo3", ""}, {"cursor=zz&limit=9999999999999999999999", ""}, {"", "name=" + strings.Repeat("o", 300)},
	} {
		f.Add(uint8(i), "application/x-www-form-urlencoded", s.query, s.form)
	}
	f.Add(uint8(1), "multipart/form-data; boundary=x", "", "--x\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na\r\n--x--\r\n")
	f.Add(uint8(1), "multipart/form-data", "", "garbage")
	f.Add(uint8(5), "text/plain", "next=//evil", "next=//evil")
	f.Add(uint8(1), "application/x-www-form-urlencoded", "", "%zz=%&&=;;next=%0d%0a")
	f.Fuzz(func(t *testing.T, route uint8, contentType, query, form string) {
		r := portalRoutes[int(route)%len(portalRoutes)]
		tok := fa.anonTok
		if r.auth {
			tok = fa.formTok
		}
		var body *strings.Reader
		if r.method == http.MethodPost {
			body = strings.NewReader("csrf_token=" + url.QueryEscape(tok) + "&" + form)
		} else {
			body = strings.NewReader("")
		}
		req, err := http.NewRequest(r.method, fa.origin.String()+r.path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		for _, ck := range fa.cookies {
			if r.auth || ck.Name != "vigil_session" {
				req.AddCookie(ck)
			}
		}
		rec := fa.serve(req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%q (%q) %q: %d %.300s", r.method, r.path, query, contentType, form, rec.Code, rec.Body.String())
		}
		if loc, ok := rec.Header()["Location"]; ok {
			checkSameOrigin(t, fa.origin, query+" / "+form, strings.Join(loc, ""))
		}
	})
}
