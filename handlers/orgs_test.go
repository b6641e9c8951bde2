package handlers_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"
)

// orgEnv: a running server with owner, admin, member and other (who owns another
// organisation) signed in.
type orgEnv struct {
	*env
	owner, admin, member, other session
	ownerID, adminID, memberID  string
	otherID                     string
}

func newOrgEnv(t *testing.T) *orgEnv {
	e := &orgEnv{env: newEnv(t)}
	e.ownerID = e.register("owner@example.com")
	e.adminID = e.register("admin@example.com")
	e.memberID = e.register("member@example.com")
	e.otherID = e.register("other@example.com")
	e.owner = e.login("owner@example.com", testPassword)
	e.admin = e.login("admin@example.com", testPassword)
	e.member = e.login("member@example.com", testPassword)
	e.other = e.login("other@example.com", testPassword)
	return e
}

func (e *orgEnv) createOrg(s session, name string) string {
	e.t.Helper()
	return e.expect(e.do("POST", "/api/v1/orgs", map[string]any{"name": name}, s.auth()), 201, "")["org_id"].(string)
}

// refused sends a request that must answer status/code and write nothing.
func (e *orgEnv) refused(method, path string, body any, s session, status int, code string) {
	e.t.Helper()
	before := e.head()
	e.expect(e.do(method, path, body, s.auth()), status, code)
	if after := e.head(); after != before {
		e.t.Fatalf("%s %s was refused but wrote to the log (%d -> %d)", method, path, before, after)
	}
}

func TestOrganisationsHTTP(t *testing.T) {
	e := newOrgEnv(t)
	orgA := e.createOrg(e.owner, "Acme")
	orgB := e.createOrg(e.other, "Beta")
	members := "/api/v1/orgs/" + orgA + "/members"
	e.checkBadBodies("POST", members, map[string]any{"email": "admin@example.com", "role": "admin"}, e.owner.auth())
	e.refused("POST", "/api/v1/orgs", map[string]any{"name": ""}, e.owner, 400, "invalid_request")
	e.expect(e.do("POST", members, map[string]any{"email": "admin@example.com", "role": "admin"}, e.owner.auth()), 201, "")
	r := e.do("POST", members, map[string]any{"email": "member@example.com", "role": "member"}, e.owner.auth())
	if m := e.expect(r, 201, ""); m["account_id"] != e.memberID || m["role"] != "member" {
		t.Fatalf("add member: %v", m)
	}
	pos := r.header.Get("Vigil-Position")
	e.refused("POST", members, map[string]any{"email": "ghost@example.com", "role": "member"}, e.owner, 404, "not_found")
	e.refused("POST", members, map[string]any{"email": "other@example.com", "role": "boss"}, e.owner, 400, "invalid_request")
	e.refused("POST", members, map[string]any{"email": "member@example.com", "role": "member"}, e.owner, 409, "conflict")

	// Reads: members see the organisation, others do not learn it exists.
	org := e.expect(e.do("GET", "/api/v1/orgs/"+orgA, nil, e.member.auth()), 200, "")
	if org["name"] != "Acme" || org["two_factor_required"] != false || len(org["managed_orgs"].([]any)) != 0 {
		t.Fatalf("org %v", org)
	}
	e.expect(e.do("GET", "/api/v1/orgs/"+orgA, nil, e.other.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/orgs/no-such-org", nil, e.other.auth()), 404, "not_found")
	items := e.all(members+"?min_position="+pos, e.member.auth())
	var got []string
	for _, it := range items {
		got = append(got, fmt.Sprintf("%s %s %v", it["email"], it["role"], it["two_factor_enabled"]))
	}
	want := map[string]string{e.ownerID: "owner@example.com owner false", e.adminID: "admin@example.com admin false",
		e.memberID: "member@example.com member false"}
	if len(items) != 3 {
		t.Fatalf("members %v", got)
	}
	for _, it := range items {
		if fmt.Sprintf("%s %s %v", it["email"], it["role"], it["two_factor_enabled"]) != want[it["account_id"].(string)] {
			t.Fatalf("members %v", got)
		}
	}
	e.expect(e.do("GET", members, nil, e.other.auth()), 404, "not_found")

	// Authorization on changes: the owner of another organisation, a member.
	e.refused("DELETE", members+"/"+e.memberID, nil, e.other, 404, "not_found")
	e.refused("DELETE", members+"/"+e.adminID, nil, e.member, 403, "forbidden")
	e.refused("POST", members, map[string]any{"email": "other@example.com", "role": "member"}, e.member, 403, "forbidden")
	e.refused("POST", members, map[string]any{"email": "other@example.com", "role": "owner"}, e.admin, 403, "forbidden")
	e.refused("DELETE", members+"/"+e.ownerID, nil, e.owner, 409, "conflict")
	e.refused("DELETE", members+"/"+e.otherID, nil, e.owner, 404, "not_found")

	// The policy: only an owner or admin with 2FA, with the password.
	policy := "/api/v1/orgs/" + orgA + "/two-factor-policy"
	on := map[string]any{"required": true, "password": testPassword}
	e.checkBadBodies("PUT", policy, on, e.admin.auth())
	e.refused("PUT", policy, on, e.member, 403, "forbidden")
	e.refused("PUT", policy, on, e.admin, 403, "forbidden") // no 2FA yet
	e.refused("PUT", policy, on, e.other, 404, "not_found")
	e.enrollTOTP(e.admin)
	// A wrong password is refused (and recorded as a failed confirmation, like a re-auth).
	e.expect(e.do("PUT", policy, map[string]any{"required": true, "password": "not-the-password-1"}, e.admin.auth()), 403, "invalid_credentials")
	if o := e.expect(e.do("GET", "/api/v1/orgs/"+orgA, nil, e.admin.auth()), 200, ""); o["two_factor_required"] != false {
		t.Fatalf("a wrong password changed the policy: %v", o)
	}
	if m := e.expect(e.do("PUT", policy, on, e.admin.auth()), 200, ""); m["two_factor_required"] != true {
		t.Fatalf("policy answer %v", m)
	}

	// The member (no 2FA) now signs in to a restricted session.
	r = e.do("POST", "/api/v1/login", map[string]string{"email": "member@example.com", "password": testPassword}, nil)
	m := e.expect(r, 200, "")
	if m["status"] != "enrollment_required" {
		t.Fatalf("member sign-in: %s", r.body)
	}
	restricted := session{token: m["session_token"].(string)}
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, restricted.auth()), 200, ""); w["restricted"] != true {
		t.Fatalf("whoami %v", w)
	}
	for _, p := range []string{"/api/v1/me", "/api/v1/orgs/" + orgA, "/api/v1/me/sessions", "/api/v1/me/delegations"} {
		e.expect(e.do("GET", p, nil, restricted.auth()), 403, "enrollment_required")
	}
	e.refused("POST", "/api/v1/orgs", map[string]any{"name": "X"}, restricted, 403, "enrollment_required")
	sec := e.expect(e.do("GET", "/api/v1/me/security", nil, restricted.auth()), 200, "")
	if by := sec["two_factor_required_by"].([]any); len(by) != 1 || by[0] != orgA {
		t.Fatalf("two_factor_required_by %v", sec["two_factor_required_by"])
	}
	e.enrollTOTP(restricted)
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, restricted.auth()), 200, ""); w["restricted"] != false || w["aal"] != "aal2" {
		t.Fatalf("whoami after enrollment %v", w)
	}
	e.refused("POST", "/api/v1/me/two-factor/disable", map[string]any{"password": testPassword}, restricted, 409, "conflict")

	// The report and the activity: owners and admins only.
	report := "/api/v1/orgs/" + orgA + "/two-factor-report?min_position=" + fmt.Sprint(e.head())
	rows := e.all(report, e.admin.auth())
	enabled := map[string]bool{}
	for _, row := range rows {
		enabled[row["account_id"].(string)] = row["two_factor_enabled"].(bool)
		if row["two_factor_enabled"] == true && row["enrolled_at"] == nil {
			t.Fatalf("enrolled without enrolled_at: %v", row)
		}
		if row["last_login_at"] == nil {
			t.Fatalf("everyone signed in: %v", row)
		}
	}
	if len(rows) != 3 || !enabled[e.adminID] || !enabled[e.memberID] || enabled[e.ownerID] {
		t.Fatalf("report %v", rows)
	}
	e.expect(e.do("GET", report, nil, restricted.auth()), 403, "forbidden") // a plain member
	// Sessions opened before the policy was switched on, without a second factor, are
	// restricted at once (they were not, before: finding 4 of the security review).
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, e.member.auth()), 200, ""); w["restricted"] != true {
		t.Fatalf("the member's pre-policy session is not restricted: %v", w)
	}
	e.expect(e.do("GET", report, nil, e.member.auth()), 403, "enrollment_required")
	e.expect(e.do("GET", report, nil, e.owner.auth()), 403, "enrollment_required")
	acts := e.all("/api/v1/orgs/"+orgA+"/activity?type=TOTPDeviceConfirmed&min_position="+fmt.Sprint(e.head()), e.admin.auth())
	var who []string
	for _, a := range acts {
		who = append(who, a["account_id"].(string))
	}
	slices.Sort(who)
	if wantWho := []string{e.adminID, e.memberID}; !slices.Equal(who, sorted(wantWho)) {
		t.Fatalf("org activity accounts %v, want %v", who, wantWho)
	}
	e.expect(e.do("GET", "/api/v1/orgs/"+orgA+"/activity", nil, restricted.auth()), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/orgs/"+orgA+"/activity", nil, e.other.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/orgs/"+orgA+"/two-factor-report", nil, e.other.auth()), 404, "not_found")

	// The owner enrolls in the restricted session, which lifts the restriction.
	e.enrollTOTP(e.owner)

	// Managed organisations: the owner must own both.
	managed := "/api/v1/orgs/" + orgA + "/managed-orgs"
	e.refused("POST", managed, map[string]any{"org_id": orgB}, e.owner, 404, "not_found")
	e.expect(e.do("POST", "/api/v1/orgs/"+orgB+"/members", map[string]any{"email": "owner@example.com", "role": "owner"}, e.other.auth()), 201, "")
	e.refused("POST", managed, map[string]any{"org_id": orgB}, e.admin, 404, "not_found")
	if m := e.expect(e.do("POST", managed, map[string]any{"org_id": orgB}, e.owner.auth()), 201, ""); !slices.Equal(anyStrings(m["managed_orgs"]), []string{orgB}) {
		t.Fatalf("managed answer %v", m)
	}
	e.refused("POST", managed, map[string]any{"org_id": orgB}, e.owner, 409, "conflict")
	// B's owner (other) is under A's policy now.
	sec = e.expect(e.do("GET", "/api/v1/me/security", nil, e.other.auth()), 200, "")
	if by := anyStrings(sec["two_factor_required_by"]); !slices.Equal(by, []string{orgA}) {
		t.Fatalf("managed member required by %v", by)
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestDelegationHTTP(t *testing.T) {
	e := newOrgEnv(t)
	owner, delegate, third := e.owner, e.member, e.other
	base := "/api/v1/me/delegations"
	exp := e.clk.Now().Add(2 * time.Hour).Format(time.RFC3339)
	valid := map[string]any{"delegate_email": "member@example.com", "expires_at": exp}
	e.checkBadBodies("POST", base, valid, owner.auth())
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"delegate_email": "member@example.com", "expires_at": e.clk.Now().Add(-time.Hour).Format(time.RFC3339)}, 400, "invalid_request"},
		{map[string]any{"delegate_email": "member@example.com", "expires_at": e.clk.Now().Add(91 * 24 * time.Hour).Format(time.RFC3339)}, 400, "invalid_request"},
		{map[string]any{"delegate_email": "member@example.com", "expires_at": "tomorrow"}, 400, "invalid_request"},
		{map[string]any{"delegate_email": "owner@example.com", "expires_at": exp}, 400, "invalid_request"},
		{map[string]any{"delegate_email": "ghost@example.com", "expires_at": exp}, 404, "not_found"},
	} {
		e.refused("POST", base, c.body, owner, c.status, c.code)
	}
	id := e.expect(e.do("POST", base, valid, owner.auth()), 201, "")["delegation_id"].(string)
	for s, dir := range map[*session]string{&owner: "granted", &delegate: "received"} {
		items, _ := e.list(base, s.auth())
		if len(items) != 1 || items[0]["delegation_id"] != id || items[0]["direction"] != dir ||
			items[0]["owner_account_id"] != e.ownerID || items[0]["delegate_account_id"] != e.memberID {
			t.Fatalf("%s list %v", dir, items)
		}
	}
	if items, _ := e.list(base, third.auth()); len(items) != 0 {
		t.Fatalf("third sees %v", items)
	}
	act := "/api/v1/delegations/" + id + "/act"
	e.refused("POST", act, nil, third, 404, "not_found")
	r := e.do("POST", act, nil, delegate.auth())
	acting := e.sessionFrom(r, e.expect(r, 200, ""))
	w := e.expect(e.do("GET", "/api/v1/whoami", nil, acting.auth()), 200, "")
	if w["account_id"] != e.ownerID || w["actor_account_id"] != e.memberID {
		t.Fatalf("acting whoami %v", w)
	}
	if ea, _ := time.Parse(time.RFC3339, w["expires_at"].(string)); ea.After(e.clk.Now().Add(2 * time.Hour)) {
		t.Fatalf("acting session outlives the delegation: %v", w["expires_at"])
	}
	// What an acting session cannot do.
	e.refused("POST", "/api/v1/me/password", map[string]any{"current_password": testPassword, "new_password": "another-long-pass-phrase-91"}, acting, 403, "delegate_not_allowed")
	e.refused("POST", "/api/v1/me/totp", map[string]any{"name": "x"}, acting, 403, "delegate_not_allowed")
	e.refused("POST", "/api/v1/me/two-factor/disable", map[string]any{"password": testPassword}, acting, 403, "delegate_not_allowed")
	e.refused("POST", base, map[string]any{"delegate_email": "other@example.com", "expires_at": exp}, acting, 403, "delegate_not_allowed")
	e.refused("DELETE", base+"/"+id, nil, acting, 403, "delegate_not_allowed")
	e.refused("POST", act, nil, acting, 403, "delegate_not_allowed")
	e.refused("POST", "/api/v1/reauth", map[string]any{"password": testPassword}, acting, 403, "delegate_not_allowed")
	// What it does is recorded with both and shows in the owner's log.
	r = e.do("PATCH", "/api/v1/me", map[string]any{"profile": map[string]any{"city": "Basel"}}, acting.auth())
	e.expect(r, 200, "")
	logItems, _ := e.list("/api/v1/me/activity?type=ProfileUpdated&min_position="+r.header.Get("Vigil-Position"), owner.auth())
	if len(logItems) != 1 || logItems[0]["actor_account_id"] != e.memberID {
		t.Fatalf("owner's log %v", logItems)
	}
	// Revoking ends the acting session at once.
	e.refused("DELETE", base+"/"+id, nil, third, 404, "not_found")
	e.expect(e.do("DELETE", base+"/"+url.PathEscape(id), nil, owner.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, acting.auth()), 401, "unauthenticated")
	e.refused("POST", act, nil, delegate, 403, "forbidden")
	e.refused("DELETE", base+"/"+id, nil, owner, 404, "not_found")
	if items, _ := e.list(base, owner.auth()); len(items) != 0 {
		t.Fatalf("revoked delegation listed: %v", items)
	}

	// Expiry: whoami refuses the acting session at the delegation's end, before any sweep.
	id2 := e.expect(e.do("POST", base, map[string]any{"delegate_email": "member@example.com",
		"expires_at": e.clk.Now().Add(10 * time.Minute).Format(time.RFC3339)}, owner.auth()), 201, "")["delegation_id"].(string)
	r = e.do("POST", "/api/v1/delegations/"+id2+"/act", nil, delegate.auth())
	acting2 := e.sessionFrom(r, e.expect(r, 200, ""))
	e.expect(e.do("GET", "/api/v1/whoami", nil, acting2.auth()), 200, "")
	e.clk.Advance(10 * time.Minute)
	e.expect(e.do("GET", "/api/v1/whoami", nil, acting2.auth()), 401, "unauthenticated")
	fresh := e.login("member@example.com", testPassword)
	e.refused("POST", "/api/v1/delegations/"+id2+"/act", nil, fresh, 403, "forbidden")
}

// TestActingSessionCannotTakeTheAccountOver reproduces finding 1 of the security review: with
// the session of POST /delegations/{id}/act a delegate changed the owner's email, signed the
// owner out, made itself owner of the owner's organisation and read a pending authenticator's
// secret. Each is now 403 delegate_not_allowed and writes nothing; what a delegate may do
// (read, edit names and profile, end its own session) still works.
func TestActingSessionCannotTakeTheAccountOver(t *testing.T) {
	e := newOrgEnv(t)
	owner, delegate := e.owner, e.member
	org := e.createOrg(owner, "Owner's org")
	pending := e.expect(e.do("POST", "/api/v1/me/totp", map[string]any{"name": "Spare phone"}, owner.auth()), 201, "")["device_id"].(string)
	exp := e.clk.Now().Add(48 * time.Hour).Format(time.RFC3339)
	id := e.expect(e.do("POST", "/api/v1/me/delegations", map[string]any{"delegate_email": "member@example.com", "expires_at": exp}, owner.auth()), 201, "")["delegation_id"].(string)
	r := e.do("POST", "/api/v1/delegations/"+id+"/act", nil, delegate.auth())
	acting := e.sessionFrom(r, e.expect(r, 200, ""))

	for _, rt := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/api/v1/me", map[string]any{"email": "member+owned@example.com"}},
		{"PATCH", "/api/v1/me", map[string]any{"first_name": "Mallory", "email": "member+owned@example.com"}},
		{"POST", "/api/v1/me/sessions/sign-out-others", nil},
		{"DELETE", "/api/v1/me/sessions/" + owner.id, nil},
		{"POST", "/api/v1/orgs/" + org + "/members", map[string]any{"email": "member@example.com", "role": "owner"}},
		{"DELETE", "/api/v1/orgs/" + org + "/members/" + e.ownerID, nil},
		{"PUT", "/api/v1/orgs/" + org + "/two-factor-policy", map[string]any{"required": false, "password": testPassword}},
		{"POST", "/api/v1/orgs/" + org + "/managed-orgs", map[string]any{"org_id": org}},
		{"POST", "/api/v1/orgs", map[string]any{"name": "Shadow"}},
		{"GET", "/api/v1/me/totp/" + pending + "/qr.png", nil},
		{"POST", "/api/v1/me/totp/" + pending + "/confirm", map[string]any{"code": "123456"}},
		{"DELETE", "/api/v1/me/totp/" + pending, nil},
		{"POST", "/api/v1/me/backup-codes", nil},
		{"POST", "/api/v1/me/passkeys/options", map[string]any{"name": "Key"}},
		{"POST", "/api/v1/me/password", map[string]any{"current_password": testPassword, "new_password": "another-long-pass-phrase-91"}},
		{"POST", "/api/v1/me/two-factor/disable", map[string]any{"password": testPassword}},
		{"POST", "/api/v1/me/delegations", map[string]any{"delegate_email": "other@example.com", "expires_at": exp}},
		{"DELETE", "/api/v1/me/delegations/" + id, nil},
		{"POST", "/api/v1/reauth", map[string]any{"password": testPassword}},
		{"GET", "/api/v1/audit/sessions", nil},
		{"POST", "/api/v1/admin/clients", map[string]any{"name": "x"}},
		{"DELETE", "/api/v1/me", nil},
	} {
		e.refused(rt.method, rt.path, rt.body, acting, 403, "delegate_not_allowed")
	}
	// The owner still signs in with their address and keeps their session.
	e.expect(e.do("GET", "/api/v1/whoami", nil, owner.auth()), 200, "")
	e.login("owner@example.com", testPassword)
	if me := e.expect(e.do("GET", "/api/v1/me", nil, owner.auth()), 200, ""); me["email"] != "owner@example.com" || me["first_name"] == "Mallory" {
		t.Fatalf("owner's account changed: %v", me)
	}

	// What a delegate may do.
	e.expect(e.do("GET", "/api/v1/me", nil, acting.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/me/security", nil, acting.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/me/sessions", nil, acting.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/me/activity", nil, acting.auth()), 200, "")
	e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"first_name": "Olive", "profile": map[string]any{"city": "Basel"}}, acting.auth()), 200, "")
	e.expect(e.do("DELETE", "/api/v1/me/sessions/"+acting.id, nil, acting.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, acting.auth()), 401, "unauthenticated")
}

// TestActingNeedsASecondFactorWhenTheOwnersOrgRequiresIt reproduces finding 4: a delegate
// without 2FA could act for an owner whose organisation requires 2FA.
func TestActingNeedsASecondFactorWhenTheOwnersOrgRequiresIt(t *testing.T) {
	e := newOrgEnv(t)
	owner, delegate := e.owner, e.member
	org := e.createOrg(owner, "Strict")
	e.enrollTOTP(owner)
	e.expect(e.do("PUT", "/api/v1/orgs/"+org+"/two-factor-policy", map[string]any{"required": true, "password": testPassword}, owner.auth()), 200, "")
	exp := e.clk.Now().Add(48 * time.Hour).Format(time.RFC3339)
	id := e.expect(e.do("POST", "/api/v1/me/delegations", map[string]any{"delegate_email": "member@example.com", "expires_at": exp}, owner.auth()), 201, "")["delegation_id"].(string)
	act := "/api/v1/delegations/" + id + "/act"
	e.refused("POST", act, nil, delegate, 403, "mfa_required")
	// With a second factor of their own, the delegate may act.
	e.enrollTOTP(delegate)
	r := e.do("POST", act, nil, delegate.auth())
	acting := e.sessionFrom(r, e.expect(r, 200, ""))
	if w := e.expect(e.do("GET", "/api/v1/whoami", nil, acting.auth()), 200, ""); w["restricted"] != false || w["aal"] != "aal2" {
		t.Fatalf("acting whoami %v", w)
	}
}
