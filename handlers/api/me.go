package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/validate"
	"github.com/vigil-auth/vigil/handlers/web"
)

// profileFields are the members of API.md's profile object.
var profileFields = []string{"title", "telephone", "street", "city", "state", "postal_code", "country", "relationship", "locale"}

// meRoutes: the account's own pages (API.md), without the second factors (totp.go) and the
// lists that come from the read models (sessions, activity: me_read.go).
func (s *API) meRoutes() []web.Route {
	optionalProfile := map[string]web.Schema{}
	for _, f := range profileFields {
		optionalProfile[f] = web.Schema{"type": []string{"string", "null"}, "description": "A new value; empty clears it, null or absent leaves it."}
	}
	return []web.Route{
		{
			Method: http.MethodGet, Path: "/me", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true,
			Op: web.Operation{
				ID: "getMe", Summary: "The caller's account and profile",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The account.", Schema: web.Ref("Me")}},
			},
			Handler: web.Command(s.Core, web.MetaCaller, s.getMe),
		},
		{
			Method: http.MethodPatch, Path: "/me", Access: web.AccessSignedIn, Cap: domain.CapProfile,
			Op: web.Operation{
				ID: "patchMe", Summary: "Change the email, names or profile fields",
				Description: "Any of the fields of GET /api/v1/me; absent or null fields are left as they are. account_id may be " +
					"sent back unchanged. Everything is validated before anything is written.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"account_id": {"type": "string", "description": "Ignored when it is the caller's; anything else is refused."},
					"email":      {"type": []string{"string", "null"}, "format": "email"},
					"first_name": {"type": []string{"string", "null"}},
					"last_name":  {"type": []string{"string", "null"}},
					"profile":    {"type": []string{"object", "null"}, "properties": optionalProfile},
				})),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The account as it is now.", Schema: web.Ref("Me")}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusConflict, Text: "conflict: the email is taken by another account"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.patchMe),
		},
		{
			Method: http.MethodGet, Path: "/me/security", Access: web.AccessSignedIn, Cap: domain.CapReadSecurity, Read: true,
			Op: web.Operation{
				ID: "getSecurity", Summary: "The caller's security state",
				Responses: map[int]web.Response{http.StatusOK: {Description: "Password, second factors and backup codes.", Schema: web.Ref("SecurityState")}},
			},
			Handler: web.Command(s.Core, web.MetaCaller, s.getSecurity),
		},
		{
			Method: http.MethodPost, Path: "/me/password", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "changePassword", Summary: "Change the password",
				Description: "Needs the current password and a recent authentication; sign_out_other_sessions ends every other session.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"current_password": web.StringSchema(), "new_password": s.newPasswordSchema(), "sign_out_other_sessions": web.BoolSchema(),
				}, "current_password", "new_password")),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The password was changed.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}, {Status: http.StatusForbidden, Text: web.WrongSecretText},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.changePassword),
		},
		{
			Method: http.MethodDelete, Path: "/me", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "eraseMe", Summary: "Erase the caller's own account",
				Description: "API.md \"Personal data and erasure\": AccountErased, every session of the account signed out " +
					"(reason account_erased), its data key destroyed so every personal value of its events reads \"[erased]\", " +
					"the read models forget it within a second, and its email can be registered again. Needs a step-up; " +
					"the account holder's own session only (not a delegate's). The session cookie is cleared.",
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Erased.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.eraseMe),
		},
		{
			Method: http.MethodDelete, Path: "/me/sessions/:id", Access: web.AccessSignedIn, Cap: domain.CapSession,
			Op: web.Operation{
				ID: "deleteMySession", Summary: "Sign one of the caller's sessions out",
				Description: "The session fails whoami before this answers. Signing out the current session also clears its cookie.",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Signed out.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no active session of the caller has this id"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.deleteMySession),
		},
		{
			Method: http.MethodPost, Path: "/me/sessions/sign-out-others", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "signOutOtherSessions", Summary: "Sign every other session of the caller out",
				Responses: map[int]web.Response{http.StatusOK: {Description: "How many sessions were signed out.",
					Schema: web.Object(map[string]web.Schema{"signed_out": web.IntegerSchema()}, "signed_out")}},
			},
			Handler: web.Command(s.Core, web.MetaCaller, s.signOutOthers),
		},
	}
}

// profileJSON is API.md's profile object.
type profileJSON struct {
	Title        string `json:"title"`
	Telephone    string `json:"telephone"`
	Street       string `json:"street"`
	City         string `json:"city"`
	State        string `json:"state"`
	PostalCode   string `json:"postal_code"`
	Country      string `json:"country"`
	Relationship string `json:"relationship"`
	Locale       string `json:"locale"`
}

// meJSON is API.md's GET /api/v1/me.
type meJSON struct {
	AccountID string `json:"account_id"`
	Email     string `json:"email"`
	// EmailVerified: the current email's verification link was followed.
	EmailVerified bool        `json:"email_verified"`
	FirstName     string      `json:"first_name"`
	LastName      string      `json:"last_name"`
	Profile       profileJSON `json:"profile"`
}

func MeView(a *domain.Account) meJSON {
	p := a.Profile()
	return meJSON{AccountID: a.ID(), Email: a.Email(), EmailVerified: a.Recovery().EmailVerified, FirstName: a.FirstName(), LastName: a.LastName(),
		Profile: profileJSON{Title: p.Title, Telephone: p.Telephone, Street: p.Street, City: p.City, State: p.State,
			PostalCode: p.PostalCode, Country: p.Country, Relationship: p.Relationship, Locale: p.Locale}}
}

func (s *API) getMe(r *web.Call[web.NoBody]) (web.Reply, error) {
	a, err := s.svc.Account(r.Ctx, r.Caller.AccountID)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, MeView(a), 0), nil
}

// profilePatchJSON is the profile of PATCH /api/v1/me: nil fields stay as they are.
type ProfilePatchJSON struct {
	Title        *string `json:"title"`
	Telephone    *string `json:"telephone"`
	Street       *string `json:"street"`
	City         *string `json:"city"`
	State        *string `json:"state"`
	PostalCode   *string `json:"postal_code"`
	Country      *string `json:"country"`
	Relationship *string `json:"relationship"`
	Locale       *string `json:"locale"`
}

type PatchMeRequest struct {
	AccountID *string           `json:"account_id"`
	Email     *string           `json:"email"`
	FirstName *string           `json:"first_name"`
	LastName  *string           `json:"last_name"`
	Profile   *ProfilePatchJSON `json:"profile"`
}

// patchMe changes what the body names. The domain has one command each for the profile, the
// names and the email; to keep a refused request from writing half of it, the names and the
// email are checked (and the email's availability looked up) first, and the profile, whose
// rules only its command applies, is written first.
func (s *API) patchMe(r *web.Call[PatchMeRequest]) (web.Reply, error) {
	pos, a, err := s.ApplyMePatch(r.Ctx, r.Caller, r.In, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, MeView(a), pos), nil
}

// applyMePatch runs the commands of a PATCH /api/v1/me body for caller (the JSON API's
// and the portal's account pages): the account id, names and email are checked (and the
// email's availability looked up) first, so that a refused request writes nothing of
// them; then the profile, the names and the email are written. It returns the last
// position written and the account as it is now.
func (s *API) ApplyMePatch(ctx context.Context, caller domain.Session, req PatchMeRequest, rm command.RequestMeta) (uint64, *domain.Account, error) {
	if req.AccountID != nil && *req.AccountID != caller.AccountID {
		return 0, nil, &domain.ValidationError{Field: "account_id", Reason: "cannot be changed"}
	}
	a, err := s.svc.Account(ctx, caller.AccountID)
	if err != nil {
		return 0, nil, err
	}
	var errs []error
	first, last := a.FirstName(), a.LastName()
	if req.FirstName != nil {
		v, err := validate.Name("first_name", *req.FirstName)
		errs, first = append(errs, err), v
	}
	if req.LastName != nil {
		v, err := validate.Name("last_name", *req.LastName)
		errs, last = append(errs, err), v
	}
	email := ""
	if req.Email != nil {
		v, err := validate.Email(*req.Email)
		errs, email = append(errs, err), v
	}
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	if email != "" && email != a.Email() {
		// The email is the account's key to everything: not a delegate's to change, and only
		// within the step-up window (checked before anything is written or looked up).
		if _, err := s.svc.Authorize(caller, domain.CapControl, true); err != nil {
			return 0, nil, err
		}
		switch id, err := s.svc.LookupEmail(ctx, email); {
		case err == nil && id != caller.AccountID:
			return 0, nil, web.Public(web.ErrConflict, "Another account uses this email.", domain.ErrConflict)
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return 0, nil, err
		}
	}

	var pos uint64
	if p := req.Profile; p != nil {
		n, err := s.svc.UpdateProfile(ctx, caller, domain.ProfilePatch{
			Title: p.Title, Telephone: p.Telephone, Street: p.Street, City: p.City, State: p.State,
			PostalCode: p.PostalCode, Country: p.Country, Relationship: p.Relationship, Locale: p.Locale,
		}, rm)
		if err != nil {
			return 0, nil, err
		}
		pos = max(pos, n)
	}
	if req.FirstName != nil || req.LastName != nil {
		n, err := s.svc.ChangeName(ctx, caller, first, last, rm)
		if err != nil {
			return 0, nil, err
		}
		pos = max(pos, n)
	}
	if email != "" {
		n, err := s.svc.ChangeEmail(ctx, caller, email, rm)
		if err != nil {
			if errors.Is(err, domain.ErrConflict) {
				err = web.Public(web.ErrConflict, "Another account uses this email.", err)
			}
			return 0, nil, err
		}
		pos = max(pos, n)
	}
	if a, err = s.svc.Account(ctx, caller.AccountID); err != nil {
		return 0, nil, err
	}
	return pos, a, nil
}

// securityJSON is API.md's GET /api/v1/me/security.
type securityJSON struct {
	PasswordChangedAt   APITime          `json:"password_changed_at"`
	TwoFactorEnabled    bool             `json:"two_factor_enabled"`
	TwoFactorRequiredBy []string         `json:"two_factor_required_by"`
	TOTPDevices         []totpDeviceJSON `json:"totp_devices"`
	Passkeys            []passkeyJSON    `json:"passkeys"`
	BackupCodes         backupCodesJSON  `json:"backup_codes"`
}

type totpDeviceJSON struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Confirmed  bool    `json:"confirmed"`
	CreatedAt  APITime `json:"created_at"`
	LastUsedAt APITime `json:"last_used_at"`
}

type passkeyJSON struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	CreatedAt  APITime `json:"created_at"`
	LastUsedAt APITime `json:"last_used_at"`
	BackedUp   bool    `json:"backed_up"`
}

type backupCodesJSON struct {
	Remaining   int     `json:"remaining"`
	GeneratedAt APITime `json:"generated_at"`
}

func securityView(st domain.SecurityState) securityJSON {
	out := securityJSON{
		PasswordChangedAt:   APITime(st.PasswordChangedAt),
		TwoFactorEnabled:    st.TwoFactorEnabled,
		TwoFactorRequiredBy: append([]string{}, st.TwoFactorRequiredBy...),
		TOTPDevices:         []totpDeviceJSON{},
		Passkeys:            []passkeyJSON{},
		BackupCodes:         backupCodesJSON{Remaining: st.BackupCodes.Remaining, GeneratedAt: APITime(st.BackupCodes.GeneratedAt)},
	}
	for _, d := range st.TOTPDevices {
		out.TOTPDevices = append(out.TOTPDevices, totpDeviceJSON{ID: d.ID, Name: d.Name, Confirmed: d.Confirmed,
			CreatedAt: APITime(d.CreatedAt), LastUsedAt: APITime(d.LastUsedAt)})
	}
	for _, p := range st.Passkeys {
		out.Passkeys = append(out.Passkeys, passkeyJSON{ID: p.ID, Name: p.Name, CreatedAt: APITime(p.CreatedAt),
			LastUsedAt: APITime(p.LastUsedAt), BackedUp: p.BackedUp})
	}
	return out
}

func (s *API) getSecurity(r *web.Call[web.NoBody]) (web.Reply, error) {
	st, err := s.svc.Security(r.Ctx, r.Caller.AccountID)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, securityView(st), 0), nil
}

type changePasswordRequest struct {
	CurrentPassword      string `json:"current_password"`
	NewPassword          string `json:"new_password"`
	SignOutOtherSessions bool   `json:"sign_out_other_sessions"`
}

// Check refuses a request without both passwords.
func (r changePasswordRequest) Check() error {
	return errors.Join(web.Required("current_password", r.CurrentPassword), web.Required("new_password", r.NewPassword))
}

func (s *API) changePassword(r *web.Call[changePasswordRequest]) (web.Reply, error) {
	res, err := s.svc.ChangePassword(r.Ctx, r.Caller, r.In.CurrentPassword, r.In.NewPassword, r.In.SignOutOtherSessions, r.Meta)
	if err != nil {
		return web.Reply{}, web.WithPasswordField("new_password", err)
	}
	return web.Done(res.Position), nil
}

func (s *API) deleteMySession(r *web.Call[web.NoBody]) (web.Reply, error) {
	return s.signOutByID(r, func(ctx context.Context, id string, rm command.RequestMeta) (uint64, error) {
		return s.svc.SignOut(ctx, r.Caller, id, rm)
	})
}

// signOutByID runs a sign-out of the session the path names and, when it was the caller's
// own, clears the session cookie; 204.
func (s *API) signOutByID(r *web.Call[web.NoBody], run func(ctx context.Context, id string, rm command.RequestMeta) (uint64, error)) (web.Reply, error) {
	pos, err := run(r.Ctx, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	if r.ID == r.Caller.ID {
		s.ClearSessionCookie(r.C)
	}
	return web.Done(pos), nil
}

func (s *API) eraseMe(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.EraseMe(r.Ctx, r.Caller, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	s.ClearSessionCookie(r.C)
	return web.Done(pos), nil
}

func (s *API) signOutOthers(r *web.Call[web.NoBody]) (web.Reply, error) {
	res, err := s.svc.SignOutOthers(r.Ctx, r.Caller, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, gin.H{"signed_out": res.SignedOut}, res.Position), nil
}
