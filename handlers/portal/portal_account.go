package portal

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The portal's Account page: email and names, and the profile. Saving runs the commands of
// PATCH /api/v1/me (applyMePatch).

// profileLabels are the profile fields in the order the page shows them, with their labels.
var profileLabels = []struct{ Name, Label, Hint, Auto string }{
	{"title", "Title", "", "honorific-prefix"},
	{"telephone", "Telephone", "e.g. +41 44 668 18 00", "tel"},
	{"street", "Street", "", "street-address"},
	{"city", "City", "", "address-level2"},
	{"state", "State or province", "", "address-level1"},
	{"postal_code", "Postal code", "", "postal-code"},
	{"country", "Country", "Two-letter code, e.g. CH", "country"},
	{"relationship", "Relationship to the company", "", "off"},
	{"locale", "Locale", "A language tag, e.g. de-CH", "off"},
}

// accountData is the Account page's data.
type accountData struct {
	Profile []profileField
	// EmailVerified: the email's verification link was followed; MayVerify: the session
	// may ask for a new one (the account holder's own).
	EmailVerified, MayVerify bool
}

type profileField struct{ Name, Label, Hint, Auto, Value string }

func (p *Portal) accountPage(c *gin.Context) {
	a, err := p.svc.Account(c.Request.Context(), web.CallerOf(c).AccountID)
	if err != nil {
		p.fail(c, err, "/account")
		return
	}
	p.renderAccount(c, http.StatusOK, pageData{}, a, nil)
}

// renderAccount shows the Account page with a's values, overridden by typed (the values
// of a refused form).
func (p *Portal) renderAccount(c *gin.Context, status int, pg pageData, a *domain.Account, typed map[string]string) {
	v := api.MeView(a)
	form := map[string]string{"email": v.Email, "first_name": v.FirstName, "last_name": v.LastName}
	prof := map[string]string{"title": v.Profile.Title, "telephone": v.Profile.Telephone, "street": v.Profile.Street,
		"city": v.Profile.City, "state": v.Profile.State, "postal_code": v.Profile.PostalCode, "country": v.Profile.Country,
		"relationship": v.Profile.Relationship, "locale": v.Profile.Locale}
	for k, val := range typed {
		if _, ok := form[k]; ok {
			form[k] = val
		}
		if _, ok := prof[k]; ok {
			prof[k] = val
		}
	}
	d := accountData{EmailVerified: v.EmailVerified, MayVerify: web.CallerOf(c).Allows(domain.CapControl) == nil}
	for _, f := range profileLabels {
		d.Profile = append(d.Profile, profileField{f.Name, f.Label, f.Hint, f.Auto, prof[f.Name]})
	}
	pg.Title, pg.Nav, pg.Form, pg.Data = "Account", "account", form, d
	p.render(c, status, "account", pg)
}

func (p *Portal) saveAccount(c *gin.Context) {
	email, first, last := c.PostForm("email"), c.PostForm("first_name"), c.PostForm("last_name")
	p.savePatch(c, api.PatchMeRequest{Email: &email, FirstName: &first, LastName: &last},
		map[string]string{"email": email, "first_name": first, "last_name": last}, "account")
}

func (p *Portal) saveProfile(c *gin.Context) {
	var pp api.ProfilePatchJSON
	typed := map[string]string{}
	for _, f := range profileLabels {
		v := c.PostForm(f.Name)
		typed[f.Name] = v
		ptr := &v
		switch f.Name {
		case "title":
			pp.Title = ptr
		case "telephone":
			pp.Telephone = ptr
		case "street":
			pp.Street = ptr
		case "city":
			pp.City = ptr
		case "state":
			pp.State = ptr
		case "postal_code":
			pp.PostalCode = ptr
		case "country":
			pp.Country = ptr
		case "relationship":
			pp.Relationship = ptr
		case "locale":
			pp.Locale = ptr
		}
	}
	p.savePatch(c, api.PatchMeRequest{Profile: &pp}, typed, "profile")
}

// savePatch applies req; a refusal re-shows the page with the typed values and the
// reasons next to their fields.
func (p *Portal) savePatch(c *gin.Context, req api.PatchMeRequest, typed map[string]string, what string) {
	ctx := c.Request.Context()
	caller := web.CallerOf(c)
	pos, _, err := p.api.ApplyMePatch(ctx, caller, req, web.RequestMeta(c))
	if err != nil {
		a, aerr := p.svc.Account(ctx, caller.AccountID)
		fields, msg, status := fieldErrors(err)
		if aerr != nil || status >= 500 {
			p.fail(c, err, "/account")
			return
		}
		for k, v := range fields {
			if strings.HasPrefix(k, "profile.") {
				fields[strings.TrimPrefix(k, "profile.")] = v
			}
		}
		if status == http.StatusConflict {
			fields["email"] = "Another account uses this email."
		}
		p.renderAccount(c, status, pageData{Error: msg, Errors: fields}, a, typed)
		return
	}
	p.done(c, pos, "/account?done="+what)
}
