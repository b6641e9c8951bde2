package handlers

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
func (s *jsonAPI) orgRoutes() []apiRoute {
	orgTags := []string{"organisations"}
	delTags := []string{"delegations"}
	orgView := object(map[string]schema{
		"org_id":              stringSchema(),
		"name":                stringSchema(),
		"two_factor_required": {"type": "boolean", "description": "The organisation's own policy requires 2FA of its members."},
		"managed_orgs":        {"type": "array", "items": stringSchema(), "description": "Ids of the organisations this one manages."},
	}, "org_id", "name", "two_factor_required", "managed_orgs")
	routes := []apiRoute{
		{
			method: http.MethodPost, path: "/orgs", access: signedIn,
			op: operation{
				ID: "createOrg", Summary: "Create an organisation", Tags: orgTags,
				Description: "The caller becomes its owner.",
				Request:     jsonBody(object(map[string]schema{"name": {"type": "string", "description": "1 to 200 characters."}}, "name")),
				Responses: map[int]response{http.StatusCreated: {Description: "Created.",
					Schema: object(map[string]schema{"org_id": stringSchema()}, "org_id")}},
			},
			h: s.createOrg,
		},
		{
			method: http.MethodGet, path: "/orgs/:id", access: signedIn, cap: domain.CapRead, read: true,
			op: operation{
				ID: "getOrg", Summary: "An organisation the caller belongs to", Tags: orgTags,
				Responses: map[int]response{http.StatusOK: {Description: "The organisation.", Schema: orgView}},
			},
			errors: []problemLine{{http.StatusNotFound, orgNotFoundText}},
			h:      s.getOrg,
		},
		{
			method: http.MethodPost, path: "/orgs/:id/members", access: signedIn,
			op: operation{
				ID: "addOrgMember", Summary: "Add a member by email, or change a member's role", Tags: orgTags,
				Description: "Owners and admins may add; only an owner may grant or take the owner role. The last owner keeps the role.",
				Request: jsonBody(object(map[string]schema{
					"email": {"type": "string", "format": "email"},
					"role":  {"type": "string", "enum": []string{domain.OrgRoleOwner, domain.OrgRoleAdmin, domain.OrgRoleMember}},
				}, "email", "role")),
				Responses: map[int]response{http.StatusCreated: {Description: "The member and its role.",
					Schema: object(map[string]schema{"account_id": stringSchema(), "role": stringSchema()}, "account_id", "role")}},
			},
			errors: []problemLine{{http.StatusNotFound, orgNotFoundText}, {http.StatusNotFound, "not_found: no account has this email"},
				{http.StatusForbidden, orgForbiddenText}, {http.StatusForbidden, "forbidden: only an owner may grant or change the owner role"},
				{http.StatusConflict, "conflict: the account already has this role, or the last owner would lose the role"}},
			h: s.addOrgMember,
		},
		{
			method: http.MethodDelete, path: "/orgs/:id/members/:account_id", access: signedIn,
			op: operation{
				ID: "removeOrgMember", Summary: "Remove a member", Tags: orgTags,
				Responses: map[int]response{http.StatusNoContent: noContent("Removed.")},
			},
			errors: []problemLine{{http.StatusNotFound, orgNotFoundText}, {http.StatusNotFound, "not_found: the account is not a member"},
				{http.StatusForbidden, orgForbiddenText}, {http.StatusForbidden, "forbidden: only an owner may remove an owner"},
				{http.StatusConflict, "conflict: the last owner cannot be removed"}},
			h: s.removeOrgMember,
		},
		{
			method: http.MethodPut, path: "/orgs/:id/two-factor-policy", access: signedIn,
			op: operation{
				ID: "setOrgTwoFactorPolicy", Summary: "Require two-factor authentication of the members, or stop", Tags: orgTags,
				Description: "Only an owner or admin whose account has 2FA on, re-entering the password. Members without a second " +
					"factor then sign in to a restricted session (enrollment_required); so do the members of the organisations this one manages.",
				Request:   jsonBody(object(map[string]schema{"required": boolSchema(), "password": stringSchema()}, "required", "password")),
				Responses: map[int]response{http.StatusOK: {Description: "The organisation as it is now.", Schema: orgView}},
			},
			errors: []problemLine{{http.StatusNotFound, orgNotFoundText}, {http.StatusForbidden, orgForbiddenText},
				{http.StatusForbidden, "forbidden: the caller's account has no second factor, or the session is a delegate's"},
				{http.StatusForbidden, wrongSecretText}, {http.StatusTooManyRequests, throttledText}},
			h: s.setOrgPolicy,
		},
		{
			method: http.MethodPost, path: "/orgs/:id/managed-orgs", access: signedIn,
			op: operation{
				ID: "addManagedOrg", Summary: "Let this organisation manage another", Tags: orgTags,
				Description: "The caller must be an owner of both. The managing organisation's 2FA policy then applies to the managed " +
					"one's members (one level).",
				Request:   jsonBody(object(map[string]schema{"org_id": {"type": "string", "description": "The organisation to manage."}}, "org_id")),
				Responses: map[int]response{http.StatusCreated: {Description: "The managing organisation as it is now.", Schema: orgView}},
			},
			errors: []problemLine{{http.StatusNotFound, orgNotFoundText + " (either organisation)"},
				{http.StatusForbidden, "forbidden: the caller is not an owner of both organisations"},
				{http.StatusConflict, "conflict: already managed, or the other organisation manages this one"}},
			h: s.addManagedOrg,
		},
		{
			method: http.MethodPost, path: "/me/delegations", access: signedIn,
			op: operation{
				ID: "grantDelegation", Summary: "Let another account act for the caller until a time", Tags: delTags,
				Description: "A sensitive change (step-up window). expires_at must be in the future and at most 90 days ahead.",
				Request: jsonBody(object(map[string]schema{
					"delegate_email": {"type": "string", "format": "email"},
					"expires_at":     dateTime(),
				}, "delegate_email", "expires_at")),
				Responses: map[int]response{http.StatusCreated: {Description: "Granted.",
					Schema: object(map[string]schema{"delegation_id": stringSchema()}, "delegation_id")}},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: no account has this email"}, {http.StatusForbidden, reauthText},
				{http.StatusForbidden, "forbidden: a delegate's acting session cannot manage delegations"}},
			h: s.grantDelegation,
		},
		{
			method: http.MethodGet, path: "/me/delegations", access: signedIn, cap: domain.CapRead, read: true, list: true,
			op: operation{
				ID: "listDelegations", Summary: "Active delegations the caller granted or received", Tags: delTags,
				Description: "Ordered by delegation id (creation order); ended and expired delegations are left out.",
				Responses: map[int]response{http.StatusOK: {Description: "A page of delegations.", Schema: listSchema(object(map[string]schema{
					"delegation_id":       stringSchema(),
					"owner_account_id":    stringSchema(),
					"delegate_account_id": stringSchema(),
					"expires_at":          dateTime(),
					"direction":           {"type": "string", "enum": []string{"granted", "received"}},
				}, "delegation_id", "owner_account_id", "delegate_account_id", "expires_at", "direction"))}},
			},
			h: s.listDelegations,
		},
		{
			method: http.MethodDelete, path: "/me/delegations/:id", access: signedIn,
			op: operation{
				ID: "revokeDelegation", Summary: "End a delegation the caller granted or received", Tags: delTags,
				Description: "A sensitive change (step-up window). The delegate's acting sessions are signed out (reason delegation_ended) before this answers.",
				Responses:   map[int]response{http.StatusNoContent: noContent("Revoked.")},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: no active delegation of the caller has this id"}, {http.StatusForbidden, reauthText},
				{http.StatusForbidden, "forbidden: a delegate's acting session cannot manage delegations"}},
			h: s.revokeDelegation,
		},
		{
			method: http.MethodPost, path: "/delegations/:id/act", access: signedIn,
			op: operation{
				ID: "actForDelegation", Summary: "Start a session acting for the owner of a delegation", Tags: delTags,
				Description: "The caller must be the delegate, in a session of their own. The new session's whoami names the owner as " +
					"account_id and the caller as actor_account_id; it ends no later than the delegation and cannot change the owner's " +
					"password, second factors, passkeys or delegations. The answer sets the session cookie.",
				Responses: map[int]response{http.StatusOK: {Description: "The acting session.", Schema: object(map[string]schema{
					"session_token": stringSchema(), "session": ref("Session")}, "session_token", "session")}},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: no delegation to the caller has this id"},
				{http.StatusForbidden, "forbidden: the delegation was revoked or has expired, or the session is itself an acting session"}},
			h: s.actForDelegation,
		},
	}
	if _, ok := s.reads.(OrgReadModels); ok && s.reads != nil {
		routes = append(routes,
			apiRoute{
				method: http.MethodGet, path: "/orgs/:id/members", access: signedIn, cap: domain.CapRead, read: true, list: true,
				op: operation{
					ID: "listOrgMembers", Summary: "The organisation's members", Tags: orgTags,
					Description: "For every member of the organisation, ordered by account id.",
					Responses: map[int]response{http.StatusOK: {Description: "A page of members.", Schema: listSchema(object(map[string]schema{
						"account_id": stringSchema(), "email": stringSchema(), "role": stringSchema(), "two_factor_enabled": boolSchema(),
					}, "account_id", "email", "role", "two_factor_enabled"))}},
				},
				errors: []problemLine{{http.StatusNotFound, orgNotFoundText}},
				h:      s.listOrgMembers,
			},
			apiRoute{
				method: http.MethodGet, path: "/orgs/:id/two-factor-report", access: signedIn, cap: domain.CapRead, read: true, list: true,
				op: operation{
					ID: "getOrgTwoFactorReport", Summary: "Who has two-factor authentication, since when, last sign-in", Tags: orgTags,
					Description: "For owners and admins, ordered by account id. enrolled_at is when 2FA last went on; last_login_at the " +
						"member's last own sign-in (a delegate's acting session does not count).",
					Responses: map[int]response{http.StatusOK: {Description: "A page of the report.", Schema: listSchema(object(map[string]schema{
						"account_id": stringSchema(), "email": stringSchema(), "two_factor_enabled": boolSchema(),
						"enrolled_at": nullableDateTime(), "last_login_at": nullableDateTime(),
					}, "account_id", "email", "two_factor_enabled", "enrolled_at", "last_login_at"))}},
				},
				errors: []problemLine{{http.StatusNotFound, orgNotFoundText}, {http.StatusForbidden, orgForbiddenText}},
				h:      s.orgTwoFactorReport,
			},
			apiRoute{
				method: http.MethodGet, path: "/orgs/:id/activity", access: signedIn, cap: domain.CapRead, read: true, list: true,
				op: operation{
					ID: "listOrgActivity", Summary: "The activity log of the organisation's members", Tags: orgTags,
					Description: "For owners and admins: the activity of the current members, as /me/activity plus account_id, newest first.",
					Params:      activityParams(),
					Responses: map[int]response{http.StatusOK: {Description: "A page of the activity log.",
						Schema: listSchema(ref("AuditActivityItem"))}},
				},
				errors: append(activityErrors(), problemLine{http.StatusNotFound, orgNotFoundText}, problemLine{http.StatusForbidden, orgForbiddenText}),
				h:      s.listOrgActivity,
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

func (s *jsonAPI) createOrg(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.CreateOrg(c.Request.Context(), callerOf(c), req.Name, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"org_id": res.OrgID})
}

// answerOrg reads the organisation again and answers it with status.
func (s *jsonAPI) answerOrg(c *gin.Context, status int, orgID string, pos uint64) {
	o, err := s.svc.Org(c.Request.Context(), callerOf(c), orgID)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.JSON(status, orgView(o))
}

func (s *jsonAPI) getOrg(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	o, err := s.svc.Org(c.Request.Context(), callerOf(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, orgView(o))
}

func (s *jsonAPI) addOrgMember(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	var req struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := errors.Join(required("email", req.Email), required("role", req.Role)); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	pos, err := s.svc.AddMember(ctx, callerOf(c), id, req.Email, req.Role, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	norm, err := domain.NormalizeEmail(req.Email)
	if err != nil {
		writeError(c, err)
		return
	}
	accountID, err := s.svc.LookupEmail(ctx, norm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.JSON(http.StatusCreated, gin.H{"account_id": accountID, "role": req.Role})
}

func (s *jsonAPI) removeOrgMember(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	accountID, err := pathID(c, "account_id")
	if err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.RemoveMember(c.Request.Context(), callerOf(c), id, accountID, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *jsonAPI) setOrgPolicy(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	var req struct {
		Required *bool  `json:"required"`
		Password string `json:"password"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if req.Required == nil {
		writeError(c, &domain.ValidationError{Field: "required", Reason: "is required"})
		return
	}
	if err := required("password", req.Password); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.SetTwoFactorRequirement(c.Request.Context(), callerOf(c), id, *req.Required, req.Password, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerOrg(c, http.StatusOK, id, pos)
}

func (s *jsonAPI) addManagedOrg(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	var req struct {
		OrgID string `json:"org_id"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := required("org_id", req.OrgID); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.AddManagedOrg(c.Request.Context(), callerOf(c), id, req.OrgID, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerOrg(c, http.StatusCreated, id, pos)
}

// orgMembers checks the caller's access (needAdmin: owners and admins only) and reads a
// page of the members.
func (s *jsonAPI) orgMembers(c *gin.Context, needAdmin bool) ([]projections.OrgMemberRow, string, bool) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return nil, "", false
	}
	limit, cursor, err := pageParams(c)
	if err != nil {
		writeError(c, err)
		return nil, "", false
	}
	if _, err := s.svc.OrgAccess(callerOf(c), id, needAdmin); err != nil {
		writeError(c, err)
		return nil, "", false
	}
	rows, next, err := s.reads.(OrgReadModels).OrgMembers(c.Request.Context(), id, limit, cursor)
	if err != nil {
		writeError(c, err)
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

func (s *jsonAPI) listOrgMembers(c *gin.Context) {
	rows, next, ok := s.orgMembers(c, false)
	if !ok {
		return
	}
	items := make([]orgMemberJSON, len(rows))
	for i, r := range rows {
		items[i] = orgMemberJSON{AccountID: r.AccountID, Email: r.Email, Role: r.Role, TwoFactorEnabled: r.TwoFactorEnabled}
	}
	c.JSON(http.StatusOK, page(items, next))
}

type twoFactorReportJSON struct {
	AccountID        string  `json:"account_id"`
	Email            string  `json:"email"`
	TwoFactorEnabled bool    `json:"two_factor_enabled"`
	EnrolledAt       apiTime `json:"enrolled_at"`
	LastLoginAt      apiTime `json:"last_login_at"`
}

func (s *jsonAPI) orgTwoFactorReport(c *gin.Context) {
	rows, next, ok := s.orgMembers(c, true)
	if !ok {
		return
	}
	items := make([]twoFactorReportJSON, len(rows))
	for i, r := range rows {
		items[i] = twoFactorReportJSON{AccountID: r.AccountID, Email: r.Email, TwoFactorEnabled: r.TwoFactorEnabled,
			EnrolledAt: apiTime(r.EnrolledAt), LastLoginAt: apiTime(r.LastLoginAt)}
	}
	c.JSON(http.StatusOK, page(items, next))
}

func (s *jsonAPI) listOrgActivity(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	f, err := activityFilter(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if _, err := s.svc.OrgAccess(callerOf(c), id, true); err != nil {
		writeError(c, err)
		return
	}
	f.OrgID = id
	rows, next, err := s.reads.Activity(c.Request.Context(), f)
	if err != nil {
		writeError(c, err)
		return
	}
	items := make([]auditActivityItemJSON, len(rows))
	for i, r := range rows {
		items[i] = auditActivityItemJSON{activityItemJSON: activityView(r), AccountID: optString(r.AccountID)}
	}
	c.JSON(http.StatusOK, page(items, next))
}

func (s *jsonAPI) grantDelegation(c *gin.Context) {
	var req struct {
		DelegateEmail string `json:"delegate_email"`
		ExpiresAt     string `json:"expires_at"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := errors.Join(required("delegate_email", req.DelegateEmail), required("expires_at", req.ExpiresAt)); err != nil {
		writeError(c, err)
		return
	}
	exp, err := time.Parse(time.RFC3339, req.ExpiresAt)
	if err != nil {
		writeError(c, &domain.ValidationError{Field: "expires_at", Reason: "must be an RFC 3339 time"})
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.GrantDelegation(c.Request.Context(), callerOf(c), req.DelegateEmail, exp, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"delegation_id": res.DelegationID})
}

type delegationJSON struct {
	DelegationID      string  `json:"delegation_id"`
	OwnerAccountID    string  `json:"owner_account_id"`
	DelegateAccountID string  `json:"delegate_account_id"`
	ExpiresAt         apiTime `json:"expires_at"`
	Direction         string  `json:"direction"`
}

func (s *jsonAPI) listDelegations(c *gin.Context) {
	limit, cursor, err := pageParams(c)
	if err != nil {
		writeError(c, err)
		return
	}
	after := ""
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		k, id, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || k != "g" || id == "" {
			writeError(c, projections.ErrBadCursor)
			return
		}
		after = id
	}
	caller := callerOf(c)
	ds, err := s.svc.ListDelegations(caller)
	if err != nil {
		writeError(c, err)
		return
	}
	items := []delegationJSON{}
	next := ""
	for _, d := range sortedByID(ds) {
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
			DelegateAccountID: d.DelegateAccountID, ExpiresAt: apiTime(d.ExpiresAt), Direction: dir})
	}
	c.JSON(http.StatusOK, page(items, next))
}

func sortedByID(ds []domain.Delegation) []domain.Delegation {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b domain.Delegation) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *jsonAPI) revokeDelegation(c *gin.Context) {
	run := func(ctx context.Context, id string, rm domain.RequestMeta) (uint64, error) {
		return s.svc.RevokeDelegation(ctx, callerOf(c), id, rm)
	}
	if _, pos, ok := s.commandByID(c, s.meta, run); ok {
		s.setPosition(c, pos)
		c.Status(http.StatusNoContent)
	}
}

func (s *jsonAPI) actForDelegation(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.Act(c.Request.Context(), callerOf(c), id, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	view := sessionView(res.Authenticated.Session)
	s.setSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	c.JSON(http.StatusOK, gin.H{"session_token": res.Authenticated.Token, "session": view})
}
