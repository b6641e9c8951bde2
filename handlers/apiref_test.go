package handlers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/handlers/apidoc"
)

// TestAPIReferenceCoversEveryRoute: the reference has a section for every operation of the
// OpenAPI document, every event type of the registry and every flag it is given, and the
// password rules of the policy in effect.
func TestAPIReferenceCoversEveryRoute(t *testing.T) {
	s := newPortalTestServer(t, credential.PasswordPolicyConfig{MinLength: 14})
	ref, err := s.APIReference([]apidoc.ReferenceFlag{{Flag: "addr", Env: "VIGIL_ADDR", Default: "`127.0.0.1:8080`", Help: "listen <address>"}})
	if err != nil {
		t.Fatal(err)
	}
	md := string(ref)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(s.get(t, "/openapi.json").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, item := range doc.Paths {
		for m := range item {
			n++
			if !strings.Contains(md, "\n### `"+strings.ToUpper(m)+" "+p+"`\n") {
				t.Errorf("no section for %s %s", strings.ToUpper(m), p)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d operations", n)
	}
	for _, typ := range domain.Catalog().Types() {
		if !strings.Contains(md, "| `"+typ+"` |") {
			t.Errorf("event type %s is not listed", typ)
		}
		if apidoc.EventMeanings[typ] == "" {
			t.Logf("event type %s has no meaning in eventMeanings", typ)
		}
	}
	for _, want := range []string{"| `--addr` | `VIGIL_ADDR` | `127.0.0.1:8080` | listen &lt;address&gt; |", "14 to 256 characters", "At least 14 characters"} {
		if !strings.Contains(md, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
