package apidoc

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The API reference (docs/API.md) is rendered from the served OpenAPI document, that is from
// the route registry, plus the prose of api_reference.md.tmpl. Nothing about a route is
// written twice: a route added, changed or removed changes the reference when it is
// regenerated (cmd/vigil's TestAPIReferenceIsUpToDate -update).

//go:embed api_reference.md.tmpl
var apiReferenceTemplate string

// ReferenceFlag is one setting of `vigil serve` for the reference's "Running" table (the
// command's option table lives in package main, which passes it in).
type ReferenceFlag struct {
	Flag, Env, Default, Help string
}

// OpenAPI document, as much of it as the reference reads.
type oaDoc struct {
	Info struct {
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]oaOperation `json:"paths"`
	Components struct {
		Schemas map[string]oaSchema `json:"schemas"`
	} `json:"components"`
}

type oaOperation struct {
	OperationID string        `json:"operationId"`
	Summary     string        `json:"summary"`
	Description string        `json:"description"`
	Tags        []string      `json:"tags"`
	Access      string        `json:"x-vigil-access"`
	Parameters  []oaParameter `json:"parameters"`
	RequestBody *struct {
		Required    bool                   `json:"required"`
		Description string                 `json:"description"`
		Content     map[string]oaMediaType `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Description string                 `json:"description"`
		Content     map[string]oaMediaType `json:"content"`
		Headers     map[string]struct {
			Description string `json:"description"`
		} `json:"headers"`
	} `json:"responses"`
}

type oaParameter struct {
	Name        string   `json:"name"`
	In          string   `json:"in"`
	Required    bool     `json:"required"`
	Description string   `json:"description"`
	Schema      oaSchema `json:"schema"`
}

type oaMediaType struct {
	Schema oaSchema `json:"schema"`
}

// oaSchema is a JSON Schema as decoded.
type oaSchema map[string]any

// Data of the template.
type refData struct {
	Version    string
	Sections   []refSection
	Schemas    []refSchema
	Codes      []refCode
	EventTypes []refEvent
	Flags      []ReferenceFlag
	Password   struct {
		Rules []string
		Hint  string
		credential.PasswordPolicyConfig
	}
	// Names of the protocol that the prose uses.
	SessionCookie, CSRFHeader, ClientHeader, PositionHeader, MinPositionParam string
	DefaultPageLimit, MaxPageLimit                                            int
	MinPositionWait, MaxBody                                                  string
	ProblemContentType, ProblemTypePrefix                                     string
	LoginFailedReasons, SignOutReasons, ExpiredReasons, Roles, Scopes         []string
}

type refSection struct {
	Tag, Title string
	Intro      string // rendered "tag:<name>" template, "" when there is none
	Operations []refOperation
}

type refOperation struct {
	Method, Path, Summary, Description, Access string
	// Body is the request body's field list in brief; Answers the statuses in brief.
	Body, Answers string
	Params        []refField
	BodyType      string // the body's media type when not JSON, or a non-object schema
	BodyFields    []refField
	Responses     []refResponse
}

type refField struct {
	Name, In, Type, Description string
	Required                    bool
}

type refResponse struct {
	Status      string
	Description string
	Body        string
	Headers     []string
	Problems    []refProblem // for problem answers whose description is "code: when; ..."
}

type refProblem struct{ Code, When string }

type refSchema struct {
	Name, Description string
	Fields            []refField
	Shape             string // for schemas that are not plain objects
}

type refCode struct {
	Code, Title string
	Statuses    string
}

type refEvent struct {
	Type    string
	Version int
	Meaning string
}

// tagOrder is the order of the sections; tags not listed follow, alphabetically.
var tagOrder = []string{"accounts", "recovery", "organisations", "delegations", "audit", "administration", "compliance", "operations"}

// tagTitles are the section titles; other tags are shown capitalised.
var tagTitles = map[string]string{
	"accounts":       "Accounts, sign-in and the account's own pages",
	"recovery":       "Recovery: email verification, password reset, \"this wasn't me\"",
	"organisations":  "Organisations",
	"delegations":    "Delegated access",
	"audit":          "Security teams (role auditor or admin)",
	"administration": "Administration (role admin)",
	"compliance":     "Compliance stream",
	"operations":     "Operations",
}

var methodOrder = map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}

// problemPart finds "code: " at the start of a problem answer's description or after "; ".
var problemPart = regexp.MustCompile(`(?:^|; )([a-z][a-z_]+): `)

func Render(openapi []byte, pol *credential.PasswordPolicy, flags []ReferenceFlag) ([]byte, error) {
	var doc oaDoc
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, fmt.Errorf("api reference: read the OpenAPI document: %w", err)
	}
	t, err := template.New("API.md").Funcs(template.FuncMap{
		"join": strings.Join,
		"code": func(s []string) string { return codeList(s) },
		"md":   mdText,
		"cell": mdCell,
		// anchor is GitHub's id of a heading.
		"anchor": func(title string) string {
			return strings.Map(func(r rune) rune {
				switch {
				case r == ' ':
					return '-'
				case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
					return r
				}
				return -1
			}, strings.ToLower(title))
		},
	}).Parse(apiReferenceTemplate)
	if err != nil {
		return nil, fmt.Errorf("api reference: template: %w", err)
	}
	d := refData{
		Version: doc.Info.Version, Flags: flags,
		SessionCookie: web.SessionCookie, CSRFHeader: web.CSRFHeader, ClientHeader: web.ClientHeader,
		PositionHeader: web.PositionHeader, MinPositionParam: web.MinPositionParam,
		DefaultPageLimit: web.DefaultPageLimit, MaxPageLimit: web.MaxPageLimit,
		MinPositionWait: web.DefaultMinPositionWait.String(), MaxBody: fmt.Sprintf("%d KiB", web.MaxBodyBytes/1024),
		ProblemContentType: web.ProblemContentType, ProblemTypePrefix: web.ProblemTypePrefix,
		LoginFailedReasons: []string{reasons.LoginFailedInvalidCredentials, reasons.LoginFailedUnknownAccount,
			reasons.LoginFailedInvalidSecondFactor, reasons.LoginFailedThrottled, reasons.LoginFailedPasskeyCloneSuspected},
		SignOutReasons: []string{reasons.SignOutLogout, reasons.SignOutByUser, reasons.SignOutByAdmin,
			reasons.SignOutPasswordChanged, reasons.SignOutDelegationEnded},
		ExpiredReasons: []string{reasons.ExpiredLifetime, reasons.ExpiredIdle},
		Roles:          []string{domain.RoleAdmin, domain.RoleAuditor},
		Scopes:         command.ServiceTokenScopes,
	}
	d.Password.Rules, d.Password.Hint, d.Password.PasswordPolicyConfig = pol.Rules(), pol.Hint(), pol.Config()
	d.Codes = problemCodes()
	for _, name := range domain.Catalog().Types() {
		v, _ := domain.Catalog().CurrentVersion(name)
		meaning := EventMeanings[name]
		if meaning == "" {
			meaning = "(not described yet)"
		}
		d.EventTypes = append(d.EventTypes, refEvent{Type: name, Version: v, Meaning: meaning})
	}

	byTag := map[string][]refOperation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], referenceOperation(strings.ToUpper(method), path, op))
		}
	}
	tags := make([]string, 0, len(byTag))
	for tag := range byTag {
		tags = append(tags, tag)
	}
	rank := func(tag string) int {
		if i := slices.Index(tagOrder, tag); i >= 0 {
			return i
		}
		return len(tagOrder)
	}
	sort.Slice(tags, func(i, j int) bool {
		if ri, rj := rank(tags[i]), rank(tags[j]); ri != rj {
			return ri < rj
		}
		return tags[i] < tags[j]
	})
	for _, tag := range tags {
		ops := byTag[tag]
		sort.Slice(ops, func(i, j int) bool {
			if ops[i].Path != ops[j].Path {
				return ops[i].Path < ops[j].Path
			}
			return methodOrder[ops[i].Method] < methodOrder[ops[j].Method]
		})
		title := tagTitles[tag]
		if title == "" {
			title = strings.ToUpper(tag[:1]) + tag[1:]
		}
		sec := refSection{Tag: tag, Title: title, Operations: ops}
		if intro := t.Lookup("tag:" + tag); intro != nil {
			var b bytes.Buffer
			if err := intro.Execute(&b, d); err != nil {
				return nil, fmt.Errorf("api reference: intro of %s: %w", tag, err)
			}
			sec.Intro = strings.TrimSpace(b.String())
		}
		d.Sections = append(d.Sections, sec)
	}

	names := make([]string, 0, len(doc.Components.Schemas))
	for name := range doc.Components.Schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := doc.Components.Schemas[name]
		rs := refSchema{Name: name, Description: str(sc["description"])}
		if _, ok := sc["properties"]; ok {
			rs.Fields = fields(sc)
		} else {
			rs.Shape = shape(sc, 2)
		}
		d.Schemas = append(d.Schemas, rs)
	}

	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("api reference: %w", err)
	}
	// One blank line at most between blocks, one newline at the end.
	out := regexp.MustCompile(`\n{3,}`).ReplaceAll(b.Bytes(), []byte("\n\n"))
	return append(bytes.TrimSpace(out), '\n'), nil
}

func referenceOperation(method, path string, op oaOperation) refOperation {
	r := refOperation{Method: method, Path: path, Summary: op.Summary, Description: op.Description, Access: op.Access}
	if r.Access == "" {
		r.Access = "anyone"
	}
	for _, p := range op.Parameters {
		r.Params = append(r.Params, refField{Name: p.Name, In: p.In, Type: typeText(p.Schema), Description: p.Description, Required: p.Required})
	}
	if rb := op.RequestBody; rb != nil {
		for ct, mt := range rb.Content {
			_, isObject := mt.Schema["properties"]
			switch {
			case ct == "application/json" && isObject:
				r.BodyFields = fields(mt.Schema)
				var names []string
				for _, f := range r.BodyFields {
					n := f.Name
					if !f.Required {
						n += "?"
					}
					names = append(names, n)
				}
				r.Body = "`" + strings.Join(names, ", ") + "`"
			default:
				r.BodyType = ct + ": " + typeText(mt.Schema)
				r.Body = ct
			}
			if rb.Description != "" {
				r.BodyType = strings.TrimSpace(r.BodyType + " " + rb.Description)
			}
		}
	}
	statuses := make([]string, 0, len(op.Responses))
	for st := range op.Responses {
		statuses = append(statuses, st)
	}
	sort.Strings(statuses)
	var brief []string
	for _, st := range statuses {
		resp := op.Responses[st]
		n, _ := strconv.Atoi(st)
		if n == http.StatusInternalServerError && resp.Description == "Internal error; details are only in the server log." {
			continue // every route may answer it; the conventions say so once
		}
		rr := refResponse{Status: st, Description: resp.Description}
		for ct, mt := range resp.Content {
			if ct == web.ProblemContentType {
				continue
			}
			rr.Body = shape(mt.Schema, 2)
			if ct != "application/json" {
				rr.Body = ct
			}
		}
		hs := make([]string, 0, len(resp.Headers))
		for name, h := range resp.Headers {
			if name == web.PositionHeader {
				hs = append(hs, "`"+name+"`")
			} else {
				hs = append(hs, "`"+name+"`: "+h.Description)
			}
		}
		sort.Strings(hs)
		rr.Headers = hs
		entry := st
		if n >= 400 {
			locs := problemPart.FindAllStringSubmatchIndex(resp.Description, -1)
			var codes []string
			for i, loc := range locs {
				end := len(resp.Description)
				if i+1 < len(locs) {
					end = locs[i+1][0]
				}
				code := resp.Description[loc[2]:loc[3]]
				rr.Problems = append(rr.Problems, refProblem{Code: code, When: strings.TrimSuffix(resp.Description[loc[1]:end], ".")})
				if !slices.Contains(codes, code) {
					codes = append(codes, code)
				}
			}
			if len(codes) > 0 {
				entry += " " + codeList(codes)
			}
		} else if rr.Body != "" && rr.Body != "string" {
			entry += " " + "`" + rr.Body + "`"
		}
		brief = append(brief, entry)
		r.Responses = append(r.Responses, rr)
	}
	r.Answers = strings.Join(brief, "; ")
	return r
}

// fields lists an object schema's properties: the required ones in their declared order,
// then the others alphabetically.
func fields(sc oaSchema) []refField {
	props, _ := sc["properties"].(map[string]any)
	var req []string
	if rl, ok := sc["required"].([]any); ok {
		for _, x := range rl {
			req = append(req, str(x))
		}
	}
	var out []refField
	for _, name := range req {
		if p, ok := props[name].(map[string]any); ok {
			out = append(out, refField{Name: name, Type: typeText(p), Description: str(p["description"]), Required: true})
		}
	}
	var rest []string
	for name := range props {
		if !slices.Contains(req, name) {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		p, _ := props[name].(map[string]any)
		out = append(out, refField{Name: name, Type: typeText(p), Description: str(p["description"])})
	}
	return out
}

// typeText says a schema's type in words, e.g. "string (date-time)", "one of `a`, `b`".
func typeText(sc oaSchema) string {
	if len(sc) == 0 {
		return "string"
	}
	if r, ok := sc["$ref"].(string); ok {
		return "`" + strings.TrimPrefix(r, "#/components/schemas/") + "`"
	}
	if c, ok := sc["const"]; ok {
		return "`" + fmt.Sprint(c) + "`"
	}
	if en, ok := sc["enum"].([]any); ok {
		var vals []string
		for _, v := range en {
			vals = append(vals, fmt.Sprint(v))
		}
		return "one of " + codeList(vals)
	}
	typ := typeName(sc["type"])
	switch typ {
	case "array":
		items, _ := sc["items"].(map[string]any)
		return "array of " + typeText(items)
	case "object":
		if _, ok := sc["properties"]; ok {
			return "`" + shape(sc, 2) + "`"
		}
		return "object"
	}
	var extra []string
	if f := str(sc["format"]); f != "" {
		extra = append(extra, f)
	}
	if v, ok := sc["minimum"]; ok {
		extra = append(extra, fmt.Sprintf("≥ %v", v))
	}
	if v, ok := sc["minLength"]; ok {
		extra = append(extra, fmt.Sprintf("%v to %v characters", v, sc["maxLength"]))
	}
	if v, ok := sc["default"]; ok {
		extra = append(extra, fmt.Sprintf("default %v", v))
	}
	if len(extra) > 0 {
		typ += " (" + strings.Join(extra, ", ") + ")"
	}
	return typ
}

// typeName is a schema's type; ["string","null"] reads "string or null".
func typeName(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		var names []string
		for _, x := range t {
			names = append(names, str(x))
		}
		return strings.Join(names, " or ")
	}
	return "any"
}

// shape is a compact picture of a schema: {a, b?, c:{d}}, [Name], "x"|"y".
func shape(sc oaSchema, depth int) string {
	if r, ok := sc["$ref"].(string); ok {
		return strings.TrimPrefix(r, "#/components/schemas/")
	}
	if en, ok := sc["enum"].([]any); ok {
		var vals []string
		for _, v := range en {
			vals = append(vals, fmt.Sprintf("%q", fmt.Sprint(v)))
		}
		return strings.Join(vals, "|")
	}
	if c, ok := sc["const"]; ok {
		return fmt.Sprintf("%q", fmt.Sprint(c))
	}
	switch typeName(sc["type"]) {
	case "array":
		items, _ := sc["items"].(map[string]any)
		return "[" + shape(items, depth) + "]"
	case "object":
		if _, ok := sc["properties"]; !ok || depth == 0 {
			return "{...}"
		}
		var parts []string
		for _, f := range fields(sc) {
			p := f.Name
			if !f.Required {
				p += "?"
			}
			props, _ := sc["properties"].(map[string]any)
			sub, _ := props[f.Name].(map[string]any)
			if s := shape(sub, depth-1); strings.ContainsAny(s, "{[|\"") || isRef(sub) {
				p += ":" + s
			}
			parts = append(parts, p)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return typeName(sc["type"])
}

func isRef(sc oaSchema) bool { _, ok := sc["$ref"]; return ok }

func str(v any) string { s, _ := v.(string); return s }

// codeList is `a`, `b`.
func codeList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "`" + v + "`"
	}
	return strings.Join(q, ", ")
}

// problemCodes lists every problem code problemKinds can answer, with its title and
// statuses, sorted by code.
func problemCodes() []refCode {
	type entry struct {
		title    string
		statuses []int
	}
	m := map[string]*entry{}
	for _, k := range web.ProblemKinds {
		e := m[k.Code]
		if e == nil {
			e = &entry{title: k.Title}
			m[k.Code] = e
		}
		if !slices.Contains(e.statuses, k.Status) {
			e.statuses = append(e.statuses, k.Status)
		}
	}
	if _, ok := m[web.CodeInternal]; !ok {
		m[web.CodeInternal] = &entry{title: "Internal server error", statuses: []int{http.StatusInternalServerError}}
	}
	var out []refCode
	for code, e := range m {
		slices.Sort(e.statuses)
		var st []string
		for _, s := range e.statuses {
			st = append(st, strconv.Itoa(s))
		}
		out = append(out, refCode{Code: code, Title: e.title, Statuses: strings.Join(st, ", ")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// mdText escapes what Markdown would read as HTML (< and >) outside code spans.
func mdText(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	return strings.Join(parts, "`")
}

// mdCell is mdText for a table cell: pipes are escaped (also in code spans, as GitHub's
// tables need) and newlines become spaces.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(mdText(s), "|", `\|`), "\n", " ")
}
