package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
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
	svc, err := domain.NewService(domain.Config{Store: store, Keyring: kr, Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}})
	if err != nil {
		t.Fatal(err)
	}
	pdb, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "projections.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	s := newTestServer(t, Config{Store: store, Accounts: svc, SecretKey: key, ReadModels: pdb, Log: store})
	if s.api.subjects == nil {
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
	var documented, served []string
	for p, item := range doc.Paths {
		for m, op := range item {
			documented = append(documented, strings.ToUpper(m)+" "+p)
			if !strings.HasPrefix(p, apiPrefix) {
				continue
			}
			for _, code := range []string{"401", "500"} {
				if _, ok := op.Responses[code]; !ok && !slices.Contains([]string{"/api/v1/accounts", "/api/v1/login", "/api/v1/login/second-factor"}, p) {
					t.Errorf("%s %s does not document %s", m, p, code)
				}
			}
			if m == "get" {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name string `json:"name"`
				}) bool {
					return p.Name == MinPositionParam
				}) {
					t.Errorf("GET %s does not take min_position", p)
				}
			}
		}
	}
	for _, r := range s.engine.Routes() {
		p, _ := openAPIPath(r.Path)
		served = append(served, r.Method+" "+p)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented routes differ from served routes\ndocumented: %v\nserved:     %v", documented, served)
	}
	for _, m := range collectRefs(rec.Body.String()) {
		if _, ok := doc.Components.Schemas[strings.TrimPrefix(m, "#/components/schemas/")]; !ok {
			t.Errorf("$ref %s has no schema", m)
		}
	}
}

func TestProblemMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{domain.ErrInvalidCredentials, 401, CodeInvalidCredentials},
		{domain.ErrInvalidCode, 401, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", domain.ErrInvalidCode), 403, CodeInvalidCredentials},
		{&domain.ThrottledError{RetryAfter: 1500 * 1e6}, 429, CodeTooManyAttempts},
		{domain.ErrReauthenticationRequired, 403, CodeReauthenticationRequired},
		{domain.ErrEnrollmentRequired, 403, CodeEnrollmentRequired},
		{domain.ErrNotFound, 404, CodeNotFound},
		{domain.ErrSessionNotFound, 404, CodeNotFound},
		{Public(ErrUnauthenticated, "", domain.ErrSessionNotFound), 401, CodeUnauthenticated},
		{domain.ErrConflict, 409, CodeConflict},
		{domain.ErrTwoFactorRequired, 409, CodeConflict},
		{&domain.ValidationError{Field: "email", Reason: "is required"}, 400, CodeInvalidRequest},
		{&domain.PasswordPolicyError{Reasons: []string{"Too short."}}, 400, CodeInvalidRequest},
		{domain.ErrInvalidInput, 400, CodeInvalidRequest},
		{domain.ErrTicketInvalid, 401, CodeInvalidCredentials},
		{domain.ErrUnknownClient, 400, CodeInvalidRequest},
		{credential.ErrUnknownKey, 500, CodeInternal},
		{domain.ErrCeremonyInvalid, 400, CodeInvalidRequest},
		{domain.ErrPasskeysDisabled, 404, CodeNotFound},
		{domain.ErrPasskeyInvalid, 401, CodeInvalidCredentials},
		{domain.ErrPasskeyCloneSuspected, 401, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", domain.ErrPasskeyInvalid), 403, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", domain.ErrPasskeyCloneSuspected), 403, CodeInvalidCredentials},
		{projections.ErrBadCursor, 400, CodeInvalidRequest},
		{fmt.Errorf("list: %w", projections.ErrBadFilter), 400, CodeInvalidRequest},
	} {
		p, _ := problemFor(tc.err)
		if p.Status != tc.status || p.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, p.Status, p.Code, tc.status, tc.code)
		}
	}
	p, _ := problemFor(withPasswordField("new_password", &domain.PasswordPolicyError{Reasons: []string{"Too short.", "Too common."}}))
	fe, _ := p.Extensions["errors"].([]FieldError)
	if p.Detail != "new_password: Too short. Too common." || len(fe) != 1 || fe[0].Field != "new_password" || len(fe[0].Reasons) != 2 {
		t.Errorf("password policy problem %+v", p)
	}
	joined := errorsJoin(&domain.ValidationError{Field: "email", Reason: "is required"}, &domain.ValidationError{Field: "password", Reason: "is required"})
	p, _ = problemFor(joined)
	if fe, _ := p.Extensions["errors"].([]FieldError); len(fe) != 2 || p.Detail != "email: is required; password: is required" {
		t.Errorf("joined validation problem %+v", p)
	}
	p, _ = problemFor(&domain.ThrottledError{RetryAfter: 1500 * 1e6})
	if p.Extensions["retry_after"] != 2 {
		t.Errorf("throttle problem %+v", p)
	}
}

func errorsJoin(errs ...error) error { return errors.Join(errs...) }
