package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// fakeStore is a HeadReader that answers head or err.
type fakeStore struct {
	head uint64
	err  error
}

func (f fakeStore) Head(context.Context) (uint64, error) { return f.head, f.err }

// fakeStatus is a StatusSource that answers statuses or err.
type fakeStatus struct {
	statuses []projections.Status
	err      error
}

func (f fakeStatus) Status(context.Context) ([]projections.Status, error) {
	return slices.Clone(f.statuses), f.err
}

// checkRoutesDocumented fails the test unless the routes s serves ("METHOD /path" in OpenAPI
// form) are exactly documented; it returns them, sorted.
func checkRoutesDocumented(t *testing.T, s *Server, documented []string) []string {
	t.Helper()
	var served []string
	for _, r := range s.engine.Routes() {
		p, _ := web.OpenAPIPath(r.Path)
		served = append(served, r.Method+" "+p)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented routes differ from served routes\ndocumented: %v\nserved:     %v", documented, served)
	}
	return served
}

type testServer struct {
	*Server
	logs *testkit.SyncBuffer
}

func newTestServer(t *testing.T, cfg Config) testServer {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Store == nil {
		cfg.Store = fakeStore{head: 10}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return testServer{Server: s, logs: logs}
}

func (s testServer) do(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func (s testServer) get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	return s.do(t, httptest.NewRequest(http.MethodGet, path, nil))
}

// decodeProblem checks that rec is a problem document with status and code.
func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem is not JSON: %v; %s", err, rec.Body)
	}
	if p["code"] != code || p["status"] != float64(status) || p["title"] == "" || p["type"] == "" {
		t.Fatalf("problem = %v, want code %q status %d with title and type", p, code, status)
	}
	return p
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newTestServer(t, Config{})
	rec := s.get(t, "/openapi.json")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title   string `json:"title"`
			Version string `json:"version"`
		} `json:"info"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Info.Title != "Vigil" || doc.Info.Version != "1" {
		t.Errorf("openapi %q, info %+v; want 3.1.0, Vigil, 1", doc.OpenAPI, doc.Info)
	}
	var documented []string
	for p, item := range doc.Paths {
		for m := range item {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	served := checkRoutesDocumented(t, s.Server, documented)
	for _, want := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"} {
		if !slices.Contains(served, want) {
			t.Errorf("route %s is not served", want)
		}
	}
	// Every $ref points at a defined schema.
	for _, m := range collectRefs(rec.Body.String()) {
		name := strings.TrimPrefix(m, "#/components/schemas/")
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("$ref %s has no schema", m)
		}
	}
}

// collectRefs lists the $ref values of a JSON document.
func collectRefs(doc string) []string {
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	_ = json.Unmarshal([]byte(doc), &v)
	walk(v)
	return refs
}

func TestHealthz(t *testing.T) {
	s := newTestServer(t, Config{Store: fakeStore{err: errors.New("down")}})
	rec := s.get(t, "/healthz")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz = %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get(web.RequestIDHeader) == "" {
		t.Error("no request id on the response")
	}
}

func TestReadyz(t *testing.T) {
	now := time.Now().UTC()
	caughtUp := projections.Status{Name: "streams", Checkpoint: 10, Head: 10, UpdatedAt: now}
	slightlyBehind := projections.Status{Name: "sessions", Checkpoint: 8, Head: 10, LagSeconds: 0.2, UpdatedAt: now}
	lagging := projections.Status{Name: "activity", Checkpoint: 3, Head: 10, LagSeconds: 42, UpdatedAt: now}
	stuck := projections.Status{Name: "security", Checkpoint: 6, Head: 10, LagSeconds: 1, Stuck: true,
		StuckPosition: 7, LastError: "sql: secret internal detail", UpdatedAt: now}

	tests := []struct {
		name       string
		store      web.HeadReader
		status     StatusSource
		wantStatus int
		wantDetail []string
	}{
		{"ready", fakeStore{head: 10}, fakeStatus{statuses: []projections.Status{caughtUp, slightlyBehind}}, 200, nil},
		{"no projections", fakeStore{head: 10}, nil, 200, nil},
		{"lagging", fakeStore{head: 10}, fakeStatus{statuses: []projections.Status{caughtUp, lagging}}, 503,
			[]string{`"activity"`, "lagging", "checkpoint 3", "head 10"}},
		{"stuck", fakeStore{head: 10}, fakeStatus{statuses: []projections.Status{stuck, caughtUp}}, 503,
			[]string{`"security"`, "stuck", "position 7"}},
		{"store unreachable", fakeStore{err: errors.New("dial tcp 10.1.2.3:2113: connection refused")},
			fakeStatus{statuses: []projections.Status{caughtUp}}, 503, []string{"event store is unreachable"}},
		{"status failing", fakeStore{head: 10}, fakeStatus{err: errors.New("boom")}, 503, []string{"unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{Store: tt.store, Projections: tt.status})
			rec := s.get(t, "/readyz")
			body := rec.Body.String()
			if tt.wantStatus == 200 {
				if rec.Code != 200 {
					t.Fatalf("GET /readyz = %d %s", rec.Code, body)
				}
				var got struct {
					Status      string               `json:"status"`
					Projections []projections.Status `json:"projections"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if got.Status != "ready" || got.Projections == nil {
					t.Fatalf("body = %s", body)
				}
				if fs, ok := tt.status.(fakeStatus); ok && len(got.Projections) != len(fs.statuses) {
					t.Fatalf("projections = %v, want %d", got.Projections, len(fs.statuses))
				}
				return
			}
			p := decodeProblem(t, rec, 503, web.CodeNotReady)
			detail, _ := p["detail"].(string)
			for _, w := range tt.wantDetail {
				if !strings.Contains(detail, w) {
					t.Errorf("detail %q does not contain %q", detail, w)
				}
			}
			for _, secret := range []string{"secret internal", "10.1.2.3", "boom"} {
				if strings.Contains(body, secret) {
					t.Errorf("problem leaks %q: %s", secret, body)
				}
			}
		})
	}
}

func TestMaxLagConfigurable(t *testing.T) {
	st := fakeStatus{statuses: []projections.Status{{Name: "streams", LagSeconds: 7}}}
	if rec := newTestServer(t, Config{Projections: st}).get(t, "/readyz"); rec.Code != 503 {
		t.Errorf("7s lag with the default 5s: %d, want 503", rec.Code)
	}
	if rec := newTestServer(t, Config{Projections: st, MaxLag: 10 * time.Second}).get(t, "/readyz"); rec.Code != 200 {
		t.Errorf("7s lag with MaxLag 10s: %d, want 200", rec.Code)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, Config{})
	decodeProblem(t, s.get(t, "/no/such/route"), 404, web.CodeNotFound)
	decodeProblem(t, s.get(t, "/healthz/"), 404, web.CodeNotFound)
	rec := s.do(t, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	decodeProblem(t, rec, 405, web.CodeMethodNotAllowed)
	if allow := rec.Header().Get("Allow"); allow != "GET" {
		t.Errorf("Allow = %q, want GET", allow)
	}
}

// testRoutes adds routes used only by tests (before the OpenAPI document is rendered).
func testRoutes(s testServer) {
	ok := map[int]web.Response{200: {Description: "ok", Schema: web.Schema{"type": "object"}}}
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	s.root.Handle(http.MethodPost, "/test/bind", web.Operation{Responses: ok}, func(c *gin.Context) {
		var b body
		if err := web.BindJSON(c, &b); err != nil {
			web.WriteError(c, err)
			return
		}
		c.JSON(200, b)
	})
	s.root.Handle(http.MethodGet, "/test/ip", web.Operation{Responses: ok}, func(c *gin.Context) {
		c.String(200, web.ClientIP(c))
	})
	s.root.Handle(http.MethodGet, "/test/panic", web.Operation{Responses: ok}, func(c *gin.Context) {
		panic("secret panic detail")
	})
	s.root.Handle(http.MethodGet, "/test/error", web.Operation{Responses: ok}, func(c *gin.Context) {
		web.WriteError(c, fmt.Errorf("load account: %w", errors.New("secret sql detail")))
	})
	s.root.Handle(http.MethodGet, "/test/conflict", web.Operation{Responses: ok}, func(c *gin.Context) {
		web.WriteError(c, web.Public(web.ErrConflict, "That email is taken.", errors.New("unique constraint")))
	})
}

func TestBodyLimit(t *testing.T) {
	s := newTestServer(t, Config{})
	testRoutes(s)
	big := bytes.Repeat([]byte("a"), web.MaxBodyBytes+1)

	// Declared length over the limit: refused before any handler reads it.
	req := httptest.NewRequest(http.MethodPost, "/healthz", bytes.NewReader(big))
	decodeProblem(t, s.do(t, req), 400, web.CodeInvalidRequest)

	// Undeclared length (chunked): the handler's read hits the cap.
	body := append([]byte(`{"name":"`), big...)
	body = append(body, `"}`...)
	req = httptest.NewRequest(http.MethodPost, "/test/bind", io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	p := decodeProblem(t, s.do(t, req), 400, web.CodeInvalidRequest)
	if !strings.Contains(p["detail"].(string), "64 KiB") {
		t.Errorf("detail = %v", p["detail"])
	}

	// Exactly at the limit is fine.
	name := strings.Repeat("a", web.MaxBodyBytes-len(`{"name":""}`))
	req = httptest.NewRequest(http.MethodPost, "/test/bind", strings.NewReader(`{"name":"`+name+`"}`))
	if rec := s.do(t, req); rec.Code != 200 {
		t.Errorf("body of exactly 64 KiB: %d %.200s", rec.Code, rec.Body)
	}
}

func TestMetricsExposeHTTPMetrics(t *testing.T) {
	s := newTestServer(t, Config{})
	testRoutes(s)
	s.get(t, "/healthz")
	s.get(t, "/no/such/route")
	req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
	s.do(t, req)
	rec := s.get(t, "/metrics")
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`vigil_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`vigil_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`vigil_http_requests_total{code="200",method="GET",route="/test/ip"} 1`,
		`vigil_http_request_duration_seconds_count{method="GET",route="/healthz"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/no/such/route") {
		t.Error("a raw path became a label")
	}
}

func TestPanicAndInternalErrorsRevealNothing(t *testing.T) {
	s := newTestServer(t, Config{})
	testRoutes(s)
	for _, path := range []string{"/test/panic", "/test/error"} {
		rec := s.get(t, path)
		decodeProblem(t, rec, 500, web.CodeInternal)
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s leaks internals: %s", path, rec.Body)
		}
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "secret panic detail") || !strings.Contains(logs, "secret sql detail") {
		t.Errorf("the server log lacks the failures:\n%s", logs)
	}
	// The server still serves after a panic.
	if rec := s.get(t, "/healthz"); rec.Code != 200 {
		t.Errorf("after a panic: %d", rec.Code)
	}
	p := decodeProblem(t, s.get(t, "/test/conflict"), 409, web.CodeConflict)
	if p["detail"] != "That email is taken." {
		t.Errorf("public detail = %v", p["detail"])
	}
}

func TestRequestLogAndID(t *testing.T) {
	s := newTestServer(t, Config{})
	req := httptest.NewRequest(http.MethodGet, "/healthz?token=querysecret", nil)
	req.Header.Set("Authorization", "Bearer vgl_authsecret")
	req.Header.Set("Cookie", "vigil_session=cookiesecret")
	req.Header.Set(web.RequestIDHeader, "abc-123")
	rec := s.do(t, req)
	if got := rec.Header().Get(web.RequestIDHeader); got != "abc-123" {
		t.Errorf("request id = %q, want the client's abc-123", got)
	}
	req = httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set(web.RequestIDHeader, "bad id\nwith newline")
	rec = s.do(t, req)
	if got := rec.Header().Get(web.RequestIDHeader); got == "" || strings.Contains(got, " ") {
		t.Errorf("invalid client id not replaced: %q", got)
	}
	logs := s.logs.String()
	for _, secret := range []string{"authsecret", "cookiesecret", "querysecret", "newline"} {
		if strings.Contains(logs, secret) {
			t.Errorf("request log contains %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"method":"GET"`, `"route":"/healthz"`, `"status":200`, `"request_id":"abc-123"`, `"duration"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %s:\n%s", want, logs)
		}
	}
}

func TestUnknownErrorMapsToInternal(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		code   string
	}{
		{errors.New("x"), 500, web.CodeInternal},
		{fmt.Errorf("wrapped: %w", web.ErrNotFound), 404, web.CodeNotFound},
		{web.Public(web.ErrInvalidCredentials, "", nil), 401, web.CodeInvalidCredentials},
		{web.Public(web.ErrInvalidCredentialsSignedIn, "", nil), 403, web.CodeInvalidCredentials},
		{&http.MaxBytesError{Limit: 1}, 400, web.CodeInvalidRequest},
	} {
		p, known := web.ProblemFor(tt.err)
		if p.Status != tt.status || p.Code != tt.code || known != (tt.code != web.CodeInternal) {
			t.Errorf("problemFor(%v) = %d %s %v", tt.err, p.Status, p.Code, known)
		}
	}
}

// TestStartingAnswersOnlyOperations: while the server is starting, /healthz and /metrics
// answer, /readyz and every other route answer 503 not_ready with Retry-After; afterwards
// everything answers as usual.
func TestStartingAnswersOnlyOperations(t *testing.T) {
	s := newTestServer(t, Config{})
	s.Starting(true)
	if rec := s.get(t, "/healthz"); rec.Code != 200 {
		t.Errorf("/healthz while starting: %d", rec.Code)
	}
	if rec := s.get(t, "/metrics"); rec.Code != 200 {
		t.Errorf("/metrics while starting: %d", rec.Code)
	}
	for _, path := range []string{"/readyz", "/api/v1/whoami", "/nowhere"} {
		rec := s.get(t, path)
		p := decodeProblem(t, rec, 503, web.CodeNotReady)
		if d, _ := p["detail"].(string); !strings.Contains(d, "starting") {
			t.Errorf("%s: detail %q", path, d)
		}
		if path != "/readyz" && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", path)
		}
	}
	s.Starting(false)
	if rec := s.get(t, "/readyz"); rec.Code != 200 {
		t.Errorf("/readyz after starting: %d", rec.Code)
	}
	if rec := s.get(t, "/nowhere"); rec.Code != 404 {
		t.Errorf("/nowhere after starting: %d", rec.Code)
	}
}

func TestBindJSON(t *testing.T) {
	s := newTestServer(t, Config{})
	testRoutes(s)
	tests := []struct {
		name, body, contentType string
		wantStatus              int
		wantDetail              string
	}{
		{"ok", `{"name":"x","count":2}`, "application/json", 200, ""},
		{"ok without content type", `{"name":"x"}`, "", 200, ""},
		{"ok with charset", `{"name":"x"}`, "application/json; charset=utf-8", 200, ""},
		{"unknown field", `{"name":"x","admin":true}`, "application/json", 400, `"admin"`},
		{"wrong type", `{"count":"many"}`, "application/json", 400, `"count" must be an integer`},
		{"trailing data", `{"name":"x"} {"name":"y"}`, "application/json", 400, "after"},
		{"trailing garbage", `{"name":"x"}x`, "application/json", 400, "after"},
		{"trailing whitespace is fine", "{\"name\":\"x\"}\n ", "application/json", 200, ""},
		{"invalid utf-8", "{\"name\":\"\xff\xfe\"}", "application/json", 400, "UTF-8"},
		{"malformed", `{"name":`, "application/json", 400, "JSON"},
		{"empty", ``, "application/json", 400, "empty"},
		{"null", `null`, "application/json", 400, "object"},
		{"array", `[1]`, "application/json", 400, "object"},
		{"form", `name=x`, "application/x-www-form-urlencoded", 400, "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/test/bind", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := s.do(t, req)
			if tt.wantStatus == 200 {
				if rec.Code != 200 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				return
			}
			p := decodeProblem(t, rec, tt.wantStatus, web.CodeInvalidRequest)
			if d, _ := p["detail"].(string); !strings.Contains(d, tt.wantDetail) {
				t.Errorf("detail %q does not contain %q", d, tt.wantDetail)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: peer", nil, "203.0.113.7:5555", nil, "203.0.113.7"},
		{"no proxies: XFF ignored", nil, "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer: XFF ignored", trusted, "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer without XFF", trusted, "10.0.0.2:5555", nil, "10.0.0.2"},
		{"trusted peer: client from XFF", trusted, "10.0.0.2:5555", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed leftmost entry is skipped", trusted, "10.0.0.2:5555", []string{"1.1.1.1, 198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"several headers in order", trusted, "10.0.0.2:5555", []string{"1.1.1.1", "198.51.100.1", "10.0.0.9"}, "198.51.100.1"},
		{"all trusted: leftmost", trusted, "10.0.0.2:5555", []string{"10.9.9.9, 10.0.0.9"}, "10.9.9.9"},
		{"garbage stops the walk", trusted, "10.0.0.2:5555", []string{"1.1.1.1, not-an-ip, 10.0.0.9"}, "10.0.0.9"},
		{"entry with port", trusted, "10.0.0.2:5555", []string{"198.51.100.1:443"}, "198.51.100.1"},
		{"ipv6", trusted, "[fd00::1]:5555", []string{"2001:db8::1, fd00::2"}, "2001:db8::1"},
		{"mapped ipv4 peer", trusted, "[::ffff:10.0.0.2]:5555", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{TrustedProxies: tt.trusted})
			testRoutes(s)
			req := httptest.NewRequest(http.MethodGet, "/test/ip", nil)
			req.RemoteAddr = tt.peer
			for _, h := range tt.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			rec := s.do(t, req)
			if rec.Code != 200 || rec.Body.String() != tt.want {
				t.Errorf("ClientIP = %d %q, want %q", rec.Code, rec.Body, tt.want)
			}
		})
	}
}
