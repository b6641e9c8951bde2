package handlers

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/handlers/web"
)

// TestOpenAPINames: the document of a server with the JSON API and the read side keeps the
// naming rule of openapi.go (generators make code from it without a collision), and the rule
// catches what broke oapi-codegen: a schema named after an operation's generated response
// type (LoginResponse beside operation login). TestOpenAPINamesOfTheApp checks the full app.
func TestOpenAPINames(t *testing.T) {
	s := newPortalTestServer(t, credential.PasswordPolicyConfig{})
	doc, err := s.OpenAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := web.NamingProblems(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}

	bad := `{"paths": {
	  "/login": {"post": {"operationId": "login"}},
	  "/csrf": {"get": {"operationId": "csrf"}},
	  "/events": {"get": {"operationId": "listEvents"}},
	  "/x": {"get": {"operationId": "get_x"}, "post": {"operationId": "ListEvents"}}},
	 "components": {"securitySchemes": {"serviceToken": {}}, "schemas": {
	  "LoginResponse": {}, "LoginResult": {}, "ListEventsParamsFormat": {}, "Login200JSONResponse": {},
	  "ListThings": {}, "ThingParams": {}, "ServiceTokenScopes": {}, "session": {}, "Login": {}}}}`
	problems, err = web.NamingProblems([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		`schema "LoginResponse" is a name generators derive from operation "login"`,
		`schema "LoginResponse" ends in "Response"`,
		`schema "ListEventsParamsFormat" is a name generators derive from operation "listEvents"`,
		`schema "Login200JSONResponse" is a name generators derive from operation "login"`,
		`schema "Login" is a name generators derive from operation "login"`,
		`operationId "csrf" does not start with a verb`,
		`operationId "get_x" is not lowerCamel`,
		`operationId "ListEvents" is also`,
		`schema "ListThings" starts with a verb`,
		`schema "ThingParams" ends in "Params"`,
		`schema "ServiceTokenScopes" is the name oapi-codegen gives security scheme "serviceToken"`,
		`schema "session" is not UpperCamel`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("namingProblems does not report %s; it reports:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"LoginResult"`) {
		t.Errorf("LoginResult is a fine schema name; namingProblems reports:\n%s", got)
	}
}

// TestOpenAPIDocumentForClients: what Redocly's recommended rules ask of the document and
// what client generators read: the server is the public URL, every operation states the
// credentials it accepts (the empty list when public) and has a 4xx answer, and an unsafe
// operation taking the session cookie also requires the CSRF header.
func TestOpenAPIDocumentForClients(t *testing.T) {
	for _, c := range []struct{ publicURL, server string }{
		{"https://id.example.com/", "https://id.example.com"},
		{"", "/"},
	} {
		s := newTestServer(t, Config{PublicURL: c.publicURL})
		var doc struct {
			Info struct {
				Contact struct{ Name, URL string } `json:"contact"`
			} `json:"info"`
			Servers []struct {
				URL string `json:"url"`
			} `json:"servers"`
		}
		if err := json.Unmarshal(s.get(t, "/openapi.json").Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != c.server {
			t.Errorf("PublicURL %q: servers %+v, want %s", c.publicURL, doc.Servers, c.server)
		}
		if doc.Info.Contact.Name != "Vigil" || doc.Info.Contact.URL != strings.TrimSuffix(c.publicURL, "/") {
			t.Errorf("PublicURL %q: contact %+v", c.publicURL, doc.Info.Contact)
		}
	}

	s := newPortalTestServer(t, credential.PasswordPolicyConfig{})
	var doc struct {
		Paths map[string]map[string]struct {
			Security  *[]map[string][]string     `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.get(t, "/openapi.json").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for p, item := range doc.Paths {
		for m, op := range item {
			if op.Security == nil {
				t.Errorf("%s %s has no security (public operations have the empty list)", m, p)
				continue
			}
			client := false
			for code := range op.Responses {
				client = client || code[0] == '4'
			}
			if !client {
				t.Errorf("%s %s lists no 4xx answer", m, p)
			}
			for _, req := range *op.Security {
				if _, cookie := req[web.SchemeSessionCookie]; cookie {
					if _, csrf := req[web.SchemeCSRFToken]; csrf != web.UnsafeMethod(strings.ToUpper(m)) {
						t.Errorf("%s %s: the cookie requirement %v (the CSRF header goes with unsafe methods only)", m, p, req)
					}
				}
			}
		}
	}
	if sec := doc.Paths["/api/v1/me/password"]["post"].Security; sec == nil || len(*sec) != 2 {
		t.Errorf("POST /api/v1/me/password security %v, want bearer or cookie with CSRF", sec)
	}
	if sec := doc.Paths["/api/v1/login"]["post"].Security; sec == nil || len(*sec) != 0 {
		t.Errorf("POST /api/v1/login security %v, want [] (public)", sec)
	}

	// The 400 that every route documents is real: /healthz refuses a declared oversize body.
	req := httptest.NewRequest(http.MethodGet, "/healthz", strings.NewReader("{}"))
	req.ContentLength = web.MaxBodyBytes + 1
	decodeProblem(t, s.do(t, req), http.StatusBadRequest, "invalid_request")
}
