package web

import (
	"maps"
	"net/http"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// The JSON API of accounts, sign-in and sessions (API.md "Accounts and login", "The
// account's own pages", "Administration"). Every route goes through apiRoute, which adds the
// middleware its access needs and, from the same facts, the error answers and parameters of
// its OpenAPI operation, so that the document says what the route does.

// apiPrefix is the base path of the JSON API.
const ApiPrefix = "/api/v1"

// problemLine is one error answer of a route: its status and "code: when".
type ProblemLine struct {
	Status int
	Text   string
}

// apiRoute is one route of the JSON API.
type Route struct {
	Method string
	Path   string // relative to /api/v1, gin syntax
	Access access
	// cap is what the caller's session must hold (domain.Session.Allows) on a signed-in
	// route. Its zero value, domain.CapControl, is the account holder's own unrestricted
	// session: a route opens itself to restricted or delegates' sessions only by naming a
	// weaker capability. Team routes (admin, audit, events) always need domain.CapTeam.
	Cap domain.Capability
	// read routes accept ?min_position (see waitMinPosition).
	Read bool
	// list routes take limit and cursor and answer a page (listJSON).
	List bool
	Op   Operation
	// errors lists the route's own error answers; those of its access, body and
	// min_position are added.
	Errors  []ProblemLine
	Handler gin.HandlerFunc
}

// Error answers shared by many routes.
const (
	badBodyText     = "invalid_request: the body is not one JSON object, has an unknown field or a value of the wrong type, exceeds 64 KiB or is not UTF-8, or a field fails validation (the `errors` member lists them)"
	unauthText      = "unauthenticated: no session token (bearer or cookie), or the session is unknown, signed out or expired"
	csrfText        = "csrf_failed: a cookie-authenticated request without the X-CSRF-Token of GET /api/v1/csrf"
	enrollmentText  = "enrollment_required: the session is restricted to enrolling a second factor"
	delegateText    = "delegate_not_allowed: a delegate's acting session may not do this (only the account holder may)"
	mfaText         = "mfa_required: the session did not sign in with a second factor (aal2)"
	ReauthText      = "reauthentication_required: the last authentication is older than the step-up window (POST /api/v1/reauth)"
	WrongSecretText = "invalid_credentials: the password or code is wrong (the caller is signed in)"
	ThrottledText   = "too_many_attempts: too many failed attempts; the Retry-After header says how many seconds to wait"
	UnknownClient   = "invalid_request: the client_id (field or X-Vigil-Client header) names no registered client"
	// bodyLimitText is the 400 of every route, also of those that take no body (limitBody).
	bodyLimitText = "invalid_request: the request declares a body over 64 KiB"
)

// handleAPI registers r on g with its middleware and OpenAPI operation.
func (s *Core) HandleAPI(g RouteGroup, r Route) {
	op := r.Op
	op.Responses = maps.Clone(op.Responses)
	op.Params = append([]Param(nil), op.Params...)
	unsafe := UnsafeMethod(r.Method)
	var lines []ProblemLine
	if op.Request != nil {
		lines = append(lines, ProblemLine{http.StatusBadRequest, badBodyText})
	} else {
		lines = append(lines, ProblemLine{http.StatusBadRequest, bodyLimitText})
	}
	if r.Read {
		op.Params = append(op.Params, Param{
			Name: MinPositionParam, In: "query",
			Description: "A Vigil-Position value: the answer waits (at most 2 s) until the read models include it, then answers anyway.",
			Schema:      Schema{"type": "integer", "minimum": 0},
		})
		lines = append(lines, ProblemLine{http.StatusBadRequest, "invalid_request: min_position is not a non-negative integer"})
	}
	var chain []gin.HandlerFunc
	if scope := serviceScope(r); scope != "" && s.tokens != nil {
		chain = append(chain, s.serviceAuth(scope))
		lines = append(lines,
			ProblemLine{http.StatusUnauthorized, "unauthenticated: the service token is unknown or revoked"},
			ProblemLine{http.StatusForbidden, "forbidden: the service token lacks scope " + scope})
	}
	// Team routes (admin, audit, events) check the role before the second factor, so that
	// an account without the role hears "forbidden", not "sign in with a second factor".
	team := r.Access == AccessAdmin || r.Access == AccessAudit || r.Access == AccessEvents || r.Access == AccessSSF
	need := r.Cap
	if team {
		need = domain.CapControl
	}
	if r.Access != AccessPublic {
		chain = append(chain, s.authenticate(need))
		lines = append(lines, ProblemLine{http.StatusUnauthorized, unauthText})
		if unsafe {
			lines = append(lines, ProblemLine{http.StatusForbidden, csrfText})
		}
		lines = append(lines, capabilityLines(need)...)
		if unsafe {
			lines = append(lines, ProblemLine{http.StatusBadRequest, UnknownClient})
		}
	}
	switch r.Access {
	case AccessAdmin:
		chain = append(chain, s.requireRole(domain.RoleAdmin))
		lines = append(lines, ProblemLine{http.StatusForbidden, "forbidden: the account does not hold role admin"})
	case AccessAudit:
		chain = append(chain, s.requireRole(domain.RoleAuditor, domain.RoleAdmin))
		lines = append(lines, ProblemLine{http.StatusForbidden, "forbidden: the account holds neither role auditor nor role admin"})
	case AccessEvents:
		chain = append(chain, s.requireRole(domain.RoleAdmin))
		lines = append(lines, ProblemLine{http.StatusForbidden, "forbidden: a session of an account without role admin (machines use a service token with scope events:read)"})
	case AccessSSF:
		chain = append(chain, s.requireRole(domain.RoleAdmin))
		lines = append(lines, ProblemLine{http.StatusForbidden, "forbidden: a session of an account without role admin (machines use a service token with scope ssf:manage)"})
	}
	if team {
		chain = append(chain, s.requireCapability(domain.CapTeam))
		lines = append(lines, capabilityLines(domain.CapTeam)...)
	}
	if unsafe && (r.Access == AccessAdmin || r.Access == AccessAudit || r.Access == AccessSSF) {
		// Every change by an administrator or the security team is a sensitive one.
		chain = append(chain, s.requireStepUp)
		lines = append(lines, ProblemLine{http.StatusForbidden, ReauthText})
	}
	if r.List {
		op.Params = append(op.Params,
			Param{Name: "limit", In: "query", Description: "Page size: default 50; above 500 counts as 500.",
				Schema: Schema{"type": "integer", "minimum": 1, "default": DefaultPageLimit}},
			Param{Name: "cursor", In: "query", Description: "The next_cursor of the previous page; absent for the first page."},
		)
		lines = append(lines, ProblemLine{http.StatusBadRequest, "invalid_request: limit is zero, negative or not a number, or cursor is not one this list issued"})
	}
	if r.Read {
		chain = append(chain, s.waitMinPosition)
	}
	chain = append(chain, r.Handler)
	lines = append(lines, r.Errors...)

	byStatus := map[int][]string{}
	for _, l := range lines {
		if !containsString(byStatus[l.Status], l.Text) {
			byStatus[l.Status] = append(byStatus[l.Status], l.Text)
		}
	}
	for status, texts := range byStatus {
		if _, explicit := op.Responses[status]; explicit {
			continue
		}
		sort.Strings(texts)
		op.Responses[status] = ProblemResponse(strings.Join(texts, "; ") + ".")
	}
	if unsafe {
		for status, resp := range op.Responses {
			if status >= 200 && status < 300 {
				hs := maps.Clone(resp.Headers)
				if hs == nil {
					hs = map[string]string{}
				}
				hs[PositionHeader] = "The global log position this request wrote (the log head when it wrote nothing); pass it as min_position to a later read."
				resp.Headers = hs
				op.Responses[status] = resp
			}
		}
	}
	if len(op.Tags) == 0 {
		op.Tags = []string{"accounts"}
	}
	op.Access = accessText(r.Access, r.Cap)
	if r.Access != AccessPublic {
		cookie := map[string][]string{SchemeSessionCookie: {}}
		if unsafe { // authenticate checks the CSRF token of cookie requests with these
			cookie[SchemeCSRFToken] = []string{}
		}
		op.Security = []map[string][]string{{schemeSessionToken: {}}, cookie}
	}
	if scope := serviceScope(r); scope != "" && s.tokens != nil {
		op.Access += "; or a service token with scope `" + scope + "`"
		op.Security = append(op.Security, map[string][]string{schemeServiceToken: {scope}})
	}
	g.Handle(r.Method, r.Path, op, chain...)
}

// capabilityLines are the 403 answers of a route whose session must hold need: those of
// the sessions domain.Session.Allows refuses it to.
func capabilityLines(need domain.Capability) []ProblemLine {
	var lines []ProblemLine
	if (domain.Session{Restricted: true}).Allows(need) != nil {
		lines = append(lines, ProblemLine{http.StatusForbidden, enrollmentText})
	}
	if (domain.Session{ActorAccountID: "x", AAL: domain.AAL2}).Allows(need) != nil {
		lines = append(lines, ProblemLine{http.StatusForbidden, delegateText})
	}
	if (domain.Session{AAL: domain.AAL1}).Allows(need) != nil {
		lines = append(lines, ProblemLine{http.StatusForbidden, mfaText})
	}
	return lines
}

// accessText says in words who may call a route of access a whose session needs capability
// need (the service token that may also call it is added by handleAPI).
func accessText(a access, need domain.Capability) string {
	const step = "; its changes also need an authentication within the step-up window"
	switch a {
	case AccessPublic:
		return "anyone"
	case AccessAdmin:
		return "the account holder's own session, signed in with a second factor (aal2), of an account with role `" + domain.RoleAdmin + "`" + step
	case AccessAudit:
		return "the account holder's own session, signed in with a second factor (aal2), of an account with role `" + domain.RoleAuditor + "` or `" + domain.RoleAdmin + "`" + step
	case AccessEvents:
		return "the account holder's own session, signed in with a second factor (aal2), of an account with role `" + domain.RoleAdmin + "`"
	case AccessSSF:
		return "the account holder's own session, signed in with a second factor (aal2), of an account with role `" + domain.RoleAdmin + "`" + step
	}
	switch need {
	case domain.CapSession, domain.CapReadSecurity:
		return "any signed-in session: also one restricted to enrolling a second factor, and a delegate's acting session"
	case domain.CapRead, domain.CapProfile:
		return "a signed-in session, a delegate's acting session too (not one restricted to enrolling a second factor)"
	case domain.CapEnroll:
		return "the account holder's own session, also one restricted to enrolling a second factor (not a delegate's acting session)"
	}
	return "the account holder's own session (not one restricted to enrolling a second factor, not a delegate's acting session)"
}

// serviceScope is the service token scope that grants r: events:read for the compliance
// stream, audit:read for the GET routes of the security teams; "" when no service token
// may call r.
func serviceScope(r Route) string {
	switch {
	case r.Access == AccessEvents:
		return command.ScopeEventsRead
	case r.Access == AccessSSF:
		return command.ScopeSSFManage
	case r.Access == AccessAudit && r.Method == http.MethodGet:
		return command.ScopeAuditRead
	}
	return ""
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonBody is a required JSON request body of schema s.
func JsonBody(s Schema) *RequestBody { return &RequestBody{Schema: s} }

// noContent is a 204 answer.
func NoContent(desc string) Response { return Response{Description: desc} }

// required returns a validation error when a required string field is empty.
func Required(field, value string) error {
	if value == "" {
		return &domain.ValidationError{Field: field, Reason: "is required"}
	}
	return nil
}

// maxPathID bounds the ids taken from paths.
const MaxPathID = 128

// pathID returns the path parameter name, or an error of kind ErrNotFound for a value no
// id can have (too long, not printable UTF-8): nothing has such an id.
func PathID(c *gin.Context, name string) (string, error) {
	id := c.Param(name)
	if id == "" || len(id) > MaxPathID || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r)
	}) {
		return "", Public(ErrNotFound, "Nothing has this id.", nil)
	}
	return id, nil
}

// Schemas of the JSON API.
func DateTime() Schema { return Schema{"type": "string", "format": "date-time"} }
func NullableDateTime() Schema {
	return Schema{"type": []string{"string", "null"}, "format": "date-time"}
}
