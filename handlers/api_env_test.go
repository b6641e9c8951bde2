package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// testPassword passes the password policy (12+ characters, zxcvbn score 3+).
const testPassword = "umbrella-cactus-violin-47"

// env is a running Vigil (handlertest.Start: the real domain service over SQLite in a temp
// dir, small argon2 cost, the injected clock) and an HTTP client for it. Every answer it
// sees is checked against the served OpenAPI document (the status must be documented for
// the operation) and every successful state change must carry Vigil-Position.
type env struct {
	t    *testing.T
	base string
	clk  *testkit.Clock
	log  string // the SQLite log's path
	http *http.Client
	doc  *openAPIDoc
	head func() uint64
	// kr is the server keyring; events a second handle on the log (raw: sealed members
	// stay sealed).
	kr     *credential.Keyring
	events *sqlite.Store
}

type envOption func(*handlertest.Config)

func withAdmins(emails ...string) envOption {
	return func(c *handlertest.Config) { c.AdminEmails = emails }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	clk := testkit.NewClock(time.Date(2026, 3, 2, 9, 0, 1, 0, time.UTC))
	cfg := handlertest.Config{Now: clk.Now}
	for _, o := range opts {
		o(&cfg)
	}
	srv := handlertest.Start(t, cfg)
	e := &env{t: t, base: srv.URL, clk: clk, log: srv.EventsPath, http: &http.Client{Timeout: testwait.Deadline(10 * time.Second)},
		kr: srv.Keyring}
	e.doc = loadOpenAPI(t, e)
	// A second handle on the log, to see that refused requests write nothing.
	s, err := sqlite.Open(sqlite.Config{Path: srv.EventsPath, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.events = s
	e.head = func() uint64 {
		h, err := s.Head(context.Background())
		if err != nil {
			t.Fatalf("head: %v", err)
		}
		return h
	}
	return e
}

// resp is an answer read in full.
type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.code, err, r.body)
	}
	return m
}

func (r resp) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// hdr is a set of request headers.
type hdr map[string]string

func bearer(token string) hdr { return hdr{"Authorization": "Bearer " + token} }

func (h hdr) with(k, v string) hdr {
	out := hdr{}
	for a, b := range h {
		out[a] = b
	}
	out[k] = v
	return out
}

// rawBody is sent as is.
type rawBody []byte

// do sends a request; body is nil, rawBody, or a value sent as JSON.
func (e *env) do(method, path string, body any, h hdr) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := resp{code: res.StatusCode, header: res.Header, body: data}
	e.doc.check(e.t, method, req.URL.Path, r.code)
	if method != http.MethodGet && r.code >= 200 && r.code < 300 {
		if _, err := strconv.ParseUint(r.header.Get("Vigil-Position"), 10, 64); err != nil {
			e.t.Errorf("%s %s answered %d without a Vigil-Position header (%q)", method, path, r.code, r.header.Get("Vigil-Position"))
		}
	}
	if r.code >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Errorf("%s %s answered %d with Content-Type %q", method, path, r.code, r.header.Get("Content-Type"))
	}
	return r
}

// expect checks the status (and, for problems, the code) of an answer.
func (e *env) expect(r resp, status int, code string) map[string]any {
	e.t.Helper()
	if r.code != status {
		e.t.Fatalf("status %d, want %d: %s", r.code, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	if r.header.Get("Content-Type") == "image/png" {
		return nil
	}
	m := r.json(e.t)
	if code != "" && m["code"] != code {
		e.t.Fatalf("code %v, want %s: %s", m["code"], code, r.body)
	}
	return m
}

// register creates an account and returns its id.
func (e *env) register(email string) string {
	e.t.Helper()
	m := e.expect(e.do("POST", "/api/v1/accounts", map[string]string{
		"email": email, "password": testPassword, "first_name": "Ann", "last_name": "Lee",
	}, nil), 201, "")
	return m["account_id"].(string)
}

// session is a signed-in session.
type session struct {
	token string
	id    string
	view  map[string]any
}

func (s session) auth() hdr { return bearer(s.token) }

// login signs in with the password and expects a session (no second factor).
func (e *env) login(email, password string) session {
	e.t.Helper()
	r := e.do("POST", "/api/v1/login", map[string]string{"email": email, "password": password}, nil)
	m := e.expect(r, 200, "")
	if m["status"] != "authenticated" {
		e.t.Fatalf("login status %v: %s", m["status"], r.body)
	}
	return e.sessionFrom(r, m)
}

func (e *env) sessionFrom(r resp, m map[string]any) session {
	e.t.Helper()
	token, _ := m["session_token"].(string)
	view, _ := m["session"].(map[string]any)
	if token == "" || view == nil {
		e.t.Fatalf("no session_token or session: %s", r.body)
	}
	ck := r.cookie("vigil_session")
	if ck == nil || ck.Value != token {
		e.t.Fatalf("an answer with a session_token did not set the cookie: %v", r.header.Values("Set-Cookie"))
	}
	return session{token: token, id: view["session_id"].(string), view: view}
}

// teamLogin signs in and enrolls an authenticator app, which makes the session aal2: what
// the security team's and the administrators' routes need (mfa_required otherwise).
func (e *env) teamLogin(email string) session {
	e.t.Helper()
	s := e.login(email, testPassword)
	e.enrollTOTP(s)
	return s
}

// totpCode is the code of secret at the injected time.
func (e *env) totpCode(secret string) string {
	e.t.Helper()
	code, err := totp.GenerateCodeCustom(secret, e.clk.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// enrollTOTP adds and confirms a TOTP device; it returns the device id, its secret and
// the backup codes answered.
func (e *env) enrollTOTP(s session) (string, string, []string) {
	e.t.Helper()
	m := e.expect(e.do("POST", "/api/v1/me/totp", map[string]string{"name": "phone"}, s.auth()), 201, "")
	id, secret := m["device_id"].(string), m["secret"].(string)
	c := e.expect(e.do("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]string{"code": e.totpCode(secret)}, s.auth()), 200, "")
	var codes []string
	if raw, ok := c["backup_codes"].([]any); ok {
		for _, x := range raw {
			codes = append(codes, x.(string))
		}
	}
	return id, secret, codes
}

// badBodies are request bodies every JSON route refuses with 400 invalid_request.
func badBodies(valid map[string]any) map[string]rawBody {
	wrongType := map[string]any{}
	for k := range valid {
		wrongType[k] = 12345
		break
	}
	wt, _ := json.Marshal(wrongType)
	unknown := map[string]any{"surprise": true}
	for k, v := range valid {
		unknown[k] = v
	}
	uk, _ := json.Marshal(unknown)
	big := map[string]any{}
	for k := range valid {
		big[k] = strings.Repeat("a", 70<<10)
		break
	}
	bg, _ := json.Marshal(big)
	return map[string]rawBody{
		"malformed":     rawBody(`{"a":`),
		"unknown field": rawBody(uk),
		"wrong type":    rawBody(wt),
		"oversized":     rawBody(bg),
		"invalid utf-8": rawBody("{\"x\":\"\xff\xfe\"}"),
		"array":         rawBody(`[]`),
		"empty":         rawBody(``),
		"trailing data": rawBody(`{} {}`),
	}
}

// checkBadBodies sends every bad body to method path and expects 400 invalid_request with
// nothing written to the log.
func (e *env) checkBadBodies(method, path string, valid map[string]any, h hdr) {
	e.t.Helper()
	for name, body := range badBodies(valid) {
		before := e.head()
		r := e.do(method, path, body, h)
		if r.code != 400 || r.json(e.t)["code"] != "invalid_request" {
			e.t.Errorf("%s %s with a %s body: %d %s", method, path, name, r.code, r.body)
		}
		if after := e.head(); after != before {
			e.t.Errorf("%s %s with a %s body wrote to the log (head %d -> %d)", method, path, name, before, after)
		}
	}
}

// openAPIDoc is the served OpenAPI document, reduced to the statuses of each operation.
type openAPIDoc struct {
	ops []docOp
}

type docOp struct {
	method   string
	re       *regexp.Regexp
	statuses map[int]bool
}

func loadOpenAPI(t *testing.T, e *env) *openAPIDoc {
	t.Helper()
	res, err := e.http.Get(e.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\\\{[^/]+\\\}`)
	out := &openAPIDoc{}
	for p, item := range doc.Paths {
		re := regexp.MustCompile("^" + param.ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")
		for m, op := range item {
			st := map[int]bool{}
			for code := range op.Responses {
				n, _ := strconv.Atoi(code)
				st[n] = true
			}
			out.ops = append(out.ops, docOp{method: strings.ToUpper(m), re: re, statuses: st})
		}
	}
	return out
}

// check fails the test when the operation of method and path does not document status.
func (d *openAPIDoc) check(t *testing.T, method, path string, status int) {
	t.Helper()
	for _, op := range d.ops {
		if op.method == method && op.re.MatchString(path) {
			if !op.statuses[status] {
				t.Errorf("%s %s answered %d, which its OpenAPI operation does not list", method, path, status)
			}
			return
		}
	}
	if status != 404 && status != 405 {
		t.Errorf("%s %s answered %d but is not in the OpenAPI document", method, path, status)
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
