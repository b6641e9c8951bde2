package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// The portal's Organisations and Delegations pages (issue 5's portal pages). Every change
// runs the domain command the JSON API of handlers/orgs.go runs (CreateOrg, AddMember,
// RemoveMember, SetTwoFactorRequirement, AddManagedOrg, GrantDelegation, RevokeDelegation,
// Act) and every list is the API's query (the organisation directory for access and the
// caller's organisations, projections' OrgMembers for members and the two-factor report,
// the activity query with OrgID for the members' activity, ListDelegations). Authorization
// is the domain's: an organisation the caller does not belong to is the 404 page, a
// member's attempt at an owner's or admin's change is refused with 403 next to the form.

// portalOrgMembersLimit is the page size of an organisation's member table.
const portalOrgMembersLimit = 100

// orgReadRoutes registers the Organisations and Delegations pages on read (signed in,
// domain.CapRead).
func (p *Portal) orgReadRoutes(read *gin.RouterGroup) {
	read.GET("/orgs", p.orgsPage)
	read.GET("/orgs/:id", p.orgPage)
	read.GET("/orgs/:id/activity", p.orgActivityPage)
	read.GET("/delegations", p.delegationsPage)
}

// orgChangeRoutes registers the organisation and delegation forms (domain.CapControl).
func (p *Portal) orgChangeRoutes(in *gin.RouterGroup) {
	in.POST("/orgs", p.createOrg)
	in.POST("/orgs/:id/members", p.addOrgMember)
	in.POST("/orgs/:id/members/:account_id/remove", p.removeOrgMember)
	in.POST("/orgs/:id/two-factor-policy", p.setOrgPolicy)
	in.POST("/orgs/:id/managed-orgs", p.addManagedOrg)
	in.POST("/delegations", p.grantDelegation)
	in.POST("/delegations/:id/revoke", p.revokeDelegation)
	in.POST("/delegations/:id/act", p.actForDelegation)
}

// orgSummary is one organisation of the caller on the Organisations page.
type orgSummary struct {
	ID                string
	Name              string
	Role              string
	TwoFactorRequired bool
}

// callerOrgs returns the organisations the caller's account belongs to, by name, from the
// organisation directory (the one the API authorizes with; commands publish to it before
// they return, so a new organisation shows at once).
func (p *Portal) callerOrgs(c *gin.Context) []orgSummary {
	accountID := web.CallerOf(c).AccountID
	dir := p.svc.Orgs()
	var out []orgSummary
	for _, id := range dir.OrgsOf(accountID) {
		o, ok := dir.Get(id)
		if !ok {
			continue
		}
		out = append(out, orgSummary{ID: id, Name: o.Name(), Role: o.Role(accountID), TwoFactorRequired: o.TwoFactorRequired()})
	}
	return out
}

func (p *Portal) orgsPage(c *gin.Context) {
	p.renderOrgs(c, http.StatusOK, pageData{})
}

func (p *Portal) renderOrgs(c *gin.Context, status int, pg pageData) {
	pg.Title, pg.Nav, pg.Data = "Organisations", "orgs", p.callerOrgs(c)
	if pg.Form == nil {
		pg.Form = map[string]string{}
	}
	p.render(c, status, "orgs", pg)
}

func (p *Portal) createOrg(c *gin.Context) {
	name := c.PostForm("name")
	res, err := p.svc.CreateOrg(c.Request.Context(), web.CallerOf(c), name, web.RequestMeta(c))
	if err != nil {
		p.orgsFormError(c, err, name)
		return
	}
	p.done(c, res.Position, "/orgs/"+url.PathEscape(res.OrgID)+"?done=org-created")
}

// orgsFormError re-shows the Organisations page with err next to the name field.
func (p *Portal) orgsFormError(c *gin.Context, err error, name string) {
	fields, msg, status := fieldErrors(err)
	if status >= 500 {
		p.fail(c, err, "/orgs")
		return
	}
	if len(fields) == 0 {
		fields["name"] = msg
	}
	p.renderOrgs(c, status, pageData{Error: msg, Errors: fields, Form: map[string]string{"name": name}})
}

// orgPageData is an organisation's page.
type orgPageData struct {
	ID                string
	Name              string
	TwoFactorRequired bool
	// Role is the caller's role; Admin is true for an owner or admin, Owner for an owner.
	Role  string
	Admin bool
	Owner bool
	// Managed are the organisations this one manages.
	Managed []orgSummary
	Members []projections.OrgMemberRow
	// MoreMembers links to the next page of members; "" on the last.
	MoreMembers string
}

func (p *Portal) orgPage(c *gin.Context) {
	p.renderOrg(c, http.StatusOK, pageData{})
}

// renderOrg shows the page of the organisation in the path, for a caller who belongs to it
// (else the 404 page), with pg's errors and typed values.
func (p *Portal) renderOrg(c *gin.Context, status int, pg pageData) {
	ctx := c.Request.Context()
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	caller := web.CallerOf(c)
	o, err := p.svc.Org(ctx, caller, id)
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	reads, ok := p.api.Reads.(api.OrgReadModels)
	if !ok || p.api.Reads == nil {
		p.errorPage(c, http.StatusNotFound, "Organisation lists are not served by this instance.")
		return
	}
	cursor := c.Query("cursor")
	rows, next, err := reads.OrgMembers(ctx, id, portalOrgMembersLimit, cursor)
	if errors.Is(err, projections.ErrBadCursor) {
		p.errorPage(c, http.StatusBadRequest, "This page link is broken; open the organisation again.")
		return
	}
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	role := o.Role(caller.AccountID)
	d := orgPageData{ID: id, Name: o.Name(), TwoFactorRequired: o.TwoFactorRequired(), Role: role,
		Admin: o.CanAdminister(caller.AccountID), Owner: role == domain.OrgRoleOwner, Members: rows}
	if next != "" {
		d.MoreMembers = "/orgs/" + url.PathEscape(id) + "?cursor=" + url.QueryEscape(next)
	}
	for _, m := range o.ManagedOrgs() {
		s := orgSummary{ID: m}
		if mo, ok := p.svc.Orgs().Get(m); ok {
			s.Name, s.TwoFactorRequired = mo.Name(), mo.TwoFactorRequired()
		}
		d.Managed = append(d.Managed, s)
	}
	pg.Title, pg.Nav, pg.Data = o.Name(), "orgs", d
	if pg.Form == nil {
		pg.Form = map[string]string{"role": domain.OrgRoleMember}
	}
	p.render(c, status, "org", pg)
}

// orgFormError re-shows the organisation's page with err next to the form's field: the
// domain's field names are renamed by rename (the page has several forms), and an error
// without a field (forbidden, not found, conflict, a wrong password) goes next to field.
func (p *Portal) orgFormError(c *gin.Context, err error, field string, rename map[string]string, typed map[string]string) {
	f, ok := p.formProblem(c, err, "/orgs/"+url.PathEscape(c.Param("id")))
	if !ok {
		return
	}
	out := map[string]string{}
	for k, v := range f.fields {
		if r, ok := rename[k]; ok {
			k = r
		}
		out[k] = v
	}
	switch {
	case errors.Is(f.err, domain.ErrInvalidCredentials):
		out[field] = "That is not your password."
	case errors.Is(f.err, domain.ErrNotFound) && field == "member_email":
		out[field] = "No account has this email."
	case len(out) == 0:
		out[field] = f.msg
	}
	form := map[string]string{"role": domain.OrgRoleMember}
	for k, v := range typed {
		form[k] = v
	}
	p.renderOrg(c, f.status, pageData{Error: f.msg, Errors: out, Form: form})
}

func (p *Portal) addOrgMember(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	email, role := strings.TrimSpace(c.PostForm("email")), c.PostForm("role")
	typed := map[string]string{"member_email": email, "role": role}
	rename := map[string]string{"email": "member_email", "role": "member_role"}
	if err := errors.Join(web.Required("email", email), web.Required("role", role)); err != nil {
		p.orgFormError(c, err, "member_email", rename, typed)
		return
	}
	pos, err := p.svc.AddMember(c.Request.Context(), web.CallerOf(c), id, email, role, web.RequestMeta(c))
	if err != nil {
		p.orgFormError(c, err, "member_email", rename, typed)
		return
	}
	p.done(c, pos, "/orgs/"+url.PathEscape(id)+"?done=member-added")
}

func (p *Portal) removeOrgMember(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	accountID, err := web.PathID(c, "account_id")
	if err != nil {
		p.fail(c, err, "/orgs/"+url.PathEscape(id))
		return
	}
	pos, err := p.svc.RemoveMember(c.Request.Context(), web.CallerOf(c), id, accountID, web.RequestMeta(c))
	if err != nil {
		p.orgFormError(c, err, "member-"+accountID, nil, nil)
		return
	}
	if accountID == web.CallerOf(c).AccountID {
		p.done(c, pos, "/orgs?done=member-removed")
		return
	}
	p.done(c, pos, "/orgs/"+url.PathEscape(id)+"?done=member-removed")
}

func (p *Portal) setOrgPolicy(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	var req bool
	switch c.PostForm("required") {
	case "on":
		req = true
	case "off":
	default:
		p.orgFormError(c, &domain.ValidationError{Field: "required", Reason: "Choose whether two-factor authentication is required."},
			"policy_password", nil, nil)
		return
	}
	password := c.PostForm("password")
	rename := map[string]string{"password": "policy_password"}
	if err := web.Required("password", password); err != nil {
		p.orgFormError(c, err, "policy_password", rename, nil)
		return
	}
	pos, err := p.svc.SetTwoFactorRequirement(c.Request.Context(), web.CallerOf(c), id, req, password, web.RequestMeta(c))
	if err != nil {
		p.orgFormError(c, err, "policy_password", rename, nil)
		return
	}
	p.done(c, pos, "/orgs/"+url.PathEscape(id)+"?done=org-policy")
}

func (p *Portal) addManagedOrg(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	other := strings.TrimSpace(c.PostForm("org_id"))
	typed := map[string]string{"managed_org_id": other}
	rename := map[string]string{"org_id": "managed_org_id"}
	if err := web.Required("org_id", other); err != nil {
		p.orgFormError(c, err, "managed_org_id", rename, typed)
		return
	}
	pos, err := p.svc.AddManagedOrg(c.Request.Context(), web.CallerOf(c), id, other, web.RequestMeta(c))
	if err != nil {
		p.orgFormError(c, err, "managed_org_id", rename, typed)
		return
	}
	p.done(c, pos, "/orgs/"+url.PathEscape(id)+"?done=org-managed")
}

// orgActivityPage is the members' activity (GET /api/v1/orgs/{id}/activity's query), for
// owners and admins, in the Activity page's table, filters and map.
func (p *Portal) orgActivityPage(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/orgs")
		return
	}
	if _, err := p.svc.OrgAccess(web.CallerOf(c), id, true); err != nil {
		p.fail(c, err, "/orgs/"+url.PathEscape(id))
		return
	}
	if !p.waitMinPosition(c) {
		return
	}
	f, form, ferr := activityForm(c)
	f.OrgID = id
	path := "/orgs/" + url.PathEscape(id) + "/activity"
	orgName := id
	if o, ok := p.svc.Orgs().Get(id); ok {
		orgName = o.Name()
	}
	p.renderActivity(c, "org_activity", path, f, form, ferr, func(d *activityData) {
		d.Action, d.OrgID, d.OrgName = path, id, orgName
		d.Who = map[string]string{}
		for _, r := range d.Rows {
			if _, seen := d.Who[r.AccountID]; seen || r.AccountID == "" {
				continue
			}
			if a, err := p.svc.Account(c.Request.Context(), r.AccountID); err == nil {
				d.Who[r.AccountID] = a.Email()
			} else {
				d.Who[r.AccountID] = r.AccountID
			}
		}
	})
}

// delegationRow is one delegation on the Delegations page, with the other account's email.
type delegationRow struct {
	ID        string
	Email     string
	ExpiresAt time.Time
}

// delegationsData is the Delegations page's data.
type delegationsData struct {
	Granted  []delegationRow
	Received []delegationRow
	// Acting is true in a delegate's acting session, which cannot manage delegations.
	Acting bool
	// MinDate and MaxDate bound the expiry date input (tomorrow .. 90 days ahead, UTC).
	MinDate, MaxDate string
}

func (p *Portal) delegationsPage(c *gin.Context) {
	p.renderDelegations(c, http.StatusOK, pageData{})
}

func (p *Portal) renderDelegations(c *gin.Context, status int, pg pageData) {
	ctx := c.Request.Context()
	caller := web.CallerOf(c)
	ds, err := p.svc.ListDelegations(caller)
	if err != nil {
		p.fail(c, err, "/delegations")
		return
	}
	now := p.Now().UTC()
	d := delegationsData{Acting: caller.ActorAccountID != "",
		MinDate: now.Format(portalDate), MaxDate: now.Add(domain.MaxDelegationLifetime - 24*time.Hour).Format(portalDate)}
	emails := map[string]string{}
	emailOf := func(id string) string {
		if e, ok := emails[id]; ok {
			return e
		}
		e := id
		if a, err := p.svc.Account(ctx, id); err == nil {
			e = a.Email()
		}
		emails[id] = e
		return e
	}
	for _, del := range api.SortedByID(ds) {
		if del.OwnerAccountID == caller.AccountID {
			d.Granted = append(d.Granted, delegationRow{ID: del.ID, Email: emailOf(del.DelegateAccountID), ExpiresAt: del.ExpiresAt})
		} else {
			d.Received = append(d.Received, delegationRow{ID: del.ID, Email: emailOf(del.OwnerAccountID), ExpiresAt: del.ExpiresAt})
		}
	}
	pg.Title, pg.Nav, pg.Data = "Delegations", "delegations", d
	if pg.Form == nil {
		pg.Form = map[string]string{}
	}
	p.render(c, status, "delegations", pg)
}

// grantDelegation grants access until the end (24:00 UTC) of the chosen day.
func (p *Portal) grantDelegation(c *gin.Context) {
	email, day := strings.TrimSpace(c.PostForm("delegate_email")), c.PostForm("expires_at")
	typed := map[string]string{"delegate_email": email, "expires_at": day}
	var errs []error
	if err := web.Required("delegate_email", email); err != nil {
		errs = append(errs, err)
	}
	var exp time.Time
	if day == "" {
		errs = append(errs, &domain.ValidationError{Field: "expires_at", Reason: "Choose the last day of the access."})
	} else if d, err := time.Parse(portalDate, day); err != nil {
		errs = append(errs, &domain.ValidationError{Field: "expires_at", Reason: "Enter a date as YYYY-MM-DD."})
	} else {
		exp = d.Add(24 * time.Hour)
	}
	err := errors.Join(errs...)
	var res command.DelegationResult
	if err == nil {
		res, err = p.svc.GrantDelegation(c.Request.Context(), web.CallerOf(c), email, exp, web.RequestMeta(c))
	}
	if err != nil {
		if errors.Is(err, command.ErrReauthenticationRequired) {
			p.fail(c, err, "/delegations")
			return
		}
		fields, msg, status := fieldErrors(err)
		if status >= 500 {
			p.fail(c, err, "/delegations")
			return
		}
		if errors.Is(err, domain.ErrNotFound) {
			fields["delegate_email"] = "No account has this email."
		} else if len(fields) == 0 {
			fields["delegate_email"] = msg
		}
		p.renderDelegations(c, status, pageData{Error: msg, Errors: fields, Form: typed})
		return
	}
	p.done(c, res.Position, "/delegations?done=delegation-granted")
}

func (p *Portal) revokeDelegation(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/delegations")
		return
	}
	pos, err := p.svc.RevokeDelegation(c.Request.Context(), web.CallerOf(c), id, web.RequestMeta(c))
	if err != nil {
		p.fail(c, err, "/delegations")
		return
	}
	p.done(c, pos, "/delegations?done=delegation-revoked")
}

// actForDelegation starts the acting session and puts it in the session cookie: the
// delegate's own session stays active (it can be signed out from the Sessions page), and
// "Stop acting" signs the acting session out.
func (p *Portal) actForDelegation(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/delegations")
		return
	}
	res, err := p.svc.Act(c.Request.Context(), web.CallerOf(c), id, web.RequestMeta(c))
	if errors.Is(err, domain.ErrMFARequired) {
		err = web.Public(web.ErrForbidden, "The account you want to act for belongs to an organisation that requires two-factor "+
			"authentication, so acting needs a second factor of your own: set up an authenticator app or a passkey on your "+
			"Security page (or sign in with one), then act again.", err)
	}
	if err != nil {
		p.fail(c, err, "/delegations")
		return
	}
	p.SetSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	p.done(c, res.Position, "/account?done=acting")
}
