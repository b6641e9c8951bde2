package handlers_test

import (
	"testing"
	"time"

	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// Regression tests of the security review's findings (issue 11), through the real server.
// Each failed before its fix; the finding is quoted above the test.

// TestBootstrapAdminIsOneTime: "--admin-emails matched the live email. The admin moved to
// another address, a second account took the listed address and became admin." The listed
// email now grants admin once, ever, as an event; the role stays with the account.
func TestBootstrapAdminIsOneTime(t *testing.T) {
	e := newEnv(t, withAdmins("boss@example.com"))
	bossID := e.register("boss@example.com")
	boss := e.teamLogin("boss@example.com")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, boss.auth()), 200, "")
	// The grant is an event of the account, made by the system.
	evs := e.expect(e.do("GET", "/api/v1/audit/accounts/"+bossID+"/events", nil, boss.auth()), 200, "")
	granted := false
	for _, it := range evs["items"].([]any) {
		ev := it.(map[string]any)
		if ev["type"] == "RoleGranted" {
			granted = ev["data"].(map[string]any)["role"] == "admin" &&
				ev["metadata"].(map[string]any)["actor"].(map[string]any)["type"] == "system"
		}
	}
	if !granted {
		t.Fatalf("no RoleGranted admin by the system in %v", evs["items"])
	}

	// The admin moves to another address; the role moves with the account.
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"email": "boss@example.org"}, boss.auth()), 200, "")
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]any{"name": "Still admin"}, boss.auth()), 201, "")

	// A second account takes the listed address: no admin.
	e.register("boss@example.com")
	mallory := e.teamLogin("boss@example.com")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, mallory.auth()), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/admin/service-tokens", map[string]any{"name": "x", "scopes": []string{"events:read"}}, mallory.auth()), 403, "forbidden")
}

// TestTeamRoutesNeedASecondFactor: "admin and auditor routes worked from a password-only
// session hours old: they now need aal2 (403 mfa_required) and admin changes need the
// step-up window."
func TestTeamRoutesNeedASecondFactor(t *testing.T) {
	e := newEnv(t, withAdmins("root@example.com"))
	e.register("root@example.com")
	bobID := e.register("bob@example.com")
	root := e.login("root@example.com", testPassword)
	before := e.head()
	for _, rt := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/audit/sessions", nil},
		{"GET", "/api/v1/audit/activity", nil},
		{"GET", "/api/v1/admin/service-tokens", nil},
		{"GET", "/api/v1/events", nil},
		{"POST", "/api/v1/admin/clients", map[string]any{"name": "Shop"}},
		{"POST", "/api/v1/admin/accounts/" + bobID + "/roles", map[string]any{"role": "auditor"}},
	} {
		e.expect(e.do(rt.method, rt.path, rt.body, root.auth()), 403, "mfa_required")
	}
	if h := e.head(); h != before {
		t.Fatalf("refused team requests wrote to the log: %d -> %d", before, h)
	}
	_, secret, _ := e.enrollTOTP(root) // the session has now proved a second factor: aal2
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, root.auth()), 200, "")
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]any{"name": "Shop"}, root.auth()), 201, "")

	// Hours later reads still work, but a change needs a fresh authentication.
	e.clk.Advance(20 * time.Minute)
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, root.auth()), 200, "")
	before = e.head()
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]any{"role": "auditor"}, root.auth()), 403, "reauthentication_required")
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]any{"name": "Late"}, root.auth()), 403, "reauthentication_required")
	if h := e.head(); h != before {
		t.Fatalf("refused admin changes wrote to the log: %d -> %d", before, h)
	}
	e.clk.Advance(30 * time.Second) // a fresh TOTP step
	e.expect(e.do("POST", "/api/v1/reauth", map[string]any{"code": e.totpCode(secret)}, root.auth()), 204, "")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]any{"role": "auditor"}, root.auth()), 204, "")
}

// TestRevokeRole: "no route revoked a role (RevokeRole existed, unused)".
func TestRevokeRole(t *testing.T) {
	e := newEnv(t, withAdmins("root@example.com"))
	rootID := e.register("root@example.com")
	audID := e.register("aud@example.com")
	root := e.teamLogin("root@example.com")
	aud := e.teamLogin("aud@example.com")
	roles := "/api/v1/admin/accounts/" + audID + "/roles"
	e.expect(e.do("POST", roles, map[string]any{"role": "auditor"}, root.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, aud.auth()), 200, "")

	before := e.head()
	e.expect(e.do("DELETE", roles+"/auditor", nil, aud.auth()), 403, "forbidden") // not an admin
	e.expect(e.do("DELETE", roles+"/owner", nil, root.auth()), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/admin/accounts/"+rootID+"/roles/admin", nil, root.auth()), 409, "conflict")
	if h := e.head(); h != before {
		t.Fatalf("refused revocations wrote to the log: %d -> %d", before, h)
	}
	r := e.do("DELETE", roles+"/auditor", nil, root.auth())
	e.expect(r, 204, "")
	if r.header.Get("Vigil-Position") == "" {
		t.Fatal("no Vigil-Position")
	}
	// At once, on the auditor's existing session.
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, aud.auth()), 403, "forbidden")
	// Revoking a role not held changes nothing.
	before = e.head()
	e.expect(e.do("DELETE", roles+"/auditor", nil, root.auth()), 204, "")
	if h := e.head(); h != before {
		t.Fatalf("a second revocation wrote to the log: %d -> %d", before, h)
	}
}

// TestEmailChangeNeedsStepUp: "an email change needed no step-up."
func TestEmailChangeNeedsStepUp(t *testing.T) {
	e := newEnv(t)
	e.register("ann@example.com")
	ann := e.login("ann@example.com", testPassword)
	e.clk.Advance(10 * time.Minute)
	e.expect(e.do("GET", "/api/v1/whoami", nil, ann.auth()), 200, "") // records the use (SessionAccessed)
	before := e.head()
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"email": "ann@example.org"}, ann.auth()), 403, "reauthentication_required")
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"first_name": "Anna", "email": "ann@example.org"}, ann.auth()), 403, "reauthentication_required")
	if h := e.head(); h != before {
		t.Fatalf("a refused email change wrote to the log: %d -> %d", before, h)
	}
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"first_name": "Anna"}, ann.auth()), 200, "")
	e.expect(e.do("POST", "/api/v1/reauth", map[string]any{"password": testPassword}, ann.auth()), 204, "")
	if me := e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"email": "ann@example.org"}, ann.auth()), 200, ""); me["email"] != "ann@example.org" {
		t.Fatalf("me %v", me)
	}
}

// TestSecurityHeaders: "No nosniff on API answers and no HSTS behind an https public URL."
func TestSecurityHeaders(t *testing.T) {
	plain := newEnv(t)
	for _, p := range []string{"/api/v1/whoami", "/healthz", "/openapi.json", "/no/such/route"} {
		r := plain.do("GET", p, nil, nil)
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", p, r.header.Get("X-Content-Type-Options"))
		}
		if r.header.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s over a plain-http public URL sets HSTS", p)
		}
	}
	tls := newEnv(t, func(c *handlertest.Config) { c.PublicURL = "https://vigil.example.com" })
	for _, p := range []string{"/api/v1/whoami", "/healthz"} {
		r := tls.do("GET", p, nil, nil)
		if got := r.header.Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
			t.Errorf("GET %s behind an https public URL: Strict-Transport-Security %q", p, got)
		}
	}
}
