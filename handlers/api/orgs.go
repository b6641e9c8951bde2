package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/validate"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// The organisation and delegation routes (API.md "Organisations" and "Delegated access").
// Authorization is the domain's: an organisation the caller does not belong to answers 404
// not_found (its existence is not revealed, also to an admin of another organisation); a
// member who is not an owner or admin gets 403 forbidden. The member lists come from the
// read models (projections.Orgs); an unknown delegate email answers 404 not_found like an
// unknown member email.

// OrgReadModels is the part of the read models the organisation lists need
// (*projections.DB satisfies it). Without it (Config.ReadModels lacks OrgMembers) the list
// routes of organisations are not served.
type OrgReadModels interface {
	OrgMembers(ctx context.Context, orgID string, limit int, cursor string) ([]projections.OrgMemberRow, string, error)
}

// Error answers of the organisation routes.
const (
	orgNotFoundText  = "not_found: no organisation with this id has the caller as a member"
	orgForbiddenText = "forbidden: the caller is a member but not an owner or admin of the organisation"
)

// orgRoutes returns the organisation and delegation routes; the lists that need the read
// models only when they are configured.
func (s *API) orgRoutes() []web.Route {
	orgTags := []string{"organisations"}
	delTags := []string{"delegations"}
	orgView := web.Object(map[string]web.Schema{
		"org_id":              web.StringSchema(),
		"name":                web.StringSchema(),
		"two_factor_required": {"type": "boolean", "description": "The organisation's own policy requires 2FA of its members."},
		"managed_orgs":        {"type": "array", "items": web.StringSchema(), "description": "Ids of the organisations this one manages."},
	}, "org_id", "name", "two_factor_required", "managed_orgs")
	routes := []web.Route{
		{
			Method: http.MethodPost, Path: "/orgs", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "createOrg", Summary: "Create an organisation", Tags: orgTags,
				Description: "The caller becomes its owner.",
				Request:     web.JsonBody(web.Object(map[string]web.Schema{"name": {"type": "string", "description": "1 to 200 characters."}}, "name")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "Created.",
					Schema: web.Object(map[string]web.Schema{"org_id": web.StringSchema()}, "org_id")}},
			},
			Handler: s.createOrg,
		},
		{
			Method: http.MethodGet, Path: "/orgs/:id", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true,
			Op: web.Operation{
				ID: "getOrg", Summary: "An organisation the caller belongs to", Tags: orgTags,
				Responses: map[int]web.Response{http.StatusOK: {Description: "The organisation.", Schema: orgView}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}},
			Handler: s.getOrg,
		},
		{
			Method: http.MethodPost, Path: "/orgs/:id/members", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "addOrgMember", Summary: "Add a member by email, or change a member's role", Tags: orgTags,
				Description: "Owners and admins may add; only an owner may grant or take the owner role. The last owner keeps the role.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"email": {"type": "string", "format": "email"},
					"role":  {"type": "string", "enum": []string{domain.OrgRoleOwner, domain.OrgRoleAdmin, domain.OrgRoleMember}},
				}, "email", "role")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The member and its role.",
					Schema: web.Object(map[string]web.Schema{"account_id": web.StringSchema(), "role": web.StringSchema()}, "account_id", "role")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}, {Status: http.StatusNotFound, Text: "not_found: no account has this email"},
				{Status: http.StatusForbidden, Text: orgForbiddenText}, {Status: http.StatusForbidden, Text: "forbidden: only an owner may grant or change the owner role"},
				{Status: http.StatusConflict, Text: "conflict: the account already has this role, or the last owner would lose the role"}},
			Handler: s.addOrgMember,
		},
		{
			Method: http.MethodDelete, Path: "/orgs/:id/members/:account_id", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "removeOrgMember", Summary: "Remove a member", Tags: orgTags,
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Removed.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}, {Status: http.StatusNotFound, Text: "not_found: the account is not a member"},
				{Status: http.StatusForbidden, Text: orgForbiddenText}, {Status: http.StatusForbidden, Text: "forbidden: only an owner may remove an owner"},
				{Status: http.StatusConflict, Text: "conflict: the last owner cannot be removed"}},
			Handler: s.removeOrgMember,
		},
		{
			Method: http.MethodPut, Path: "/orgs/:id/two-factor-policy", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "setOrgTwoFactorPolicy", Summary: "Require two-factor authentication of the members, or stop", Tags: orgTags,
				Description: "Only an owner or admin whose account has 2FA on, re-entering the password. Members without a second " +
					"factor then sign in to a restricted session (enrollment_required); so do the members of the organisations this one manages.",
				Request:   web.JsonBody(web.Object(map[string]web.Schema{"required": web.BoolSchema(), "password": web.StringSchema()}, "required", "password")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The organisation as it is now.", Schema: orgView}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}, {Status: http.StatusForbidden, Text: orgForbiddenText},
				{Status: http.StatusForbidden, Text: "forbidden: the caller's account has no second factor, or the session is a delegate's"},
				{Status: http.StatusForbidden, Text: web.WrongSecretText}, {Status: http.StatusTooManyRequests, Text: web.ThrottledText}},
			Handler: s.setOrgPolicy,
		},
		{
			Method: http.MethodPost, Path: "/orgs/:id/managed-orgs", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "addManagedOrg", Summary: "Let this organisation manage another", Tags: orgTags,
				Description: "The caller must be an owner of both. The managing organisation's 2FA policy then applies to the managed " +
					"one's members (one level).",
				Request:   web.JsonBody(web.Object(map[string]web.Schema{"org_id": {"type": "string", "description": "The organisation to manage."}}, "org_id")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The managing organisation as it is now.", Schema: orgView}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText + " (either organisation)"},
				{Status: http.StatusForbidden, Text: "forbidden: the caller is not an owner of both organisations"},
				{Status: http.StatusConflict, Text: "conflict: already managed, or the other organisation manages this one"}},
			Handler: s.addManagedOrg,
		},
		{
			Method: http.MethodPost, Path: "/me/delegations", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "grantDelegation", Summary: "Let another account act for the caller until a time", Tags: delTags,
				Description: "A sensitive change (step-up window). expires_at must be in the future and at most 90 days ahead.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"delegate_email": {"type": "string", "format": "email"},
					"expires_at":     web.DateTime(),
				}, "delegate_email", "expires_at")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "Granted.",
					Schema: web.Object(map[string]web.Schema{"delegation_id": web.StringSchema()}, "delegation_id")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no account has this email"}, {Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusForbidden, Text: "forbidden: a delegate's acting session cannot manage delegations"}},
			Handler: s.grantDelegation,
		},
		{
			Method: http.MethodGet, Path: "/me/delegations", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
			Op: web.Operation{
				ID: "listDelegations", Summary: "Active delegations the caller granted or received", Tags: delTags,
				Description: "Ordered by delegation id (creation order); ended and expired delegations are left out.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of delegations.", Schema: web.ListSchema(web.Object(map[string]web.Schema{
					"delegation_id":       web.StringSchema(),
					"owner_account_id":    web.StringSchema(),
					"delegate_account_id": web.StringSchema(),
					"expires_at":          web.DateTime(),
					"direction":           {"type": "string", "enum": []string{"granted", "received"}},
				}, "delegation_id", "owner_account_id", "delegate_account_id", "expires_at", "direction"))}},
			},
			Handler: s.listDelegations,
		},
		{
			Method: http.MethodDelete, Path: "/me/delegations/:id", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "revokeDelegation", Summary: "End a delegation the caller granted or received", Tags: delTags,
				Description: "A sensitive change (step-up window). The delegate's acting sessions are signed out (reason delegation_ended) before this answers.",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Revoked.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no active delegation of the caller has this id"}, {Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusForbidden, Text: "forbidden: a delegate's acting session cannot manage delegations"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.revokeDelegation),
		},
		{
			Method: http.MethodPost, Path: "/delegations/:id/act", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "actForDelegation", Summary: "Start a session acting for the owner of a delegation", Tags: delTags,
				Description: "The caller must be the delegate, in a session of their own. The new session's whoami names the owner as " +
					"account_id and the caller as actor_account_id; it ends no later than the delegation and cannot change the owner's " +
					"password, second factors, passkeys or delegations. The answer sets the session cookie.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The acting session.", Schema: web.Object(map[string]web.Schema{
					"session_token": web.StringSchema(), "session": web.Ref("Session")}, "session_token", "session")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no delegation to the caller has this id"},
				{Status: http.StatusForbidden, Text: "forbidden: the delegation was revoked or has expired, or the session is itself an acting session"}},
			Handler: s.actForDelegation,
		},
	}
	if _, ok := s.Reads.(OrgReadModels); ok && s.Reads != nil {
		routes = append(routes,
			web.Route{
				Method: http.MethodGet, Path: "/orgs/:id/members", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
				Op: web.Operation{
					ID: "listOrgMembers", Summary: "The organisation's members", Tags: orgTags,
					Description: "For every member of the organisation, ordered by account id.",
					Responses: map[int]web.Response{http.StatusOK: {Description: "A page of members.", Schema: web.ListSchema(web.Object(map[string]web.Schema{
						"account_id": web.StringSchema(), "email": web.StringSchema(), "role": web.StringSchema(), "two_factor_enabled": web.BoolSchema(),
					}, "account_id", "email", "role", "two_factor_enabled"))}},
				},
				Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}},
				Handler: s.listOrgMembers,
			},
			web.Route{
				Method: http.MethodGet, Path: "/orgs/:id/two-factor-report", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
				Op: web.Operation{
					ID: "getOrgTwoFactorReport", Summary: "Who has two-factor authentication, since when, last sign-in", Tags: orgTags,
					Description: "For owners and admins, ordered by account id. enrolled_at is when 2FA last went on; last_login_at the " +
						"member's last own sign-in (a delegate's acting session does not count).",
					Responses: map[int]web.Response{http.StatusOK: {Description: "A page of the report.", Schema: web.ListSchema(web.Object(map[string]web.Schema{
						"account_id": web.StringSchema(), "email": web.StringSchema(), "two_factor_enabled": web.BoolSchema(),
						"enrolled_at": web.NullableDateTime(), "last_login_at": web.NullableDateTime(),
					}, "account_id", "email", "two_factor_enabled", "enrolled_at", "last_login_at"))}},
				},
				Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}, {Status: http.StatusForbidden, Text: orgForbiddenText}},
				Handler: s.orgTwoFactorReport,
			},
			web.Route{
				Method: http.MethodGet, Path: "/orgs/:id/activity", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
				Op: web.Operation{
					ID: "listOrgActivity", Summary: "The activity log of the organisation's members", Tags: orgTags,
					Description: "For owners and admins: the activity of the current members, as /me/activity plus account_id, newest first.",
					Params:      activityParams(),
					Responses: map[int]web.Response{http.StatusOK: {Description: "A page of the activity log.",
						Schema: web.ListSchema(web.Ref("AuditActivityItem"))}},
				},
				Errors:  append(activityErrors(), web.ProblemLine{Status: http.StatusNotFound, Text: orgNotFoundText}, web.ProblemLine{Status: http.StatusForbidden, Text: orgForbiddenText}),
				Handler: s.listOrgActivity,
			},
		)
	}
	return routes
}

type orgJSON struct {
	OrgID             string   `json:"org_id"`
	Name              string   `json:"name"`
	TwoFactorRequired bool     `json:"two_factor_required"`
	ManagedOrgs       []string `json:"managed_orgs"`
}

func orgView(o *domain.Org) orgJSON {
	m := o.ManagedOrgs()
	if m == nil {
		m = []string{}
	}
	return orgJSON{OrgID: o.ID(), Name: o.Name(), TwoFactorRequired: o.TwoFactorRequired(), ManagedOrgs: m}
}

func (s *API) createOrg(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	res, err := s.svc.CreateOrg(c.Request.Context(), web.CallerOf(c), req.Name, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"org_id": res.OrgID})
}

// answerOrg reads the organisation again and answers it with status.
func (s *API) answerOrg(c *gin.Context, status int, orgID string, pos uint64) {
	o, err := s.svc.Org(c.Request.Context(), web.CallerOf(c), orgID)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, pos)
	c.JSON(status, orgView(o))
}

func (s *API) getOrg(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	o, err := s.svc.Org(c.Request.Context(), web.CallerOf(c), id)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, orgView(o))
}

func (s *API) addOrgMember(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	var req struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if err := errors.Join(web.Required("email", req.Email), web.Required("role", req.Role)); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	ctx := c.Request.Context()
	pos, err := s.svc.AddMember(ctx, web.CallerOf(c), id, req.Email, req.Role, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	norm, err := validate.Email(req.Email)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	accountID, err := s.svc.LookupEmail(ctx, norm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, pos)
	c.JSON(http.StatusCreated, gin.H{"account_id": accountID, "role": req.Role})
}

func (s *API) removeOrgMember(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	accountID, err := web.PathID(c, "account_id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	pos, err := s.svc.RemoveMember(c.Request.Context(), web.CallerOf(c), id, accountID, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *API) setOrgPolicy(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	var req struct {
		Required *bool  `json:"required"`
		Password string `json:"password"`
	}
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if req.Required == nil {
		web.WriteError(c, &domain.ValidationError{Field: "required", Reason: "is required"})
		return
	}
	if err := web.Required("password", req.Password); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	pos, err := s.svc.SetTwoFactorRequirement(c.Request.Context(), web.CallerOf(c), id, *req.Required, req.Password, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.answerOrg(c, http.StatusOK, id, pos)
}

func (s *API) addManagedOrg(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	var req struct {
		OrgID string `json:"org_id"`
	}
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if err := web.Required("org_id", req.OrgID); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	pos, err := s.svc.AddManagedOrg(c.Request.Context(), web.CallerOf(c), id, req.OrgID, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.answerOrg(c, http.StatusCreated, id, pos)
}

// orgMembers checks the caller's access (needAdmin: owners and admins only) and reads a
// page of the members.
func (s *API) orgMembers(c *gin.Context, needAdmin bool) ([]projections.OrgMemberRow, string, bool) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return nil, "", false
	}
	limit, cursor, err := web.PageParams(c)
	if err != nil {
		web.WriteError(c, err)
		return nil, "", false
	}
	if _, err := s.svc.OrgAccess(web.CallerOf(c), id, needAdmin); err != nil {
		web.WriteError(c, err)
		return nil, "", false
	}
	rows, next, err := s.Reads.(OrgReadModels).OrgMembers(c.Request.Context(), id, limit, cursor)
	if err != nil {
		web.WriteError(c, err)
		return nil, "", false
	}
	return rows, next, true
}

type orgMemberJSON struct {
	AccountID        string `json:"account_id"`
	Email            string `json:"email"`
	Role             string `json:"role"`
	TwoFactorEnabled bool   `json:"two_factor_enabled"`
}

func (s *API) listOrgMembers(c *gin.Context) {
	rows, next, ok := s.orgMembers(c, false)
	if !ok {
		return
	}
	items := make([]orgMemberJSON, len(rows))
	for i, r := range rows {
		items[i] = orgMemberJSON{AccountID: r.AccountID, Email: r.Email, Role: r.Role, TwoFactorEnabled: r.TwoFactorEnabled}
	}
	c.JSON(http.StatusOK, web.Page(items, next))
}

type twoFactorReportJSON struct {
	AccountID        string  `json:"account_id"`
	Email            string  `json:"email"`
	TwoFactorEnabled bool    `json:"two_factor_enabled"`
	EnrolledAt       APITime `json:"enrolled_at"`
	LastLoginAt      APITime `json:"last_login_at"`
}

func (s *API) orgTwoFactorReport(c *gin.Context) {
	rows, next, ok := s.orgMembers(c, true)
	if !ok {
		return
	}
	items := make([]twoFactorReportJSON, len(rows))
	for i, r := range rows {
		items[i] = twoFactorReportJSON{AccountID: r.AccountID, Email: r.Email, TwoFactorEnabled: r.TwoFactorEnabled,
			EnrolledAt: APITime(r.EnrolledAt), LastLoginAt: APITime(r.LastLoginAt)}
	}
	c.JSON(http.StatusOK, web.Page(items, next))
}

func (s *API) listOrgActivity(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	f, err := web.ActivityFilter(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	if _, err := s.svc.OrgAccess(web.CallerOf(c), id, true); err != nil {
		web.WriteError(c, err)
		return
	}
	f.OrgID = id
	rows, next, err := s.Reads.Activity(c.Request.Context(), f)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	items := make([]auditActivityItemJSON, len(rows))
	for i, r := range rows {
		items[i] = auditActivityItemJSON{activityItemJSON: activityView(r), AccountID: web.OptString(r.AccountID)}
	}
	c.JSON(http.StatusOK, web.Page(items, next))
}

func (s *API) grantDelegation(c *gin.Context) {
	var req struct {
		DelegateEmail string `json:"delegate_email"`
		ExpiresAt     string `json:"expires_at"`
	}
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if err := errors.Join(web.Required("delegate_email", req.DelegateEmail), web.Required("expires_at", req.ExpiresAt)); err != nil {
		web.WriteError(c, err)
		return
	}
	exp, err := time.Parse(time.RFC3339, req.ExpiresAt)
	if err != nil {
		web.WriteError(c, &domain.ValidationError{Field: "expires_at", Reason: "must be an RFC 3339 time"})
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	res, err := s.svc.GrantDelegation(c.Request.Context(), web.CallerOf(c), req.DelegateEmail, exp, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"delegation_id": res.DelegationID})
}

type delegationJSON struct {
	DelegationID      string  `json:"delegation_id"`
	OwnerAccountID    string  `json:"owner_account_id"`
	DelegateAccountID string  `json:"delegate_account_id"`
	ExpiresAt         APITime `json:"expires_at"`
	Direction         string  `json:"direction"`
}

func (s *API) listDelegations(c *gin.Context) {
	limit, cursor, err := web.PageParams(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	after := ""
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		k, id, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || k != "g" || id == "" {
			web.WriteError(c, projections.ErrBadCursor)
			return
		}
		after = id
	}
	caller := web.CallerOf(c)
	ds, err := s.svc.ListDelegations(caller)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	items := []delegationJSON{}
	next := ""
	for _, d := range SortedByID(ds) {
		if d.ID <= after {
			continue
		}
		if len(items) == limit {
			next = base64.RawURLEncoding.EncodeToString([]byte("g:" + items[len(items)-1].DelegationID))
			break
		}
		dir := "granted"
		if d.DelegateAccountID == caller.AccountID {
			dir = "received"
		}
		items = append(items, delegationJSON{DelegationID: d.ID, OwnerAccountID: d.OwnerAccountID,
			DelegateAccountID: d.DelegateAccountID, ExpiresAt: APITime(d.ExpiresAt), Direction: dir})
	}
	c.JSON(http.StatusOK, web.Page(items, next))
}

func SortedByID(ds []domain.Delegation) []domain.Delegation {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b domain.Delegation) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *API) revokeDelegation(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.RevokeDelegation(r.Ctx, r.Caller, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *API) actForDelegation(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	res, err := s.svc.Act(c.Request.Context(), web.CallerOf(c), id, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, res.Position)
	view := sessionView(res.Authenticated.Session)
	s.SetSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	c.JSON(http.StatusOK, gin.H{"session_token": res.Authenticated.Token, "session": view})
}
