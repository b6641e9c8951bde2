package handlers_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebhookAdminRoutes: the webhook administration through the real app: roles, bad input
// (400 that writes nothing), registering, listing, paging parameters, unknown ids and
// removal; every answer is documented (env.do checks the OpenAPI document).
func TestWebhookAdminRoutes(t *testing.T) {
	e := newEnv(t, withAdmins("root@example.com"))
	e.register("root@example.com")
	e.register("user@example.com")
	root := e.teamLogin("root@example.com")
	user := e.login("user@example.com", testPassword)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	valid := map[string]any{"url": hook.URL + "/in"}

	e.expect(e.do("POST", "/api/v1/admin/webhooks", valid, nil), 401, "unauthenticated")
	e.expect(e.do("POST", "/api/v1/admin/webhooks", valid, user.auth()), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/admin/webhooks", nil, user.auth()), 403, "forbidden")
	e.checkBadBodies("POST", "/api/v1/admin/webhooks", valid, root.auth())
	for _, bad := range []string{"", "hook.example.com/in", "ftp://hook.example.com", "https://a:b@hook.example.com/", "https:///nohost", "https://hook.example.com/#frag"} {
		before := e.head()
		e.expect(e.do("POST", "/api/v1/admin/webhooks", map[string]any{"url": bad}, root.auth()), 400, "invalid_request")
		if e.head() != before {
			t.Errorf("the refused url %q wrote to the log", bad)
		}
	}

	m := e.expect(e.do("POST", "/api/v1/admin/webhooks", valid, root.auth()), 201, "")
	id, _ := m["id"].(string)
	if id == "" || m["url"] != hook.URL+"/in" || m["source"] != "api" || m["created_at"] == nil {
		t.Fatalf("registered %v", m)
	}
	secret, _ := m["secret"].(string)
	if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); !strings.HasPrefix(secret, "whsec_") || err != nil || len(key) != 32 {
		t.Fatalf("secret %q", secret)
	}
	second := e.expect(e.do("POST", "/api/v1/admin/webhooks", valid, root.auth()), 201, "")
	if second["secret"] == secret {
		t.Fatal("two endpoints got the same secret")
	}
	e.expect(e.do("DELETE", "/api/v1/admin/webhooks/"+second["id"].(string), nil, root.auth()), 204, "")
	list := e.expect(e.do("GET", "/api/v1/admin/webhooks", nil, root.auth()), 200, "")
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != id || list["next_cursor"] != nil || items[0].(map[string]any)["secret"] != nil {
		t.Fatalf("list %v", list)
	}
	parked := e.expect(e.do("GET", "/api/v1/admin/webhooks/"+id+"/parked", nil, root.auth()), 200, "")
	if len(parked["items"].([]any)) != 0 {
		t.Fatalf("parked %v", parked)
	}
	e.expect(e.do("GET", "/api/v1/admin/webhooks/"+id+"/parked?limit=0", nil, root.auth()), 400, "invalid_request")
	e.expect(e.do("GET", "/api/v1/admin/webhooks/"+id+"/parked?cursor=abc", nil, root.auth()), 400, "invalid_request")
	e.expect(e.do("GET", "/api/v1/admin/webhooks/unknown/parked", nil, root.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/admin/webhooks/"+id+"/parked/abc/replay", nil, root.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/admin/webhooks/"+id+"/parked/1/replay", nil, root.auth()), 404, "not_found")
	e.expect(e.do("DELETE", "/api/v1/admin/webhooks/"+id, nil, user.auth()), 403, "forbidden")
	e.expect(e.do("DELETE", "/api/v1/admin/webhooks/"+id, nil, root.auth()), 204, "")
	e.expect(e.do("DELETE", "/api/v1/admin/webhooks/"+id, nil, root.auth()), 404, "not_found")
	e.expect(e.do("GET", "/api/v1/admin/webhooks/"+id+"/parked", nil, root.auth()), 404, "not_found")
	if n := len(e.expect(e.do("GET", "/api/v1/admin/webhooks", nil, root.auth()), 200, "")["items"].([]any)); n != 0 {
		t.Fatalf("%d endpoints after the removal", n)
	}
}
