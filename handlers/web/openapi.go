package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// The route registry: every route is registered together with its OpenAPI operation through
// routeGroup.handle, and GET /openapi.json is generated from exactly what was registered, so
// the document cannot drift from what is served.
//
// Naming rule (so that client generators, oapi-codegen above all, make code that compiles;
// namingProblems checks it and TestOpenAPINames enforces it on the full document):
//   - An operationId is a lowerCamel verb phrase whose first word is one of operationVerbs
//     (getWhoami, listMySessions, startPasskeyLogin; login, logout and reauth are the API's
//     own verbs, the names of their paths).
//   - A schema name is an UpperCamel noun phrase: it does not start with one of those verbs
//     (but for nounsToo: LoginResult), and does not end in a word generators append
//     (Response, Request, Params, Body, Scopes): LoginResult, not LoginResponse.
//   - No schema name is a name a generator derives from an operation or a security scheme:
//     the operation's id made UpperCamel (Login), followed by nothing, a status code or a
//     generated suffix (LoginResponse, LoginJSONRequestBody, LoginJSONBody, LoginParams,
//     ListEventsParamsFormat, Login200JSONResponse...), or a scheme's name + "Scopes".

// schema is a JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) written as a map.
type Schema = map[string]any

// ref refers to the component schema name (see registry.define).
func Ref(name string) Schema { return Schema{"$ref": "#/components/schemas/" + name} }

// Small schema builders for inline schemas.
func StringSchema() Schema  { return Schema{"type": "string"} }
func IntegerSchema() Schema { return Schema{"type": "integer"} }
func BoolSchema() Schema    { return Schema{"type": "boolean"} }
func ArrayOf(items Schema) Schema {
	return Schema{"type": "array", "items": items}
}

// object is an object schema with properties; the names in required must be present.
func Object(props map[string]Schema, required ...string) Schema {
	s := Schema{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// param is an operation parameter. Path parameters are derived from the route (":id" gives a
// required string parameter "id") unless declared here.
type Param struct {
	Name        string
	In          string // "query", "header", "path" or "cookie"
	Description string
	Required    bool
	Schema      Schema
}

// requestBody is an operation's request body (application/json unless ContentType is set).
type RequestBody struct {
	Description string
	ContentType string
	Schema      Schema
	Optional    bool
}

// response is one answer of an operation. Schema nil means no body. ContentType defaults to
// application/json, or application/problem+json for statuses of 400 and above.
type Response struct {
	Description string
	ContentType string
	Schema      Schema
	Headers     map[string]string // header name -> description
}

// problemResponse is an error answer carrying a problem document.
func ProblemResponse(description string) Response {
	return Response{Description: description, ContentType: ProblemContentType, Schema: Ref("Problem")}
}

// operation is the OpenAPI description of one route.
type Operation struct {
	ID          string // operationId; derived from method and path when empty
	Summary     string
	Description string
	Tags        []string
	Params      []Param
	Request     *RequestBody
	Responses   map[int]Response
	// Access says in words who may call the route (x-vigil-access); Security lists the
	// accepted credentials as OpenAPI security requirements (names of securitySchemes),
	// empty for a public route. handleAPI fills both from the route's access.
	Access   string
	Security []map[string][]string
}

// The security schemes of the document (components.securitySchemes).
const (
	schemeSessionToken  = "sessionToken"
	SchemeSessionCookie = "sessionCookie"
	SchemeCSRFToken     = "csrfToken"
	schemeServiceToken  = "serviceToken"
)

// securitySchemes describes every scheme an operation's Security may name. The cookie alone
// authenticates GET requests; a POST, PUT, PATCH or DELETE with the cookie also needs the
// CSRF header, so such operations list the requirement {sessionCookie, csrfToken} (both).
var securitySchemes = map[string]any{
	schemeSessionToken: map[string]any{"type": "http", "scheme": "bearer",
		"description": "A session token (the session_token of a sign-in) as Authorization: Bearer <token>; no CSRF token is needed."},
	SchemeSessionCookie: map[string]any{"type": "apiKey", "in": "cookie", "name": SessionCookie,
		"description": "The " + SessionCookie + " cookie that every sign-in sets (for browsers on the public URL). GET requests need nothing else; " +
			"POST, PUT, PATCH and DELETE requests also need the " + CSRFHeader + " header (scheme " + SchemeCSRFToken + "): " +
			"without it they are refused 403 csrf_failed."},
	SchemeCSRFToken: map[string]any{"type": "apiKey", "in": "header", "name": CSRFHeader,
		"description": "The csrf_token of GET /api/v1/csrf, bound to the session: required together with the " + SessionCookie +
			" cookie on POST, PUT, PATCH and DELETE requests; not needed with a bearer token."},
	schemeServiceToken: map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "vgl_...",
		"description": "A service token (POST /api/v1/admin/service-tokens) as Authorization: Bearer vgl_.... Its scopes are " +
			"`" + command.ScopeAuditRead + "` (the GET routes of the security teams: /api/v1/audit/...) and `" + command.ScopeEventsRead +
			"` (the compliance stream: /api/v1/events...); each operation's requirement names the scope it needs."},
}

type registeredRoute struct {
	method string
	path   string // gin syntax, full path
	op     Operation
}

// registry collects routes and component schemas and renders the OpenAPI document. Routes
// are registered while the server is built; the document is rendered once, on first use.
type registry struct {
	mu      sync.Mutex
	routes  []registeredRoute
	schemas map[string]Schema
	// publicURL is the origin clients reach Vigil at (Config.PublicURL): the document's
	// server and contact. Empty: the server is "/", the origin that served the document.
	publicURL string

	once sync.Once
	doc  []byte
	err  error
}

func newRegistry(publicURL string) *registry {
	return &registry{schemas: map[string]Schema{}, publicURL: publicURL}
}

// define adds a named component schema; defining a name twice is a programming error.
func (r *registry) Define(name string, s Schema) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.schemas[name]; dup {
		panic("handlers: schema " + name + " defined twice")
	}
	r.schemas[name] = s
}

// routeGroup is a gin router group whose routes are recorded in the registry.
type RouteGroup struct {
	g   *gin.RouterGroup
	reg *registry
}

// group returns a sub-group at relPath with extra middleware, recording into the same
// registry.
func (g RouteGroup) Group(relPath string, middleware ...gin.HandlerFunc) RouteGroup {
	return RouteGroup{g: g.g.Group(relPath, middleware...), reg: g.reg}
}

// handle registers handlers for method and relPath (gin syntax) together with op, the
// route's OpenAPI operation. An operation without responses is a programming error.
func (g RouteGroup) Handle(method, relPath string, op Operation, handlers ...gin.HandlerFunc) {
	if len(op.Responses) == 0 {
		panic(fmt.Sprintf("handlers: %s %s registered without responses", method, relPath))
	}
	if op.Access == "" && len(op.Security) == 0 {
		op.Access = accessText(AccessPublic, domain.CapControl)
	}
	full := joinPaths(g.g.BasePath(), relPath)
	g.g.Handle(method, relPath, handlers...)
	g.reg.mu.Lock()
	g.reg.routes = append(g.reg.routes, registeredRoute{method: method, path: full, op: op})
	g.reg.mu.Unlock()
}

// joinPaths joins a group's base path and a relative path the way gin does.
func joinPaths(base, rel string) string {
	if rel == "" {
		return base
	}
	p := path.Join(base, rel)
	if strings.HasSuffix(rel, "/") && !strings.HasSuffix(p, "/") {
		return p + "/"
	}
	return p
}

// openAPIPath turns gin's path syntax into OpenAPI's ("/a/:id/*rest" -> "/a/{id}/{rest}") and
// lists the parameter names.
func OpenAPIPath(p string) (string, []string) {
	segs := strings.Split(p, "/")
	var names []string
	for i, s := range segs {
		if len(s) > 1 && (s[0] == ':' || s[0] == '*') {
			names = append(names, s[1:])
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/"), names
}

// document returns the OpenAPI 3.1 document as JSON, rendered once.
func (r *registry) Document() ([]byte, error) {
	r.once.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.doc, r.err = json.Marshal(r.render())
	})
	return r.doc, r.err
}

func (r *registry) render() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range r.routes {
		p, names := OpenAPIPath(rt.path)
		item := paths[p]
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(rt.method)] = renderOperation(rt.method, rt.path, names, rt.op)
	}
	schemas := make(map[string]any, len(r.schemas))
	for k, v := range r.schemas {
		schemas[k] = v
	}
	components := map[string]any{"schemas": schemas}
	used := map[string]any{}
	for _, rt := range r.routes {
		for _, req := range rt.op.Security {
			for name := range req {
				used[name] = securitySchemes[name]
			}
		}
	}
	if len(used) > 0 {
		components["securitySchemes"] = used
	}
	server := map[string]any{"url": "/", "description": "The origin that serves this document."}
	contact := map[string]any{"name": "Vigil"}
	if r.publicURL != "" {
		server = map[string]any{"url": r.publicURL, "description": "This Vigil's public URL (--public-url)."}
		contact["url"] = r.publicURL
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Vigil",
			"version": "1",
			"description": "Vigil, an event-sourced account-security service. Errors are RFC 9457 " +
				"problem documents with a stable `code` member.",
			"contact": contact,
			// The repository's LICENSE file.
			"license": map[string]any{"name": "Apache License 2.0", "identifier": "Apache-2.0"},
		},
		"servers":    []any{server},
		"paths":      paths,
		"components": components,
	}
}

func renderOperation(method, ginPath string, pathParams []string, op Operation) map[string]any {
	out := map[string]any{}
	id := op.ID
	if id == "" {
		id = strings.ToLower(method) + strings.Map(func(c rune) rune {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				return c
			}
			return '_'
		}, strings.NewReplacer(":", "by_", "*", "").Replace(ginPath))
	}
	out["operationId"] = id
	if op.Summary != "" {
		out["summary"] = op.Summary
	}
	if op.Description != "" {
		out["description"] = op.Description
	}
	if len(op.Tags) > 0 {
		out["tags"] = op.Tags
	}
	if op.Access != "" {
		out["x-vigil-access"] = op.Access
	}
	// Every operation states what it accepts: a public one the empty list (no credentials).
	if len(op.Security) > 0 {
		out["security"] = op.Security
	} else {
		out["security"] = []map[string][]string{}
	}
	declared := map[string]bool{}
	var params []map[string]any
	for _, p := range op.Params {
		if p.In == "path" {
			declared[p.Name] = true
		}
		params = append(params, renderParam(p))
	}
	for _, n := range pathParams {
		if !declared[n] {
			params = append(params, renderParam(Param{Name: n, In: "path", Required: true, Schema: StringSchema()}))
		}
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	if rb := op.Request; rb != nil {
		ct := rb.ContentType
		if ct == "" {
			ct = "application/json"
		}
		body := map[string]any{
			"required": !rb.Optional,
			"content":  map[string]any{ct: map[string]any{"schema": rb.Schema}},
		}
		if rb.Description != "" {
			body["description"] = rb.Description
		}
		out["requestBody"] = body
	}
	responses := map[string]any{}
	for code, resp := range op.Responses {
		responses[strconv.Itoa(code)] = renderResponse(code, resp)
	}
	// Every route refuses a request that declares a body over MaxBodyBytes (limitBody), before
	// its own checks.
	if _, ok := op.Responses[http.StatusBadRequest]; !ok {
		responses["400"] = renderResponse(http.StatusBadRequest, ProblemResponse(bodyLimitText+"."))
	}
	// Every route can fail unexpectedly (recovered panics, internal errors).
	if _, ok := op.Responses[http.StatusInternalServerError]; !ok {
		responses["500"] = renderResponse(http.StatusInternalServerError, ProblemResponse("Internal error; details are only in the server log."))
	}
	out["responses"] = responses
	return out
}

func renderParam(p Param) map[string]any {
	s := p.Schema
	if s == nil {
		s = StringSchema()
	}
	m := map[string]any{"name": p.Name, "in": p.In, "schema": s}
	if p.Required || p.In == "path" {
		m["required"] = true
	}
	if p.Description != "" {
		m["description"] = p.Description
	}
	return m
}

func renderResponse(code int, r Response) map[string]any {
	desc := r.Description
	if desc == "" {
		desc = http.StatusText(code)
	}
	m := map[string]any{"description": desc}
	if r.Schema != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
			if code >= 400 {
				ct = ProblemContentType
			}
		}
		m["content"] = map[string]any{ct: map[string]any{"schema": r.Schema}}
	}
	if len(r.Headers) > 0 {
		hs := map[string]any{}
		for name, d := range r.Headers {
			hs[name] = map[string]any{"description": d, "schema": StringSchema()}
		}
		m["headers"] = hs
	}
	return m
}

// operationVerbs are the first words an operationId may start with (see the naming rule at
// the top of this file).
var operationVerbs = []string{
	"act", "add", "change", "confirm", "create", "delete", "disable", "erase", "get", "grant", "list",
	"login", "logout", "patch", "reauth", "regenerate", "register", "remove", "rename", "replay",
	"report", "request", "revoke", "set", "sign", "start", "stream", "verify",
}

// nounsToo are the operationVerbs that are nouns as well (a login, a change, a stream): a
// schema name may start with them (LoginResult); with the other verbs it may not.
var nounsToo = []string{"act", "change", "login", "logout", "replay", "set", "sign", "start", "stream"}

// generatedSuffixes are the words generators append to a name made from an operationId
// (oapi-codegen: XResponse, ParseXResponse, XParams, XParamsFormat, XJSONBody,
// XJSONRequestBody, XRequestBody, NewXRequest, XWithBody...; strict servers: X200JSONResponse,
// XRequestObject).
var generatedSuffixes = []string{"Response", "Request", "Params", "JSON", "Body", "Formdata",
	"Multipart", "Text", "Application", "With"}

// schemaEndings are the last words a schema name may not have: generators use them for the
// types they make for operations and security schemes.
var schemaEndings = []string{"Response", "Request", "Params", "Body", "Scopes"}

// camelWords splits an UpperCamel or lowerCamel name into its words; a run of capitals is one
// word until the capital that starts the next ("TOTPQRCode": TOTPQR, Code).
func camelWords(name string) []string {
	var words []string
	start := 0
	rs := []rune(name)
	for i := 1; i < len(rs); i++ {
		upper := unicode.IsUpper(rs[i])
		prevUpper := unicode.IsUpper(rs[i-1]) || unicode.IsDigit(rs[i-1])
		nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
		if upper && (!prevUpper || nextLower) {
			words = append(words, string(rs[start:i]))
			start = i
		}
	}
	return append(words, string(rs[start:]))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

var (
	lowerCamel = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	upperCamel = regexp.MustCompile(`^[A-Z][a-zA-Z0-9]*$`)
)

// namingProblems checks the naming rule (top of this file) on an OpenAPI document and lists
// every breach; none means generators can name every type without a collision.
func NamingProblems(doc []byte) ([]string, error) {
	var d struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
		Components struct {
			Schemas         map[string]json.RawMessage `json:"schemas"`
			SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	var problems []string
	var ids []string
	seen := map[string]string{}
	// Paths and methods in sorted order, so that of two clashing ids the same one is named
	// (and the answer is the same on every run).
	for _, p := range slices.Sorted(maps.Keys(d.Paths)) {
		item := d.Paths[p]
		for _, m := range slices.Sorted(maps.Keys(item)) {
			op := item[m]
			where := strings.ToUpper(m) + " " + p
			id := op.OperationID
			if other, dup := seen[strings.ToLower(id)]; dup {
				problems = append(problems, fmt.Sprintf("%s: operationId %q is also %s's (ignoring case)", where, id, other))
			}
			seen[strings.ToLower(id)] = where
			ids = append(ids, id)
			if !lowerCamel.MatchString(id) {
				problems = append(problems, fmt.Sprintf("%s: operationId %q is not lowerCamel", where, id))
				continue
			}
			if !slices.Contains(operationVerbs, camelWords(id)[0]) {
				problems = append(problems, fmt.Sprintf("%s: operationId %q does not start with a verb of operationVerbs", where, id))
			}
		}
	}
	for name := range d.Components.Schemas {
		if !upperCamel.MatchString(name) {
			problems = append(problems, fmt.Sprintf("schema %q is not UpperCamel", name))
			continue
		}
		words := camelWords(name)
		if first := strings.ToLower(words[0]); slices.Contains(operationVerbs, first) && !slices.Contains(nounsToo, first) {
			problems = append(problems, fmt.Sprintf("schema %q starts with a verb (schemas are nouns)", name))
		}
		if last := words[len(words)-1]; slices.Contains(schemaEndings, last) {
			problems = append(problems, fmt.Sprintf("schema %q ends in %q, a word generators append", name, last))
		}
		for _, id := range ids {
			rest, ok := strings.CutPrefix(name, upperFirst(id))
			if !ok {
				continue
			}
			if rest == "" || rest[0] >= '0' && rest[0] <= '9' || slices.ContainsFunc(generatedSuffixes, func(s string) bool { return strings.HasPrefix(rest, s) }) {
				problems = append(problems, fmt.Sprintf("schema %q is a name generators derive from operation %q", name, id))
			}
		}
		for scheme := range d.Components.SecuritySchemes {
			if name == upperFirst(scheme)+"Scopes" {
				problems = append(problems, fmt.Sprintf("schema %q is the name oapi-codegen gives security scheme %q's scopes", name, scheme))
			}
		}
	}
	slices.Sort(problems)
	return problems, nil
}
