package handlers

import (
	"encoding/json"
	"testing"

	"github.com/vigil-auth/vigil/domain/credential"
)

// TestOpenAPIDocumentsAccess: every operation says who may call it (x-vigil-access), and
// the credentials it accepts (security) name schemes the document defines.
func TestOpenAPIDocumentsAccess(t *testing.T) {
	s := newPortalTestServer(t, credential.PasswordPolicyConfig{})
	var doc struct {
		Paths map[string]map[string]struct {
			Access   string                `json:"x-vigil-access"`
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(s.get(t, "/openapi.json").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for p, item := range doc.Paths {
		for m, op := range item {
			if op.Access == "" {
				t.Errorf("%s %s has no x-vigil-access", m, p)
			}
			for _, req := range op.Security {
				for name := range req {
					if _, ok := doc.Components.SecuritySchemes[name]; !ok {
						t.Errorf("%s %s names security scheme %q, which is not defined", m, p, name)
					}
				}
			}
		}
	}
	for _, c := range []struct{ method, path, access string }{
		{"post", "/api/v1/accounts", "anyone"},
		{"get", "/healthz", "anyone"},
		{"get", "/api/v1/whoami", "any signed-in session: also one restricted to enrolling a second factor, and a delegate's acting session"},
		{"get", "/api/v1/me", "a signed-in session, a delegate's acting session too (not one restricted to enrolling a second factor)"},
	} {
		op := doc.Paths[c.path][c.method]
		if op.Access != c.access {
			t.Errorf("%s %s: access %q, want %q", c.method, c.path, op.Access, c.access)
		}
		if public := c.access == "anyone"; public != (len(op.Security) == 0) {
			t.Errorf("%s %s: security %v", c.method, c.path, op.Security)
		}
	}
}
