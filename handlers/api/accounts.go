package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// accountRoutes: registration, sign-in, sign-out, whoami, step-up and the CSRF token (API.md
// "Accounts and login"; the passkey ceremonies are in passkeys.go, but POST /reauth takes a
// passkey's answer too).
func (s *API) accountRoutes() []web.Route {
	loginAnswer := web.Response{Description: "authenticated, second_factor_required or enrollment_required (see the schema).",
		Schema: web.Ref("LoginResult"), Headers: map[string]string{"Set-Cookie": "vigil_session (HttpOnly, Secure, SameSite=Lax, Path=/) when a session_token is answered."}}
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/accounts", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "createAccount", Summary: "Register an account",
				Description: "The password must meet the password rules (see the password field); a refusal is 400 invalid_request whose `errors` member gives every reason.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"email": {"type": "string", "format": "email"}, "password": s.newPasswordSchema(),
					"first_name": web.StringSchema(), "last_name": web.StringSchema(),
				}, "email", "password", "first_name", "last_name")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The account was created.",
					Schema: web.Object(map[string]web.Schema{"account_id": web.StringSchema()}, "account_id")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusConflict, Text: "conflict: the email is taken"},
				{Status: http.StatusBadRequest, Text: web.UnknownClient}},
			Handler: web.Command(s.Core, web.MetaCaller, s.register),
		},
		{
			Method: http.MethodPost, Path: "/login", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "login", Summary: "Sign in with email and password",
				Description: "An unknown email gets the same answer, after the same work, as a wrong password.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"email": web.StringSchema(), "password": web.StringSchema(),
					"client_id": {"type": "string", "description": "The application signing in; the X-Vigil-Client header is used when absent."},
				}, "email", "password")),
				Responses: map[int]web.Response{http.StatusOK: loginAnswer},
			},
			Errors: []web.ProblemLine{{Status: http.StatusUnauthorized, Text: "invalid_credentials: wrong email or password"},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText}, {Status: http.StatusBadRequest, Text: web.UnknownClient}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.login),
		},
		{
			Method: http.MethodPost, Path: "/login/second-factor", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "loginSecondFactor", Summary: "Complete a sign-in with a second factor",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"login_ticket": web.StringSchema(),
					"method":       {"type": "string", "enum": []string{domain.MethodTOTP, domain.MethodBackupCode}},
					"code":         web.StringSchema(),
				}, "login_ticket", "method", "code")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "authenticated, with an aal2 session.",
					Schema: web.Ref("LoginResult"), Headers: loginAnswer.Headers}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusUnauthorized, Text: "invalid_credentials: a wrong or used code, or a login ticket that is unknown, expired, used or burnt by 5 wrong codes"},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.loginSecondFactor),
		},
		{
			Method: http.MethodPost, Path: "/logout", Access: web.AccessSignedIn, Cap: domain.CapSession,
			Op: web.Operation{
				ID: "logout", Summary: "Sign the current session out",
				Responses: map[int]web.Response{http.StatusNoContent: {Description: "Signed out; the session cookie is cleared.",
					Headers: map[string]string{"Set-Cookie": "clears vigil_session"}}},
			},
			Handler: web.Command(s.Core, web.MetaCaller, s.logout),
		},
		{
			Method: http.MethodGet, Path: "/whoami", Access: web.AccessSignedIn, Cap: domain.CapSession, Read: true,
			Op: web.Operation{
				ID: "getWhoami", Summary: "The session of this token",
				Description: "Answered from memory; relying applications call it on their requests.",
				Responses:   map[int]web.Response{http.StatusOK: {Description: "The session.", Schema: web.Ref("Session")}},
			},
			Handler: s.whoami,
		},
		{
			Method: http.MethodPost, Path: "/reauth", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "reauth", Summary: "Re-authenticate (step-up)",
				Description: "Give exactly one of: password; code (a TOTP code); ceremony_id and credential (the answer to the " +
					"options of POST /api/v1/reauth/passkey/options, which a passkey re-authentication makes aal2). Renews authenticated_at.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"password":    web.StringSchema(),
					"code":        {"type": "string", "description": "A current TOTP code."},
					"ceremony_id": {"type": "string", "description": "From POST /api/v1/reauth/passkey/options; with credential."},
					"credential":  credentialSchema("navigator.credentials.get"),
				})),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Re-authenticated.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.WrongSecretText},
				{Status: http.StatusForbidden, Text: passkeyRefusedSignedInText},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText},
				{Status: http.StatusBadRequest, Text: "invalid_request: not exactly one of password, code, and ceremony_id with credential"},
				{Status: http.StatusBadRequest, Text: ceremonyText},
				{Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.reauth),
		},
		{
			Method: http.MethodGet, Path: "/csrf", Access: web.AccessSignedIn, Cap: domain.CapSession, Read: true,
			Op: web.Operation{
				ID: "getCSRFToken", Summary: "The CSRF token of this session",
				Description: "Cookie-authenticated POST, PUT, PATCH and DELETE requests send it in X-CSRF-Token.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The token.",
					Schema: web.Object(map[string]web.Schema{"csrf_token": web.StringSchema()}, "csrf_token")}},
			},
			Handler: s.csrf,
		},
	}
}

type registerRequest struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

func (s *API) register(r *web.Call[registerRequest]) (web.Reply, error) {
	res, err := s.svc.Register(r.Ctx, command.Registration{
		Email: r.In.Email, Password: r.In.Password, FirstName: r.In.FirstName, LastName: r.In.LastName,
	}, r.Meta)
	if err != nil {
		if errors.Is(err, domain.ErrConflict) {
			err = web.Public(web.ErrConflict, "An account with this email already exists.", err)
		}
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"account_id": res.AccountID}, res.Position), nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	ClientID string `json:"client_id"`
}

// Check refuses a sign-in without email or password.
func (r loginRequest) Check() error {
	return errors.Join(web.Required("email", r.Email), web.Required("password", r.Password))
}

func (s *API) login(r *web.Call[loginRequest]) (web.Reply, error) {
	res, err := s.svc.Login(r.Ctx, r.In.Email, r.In.Password, web.SignInClient(r.C, r.In.ClientID), r.Meta)
	return s.loginReply(r.C, res, err)
}

type secondFactorRequest struct {
	LoginTicket string `json:"login_ticket"`
	Method      string `json:"method"`
	Code        string `json:"code"`
}

// Check refuses a second factor without its ticket, method or code.
func (r secondFactorRequest) Check() error {
	return errors.Join(web.Required("login_ticket", r.LoginTicket), web.Required("method", r.Method), web.Required("code", r.Code))
}

func (s *API) loginSecondFactor(r *web.Call[secondFactorRequest]) (web.Reply, error) {
	res, err := s.svc.SecondFactor(r.Ctx, r.In.LoginTicket, r.In.Method, r.In.Code, r.Meta)
	return s.loginReply(r.C, res, err)
}

// loginResponse is API.md's answer of /login and /login/second-factor.
type loginResponse struct {
	Status       command.LoginStatus `json:"status"`
	SessionToken string              `json:"session_token,omitempty"`
	Session      *sessionJSON        `json:"session,omitempty"`
	LoginTicket  string              `json:"login_ticket,omitempty"`
	Methods      []string            `json:"methods,omitempty"`
}

// loginReply answers a sign-in step's result (or its error); a new session also gets its
// cookie.
func (s *API) loginReply(c *gin.Context, res command.LoginResult, err error) (web.Reply, error) {
	if err != nil {
		return web.Reply{}, err
	}
	out := loginResponse{Status: res.Status}
	switch {
	case res.Authenticated != nil:
		view := sessionView(res.Authenticated.Session)
		out.SessionToken, out.Session = res.Authenticated.Token, &view
		s.SetSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	case res.SecondFactor != nil:
		out.LoginTicket, out.Methods = res.SecondFactor.Ticket, res.SecondFactor.Methods
	}
	return web.JSON(http.StatusOK, out, res.Position), nil
}

func (s *API) logout(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.Logout(r.Ctx, r.Caller, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	s.ClearSessionCookie(r.C)
	return web.Done(pos), nil
}

type reauthRequest struct {
	Password   string          `json:"password"`
	Code       string          `json:"code"`
	CeremonyID string          `json:"ceremony_id"`
	Credential json.RawMessage `json:"credential"`
}

// withPasskey: the re-authentication answers a passkey ceremony.
func (r reauthRequest) withPasskey() bool { return r.CeremonyID != "" || r.Credential != nil }

// Check asks for exactly one of the password, a TOTP code, or a passkey's answer
// (ceremony_id and credential, both needed).
func (r reauthRequest) Check() error {
	given := 0
	for _, ok := range []bool{r.Password != "", r.Code != "", r.withPasskey()} {
		if ok {
			given++
		}
	}
	if given != 1 {
		return &domain.ValidationError{Field: "password",
			Reason: "give exactly one of password, code, and ceremony_id with credential"}
	}
	if r.withPasskey() {
		return checkPasskeyAnswer(r.CeremonyID, r.Credential)
	}
	return nil
}

// reauth renews the session's authenticated_at.
func (s *API) reauth(r *web.Call[reauthRequest]) (web.Reply, error) {
	var pos uint64
	var err error
	if r.In.withPasskey() {
		pos, err = s.svc.FinishPasskeyReauth(r.Ctx, r.Caller, r.In.CeremonyID, r.In.Credential, r.Meta)
	} else {
		pos, err = s.svc.Reauth(r.Ctx, r.Caller, command.ReauthInput{Password: r.In.Password, Code: r.In.Code}, r.Meta)
	}
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *API) csrf(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"csrf_token": s.CsrfToken(web.CallerOf(c).ID)})
}

// newPasswordSchema is the schema of a new password: the bounds and rules of the password
// policy in effect, so that /openapi.json and docs/API.md say what is enforced.
func (s *API) newPasswordSchema() web.Schema {
	pol := s.svc.PasswordPolicy()
	c := pol.Config()
	return web.Schema{"type": "string", "minLength": c.MinLength, "maxLength": c.MaxLength,
		"description": strings.Join(pol.Rules(), " ")}
}
