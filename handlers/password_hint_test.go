package handlers

import (
	"encoding/json"
	"html"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/projections"
)

// newPortalTestServer is a server with the JSON API, the read side and so the portal, whose
// password policy is cfg.
func newPortalTestServer(t *testing.T, policy credential.PasswordPolicyConfig) testServer {
	t.Helper()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key := []byte(strings.Repeat("k", 32))
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := command.NewService(command.Config{Store: store, Keyring: kr, PasswordPolicy: policy,
		Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}})
	if err != nil {
		t.Fatal(err)
	}
	pdb, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "projections.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pdb.Close() })
	return newTestServer(t, Config{Store: store, Accounts: svc, SecretKey: key, ReadModels: pdb, Log: store})
}

// TestSignupPageShowsPasswordRules: the sign-up page says, under the password field, what the
// policy in effect asks (its length, not a number written into the template), and the
// OpenAPI document gives the same bounds and rules for the new password.
func TestSignupPageShowsPasswordRules(t *testing.T) {
	for _, minLen := range []int{0, 16} {
		s := newPortalTestServer(t, credential.PasswordPolicyConfig{MinLength: minLen})
		pol, _ := credential.NewPasswordPolicy(credential.PasswordPolicyConfig{MinLength: minLen})
		want := pol.Hint()
		rec := s.get(t, "/signup")
		if rec.Code != 200 {
			t.Fatalf("GET /signup: %d", rec.Code)
		}
		page := html.UnescapeString(rec.Body.String())
		if !strings.Contains(page, `<p class="hint" id="password-hint">`+want+`</p>`) ||
			!strings.Contains(page, `aria-describedby="password-hint"`) {
			t.Errorf("MinLength %d: the sign-up page lacks the hint %q under the password field:\n%s", minLen, want, page)
		}
		if !strings.HasPrefix(want, "At least "+map[int]string{0: "12", 16: "16"}[minLen]+" characters") {
			t.Errorf("MinLength %d: hint %q", minLen, want)
		}

		var doc struct {
			Paths map[string]map[string]struct {
				RequestBody struct {
					Content map[string]struct {
						Schema struct {
							Properties map[string]struct {
								MinLength   int    `json:"minLength"`
								MaxLength   int    `json:"maxLength"`
								Description string `json:"description"`
							} `json:"properties"`
						} `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(s.get(t, "/openapi.json").Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		c := pol.Config()
		for path, field := range map[string]string{"/api/v1/accounts": "password", "/api/v1/me/password": "new_password"} {
			p := doc.Paths[path]["post"].RequestBody.Content["application/json"].Schema.Properties[field]
			if p.MinLength != c.MinLength || p.MaxLength != c.MaxLength || p.Description != strings.Join(pol.Rules(), " ") {
				t.Errorf("POST %s %s: %+v; want the policy %+v", path, field, p, c)
			}
		}
	}
}
