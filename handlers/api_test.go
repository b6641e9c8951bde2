package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := map[string]any{"email": "ann@example.com", "password": testPassword, "first_name": "Ann", "last_name": "Lee"}
	e.checkBadBodies("POST", "/api/v1/accounts", valid, nil)

	before := e.head()
	r := e.do("POST", "/api/v1/accounts", valid, nil)
	m := e.expect(r, 201, "")
	if id, _ := m["account_id"].(string); id == "" {
		t.Fatalf("no account_id: %s", r.body)
	}
	if pos, _ := strconv.ParseUint(r.header.Get("Vigil-Position"), 10, 64); pos <= before {
		t.Errorf("Vigil-Position %d is not after the head before (%d)", pos, before)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}

	// The same email, in another case: 409.
	dup := map[string]any{"email": "ANN@example.com", "password": testPassword, "first_name": "Ann", "last_name": "Other"}
	before = e.head()
	e.expect(e.do("POST", "/api/v1/accounts", dup, nil), 409, "conflict")

	// A weak password: 400 with the reasons, nothing written.
	weak := map[string]any{"email": "bob@example.com", "password": "password1234", "first_name": "Bob", "last_name": "Lee"}
	p := e.expect(e.do("POST", "/api/v1/accounts", weak, nil), 400, "invalid_request")
	errs, _ := p["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "password" || !strings.HasPrefix(p["detail"].(string), "password: ") {
		t.Errorf("weak password problem: %v", p)
	}
	// A bad email and a missing name.
	p = e.expect(e.do("POST", "/api/v1/accounts", map[string]any{"email": "not an email", "password": testPassword, "first_name": "Bob", "last_name": "Lee"}, nil), 400, "invalid_request")
	if !strings.HasPrefix(p["detail"].(string), "email: ") {
		t.Errorf("bad email detail %v", p["detail"])
	}
	e.expect(e.do("POST", "/api/v1/accounts", map[string]any{"email": "bob@example.com", "password": testPassword, "first_name": "", "last_name": "Lee"}, nil), 400, "invalid_request")
	// An unknown client in the header.
	e.expect(e.do("POST", "/api/v1/accounts", map[string]any{"email": "bob@example.com", "password": testPassword, "first_name": "Bob", "last_name": "Lee"},
		hdr{"X-Vigil-Client": "nope"}), 400, "invalid_request")
	if h := e.head(); h != before {
		t.Errorf("refused registrations wrote to the log: %d -> %d", before, h)
	}
}

func TestLoginPasswordOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	accountID := e.register("ann@example.com")
	e.checkBadBodies("POST", "/api/v1/login", map[string]any{"email": "ann@example.com", "password": testPassword}, nil)
	before := e.head()
	e.expect(e.do("POST", "/api/v1/login", map[string]any{"email": "ann@example.com"}, nil), 400, "invalid_request")
	if h := e.head(); h != before {
		t.Errorf("a login without a password wrote to the log")
	}

	r := e.do("POST", "/api/v1/login", map[string]string{"email": " Ann@Example.com ", "password": testPassword}, nil)
	m := e.expect(r, 200, "")
	s := e.sessionFrom(r, m)
	if m["status"] != "authenticated" || s.view["aal"] != "aal1" || s.view["account_id"] != accountID || s.view["restricted"] != false {
		t.Errorf("login answer %s", r.body)
	}
	if amr, _ := s.view["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr %v", s.view["amr"])
	}
	ck := r.cookie("vigil_session")
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 12*3600 {
		t.Errorf("cookie %+v; Set-Cookie %q", ck, r.header.Get("Set-Cookie"))
	}

	// whoami has exactly API.md's fields.
	w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"aal", "account_id", "amr", "authenticated_at", "expires_at", "restricted", "session_id"}; !slices.Equal(keys, want) {
		t.Errorf("whoami fields %v, want %v", keys, want)
	}
	if w["session_id"] != s.id || w["expires_at"] != "2026-03-02T21:00:01Z" || w["authenticated_at"] != "2026-03-02T09:00:01Z" {
		t.Errorf("whoami %v", w)
	}
	// The cookie works too (GET needs no CSRF token).
	e.expect(e.do("GET", "/api/v1/whoami", nil, hdr{"Cookie": "vigil_session=" + s.token}), 200, "")

	// Wrong password and unknown email: the same 401 body.
	wrong := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": "wrong-password-123"}, nil)
	unknown := e.do("POST", "/api/v1/login", map[string]string{"email": "nobody@example.com", "password": "wrong-password-123"}, nil)
	e.expect(wrong, 401, "invalid_credentials")
	e.expect(unknown, 401, "invalid_credentials")
	if !bytes.Equal(wrong.body, unknown.body) {
		t.Errorf("wrong password %s, unknown email %s", wrong.body, unknown.body)
	}
	if wrong.cookie("vigil_session") != nil {
		t.Error("a refused login set a cookie")
	}

	// whoami without a session, with a bad one, with a malformed header.
	e.expect(e.do("GET", "/api/v1/whoami", nil, nil), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, bearer("not-a-token")), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, hdr{"Authorization": "Basic abc"}), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami?min_position=x", nil, s.auth()), 400, "invalid_request")
	e.expect(e.do("GET", "/api/v1/whoami?min_position=1", nil, s.auth()), 200, "")

	// The session expires with its idle timeout (30 min by default) on the injected clock.
	e.clk.Advance(30*time.Minute + time.Second)
	e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 401, "unauthenticated")
}

func TestLoginClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAdmins("root@example.com"))
	e.register("root@example.com")
	root := e.teamLogin("root@example.com")
	c := e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, root.auth()), 201, "")
	clientID := c["client_id"].(string)
	if c["name"] != "Shop" || clientID == "" {
		t.Fatalf("client %v", c)
	}
	for _, tc := range []struct {
		body   map[string]string
		header hdr
		status int
	}{
		{map[string]string{"email": "root@example.com", "password": testPassword, "client_id": clientID}, nil, 200},
		{map[string]string{"email": "root@example.com", "password": testPassword}, hdr{"X-Vigil-Client": clientID}, 200},
		{map[string]string{"email": "root@example.com", "password": testPassword, "client_id": "portal"}, nil, 200},
		{map[string]string{"email": "root@example.com", "password": testPassword, "client_id": "nope"}, nil, 400},
		{map[string]string{"email": "root@example.com", "password": testPassword}, hdr{"X-Vigil-Client": "nope"}, 400},
	} {
		r := e.do("POST", "/api/v1/login", tc.body, tc.header)
		if r.code != tc.status {
			t.Errorf("login %v %v: %d %s", tc.body, tc.header, r.code, r.body)
		}
	}
	// An unknown client on an authenticated command is refused too.
	e.expect(e.do("POST", "/api/v1/me/sessions/sign-out-others", nil, root.auth().with("X-Vigil-Client", "nope")), 400, "invalid_request")
}

func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	wrong := map[string]string{"email": "ann@example.com", "password": "wrong-password-123"}
	for i := range 6 {
		e.expect(e.do("POST", "/api/v1/login", wrong, nil), 401, "invalid_credentials")
		_ = i
	}
	// Even the right password waits now.
	r := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil)
	p := e.expect(r, 429, "too_many_attempts")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q", ra)
	}
	if p["retry_after"] != float64(1) {
		t.Errorf("problem %v", p)
	}
	// An unknown email throttles alike.
	for range 6 {
		e.do("POST", "/api/v1/login", map[string]string{"email": "ghost@example.com", "password": "wrong-password-123"}, nil)
	}
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ghost@example.com", "password": "wrong-password-123"}, nil), 429, "too_many_attempts")

	e.clk.Advance(1500 * time.Millisecond)
	e.login("ann@example.com", testPassword)
}

func TestLoginSecondFactor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	_, secret, backup := e.enrollTOTP(s)
	if len(backup) != 10 {
		t.Fatalf("backup codes %v", backup)
	}

	start := func() string {
		t.Helper()
		m := e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil), 200, "")
		if m["status"] != "second_factor_required" || m["session_token"] != nil {
			t.Fatalf("login with 2FA: %v", m)
		}
		methods, _ := m["methods"].([]any)
		if !slices.Contains(methods, any("totp")) || !slices.Contains(methods, any("backup_code")) {
			t.Errorf("methods %v", methods)
		}
		return m["login_ticket"].(string)
	}
	ticket := start()
	e.checkBadBodies("POST", "/api/v1/login/second-factor", map[string]any{"login_ticket": ticket, "method": "totp", "code": "123456"}, nil)
	before := e.head()
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "sms", "code": "123456"}, nil), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "totp"}, nil), 400, "invalid_request")
	if h := e.head(); h != before {
		t.Error("refused second-factor bodies wrote to the log")
	}

	// A wrong code: 401; the code of the step used by the confirmation: 401 (used once).
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "totp", "code": "000000"}, nil), 401, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "totp", "code": e.totpCode(secret)}, nil), 401, "invalid_credentials")
	e.clk.Advance(30 * time.Second)
	r := e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "totp", "code": e.totpCode(secret)}, nil)
	m := e.expect(r, 200, "")
	s2 := e.sessionFrom(r, m)
	if m["status"] != "authenticated" || s2.view["aal"] != "aal2" {
		t.Errorf("second factor answer %s", r.body)
	}
	if amr, _ := s2.view["amr"].([]any); !slices.Equal(amr, []any{"pwd", "otp"}) {
		t.Errorf("amr %v", amr)
	}
	// The ticket is single-use.
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "backup_code", "code": backup[0]}, nil), 401, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": "no-such-ticket", "method": "totp", "code": "123456"}, nil), 401, "invalid_credentials")

	// A backup code, once.
	ticket = start()
	r = e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "backup_code", "code": backup[0]}, nil)
	m = e.expect(r, 200, "")
	if s3 := e.sessionFrom(r, m); !slices.Equal(s3.view["amr"].([]any), []any{"pwd", "backup_code"}) || s3.view["aal"] != "aal2" {
		t.Errorf("backup code session %v", s3.view)
	}
	ticket = start()
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]string{"login_ticket": ticket, "method": "backup_code", "code": backup[0]}, nil), 401, "invalid_credentials")
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s2.auth()), 200, "")
	if bc := sec["backup_codes"].(map[string]any); bc["remaining"] != float64(9) {
		t.Errorf("backup codes %v", bc)
	}
}

func TestCookieSessionsAndCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	cookie := hdr{"Cookie": "vigil_session=" + s.token}

	e.expect(e.do("GET", "/api/v1/csrf", nil, nil), 401, "unauthenticated")
	tok := e.expect(e.do("GET", "/api/v1/csrf", nil, cookie), 200, "")["csrf_token"].(string)
	if tok == "" {
		t.Fatal("empty csrf token")
	}
	if tok2 := e.expect(e.do("GET", "/api/v1/csrf", nil, s.auth()), 200, "")["csrf_token"]; tok2 != tok {
		t.Errorf("the token differs between requests of one session: %v %v", tok, tok2)
	}
	other := e.login("ann@example.com", testPassword)
	if tok3 := e.expect(e.do("GET", "/api/v1/csrf", nil, other.auth()), 200, "")["csrf_token"]; tok3 == tok {
		t.Error("two sessions share a CSRF token")
	}

	before := e.head()
	e.expect(e.do("POST", "/api/v1/logout", nil, cookie), 403, "csrf_failed")
	e.expect(e.do("POST", "/api/v1/logout", nil, cookie.with("X-CSRF-Token", "wrong")), 403, "csrf_failed")
	otherTok := e.expect(e.do("GET", "/api/v1/csrf", nil, other.auth()), 200, "")["csrf_token"].(string)
	e.expect(e.do("POST", "/api/v1/logout", nil, cookie.with("X-CSRF-Token", otherTok)), 403, "csrf_failed")
	e.expect(e.do("PATCH", "/api/v1/me", map[string]string{"first_name": "X"}, cookie), 403, "csrf_failed")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+other.id, nil, cookie), 403, "csrf_failed")
	if h := e.head(); h != before {
		t.Errorf("refused CSRF requests wrote to the log: %d -> %d", before, h)
	}
	e.expect(e.do("GET", "/api/v1/whoami", nil, cookie), 200, "")

	// With the token: accepted; logout clears the cookie and ends the session at once.
	r := e.do("POST", "/api/v1/logout", nil, cookie.with("X-CSRF-Token", tok))
	e.expect(r, 204, "")
	if ck := r.cookie("vigil_session"); ck == nil || ck.MaxAge >= 0 || ck.Value != "" {
		t.Errorf("logout did not clear the cookie: %v", r.header.Values("Set-Cookie"))
	}
	r = e.do("GET", "/api/v1/whoami", nil, cookie)
	e.expect(r, 401, "unauthenticated")
	if ck := r.cookie("vigil_session"); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("a cookie of an ended session was not cleared: %v", r.header.Values("Set-Cookie"))
	}
	e.expect(e.do("POST", "/api/v1/logout", nil, cookie.with("X-CSRF-Token", tok)), 401, "unauthenticated")

	// Bearer requests need no token.
	e.expect(e.do("POST", "/api/v1/logout", nil, other.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, other.auth()), 401, "unauthenticated")
}

func TestSessionsSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	e.register("bob@example.com")
	a1 := e.login("ann@example.com", testPassword)
	a2 := e.login("ann@example.com", testPassword)
	a3 := e.login("ann@example.com", testPassword)
	a4 := e.login("ann@example.com", testPassword)
	b1 := e.login("bob@example.com", testPassword)

	// Another account's session: 404, like one that does not exist; nothing happens to it.
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+b1.id, nil, a1.auth()), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/no-such-session", nil, a1.auth()), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+strings.Repeat("x", 300), nil, a1.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/whoami", nil, b1.auth()), 200, "")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+a2.id, nil, nil), 401, "unauthenticated")

	// A revoked session fails whoami as soon as DELETE has answered.
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+a2.id, nil, a1.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, a2.auth()), 401, "unauthenticated")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+a2.id, nil, a1.auth()), 404, "not_found")

	// Sign out the others: a3 and a4; a1 and Bob's session stay.
	m := e.expect(e.do("POST", "/api/v1/me/sessions/sign-out-others", nil, a1.auth()), 200, "")
	if m["signed_out"] != float64(2) {
		t.Errorf("signed_out %v", m["signed_out"])
	}
	e.expect(e.do("GET", "/api/v1/whoami", nil, a3.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, a4.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, a1.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, b1.auth()), 200, "")
	if m := e.expect(e.do("POST", "/api/v1/me/sessions/sign-out-others", nil, a1.auth()), 200, ""); m["signed_out"] != float64(0) {
		t.Errorf("second sign-out-others %v", m)
	}

	// Deleting one's own session signs it out and clears the cookie.
	r := e.do("DELETE", "/api/v1/me/sessions/"+a1.id, nil, a1.auth())
	e.expect(r, 204, "")
	if ck := r.cookie("vigil_session"); ck == nil || ck.MaxAge >= 0 {
		t.Errorf("own session delete did not clear the cookie")
	}
	e.expect(e.do("GET", "/api/v1/whoami", nil, a1.auth()), 401, "unauthenticated")
}

func TestStepUpAndPasswordChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	other := e.login("ann@example.com", testPassword)
	const newPassword = "lantern-orchid-glacier-93"
	change := map[string]any{"current_password": testPassword, "new_password": newPassword, "sign_out_other_sessions": true}
	e.checkBadBodies("POST", "/api/v1/me/password", change, s.auth())
	e.checkBadBodies("POST", "/api/v1/reauth", map[string]any{"password": testPassword}, s.auth())
	e.expect(e.do("POST", "/api/v1/me/password", map[string]any{"new_password": newPassword}, s.auth()), 400, "invalid_request")

	// After the step-up window, sensitive changes need a re-authentication.
	e.clk.Advance(6 * time.Minute)
	e.expect(e.do("POST", "/api/v1/me/password", change, s.auth()), 403, "reauthentication_required")
	e.expect(e.do("POST", "/api/v1/me/totp", map[string]string{"name": "phone"}, s.auth()), 403, "reauthentication_required")
	e.expect(e.do("POST", "/api/v1/me/backup-codes", nil, s.auth()), 403, "reauthentication_required")
	e.expect(e.do("DELETE", "/api/v1/me", nil, s.auth()), 403, "reauthentication_required")
	e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "") // the refused erasure changed nothing
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"password": "wrong-password-123"}, s.auth()), 403, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{}, s.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"password": testPassword, "code": "123456"}, s.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"code": "123456"}, s.auth()), 403, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"password": testPassword}, s.auth()), 204, "")
	w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	if w["authenticated_at"] != "2026-03-02T09:06:01Z" {
		t.Errorf("authenticated_at after reauth %v", w["authenticated_at"])
	}

	// The current password must be right (403: the caller is signed in), the new one strong.
	e.expect(e.do("POST", "/api/v1/me/password", map[string]any{"current_password": "wrong-password-123", "new_password": newPassword}, s.auth()), 403, "invalid_credentials")
	p := e.expect(e.do("POST", "/api/v1/me/password", map[string]any{"current_password": testPassword, "new_password": "short"}, s.auth()), 400, "invalid_request")
	if errs := p["errors"].([]any); errs[0].(map[string]any)["field"] != "new_password" {
		t.Errorf("weak new password problem %v", p)
	}
	e.expect(e.do("POST", "/api/v1/me/password", change, s.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, other.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil), 401, "invalid_credentials")
	e.login("ann@example.com", newPassword)
}

func TestMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("ann@example.com")
	e.register("taken@example.com")
	s := e.login("ann@example.com", testPassword)
	e.expect(e.do("GET", "/api/v1/me", nil, nil), 401, "unauthenticated")
	m := e.expect(e.do("GET", "/api/v1/me", nil, s.auth()), 200, "")
	if m["account_id"] != id || m["email"] != "ann@example.com" || m["first_name"] != "Ann" || m["last_name"] != "Lee" {
		t.Errorf("me %v", m)
	}
	if prof, _ := m["profile"].(map[string]any); len(prof) != 9 || prof["country"] != "" {
		t.Errorf("profile %v", m["profile"])
	}

	patch := map[string]any{"first_name": "Annie", "profile": map[string]any{"country": "ch", "locale": "de-ch", "city": "Zürich"}}
	e.checkBadBodies("PATCH", "/api/v1/me", patch, s.auth())
	before := e.head()
	for _, bad := range []map[string]any{
		{"profile": map[string]any{"country": "XX"}},
		{"profile": map[string]any{"nickname": "x"}},
		{"first_name": "   "},
		{"email": "not an email"},
		{"account_id": "someone-else"},
		{"first_name": "Annie", "profile": map[string]any{"telephone": "call me"}},
	} {
		e.expect(e.do("PATCH", "/api/v1/me", bad, s.auth()), 400, "invalid_request")
	}
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"first_name": "Annie", "email": "TAKEN@example.com"}, s.auth()), 409, "conflict")
	if h := e.head(); h != before {
		t.Errorf("refused PATCHes wrote to the log: %d -> %d", before, h)
	}

	r := e.do("PATCH", "/api/v1/me", patch, s.auth())
	m = e.expect(r, 200, "")
	prof := m["profile"].(map[string]any)
	if m["first_name"] != "Annie" || m["last_name"] != "Lee" || prof["country"] != "CH" || prof["locale"] != "de-CH" || prof["city"] != "Zürich" {
		t.Errorf("patched %v", m)
	}
	pos := r.header.Get("Vigil-Position")
	got := e.expect(e.do("GET", "/api/v1/me?min_position="+pos, nil, s.auth()), 200, "")
	if got["first_name"] != "Annie" {
		t.Errorf("read after write %v", got)
	}
	e.expect(e.do("GET", "/api/v1/me?min_position=-1", nil, s.auth()), 400, "invalid_request")

	// Email change; account_id sent back unchanged is fine; an empty patch changes nothing.
	m = e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"account_id": id, "email": "Ann.Lee@Example.com", "last_name": "Lee-Smith"}, s.auth()), 200, "")
	if m["email"] != "ann.lee@example.com" || m["last_name"] != "Lee-Smith" || m["first_name"] != "Annie" {
		t.Errorf("patched %v", m)
	}
	before = e.head()
	r = e.do("PATCH", "/api/v1/me", map[string]any{}, s.auth())
	e.expect(r, 200, "")
	if r.header.Get("Vigil-Position") != strconv.FormatUint(before, 10) || e.head() != before {
		t.Errorf("empty patch: position %s, head %d -> %d", r.header.Get("Vigil-Position"), before, e.head())
	}
	e.login("ann.lee@example.com", testPassword)
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil), 401, "invalid_credentials")
}

func TestMinPositionWaitIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	start := time.Now()
	e.expect(e.do("GET", "/api/v1/me?min_position=999999999", nil, s.auth()), 200, "")
	if d := time.Since(start); d < 1900*time.Millisecond || d > 2*time.Second+testwait.Deadline(2*time.Second) {
		t.Errorf("a read for a position never reached took %s, want about 2s", d)
	}
}

func TestSecurity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	want := map[string]any{
		"password_changed_at": "2026-03-02T09:00:01Z", "two_factor_enabled": false,
		"two_factor_required_by": []any{}, "totp_devices": []any{}, "passkeys": []any{},
		"backup_codes": map[string]any{"remaining": float64(0), "generated_at": nil},
	}
	for k, v := range want {
		if !equalJSON(sec[k], v) {
			t.Errorf("security %s = %v, want %v", k, sec[k], v)
		}
	}
	if len(sec) != len(want) {
		t.Errorf("security fields %v", sec)
	}
	id, _, codes := e.enrollTOTP(s)
	sec = e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	devs := sec["totp_devices"].([]any)
	d := devs[0].(map[string]any)
	if sec["two_factor_enabled"] != true || len(devs) != 1 || d["id"] != id || d["name"] != "phone" || d["confirmed"] != true ||
		d["created_at"] != "2026-03-02T09:00:01Z" {
		t.Errorf("security after enrolling %v", sec)
	}
	if bc := sec["backup_codes"].(map[string]any); bc["remaining"] != float64(len(codes)) || bc["generated_at"] == nil {
		t.Errorf("backup codes %v", bc)
	}
}

func equalJSON(a, b any) bool {
	switch b := b.(type) {
	case []any:
		a, ok := a.([]any)
		return ok && len(a) == len(b)
	case map[string]any:
		a, ok := a.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k := range b {
			if !equalJSON(a[k], b[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestTOTPDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.register("ann@example.com")
	e.register("bob@example.com")
	s := e.login("ann@example.com", testPassword)
	bob := e.login("bob@example.com", testPassword)
	e.checkBadBodies("POST", "/api/v1/me/totp", map[string]any{"name": "phone"}, s.auth())
	e.expect(e.do("POST", "/api/v1/me/totp", map[string]string{"name": ""}, s.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/me/totp", map[string]string{"name": "phone"}, nil), 401, "unauthenticated")

	m := e.expect(e.do("POST", "/api/v1/me/totp", map[string]string{"name": "phone"}, s.auth()), 201, "")
	id, secret := m["device_id"].(string), m["secret"].(string)
	if u := m["otpauth_url"].(string); !strings.HasPrefix(u, "otpauth://totp/Vigil:ann@example.com?") || !strings.Contains(u, "secret="+secret) {
		t.Errorf("otpauth_url %s", u)
	}
	// The QR code: a PNG for the caller's pending device, 404 for anyone else or afterwards.
	r := e.do("GET", "/api/v1/me/totp/"+id+"/qr.png", nil, s.auth())
	if r.code != 200 || r.header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(r.body, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("qr.png: %d %q %.8q", r.code, r.header.Get("Content-Type"), r.body)
	}
	e.expect(e.do("GET", "/api/v1/me/totp/"+id+"/qr.png", nil, bob.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/me/totp/nope/qr.png", nil, s.auth()), 404, "not_found")

	e.checkBadBodies("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]any{"code": "123456"}, s.auth())
	e.expect(e.do("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]string{"code": "000000"}, s.auth()), 403, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/me/totp/nope/confirm", map[string]string{"code": e.totpCode(secret)}, s.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]string{"code": e.totpCode(secret)}, bob.auth()), 404, "not_found")
	c := e.expect(e.do("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]string{"code": e.totpCode(secret)}, s.auth()), 200, "")
	codes := c["backup_codes"].([]any)
	if len(codes) != 10 {
		t.Errorf("backup codes %v", codes)
	}
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["aal"] != "aal2" {
		t.Errorf("whoami after confirming %v", w)
	}
	e.clk.Advance(30 * time.Second)
	e.expect(e.do("POST", "/api/v1/me/totp/"+id+"/confirm", map[string]string{"code": e.totpCode(secret)}, s.auth()), 409, "conflict")
	e.expect(e.do("GET", "/api/v1/me/totp/"+id+"/qr.png", nil, s.auth()), 404, "not_found")

	// A second device: no new backup codes.
	_, _, more := e.enrollTOTP(s)
	if more != nil {
		t.Errorf("a second device answered backup codes %v", more)
	}

	// New backup codes: the old ones stop working.
	n := e.expect(e.do("POST", "/api/v1/me/backup-codes", nil, s.auth()), 201, "")
	if len(n["codes"].([]any)) != 10 {
		t.Errorf("codes %v", n)
	}
	m = e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil), 200, "")
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]any{"login_ticket": m["login_ticket"], "method": "backup_code", "code": codes[0]}, nil), 401, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/login/second-factor", map[string]any{"login_ticket": m["login_ticket"], "method": "backup_code", "code": n["codes"].([]any)[0]}, nil), 200, "")

	// Remove a device; 404 for an unknown one or another account's.
	e.expect(e.do("DELETE", "/api/v1/me/totp/"+id, nil, bob.auth()), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/me/totp/"+id, nil, s.auth()), 204, "")
	e.expect(e.do("DELETE", "/api/v1/me/totp/"+id, nil, s.auth()), 404, "not_found")
	if sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, ""); sec["two_factor_enabled"] != true || len(sec["totp_devices"].([]any)) != 1 {
		t.Errorf("security %v", sec)
	}

	// Disable 2FA: the password, right.
	e.checkBadBodies("POST", "/api/v1/me/two-factor/disable", map[string]any{"password": testPassword}, s.auth())
	e.expect(e.do("POST", "/api/v1/me/two-factor/disable", map[string]string{}, s.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/me/two-factor/disable", map[string]string{"password": "wrong-password-123"}, s.auth()), 403, "invalid_credentials")
	e.expect(e.do("POST", "/api/v1/me/two-factor/disable", map[string]string{"password": testPassword}, s.auth()), 204, "")
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	if sec["two_factor_enabled"] != false || len(sec["totp_devices"].([]any)) != 0 || sec["backup_codes"].(map[string]any)["remaining"] != float64(0) {
		t.Errorf("security after disabling %v", sec)
	}
	// Without 2FA there are no backup codes to regenerate; disabling again writes nothing.
	e.expect(e.do("POST", "/api/v1/me/backup-codes", nil, s.auth()), 409, "conflict")
	e.expect(e.do("POST", "/api/v1/me/two-factor/disable", map[string]string{"password": testPassword}, s.auth()), 204, "")
	e.login("ann@example.com", testPassword)
}

// requireAll is a two-factor policy under which one organisation requires 2FA of everybody.
type requireAll struct{}

func (requireAll) RequiredBy(context.Context, string) ([]string, error) {
	return []string{"org-1"}, nil
}

func TestRestrictedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *handlertest.Config) { c.TwoFactorPolicy = requireAll{} })
	e.register("ann@example.com")
	r := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil)
	m := e.expect(r, 200, "")
	if m["status"] != "enrollment_required" {
		t.Fatalf("login %s", r.body)
	}
	s := e.sessionFrom(r, m)
	if s.view["restricted"] != true {
		t.Errorf("session %v", s.view)
	}
	// Everything but enrollment answers enrollment_required.
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/v1/me"},
		{"PATCH", "/api/v1/me"},
		{"POST", "/api/v1/me/password"},
		{"POST", "/api/v1/me/backup-codes"},
		{"POST", "/api/v1/me/two-factor/disable"},
		{"DELETE", "/api/v1/me/totp/x"},
		{"DELETE", "/api/v1/me/sessions/another-session"}, // its own it may sign out
		{"POST", "/api/v1/me/sessions/sign-out-others"},
		{"POST", "/api/v1/admin/clients"},
	} {
		e.expect(e.do(rt.method, rt.path, nil, s.auth()), 403, "enrollment_required")
	}
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["restricted"] != true {
		t.Errorf("whoami %v", w)
	}
	e.expect(e.do("GET", "/api/v1/csrf", nil, s.auth()), 200, "")
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	if !equalJSON(sec["two_factor_required_by"], []any{"org-1"}) {
		t.Errorf("two_factor_required_by %v", sec["two_factor_required_by"])
	}
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"password": testPassword}, s.auth()), 204, "")
	id, _, codes := e.enrollTOTP(s)
	if len(codes) != 10 {
		t.Errorf("codes %v", codes)
	}
	// Confirming lifts the restriction on this session.
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["restricted"] != false || w["aal"] != "aal2" {
		t.Errorf("whoami after enrolling %v", w)
	}
	e.expect(e.do("GET", "/api/v1/me", nil, s.auth()), 200, "")
	// The policy keeps 2FA on.
	e.expect(e.do("DELETE", "/api/v1/me/totp/"+id, nil, s.auth()), 409, "conflict")
	e.expect(e.do("POST", "/api/v1/me/two-factor/disable", map[string]string{"password": testPassword}, s.auth()), 409, "conflict")
	e.expect(e.do("POST", "/api/v1/logout", nil, s.auth()), 204, "")
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAdmins("root@example.com"))
	e.register("root@example.com")
	bobID := e.register("bob@example.com")
	root := e.teamLogin("root@example.com")
	bob := e.teamLogin("bob@example.com")

	before := e.head()
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, nil), 401, "unauthenticated")
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, bob.auth()), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]string{"role": "admin"}, bob.auth()), 403, "forbidden")
	e.checkBadBodies("POST", "/api/v1/admin/clients", map[string]any{"name": "Shop"}, root.auth())
	e.checkBadBodies("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]any{"role": "auditor"}, root.auth())
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": ""}, root.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]string{"role": "owner"}, root.auth()), 400, "invalid_request")
	e.expect(e.do("POST", "/api/v1/admin/accounts/no-such-account/roles", map[string]string{"role": "auditor"}, root.auth()), 404, "not_found")
	if h := e.head(); h != before {
		t.Errorf("refused admin requests wrote to the log: %d -> %d", before, h)
	}

	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, root.auth()), 201, "")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]string{"role": "auditor"}, root.auth()), 204, "")
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Shop"}, bob.auth()), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]string{"role": "admin"}, root.auth()), 204, "")
	// The granted role counts at once, on Bob's existing session.
	e.expect(e.do("POST", "/api/v1/admin/clients", map[string]string{"name": "Bob's app"}, bob.auth()), 201, "")
	// Granting a held role changes nothing but still answers 204 with a position.
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+bobID+"/roles", map[string]string{"role": "admin"}, root.auth()), 204, "")
}

// TestServedRoutesAreDocumented checks that the API routes of these issues are served and
// documented, and that nothing of the later issues is.
func TestServedRoutesAreDocumented(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res, err := e.http.Get(e.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := jsonDecode(res.Body, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, item := range doc.Paths {
		if !strings.HasPrefix(p, "/api/") {
			continue
		}
		for m := range item {
			got = append(got, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(got)
	want := []string{
		"DELETE /api/v1/admin/accounts/{id}/roles/{role}",
		"DELETE /api/v1/admin/service-tokens/{id}",
		"DELETE /api/v1/admin/webhooks/{id}",
		"DELETE /api/v1/audit/sessions/{id}",
		"DELETE /api/v1/me",
		"DELETE /api/v1/me/delegations/{id}",
		"DELETE /api/v1/me/passkeys/{id}",
		"DELETE /api/v1/me/sessions/{id}",
		"DELETE /api/v1/me/totp/{id}",
		"DELETE /api/v1/orgs/{id}/members/{account_id}",
		"DELETE /api/v1/ssf/streams",
		"GET /api/v1/admin/service-tokens",
		"GET /api/v1/admin/webhooks",
		"GET /api/v1/admin/webhooks/{id}/parked",
		"GET /api/v1/audit/accounts/{id}/events",
		"GET /api/v1/audit/accounts/{id}/security",
		"GET /api/v1/audit/activity",
		"GET /api/v1/audit/sessions",
		"GET /api/v1/csrf",
		"GET /api/v1/events",
		"GET /api/v1/events/stream",
		"GET /api/v1/me",
		"GET /api/v1/me/activity",
		"GET /api/v1/me/delegations",
		"GET /api/v1/me/security",
		"GET /api/v1/me/sessions",
		"GET /api/v1/me/totp/{id}/qr.png",
		"GET /api/v1/orgs/{id}",
		"GET /api/v1/orgs/{id}/activity",
		"GET /api/v1/orgs/{id}/members",
		"GET /api/v1/orgs/{id}/two-factor-report",
		"GET /api/v1/ssf/jwks",
		"GET /api/v1/ssf/status",
		"GET /api/v1/ssf/streams",
		"GET /api/v1/whoami",
		"PATCH /api/v1/me",
		"PATCH /api/v1/me/passkeys/{id}",
		"PATCH /api/v1/ssf/streams",
		"POST /api/v1/accounts",
		"POST /api/v1/admin/accounts/{id}/erase",
		"POST /api/v1/admin/accounts/{id}/roles",
		"POST /api/v1/admin/clients",
		"POST /api/v1/admin/service-tokens",
		"POST /api/v1/admin/webhooks",
		"POST /api/v1/admin/webhooks/{id}/parked/{delivery_id}/replay",
		"POST /api/v1/delegations/{id}/act",
		"POST /api/v1/email/verify",
		"POST /api/v1/login",
		"POST /api/v1/login/passkey",
		"POST /api/v1/login/passkey/options",
		"POST /api/v1/login/second-factor",
		"POST /api/v1/logout",
		"POST /api/v1/me/activity/{id}/not-me",
		"POST /api/v1/me/backup-codes",
		"POST /api/v1/me/delegations",
		"POST /api/v1/me/email/verification",
		"POST /api/v1/me/passkeys",
		"POST /api/v1/me/passkeys/options",
		"POST /api/v1/me/password",
		"POST /api/v1/me/sessions/sign-out-others",
		"POST /api/v1/me/totp",
		"POST /api/v1/me/totp/{id}/confirm",
		"POST /api/v1/me/two-factor/disable",
		"POST /api/v1/not-me",
		"POST /api/v1/orgs",
		"POST /api/v1/orgs/{id}/managed-orgs",
		"POST /api/v1/orgs/{id}/members",
		"POST /api/v1/password-reset",
		"POST /api/v1/password-reset/confirm",
		"POST /api/v1/reauth",
		"POST /api/v1/reauth/passkey/options",
		"POST /api/v1/ssf/poll/{id}",
		"POST /api/v1/ssf/status",
		"POST /api/v1/ssf/streams",
		"POST /api/v1/ssf/verify",
		"PUT /api/v1/orgs/{id}/two-factor-policy",
	}
	if !slices.Equal(got, want) {
		t.Errorf("API routes\n got %v\nwant %v", got, want)
	}
}

// TestWhoamiAnswersTheSessionAsItIsNow: whoami keeps its answer with the session's state
// (issue 16), and a change of that state is in the next answer: enrolling an authenticator
// app makes the session aal2 with otp among its methods.
func TestWhoamiAnswersTheSessionAsItIsNow(t *testing.T) {
	e := newEnv(t)
	e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	for range 2 { // the first answer is built, the second is the kept one
		w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
		if w["aal"] != "aal1" || fmt.Sprint(w["amr"]) != "[pwd]" || w["session_id"] != s.id {
			t.Fatalf("whoami before enrolling: %v", w)
		}
	}
	e.enrollTOTP(s)
	w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	if w["aal"] != "aal2" || !strings.Contains(fmt.Sprint(w["amr"]), "otp") || w["session_id"] != s.id {
		t.Fatalf("whoami after enrolling an authenticator app: %v", w)
	}
}
