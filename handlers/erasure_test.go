package handlers_test

import (
	"slices"
	"testing"
)

// TestAdminErasure: an admin erases an account; its session ends, the audit API shows its
// personal values as "[erased]" in events that stay in the log (with their hashes), the
// activity of other accounts is untouched, its email can be registered again; an unknown id
// is 404; an ordinary account cannot erase anyone.
func TestAdminErasure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAdmins("root@example.com"))
	e.register("root@example.com")
	ann := e.register("ann@example.com")
	e.register("bob@example.com")
	root := e.teamLogin("root@example.com")
	annS := e.login("ann@example.com", testPassword)
	bobS := e.login("bob@example.com", testPassword)

	e.expect(e.do("POST", "/api/v1/admin/accounts/"+ann+"/erase", nil, bobS.auth()), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/admin/accounts/no-such-account/erase", nil, root.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+ann+"/erase", nil, root.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, annS.auth()), 401, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, bobS.auth()), 200, "")

	events := e.all("/api/v1/audit/accounts/"+ann+"/events", root.auth())
	var types []string
	for _, ev := range events {
		types = append(types, ev["type"].(string))
		if h, _ := ev["hash"].(string); len(h) != 64 {
			t.Errorf("%s lost its hash: %v", ev["type"], ev["hash"])
		}
		d, _ := ev["data"].(map[string]any)
		if ev["type"] == "AccountRegistered" && (d["email"] != "[erased]" || d["first_name"] != "[erased]") {
			t.Errorf("AccountRegistered after the erasure: %v", d)
		}
		if md, _ := ev["metadata"].(map[string]any); md["ip"] != nil && md["ip"] != "[erased]" && md["ip"] != "" {
			t.Errorf("%s keeps its IP %v", ev["type"], md["ip"])
		}
	}
	reg, out, erased := slices.Index(types, "AccountRegistered"), slices.Index(types, "SessionSignedOut"), slices.Index(types, "AccountErased")
	if reg < 0 || out < 0 || erased < out {
		t.Errorf("the erased account's events: %v (want them kept, its session signed out before AccountErased)", types)
	}
	e.expect(e.do("POST", "/api/v1/admin/accounts/"+ann+"/erase", nil, root.auth()), 204, "") // again: nothing more
	e.register("ann@example.com")                                                             // the email is free again
}
