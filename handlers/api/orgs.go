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
			Handler: web.Command(s.Core, web.MetaCaller, s.createOrg),
		},
		{
			Method: http.MethodGet, Path: "/orgs/:id", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true,
			Op: web.Operation{
				ID: "getOrg", Summary: "An organisation the caller belongs to", Tags: orgTags,
				Responses: map[int]web.Response{http.StatusOK: {Description: "The organisation.", Schema: orgView}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: orgNotFoundText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.getOrg),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.addOrgMember),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.removeOrgMember),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.setOrgPolicy),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.addManagedOrg),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.grantDelegation),
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
			Handler: web.List(s.Core, s.listDelegations),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.actForDelegation),
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
				Handler: web.List(s.Core, orgMembers(s, false, orgMemberView)),
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
				Handler: web.List(s.Core, orgMembers(s, true, twoFactorReportView)),
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
				Handler: web.List(s.Core, s.listOrgActivity),
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

type createOrgRequest struct {
	Name string `json:"name"`
}

func (s *API) createOrg(r *web.Call[createOrgRequest]) (web.Reply, error) {
	res, err := s.svc.CreateOrg(r.Ctx, r.Caller, r.In.Name, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"org_id": res.OrgID}, res.Position), nil
}

// orgReply reads the organisation of the path again, after a change of it at pos, and
// answers it with status (or the change's err).
func orgReply[In any](s *API, r *web.Call[In], status int, pos uint64, err error) (web.Reply, error) {
	if err != nil {
		return web.Reply{}, err
	}
	o, err := s.svc.Org(r.Ctx, r.Caller, r.ID)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(status, orgView(o), pos), nil
}

func (s *API) getOrg(r *web.Call[web.NoBody]) (web.Reply, error) {
	return orgReply(s, r, http.StatusOK, 0, nil)
}

type addMemberRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// Check asks for the email and the role.
func (r addMemberRequest) Check() error {
	return errors.Join(web.Required("email", r.Email), web.Required("role", r.Role))
}

func (s *API) addOrgMember(r *web.Call[addMemberRequest]) (web.Reply, error) {
	pos, err := s.svc.AddMember(r.Ctx, r.Caller, r.ID, r.In.Email, r.In.Role, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	norm, err := validate.Email(r.In.Email)
	if err != nil {
		return web.Reply{}, err
	}
	accountID, err := s.svc.LookupEmail(r.Ctx, norm)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"account_id": accountID, "role": r.In.Role}, pos), nil
}

// memberRemoval is the member the path of a removal names (checked before the request
// metadata).
type memberRemoval struct {
	web.NoBody
	accountID string
}

// FromPath reads the member's account id.
func (m *memberRemoval) FromPath(p web.Path) (err error) {
	m.accountID, err = p.PathID("account_id")
	return err
}

func (s *API) removeOrgMember(r *web.Call[memberRemoval]) (web.Reply, error) {
	pos, err := s.svc.RemoveMember(r.Ctx, r.Caller, r.ID, r.In.accountID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

type orgPolicyRequest struct {
	Required *bool  `json:"required"`
	Password string `json:"password"`
}

// Check asks for required, then the password.
func (r orgPolicyRequest) Check() error {
	if r.Required == nil {
		return &domain.ValidationError{Field: "required", Reason: "is required"}
	}
	return web.Required("password", r.Password)
}

func (s *API) setOrgPolicy(r *web.Call[orgPolicyRequest]) (web.Reply, error) {
	pos, err := s.svc.SetTwoFactorRequirement(r.Ctx, r.Caller, r.ID, *r.In.Required, r.In.Password, r.Meta)
	return orgReply(s, r, http.StatusOK, pos, err)
}

type managedOrgRequest struct {
	OrgID string `json:"org_id"`
}

// Check asks for the organisation to manage.
func (r managedOrgRequest) Check() error { return web.Required("org_id", r.OrgID) }

func (s *API) addManagedOrg(r *web.Call[managedOrgRequest]) (web.Reply, error) {
	pos, err := s.svc.AddManagedOrg(r.Ctx, r.Caller, r.ID, r.In.OrgID, r.Meta)
	return orgReply(s, r, http.StatusCreated, pos, err)
}

// orgMembers checks the caller's access (needAdmin: owners and admins only) and reads a
// page of the members, each as view makes it.
func orgMembers[T any](s *API, needAdmin bool, view func(projections.OrgMemberRow) T) func(*web.Call[web.NoBody]) ([]T, string, error) {
	return func(r *web.Call[web.NoBody]) ([]T, string, error) {
		if _, err := s.svc.OrgAccess(r.Caller, r.ID, needAdmin); err != nil {
			return nil, "", err
		}
		rows, next, err := s.Reads.(OrgReadModels).OrgMembers(r.Ctx, r.ID, r.Limit, r.Cursor)
		if err != nil {
			return nil, "", err
		}
		items := make([]T, len(rows))
		for i, row := range rows {
			items[i] = view(row)
		}
		return items, next, nil
	}
}

type orgMemberJSON struct {
	AccountID        string `json:"account_id"`
	Email            string `json:"email"`
	Role             string `json:"role"`
	TwoFactorEnabled bool   `json:"two_factor_enabled"`
}

func orgMemberView(r projections.OrgMemberRow) orgMemberJSON {
	return orgMemberJSON{AccountID: r.AccountID, Email: r.Email, Role: r.Role, TwoFactorEnabled: r.TwoFactorEnabled}
}

type twoFactorReportJSON struct {
	AccountID        string  `json:"account_id"`
	Email            string  `json:"email"`
	TwoFactorEnabled bool    `json:"two_factor_enabled"`
	EnrolledAt       APITime `json:"enrolled_at"`
	LastLoginAt      APITime `json:"last_login_at"`
}

func twoFactorReportView(r projections.OrgMemberRow) twoFactorReportJSON {
	return twoFactorReportJSON{AccountID: r.AccountID, Email: r.Email, TwoFactorEnabled: r.TwoFactorEnabled,
		EnrolledAt: APITime(r.EnrolledAt), LastLoginAt: APITime(r.LastLoginAt)}
}

func (s *API) listOrgActivity(r *web.Call[web.NoBody]) ([]auditActivityItemJSON, string, error) {
	f, err := web.ActivityFilter(r.C, r.Limit, r.Cursor)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.svc.OrgAccess(r.Caller, r.ID, true); err != nil {
		return nil, "", err
	}
	f.OrgID = r.ID
	return s.auditActivity(r.Ctx, f)
}

type delegationRequest struct {
	DelegateEmail string `json:"delegate_email"`
	ExpiresAt     string `json:"expires_at"`
	expires       time.Time
}

// Check asks for the delegate's email and an RFC 3339 expiry.
func (r *delegationRequest) Check() error {
	if err := errors.Join(web.Required("delegate_email", r.DelegateEmail), web.Required("expires_at", r.ExpiresAt)); err != nil {
		return err
	}
	exp, err := time.Parse(time.RFC3339, r.ExpiresAt)
	if err != nil {
		return &domain.ValidationError{Field: "expires_at", Reason: "must be an RFC 3339 time"}
	}
	r.expires = exp
	return nil
}

func (s *API) grantDelegation(r *web.Call[delegationRequest]) (web.Reply, error) {
	res, err := s.svc.GrantDelegation(r.Ctx, r.Caller, r.In.DelegateEmail, r.In.expires, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"delegation_id": res.DelegationID}, res.Position), nil
}

type delegationJSON struct {
	DelegationID      string  `json:"delegation_id"`
	OwnerAccountID    string  `json:"owner_account_id"`
	DelegateAccountID string  `json:"delegate_account_id"`
	ExpiresAt         APITime `json:"expires_at"`
	Direction         string  `json:"direction"`
}

func (s *API) listDelegations(r *web.Call[web.NoBody]) ([]delegationJSON, string, error) {
	after := ""
	if r.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(r.Cursor)
		k, id, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || k != "g" || id == "" {
			return nil, "", projections.ErrBadCursor
		}
		after = id
	}
	ds, err := s.svc.ListDelegations(r.Caller)
	if err != nil {
		return nil, "", err
	}
	items := []delegationJSON{}
	next := ""
	for _, d := range SortedByID(ds) {
		if d.ID <= after {
			continue
		}
		if len(items) == r.Limit {
			next = base64.RawURLEncoding.EncodeToString([]byte("g:" + items[len(items)-1].DelegationID))
			break
		}
		dir := "granted"
		if d.DelegateAccountID == r.Caller.AccountID {
			dir = "received"
		}
		items = append(items, delegationJSON{DelegationID: d.ID, OwnerAccountID: d.OwnerAccountID,
			DelegateAccountID: d.DelegateAccountID, ExpiresAt: APITime(d.ExpiresAt), Direction: dir})
	}
	return items, next, nil
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

func (s *API) actForDelegation(r *web.Call[web.NoBody]) (web.Reply, error) {
	res, err := s.svc.Act(r.Ctx, r.Caller, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	view := sessionView(res.Authenticated.Session)
	s.SetSessionCookie(r.C, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	return web.JSON(http.StatusOK, gin.H{"session_token": res.Authenticated.Token, "session": view}, res.Position), nil
}
