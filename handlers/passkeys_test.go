package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// The test app runs with the default public URL, http://localhost:8080: relying party id
// localhost, that one origin.
var testRP = virtualwebauthn.RelyingParty{Name: "Vigil", ID: "localhost", Origin: "http://localhost:8080"}

// device is a virtual authenticator holding one credential; every assertion moves its
// signature counter up by one.
type device struct {
	auth  virtualwebauthn.Authenticator
	cred  virtualwebauthn.Credential
	count uint32
}

// newDevice returns an EC2 (P-256) credential on an authenticator whose user handle is
// accountID. virtualwebauthn writes the key's coordinates without leading zero bytes,
// which COSE parsers refuse (1 key in 64), so such keys are drawn again.
func newDevice(t *testing.T, accountID string) *device {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		if data := cred.Key.AttestationData(); len(data) == 77 { // map header + kty, alg, crv + two 32-byte coordinates
			auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(accountID)})
			return &device{auth: auth, cred: cred}
		}
	}
}

// attest answers creation options as the browser would.
func (d *device) attest(t *testing.T, publicKey any) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(string(optionsJSON(t, publicKey)))
	if err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *opts))
}

// assert answers request options with the next counter value.
func (d *device) assert(t *testing.T, publicKey any) json.RawMessage {
	t.Helper()
	d.count++
	return d.assertWithCount(t, publicKey, d.count)
}

// assertWithCount answers request options with the counter at count.
func (d *device) assertWithCount(t *testing.T, publicKey any, count uint32) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(optionsJSON(t, publicKey)))
	if err != nil {
		t.Fatal(err)
	}
	d.cred.Counter = count
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *opts))
}

func (d *device) credentialID() string { return base64.RawURLEncoding.EncodeToString(d.cred.ID) }

func optionsJSON(t *testing.T, publicKey any) []byte {
	t.Helper()
	data, err := json.Marshal(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ceremony is an options answer.
type ceremony struct {
	id        string
	publicKey map[string]any
}

// options asks an options route and checks the answer's shape.
func (e *env) options(path string, body any, h hdr) ceremony {
	e.t.Helper()
	m := e.expect(e.do("POST", path, body, h), 200, "")
	id, _ := m["ceremony_id"].(string)
	pk, _ := m["public_key"].(map[string]any)
	if id == "" || pk == nil || len(m) != 2 {
		e.t.Fatalf("%s answered %v", path, m)
	}
	return ceremony{id: id, publicKey: pk}
}

// enrollPasskey registers d for the session (which needs a recent authentication) and
// returns the answer.
func (e *env) enrollPasskey(s session, d *device, name string) map[string]any {
	e.t.Helper()
	c := e.options("/api/v1/me/passkeys/options", map[string]string{"name": name}, s.auth())
	return e.expect(e.do("POST", "/api/v1/me/passkeys", map[string]any{
		"ceremony_id": c.id, "credential": d.attest(e.t, c.publicKey), "sign_out_other_sessions": false,
	}, s.auth()), 201, "")
}

// passkeyLogin signs in usernameless with d.
func (e *env) passkeyLogin(d *device) session {
	e.t.Helper()
	c := e.options("/api/v1/login/passkey/options", nil, nil)
	r := e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": d.assert(e.t, c.publicKey)}, nil)
	m := e.expect(r, 200, "")
	if m["status"] != "authenticated" {
		e.t.Fatalf("passkey login %s", r.body)
	}
	return e.sessionFrom(r, m)
}

// reauthPassword re-authenticates s with the password.
func (e *env) reauthPassword(s session) {
	e.t.Helper()
	e.expect(e.do("POST", "/api/v1/reauth", map[string]string{"password": testPassword}, s.auth()), 204, "")
}

func keysOf(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// stepUpWindow is a little more than the default step-up window (5 minutes).
const stepUpWindow = 5*time.Minute + time.Second

// advance moves the clock, then uses each session once, so that the access it records
// (SessionAccessed, written when a session is used after a while) is not taken for
// something a later refused request wrote.
func (e *env) advance(d time.Duration, sessions ...session) {
	e.t.Helper()
	e.clk.Advance(d)
	for _, s := range sessions {
		e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	}
}

// checkRefused sends a request that must be refused with status and code and write nothing.
func (e *env) checkRefused(method, path string, body any, h hdr, status int, code string) {
	e.t.Helper()
	before := e.head()
	e.expect(e.do(method, path, body, h), status, code)
	if after := e.head(); after != before {
		e.t.Errorf("%s %s (refused %d) wrote to the log: %d -> %d", method, path, status, before, after)
	}
}

func TestPasskeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	annID := e.register("ann@example.com")
	e.register("bob@example.com")
	s := e.login("ann@example.com", testPassword)
	bob := e.login("bob@example.com", testPassword)
	d := newDevice(t, annID)

	// Registering needs a recent authentication.
	e.advance(stepUpWindow, s, bob)
	e.checkRefused("POST", "/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}, s.auth(), 403, "reauthentication_required")
	e.reauthPassword(s)
	e.checkBadBodies("POST", "/api/v1/me/passkeys/options", map[string]any{"name": "Laptop"}, s.auth())
	e.checkRefused("POST", "/api/v1/me/passkeys/options", map[string]string{"name": ""}, s.auth(), 400, "invalid_request")
	e.checkRefused("POST", "/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}, nil, 401, "unauthenticated")

	c := e.options("/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}, s.auth())
	if rp, _ := c.publicKey["rp"].(map[string]any); rp["id"] != "localhost" {
		t.Errorf("creation options %v", c.publicKey)
	}
	answer := d.attest(t, c.publicKey)
	valid := map[string]any{"ceremony_id": c.id, "credential": answer, "sign_out_other_sessions": false}
	e.checkBadBodies("POST", "/api/v1/me/passkeys", valid, s.auth())
	for _, bad := range []any{"a string", []any{}, nil, 5, true} {
		e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": c.id, "credential": bad}, s.auth(), 400, "invalid_request")
	}
	e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"credential": answer}, s.auth(), 400, "invalid_request")
	e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": "no-such-ceremony", "credential": answer}, s.auth(), 400, "invalid_request")
	// Another session cannot answer this session's ceremony (and uses it up).
	other := e.login("ann@example.com", testPassword)
	e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": c.id, "credential": answer}, other.auth(), 400, "invalid_request")
	e.checkRefused("POST", "/api/v1/me/passkeys", valid, s.auth(), 400, "invalid_request")

	// The first second factor: 201 with ten backup codes; the session becomes aal2.
	c = e.options("/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}, s.auth())
	r := e.do("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": c.id, "credential": d.attest(t, c.publicKey)}, s.auth())
	pk := e.expect(r, 201, "")
	if want := []string{"backed_up", "backup_codes", "created_at", "id", "last_used_at", "name"}; !slices.Equal(keysOf(pk), want) {
		t.Errorf("registered passkey fields %v, want %v", keysOf(pk), want)
	}
	passkeyID, _ := pk["id"].(string)
	if codes, _ := pk["backup_codes"].([]any); len(codes) != 10 || passkeyID == "" || pk["name"] != "Laptop" ||
		pk["last_used_at"] != nil || pk["backed_up"] != false || pk["created_at"] != "2026-03-02T09:05:02Z" {
		t.Errorf("registered passkey %s", r.body)
	}
	// A used ceremony cannot be answered again.
	e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": c.id, "credential": d.attest(t, c.publicKey)}, s.auth(), 400, "invalid_request")
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["aal"] != "aal2" {
		t.Errorf("whoami after registering %v", w)
	}

	// /me/security lists it.
	sec := e.expect(e.do("GET", "/api/v1/me/security?min_position="+r.header.Get("Vigil-Position"), nil, s.auth()), 200, "")
	list, _ := sec["passkeys"].([]any)
	if len(list) != 1 || sec["two_factor_enabled"] != true || sec["backup_codes"].(map[string]any)["remaining"] != float64(10) {
		t.Fatalf("security %v", sec)
	}
	listed := list[0].(map[string]any)
	if want := []string{"backed_up", "created_at", "id", "last_used_at", "name"}; !slices.Equal(keysOf(listed), want) ||
		listed["id"] != passkeyID || listed["name"] != "Laptop" || listed["last_used_at"] != nil || listed["backed_up"] != false {
		t.Errorf("listed passkey %v", listed)
	}

	// Usernameless sign-in: options without a ticket (no body, or {}), then the answer.
	c = e.options("/api/v1/login/passkey/options", map[string]any{}, nil)
	if allow, ok := c.publicKey["allowCredentials"].([]any); !ok || len(allow) != 0 || c.publicKey["userVerification"] != "required" {
		t.Errorf("usernameless request options %v", c.publicKey)
	}
	for name, body := range badBodies(map[string]any{"login_ticket": "x"}) {
		if name == "empty" {
			continue // no body: usernameless
		}
		e.checkRefused("POST", "/api/v1/login/passkey/options", body, nil, 400, "invalid_request")
	}
	e.clk.Advance(time.Minute)
	login := d.assert(t, c.publicKey)
	e.checkBadBodies("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": login}, nil)
	for _, bad := range []any{"a string", []any{}, nil, 5} {
		e.checkRefused("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": bad}, nil, 400, "invalid_request")
	}
	e.checkRefused("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": "no-such-ceremony", "credential": login}, nil, 400, "invalid_request")
	r = e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": login}, nil)
	m := e.expect(r, 200, "")
	pkSession := e.sessionFrom(r, m)
	if m["status"] != "authenticated" {
		t.Errorf("passkey login %s", r.body)
	}
	w := e.expect(e.do("GET", "/api/v1/whoami", nil, pkSession.auth()), 200, "")
	if w["account_id"] != annID || w["aal"] != "aal2" || !slices.Equal(w["amr"].([]any), []any{"passkey"}) {
		t.Errorf("whoami after a passkey sign-in %v", w)
	}
	sec = e.expect(e.do("GET", "/api/v1/me/security", nil, pkSession.auth()), 200, "")
	if lu := sec["passkeys"].([]any)[0].(map[string]any)["last_used_at"]; lu != "2026-03-02T09:06:02Z" {
		t.Errorf("last_used_at %v", lu)
	}
	// A replayed assertion: its ceremony is used up (400); against a new ceremony the
	// challenge differs (401); and a sign count that did not increase is refused (401).
	e.expect(e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": login}, nil), 400, "invalid_request")
	c = e.options("/api/v1/login/passkey/options", nil, nil)
	r = e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": login}, nil)
	e.expect(r, 401, "invalid_credentials")
	if r.cookie("vigil_session") != nil {
		t.Error("a refused passkey sign-in set a cookie")
	}
	c = e.options("/api/v1/login/passkey/options", nil, nil)
	e.expect(e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": d.assertWithCount(t, c.publicKey, d.count)}, nil), 401, "invalid_credentials")
	// An authenticator whose credential is not registered.
	c = e.options("/api/v1/login/passkey/options", nil, nil)
	e.expect(e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": newDevice(t, annID).assert(t, c.publicKey)}, nil), 401, "invalid_credentials")

	// A password sign-in now needs a second factor, a passkey among them.
	m = e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil), 200, "")
	methods, _ := m["methods"].([]any)
	if m["status"] != "second_factor_required" || !slices.Contains(methods, any("passkey")) || !slices.Contains(methods, any("backup_code")) {
		t.Fatalf("password login with a passkey %v", m)
	}
	ticket := m["login_ticket"].(string)
	e.expect(e.do("POST", "/api/v1/login/passkey/options", map[string]string{"login_ticket": "no-such-ticket"}, nil), 401, "invalid_credentials")
	c = e.options("/api/v1/login/passkey/options", map[string]string{"login_ticket": ticket}, nil)
	if allow, _ := c.publicKey["allowCredentials"].([]any); len(allow) != 1 || allow[0].(map[string]any)["id"] != d.credentialID() {
		t.Errorf("second-factor request options %v", c.publicKey)
	}
	r = e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": d.assert(t, c.publicKey)}, nil)
	m = e.expect(r, 200, "")
	if ts := e.sessionFrom(r, m); m["status"] != "authenticated" || ts.view["aal"] != "aal2" || !slices.Equal(ts.view["amr"].([]any), []any{"pwd", "passkey"}) {
		t.Errorf("second-factor passkey sign-in %s", r.body)
	}
	// The ticket is used up.
	e.expect(e.do("POST", "/api/v1/login/passkey/options", map[string]string{"login_ticket": ticket}, nil), 401, "invalid_credentials")

	// Re-authentication with the passkey.
	e.advance(stepUpWindow, s, bob, pkSession)
	e.checkRefused("PATCH", "/api/v1/me/passkeys/"+passkeyID, map[string]string{"name": ""}, s.auth(), 400, "invalid_request")
	e.checkRefused("POST", "/api/v1/me/passkeys/options", map[string]string{"name": "Phone"}, s.auth(), 403, "reauthentication_required")
	c = e.options("/api/v1/reauth/passkey/options", nil, s.auth())
	if allow, _ := c.publicKey["allowCredentials"].([]any); len(allow) != 1 {
		t.Errorf("reauth request options %v", c.publicKey)
	}
	reauth := d.assert(t, c.publicKey)
	e.checkBadBodies("POST", "/api/v1/reauth", map[string]any{"ceremony_id": c.id, "credential": reauth}, s.auth())
	for _, body := range []map[string]any{
		{},
		{"password": testPassword, "ceremony_id": c.id, "credential": reauth},
		{"code": "123456", "ceremony_id": c.id},
		{"ceremony_id": c.id},
		{"credential": reauth},
		{"ceremony_id": c.id, "credential": "not an object"},
		{"ceremony_id": c.id, "credential": nil},
	} {
		e.checkRefused("POST", "/api/v1/reauth", body, s.auth(), 400, "invalid_request")
	}
	// Another session's ceremony is not this session's to answer.
	e.checkRefused("POST", "/api/v1/reauth", map[string]any{"ceremony_id": c.id, "credential": reauth}, pkSession.auth(), 400, "invalid_request")
	c = e.options("/api/v1/reauth/passkey/options", nil, s.auth())
	// A replayed answer: 403 (the caller is signed in).
	e.expect(e.do("POST", "/api/v1/reauth", map[string]any{"ceremony_id": c.id, "credential": reauth}, s.auth()), 403, "invalid_credentials")
	c = e.options("/api/v1/reauth/passkey/options", nil, s.auth())
	e.expect(e.do("POST", "/api/v1/reauth", map[string]any{"ceremony_id": c.id, "credential": d.assert(t, c.publicKey)}, s.auth()), 204, "")
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["authenticated_at"] != "2026-03-02T09:11:03Z" || w["aal"] != "aal2" {
		t.Errorf("whoami after a passkey reauth %v", w)
	}

	// Rename: 200 with the passkey; the same name writes nothing.
	e.checkBadBodies("PATCH", "/api/v1/me/passkeys/"+passkeyID, map[string]any{"name": "Work laptop"}, s.auth())
	e.checkRefused("PATCH", "/api/v1/me/passkeys/no-such-passkey", map[string]string{"name": "Work laptop"}, s.auth(), 404, "not_found")
	e.checkRefused("PATCH", "/api/v1/me/passkeys/"+passkeyID, map[string]string{"name": "Work laptop"}, bob.auth(), 404, "not_found")
	r = e.do("PATCH", "/api/v1/me/passkeys/"+passkeyID, map[string]string{"name": "Work laptop"}, s.auth())
	pk = e.expect(r, 200, "")
	if want := []string{"backed_up", "created_at", "id", "last_used_at", "name"}; !slices.Equal(keysOf(pk), want) ||
		pk["id"] != passkeyID || pk["name"] != "Work laptop" || pk["last_used_at"] != "2026-03-02T09:11:03Z" {
		t.Errorf("renamed passkey %s", r.body)
	}
	before := e.head()
	r = e.do("PATCH", "/api/v1/me/passkeys/"+passkeyID, map[string]string{"name": "Work laptop"}, s.auth())
	e.expect(r, 200, "")
	if r.header.Get("Vigil-Position") != strconv.FormatUint(before, 10) || e.head() != before {
		t.Errorf("renaming to the same name: position %s, head %d -> %d", r.header.Get("Vigil-Position"), before, e.head())
	}

	// Remove: needs a recent authentication; the last factor turns 2FA off.
	e.advance(stepUpWindow, s, bob)
	e.checkRefused("DELETE", "/api/v1/me/passkeys/"+passkeyID, nil, s.auth(), 403, "reauthentication_required")
	e.reauthPassword(s)
	e.reauthPassword(bob)
	e.checkRefused("DELETE", "/api/v1/me/passkeys/"+passkeyID, nil, bob.auth(), 404, "not_found")
	e.checkRefused("DELETE", "/api/v1/me/passkeys/no-such-passkey", nil, s.auth(), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/me/passkeys/"+passkeyID, nil, s.auth()), 204, "")
	e.checkRefused("DELETE", "/api/v1/me/passkeys/"+passkeyID, nil, s.auth(), 404, "not_found")
	sec = e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	if sec["two_factor_enabled"] != false || len(sec["passkeys"].([]any)) != 0 || sec["backup_codes"].(map[string]any)["remaining"] != float64(0) {
		t.Errorf("security after removing the passkey %v", sec)
	}
	e.login("ann@example.com", testPassword)
	c = e.options("/api/v1/login/passkey/options", nil, nil)
	e.expect(e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": d.assert(t, c.publicKey)}, nil), 401, "invalid_credentials")
	// Without a passkey there is nothing to re-authenticate with.
	e.expect(e.do("POST", "/api/v1/reauth/passkey/options", nil, s.auth()), 409, "conflict")
}

func TestPasskeySecondRegistrationAndSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	other := e.login("ann@example.com", testPassword)
	d := newDevice(t, id)
	first := e.enrollPasskey(s, d, "Laptop")
	if len(first["backup_codes"].([]any)) != 10 {
		t.Fatalf("first passkey %v", first)
	}
	// The same credential again: the options exclude it, and it is refused (409).
	c := e.options("/api/v1/me/passkeys/options", map[string]string{"name": "Again"}, s.auth())
	if ex, _ := c.publicKey["excludeCredentials"].([]any); len(ex) != 1 || ex[0].(map[string]any)["id"] != d.credentialID() {
		t.Errorf("creation options %v", c.publicKey)
	}
	e.checkRefused("POST", "/api/v1/me/passkeys", map[string]any{"ceremony_id": c.id, "credential": d.attest(t, c.publicKey)}, s.auth(), 409, "conflict")
	// A second passkey: no backup codes; sign_out_other_sessions ends the others.
	c = e.options("/api/v1/me/passkeys/options", map[string]string{"name": "Phone"}, s.auth())
	second := e.expect(e.do("POST", "/api/v1/me/passkeys", map[string]any{
		"ceremony_id": c.id, "credential": newDevice(t, id).attest(t, c.publicKey), "sign_out_other_sessions": true,
	}, s.auth()), 201, "")
	if _, ok := second["backup_codes"]; ok || second["name"] != "Phone" {
		t.Errorf("second passkey %v", second)
	}
	e.expect(e.do("GET", "/api/v1/whoami", nil, other.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, "")
	// Removing one of two keeps 2FA on.
	e.expect(e.do("DELETE", "/api/v1/me/passkeys/"+first["id"].(string), nil, s.auth()), 204, "")
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, s.auth()), 200, "")
	if sec["two_factor_enabled"] != true || len(sec["passkeys"].([]any)) != 1 {
		t.Errorf("security %v", sec)
	}
}

func TestPasskeyCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("ann@example.com")
	s := e.login("ann@example.com", testPassword)
	cookie := hdr{"Cookie": "vigil_session=" + s.token}
	tok := e.expect(e.do("GET", "/api/v1/csrf", nil, cookie), 200, "")["csrf_token"].(string)
	d := newDevice(t, id)

	c := e.options("/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}, s.auth())
	answer := map[string]any{"ceremony_id": c.id, "credential": d.attest(t, c.publicKey)}
	for _, rt := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/me/passkeys/options", map[string]string{"name": "Laptop"}},
		{"POST", "/api/v1/me/passkeys", answer},
		{"POST", "/api/v1/reauth/passkey/options", nil},
		{"POST", "/api/v1/reauth", map[string]any{"ceremony_id": "x", "credential": map[string]any{}}},
		{"PATCH", "/api/v1/me/passkeys/x", map[string]string{"name": "y"}},
		{"DELETE", "/api/v1/me/passkeys/x", nil},
	} {
		e.checkRefused(rt.method, rt.path, rt.body, cookie, 403, "csrf_failed")
		e.checkRefused(rt.method, rt.path, rt.body, cookie.with("X-CSRF-Token", "wrong"), 403, "csrf_failed")
	}
	// The refused requests did not use the ceremony up; with the token it is accepted.
	withToken := cookie.with("X-CSRF-Token", tok)
	pk := e.expect(e.do("POST", "/api/v1/me/passkeys", answer, withToken), 201, "")
	c = e.options("/api/v1/reauth/passkey/options", nil, withToken)
	e.expect(e.do("POST", "/api/v1/reauth", map[string]any{"ceremony_id": c.id, "credential": d.assert(t, c.publicKey)}, withToken), 204, "")
	e.expect(e.do("PATCH", "/api/v1/me/passkeys/"+pk["id"].(string), map[string]string{"name": "Renamed"}, withToken), 200, "")
	e.expect(e.do("DELETE", "/api/v1/me/passkeys/"+pk["id"].(string), nil, withToken), 204, "")
}

func TestPasskeyRestrictedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *handlertest.Config) { c.TwoFactorPolicy = requireAll{} })
	id := e.register("ann@example.com")
	r := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil)
	m := e.expect(r, 200, "")
	if m["status"] != "enrollment_required" {
		t.Fatalf("login %s", r.body)
	}
	s := e.sessionFrom(r, m)
	// Renaming and removing are not enrollment; re-authenticating is (but there is no
	// passkey to do it with yet).
	e.checkRefused("PATCH", "/api/v1/me/passkeys/x", map[string]string{"name": "y"}, s.auth(), 403, "enrollment_required")
	e.checkRefused("DELETE", "/api/v1/me/passkeys/x", nil, s.auth(), 403, "enrollment_required")
	e.checkRefused("POST", "/api/v1/reauth/passkey/options", nil, s.auth(), 409, "conflict")

	pk := e.enrollPasskey(s, newDevice(t, id), "Laptop")
	if len(pk["backup_codes"].([]any)) != 10 {
		t.Errorf("registered %v", pk)
	}
	// Registering lifts the restriction on this session.
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 200, ""); w["restricted"] != false || w["aal"] != "aal2" {
		t.Errorf("whoami after enrolling %v", w)
	}
	e.expect(e.do("GET", "/api/v1/me", nil, s.auth()), 200, "")
	// The policy keeps the last second factor.
	e.checkRefused("DELETE", "/api/v1/me/passkeys/"+pk["id"].(string), nil, s.auth(), 409, "conflict")
}

func TestPasskeyLoginThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("ann@example.com")
	d := newDevice(t, id)
	e.enrollPasskey(e.login("ann@example.com", testPassword), d, "Laptop")
	c := e.options("/api/v1/login/passkey/options", nil, nil)
	stale := d.assert(t, c.publicKey) // answers another ceremony: refused
	var r resp
	for range 10 {
		c = e.options("/api/v1/login/passkey/options", nil, nil)
		if r = e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": stale}, nil); r.code != 401 {
			break
		}
	}
	e.expect(r, 429, "too_many_attempts")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// The right passkey waits too, then works.
	c = e.options("/api/v1/login/passkey/options", nil, nil)
	e.expect(e.do("POST", "/api/v1/login/passkey", map[string]any{"ceremony_id": c.id, "credential": d.assert(t, c.publicKey)}, nil), 429, "too_many_attempts")
	e.clk.Advance(time.Minute)
	e.passkeyLogin(d)
}
