package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// setReceiver is an RFC 8935 receiver that verifies each SET with the JWK set the server
// serves (fetched over HTTP), with lestrrat-go/jwx: Vigil signs with go-jose.
type setReceiver struct {
	t    *testing.T
	keys jwk.Set
	mu   sync.Mutex
	sets []map[string]any
	bad  []string
}

func (r *setReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	claims, err := r.verify(string(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || req.Header.Get("Content-Type") != "application/secevent+jwt" {
		r.bad = append(r.bad, req.Header.Get("Content-Type")+" "+errString(err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.sets = append(r.sets, claims)
	w.WriteHeader(http.StatusAccepted)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (r *setReceiver) verify(tok string) (map[string]any, error) {
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		return nil, err
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "secevent+jwt" {
		return nil, &json.UnsupportedValueError{Str: "typ " + typ}
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKeySet(r.keys, jws.WithRequireKid(true)))
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	return claims, json.Unmarshal(payload, &claims)
}

// find waits for a SET of event type uri whose members satisfy match.
func (r *setReceiver) find(uri string, match func(sub map[string]any, ev map[string]any) bool) map[string]any {
	r.t.Helper()
	var found map[string]any
	testwait.Until(r.t, 10*time.Second, "a SET "+uri, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.bad) > 0 {
			r.t.Fatalf("the receiver refused SETs: %v", r.bad)
		}
		for _, s := range r.sets {
			evs, _ := s["events"].(map[string]any)
			ev, ok := evs[uri].(map[string]any)
			sub, _ := s["sub_id"].(map[string]any)
			if ok && match(sub, ev) {
				found = s
				return true, ""
			}
		}
		return false, "not yet"
	})
	return found
}

// TestSharedSignalsOverHTTP: the metadata, the JWK set, stream management with ssf:manage
// enforced, bad input refused with problem documents, a verification SET, a real sign-out
// reaching a push receiver as session-revoked, and the poll endpoint with acknowledgements.
func TestSharedSignalsOverHTTP(t *testing.T) {
	dir := t.TempDir()
	base, stop := startApp(t, dir, testkit.NewClock(time.Now()))
	defer stop()
	ctx := context.Background()
	other := otherInstance(t, dir)
	_, manage, _, err := other.Create(ctx, "receiver", []string{command.ScopeSSFManage}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	_, reader, _, err := other.Create(ctx, "siem", []string{command.ScopeEventsRead}, command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	waitFor(t, func() bool { return eventsStatus(t, base, reader) == 200 }, "the tokens reach the server through its log feed")
	api := base + "/api/v1/ssf"

	// Metadata and keys (public).
	code, meta, _ := doJSON(t, http.MethodGet, base+"/.well-known/ssf-configuration", "")
	if code != 200 || meta["spec_version"] != "1_0" || meta["issuer"] != DefaultPublicURL || meta["default_subjects"] != "ALL" ||
		meta["jwks_uri"] != DefaultPublicURL+"/api/v1/ssf/jwks" || meta["configuration_endpoint"] != DefaultPublicURL+"/api/v1/ssf/streams" ||
		meta["status_endpoint"] != DefaultPublicURL+"/api/v1/ssf/status" || meta["verification_endpoint"] != DefaultPublicURL+"/api/v1/ssf/verify" {
		t.Fatalf("metadata %d %v", code, meta)
	}
	if dm, _ := meta["delivery_methods_supported"].([]any); len(dm) != 2 {
		t.Fatalf("delivery methods %v", meta["delivery_methods_supported"])
	}
	keys, err := jwk.Fetch(ctx, api+"/jwks")
	if err != nil || keys.Len() != 1 {
		t.Fatalf("JWK set: %v", err)
	}
	rcv := &setReceiver{t: t, keys: keys}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	// ssf:manage is enforced.
	body := `{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"` + srv.URL + `"},"events_requested":["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]}`
	for _, c := range []struct {
		header []string
		status int
		code   string
	}{{nil, 401, "unauthenticated"}, {auth("vgl_unknown"), 401, "unauthenticated"}, {auth(reader), 403, "forbidden"}} {
		if st, m := postJSON(t, api+"/streams", body, c.header...); st != c.status || m["code"] != c.code {
			t.Fatalf("create with %v: %d %v, want %d %s", c.header, st, m, c.status, c.code)
		}
	}
	// Bad input: 400 problem documents, nothing created.
	for _, bad := range []struct{ method, path, body string }{
		{"POST", "/streams", `{"delivery":{"method":"urn:example:carrier-pigeon"},"events_requested":[]}`},
		{"POST", "/streams", `{"delivery":{"method":"urn:ietf:rfc:8935"}}`},
		{"POST", "/streams", `{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"ftp://x"}}`},
		{"POST", "/streams", `{"delivery":{"method":"urn:ietf:rfc:8936"},"colour":"red"}`},
		{"POST", "/streams", `{"events_requested":[]}`},
		{"POST", "/streams", `{"delivery":{"method":"urn:ietf:rfc:8936"},"events_requested":"all"}`},
		{"POST", "/streams", `not json`},
		{"GET", "/status", ``},
		{"DELETE", "/streams", ``},
		{"POST", "/status", `{"stream_id":"x","status":"asleep"}`},
		{"POST", "/verify", `{"state":"s"}`},
	} {
		st, m, h := doJSON(t, bad.method, api+bad.path, bad.body, auth(manage)...)
		if st != 400 || m["code"] != "invalid_request" || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s %s: %d %v", bad.method, bad.path, bad.body, st, m)
		}
	}
	if st, m, _ := doJSON(t, "GET", api+"/streams?stream_id=nope", "", auth(manage)...); st != 404 || m["code"] != "not_found" {
		t.Errorf("unknown stream: %d %v", st, m)
	}

	// A push stream, verified, receiving a real sign-out.
	st, push := postJSON(t, api+"/streams", body, auth(manage)...)
	pushID, _ := push["stream_id"].(string)
	if st != 201 || pushID == "" || push["aud"] != pushID || push["iss"] != DefaultPublicURL {
		t.Fatalf("create: %d %v", st, push)
	}
	if d, _ := push["events_delivered"].([]any); len(d) != 1 {
		t.Fatalf("events_delivered %v", push["events_delivered"])
	}
	if st, _ := postJSON(t, api+"/verify", `{"stream_id":"`+pushID+`","state":"hello-42"}`, auth(manage)...); st != 204 {
		t.Fatalf("verify: %d", st)
	}
	v := rcv.find("https://schemas.openid.net/secevent/ssf/event-type/verification", func(sub, ev map[string]any) bool { return ev["state"] == "hello-42" })
	if v["aud"] != pushID || v["iss"] != DefaultPublicURL {
		t.Fatalf("verification SET %v", v)
	}
	const pw = "umbrella-cactus-violin-47"
	if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"ann@example.com","password":"`+pw+`","first_name":"Ann","last_name":"Lee"}`); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	code, login := postJSON(t, base+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
	token, _ := login["session_token"].(string)
	if code != 200 || token == "" {
		t.Fatalf("login: %d %v", code, login)
	}
	_, who, _ := doJSON(t, "GET", base+"/api/v1/whoami", "", auth(token)...)
	sessionID, _ := who["session_id"].(string)
	accountID, _ := who["account_id"].(string)
	if st, _ := postJSON(t, base+"/api/v1/logout", `{}`, auth(token)...); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	revoked := rcv.find("https://schemas.openid.net/secevent/caep/event-type/session-revoked", func(sub, ev map[string]any) bool {
		sess, _ := sub["session"].(map[string]any)
		user, _ := sub["user"].(map[string]any)
		return sub["format"] == "complex" && sessionID != "" && sess["id"] == sessionID && user["sub"] == accountID
	})
	if revoked["txn"] == "" || revoked["jti"] == "" {
		t.Fatalf("session-revoked SET %v", revoked)
	}

	// A poll stream over HTTP: the logout came before it; a password change after does not
	// match its events; a second sign-out does.
	st, pollStream := postJSON(t, api+"/streams", `{"delivery":{"method":"urn:ietf:rfc:8936"},"events_requested":["https://schemas.openid.net/secevent/caep/event-type/session-revoked"],"description":"tests"}`, auth(manage)...)
	pollID, _ := pollStream["stream_id"].(string)
	d, _ := pollStream["delivery"].(map[string]any)
	if st != 201 || d["endpoint_url"] != DefaultPublicURL+"/api/v1/ssf/poll/"+pollID {
		t.Fatalf("poll stream: %d %v", st, pollStream)
	}
	code, login = postJSON(t, base+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
	token, _ = login["session_token"].(string)
	if st, _ := postJSON(t, base+"/api/v1/logout", `{}`, auth(token)...); code != 200 || st != 204 {
		t.Fatalf("second sign-in %d / out %d", code, st)
	}
	var jtis []string
	testwait.Until(t, 10*time.Second, "a SET to poll", func() (bool, string) {
		st, m := postJSON(t, api+"/poll/"+pollID, `{"maxEvents":10,"returnImmediately":true}`, auth(manage)...)
		sets, _ := m["sets"].(map[string]any)
		jtis = jtis[:0]
		for jti, tok := range sets {
			if _, err := rcv.verify(tok.(string)); err != nil {
				t.Fatalf("polled SET: %v", err)
			}
			jtis = append(jtis, jti)
		}
		return st == 200 && len(jtis) == 1, string(must(json.Marshal(m)))
	})
	ack, _ := json.Marshal(map[string]any{"ack": jtis, "returnImmediately": true})
	if st, m := postJSON(t, api+"/poll/"+pollID, string(ack), auth(manage)...); st != 200 || len(m["sets"].(map[string]any)) != 0 || m["moreAvailable"] != false {
		t.Fatalf("after the ack: %d %v", st, m)
	}
	for _, bad := range []string{`{"maxEvents":-1}`, `{"ack":"x"}`, `{"wait":true}`} {
		if st, m := postJSON(t, api+"/poll/"+pollID, bad, auth(manage)...); st != 400 || m["code"] != "invalid_request" {
			t.Errorf("poll %s: %d %v", bad, st, m)
		}
	}
	if st, m := postJSON(t, api+"/poll/"+pushID, `{"returnImmediately":true}`, auth(manage)...); st != 400 {
		t.Errorf("polling a push stream: %d %v", st, m)
	}
	if st, _ := postJSON(t, api+"/poll/"+pollID, `{}`, auth(reader)...); st != 403 {
		t.Errorf("poll with events:read: %d", st)
	}

	// Read, list, change, status, delete.
	if st, m, _ := doJSON(t, "GET", api+"/streams?stream_id="+pollID, "", auth(manage)...); st != 200 || m["description"] != "tests" {
		t.Fatalf("read: %d %v", st, m)
	}
	req, _ := http.NewRequest("GET", api+"/streams", nil)
	req.Header.Set("Authorization", "Bearer "+manage)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", resp.StatusCode, list)
	}
	if st, m, _ := doJSON(t, "PATCH", api+"/streams", `{"stream_id":"`+pollID+`","delivery":{"method":"urn:ietf:rfc:8936","endpoint_url":"`+DefaultPublicURL+`/api/v1/ssf/poll/`+pollID+`"},"events_requested":["https://schemas.openid.net/secevent/risc/event-type/account-purged"]}`, auth(manage)...); st != 200 ||
		len(m["events_delivered"].([]any)) != 1 || m["events_delivered"].([]any)[0] != "https://schemas.openid.net/secevent/risc/event-type/account-purged" {
		t.Fatalf("patch: %d %v", st, m)
	}
	if st, m := postJSON(t, api+"/status", `{"stream_id":"`+pollID+`","status":"paused"}`, auth(manage)...); st != 200 || m["status"] != "paused" {
		t.Fatalf("pause: %d %v", st, m)
	}
	if st, m, _ := doJSON(t, "GET", api+"/status?stream_id="+pollID, "", auth(manage)...); st != 200 || m["status"] != "paused" {
		t.Fatalf("status: %d %v", st, m)
	}
	if st, _, _ := doJSON(t, "DELETE", api+"/streams?stream_id="+pollID, "", auth(manage)...); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, _ := doJSON(t, "GET", api+"/streams?stream_id="+pollID, "", auth(manage)...); st != 404 {
		t.Fatalf("read after delete: %d", st)
	}
	if st, _ := postJSON(t, api+"/poll/"+pollID, `{"returnImmediately":true}`, auth(manage)...); st != 404 {
		t.Fatalf("poll after delete: %d", st)
	}
	_, metrics := get(t, base+"/metrics")
	if !strings.Contains(metrics, `vigil_ssf_stream_status{reason="",status="enabled",stream="`+pushID+`"} 1`) {
		t.Errorf("/metrics lacks the stream's status")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
