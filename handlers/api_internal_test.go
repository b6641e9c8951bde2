package handlers

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// TestOpenAPIMatchesRoutesWithAPI is TestOpenAPIMatchesRoutes for a server that serves the
// JSON API: what /openapi.json documents is exactly what the engine serves, and every
// operation of the API documents its problem answers.
func TestOpenAPIMatchesRoutesWithAPI(t *testing.T) {
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := []byte(strings.Repeat("k", 32))
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := command.NewService(command.Config{Store: store, Keyring: kr, Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}})
	if err != nil {
		t.Fatal(err)
	}
	pdb, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "projections.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	s := newTestServer(t, Config{Store: store, Accounts: svc, SecretKey: key, ReadModels: pdb, Log: store})
	if s.api.Subjects == nil {
		t.Error("the SQLite store's ReadSubject was not found")
	}
	rec := s.get(t, "/openapi.json")
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
			} `json:"parameters"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, item := range doc.Paths {
		for m, op := range item {
			documented = append(documented, strings.ToUpper(m)+" "+p)
			if !strings.HasPrefix(p, web.ApiPrefix) {
				continue
			}
			for _, code := range []string{"401", "500"} {
				if _, ok := op.Responses[code]; !ok && !slices.Contains([]string{"/api/v1/accounts", "/api/v1/login", "/api/v1/login/second-factor",
					// The mailed links' routes need no session: the token is the credential (400 invalid_token).
					"/api/v1/email/verify", "/api/v1/password-reset", "/api/v1/password-reset/confirm", "/api/v1/not-me"}, p) {
					t.Errorf("%s %s does not document %s", m, p, code)
				}
			}
			if m == "get" {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name string `json:"name"`
				}) bool {
					return p.Name == web.MinPositionParam
				}) {
					t.Errorf("GET %s does not take min_position", p)
				}
			}
		}
	}
	checkRoutesDocumented(t, s.Server, documented)
	for _, m := range collectRefs(rec.Body.String()) {
		if _, ok := doc.Components.Schemas[strings.TrimPrefix(m, "#/components/schemas/")]; !ok {
			t.Errorf("$ref %s has no schema", m)
		}
	}
}
