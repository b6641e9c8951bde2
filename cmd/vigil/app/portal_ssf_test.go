package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestPortalSharedSignals: the administrators' page lists the streams with their delivery,
// status and lag; a stream an admin (aal2, within the step-up window) creates through the API
// with the session cookie and CSRF header appears, and a paused one shows it; an account
// without role admin gets 403.
func TestPortalSharedSignals(t *testing.T) {
	base := portalApp(t, nil)
	admin := newPortalClient(t, base)
	admin.signUp("ada@example.com")
	admin.enableTOTP()
	if a := admin.get("/audit/shared-signals"); a.status != 200 || !strings.Contains(a.body, "No stream yet.") {
		t.Fatalf("empty page: %d %.300s", a.status, a.body)
	}
	var tok struct {
		CSRF string `json:"csrf_token"`
	}
	a := admin.get("/api/v1/csrf")
	if err := json.Unmarshal([]byte(a.body), &tok); err != nil || tok.CSRF == "" {
		t.Fatalf("csrf: %d %s", a.status, a.body)
	}
	api := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+"/api/v1/ssf"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", tok.CSRF)
		got := admin.do(req)
		var m map[string]any
		_ = json.Unmarshal([]byte(got.body), &m)
		return got.status, m
	}
	st, s := api("POST", "/streams", `{"delivery":{"method":"urn:ietf:rfc:8936"},"events_requested":["https://schemas.openid.net/secevent/caep/event-type/session-revoked"],"description":"Acme HR"}`)
	id, _ := s["stream_id"].(string)
	if st != 201 || id == "" {
		t.Fatalf("create as admin: %d %v", st, s)
	}
	if st, m := api("POST", "/status", `{"stream_id":"`+id+`","status":"paused"}`); st != 200 || m["status"] != "paused" {
		t.Fatalf("pause: %d %v", st, m)
	}
	// A sign-out while paused is kept: one SET waits.
	user := newPortalClient(t, base)
	user.signUp("bob@example.com")
	utok := csrf(t, user.get("/account"))
	user.post("/signout", map[string][]string{"csrf_token": {utok}})

	var row string
	waitFor(t, func() bool {
		a := admin.get("/audit/shared-signals")
		_, row, _ = strings.Cut(a.body, `<tr data-stream="`+id+`">`)
		row, _, _ = strings.Cut(row, "</tr>")
		return strings.Contains(row, `class="ssf-pending">1`)
	}, "the page shows the stream with one SET waiting")
	for _, want := range []string{"Acme HR", "poll", `class="ssf-status">paused`, `class="ssf-lag">`} {
		if !strings.Contains(row, want) {
			t.Errorf("the stream's row lacks %q: %s", want, row)
		}
	}
	other := newPortalClient(t, base)
	other.signUp("carl@example.com")
	if a := other.get("/audit/shared-signals"); a.status != 403 {
		t.Errorf("a user without a role: %d", a.status)
	}
}
