package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// accountRoutes: registration, sign-in, sign-out, whoami, step-up and the CSRF token (API.md
// "Accounts and login"; the passkey ceremonies are in passkeys.go, but POST /reauth takes a
// passkey's answer too).
func (s *jsonAPI) accountRoutes() []apiRoute {
	loginAnswer := response{Description: "authenticated, second_factor_required or enrollment_required (see the schema).",
		Schema: ref("LoginResult"), Headers: map[string]string{"Set-Cookie": "vigil_session (HttpOnly, Secure, SameSite=Lax, Path=/) when a session_token is answered."}}
	return []apiRoute{
		{
			method: http.MethodPost, path: "/accounts", access: public,
			op: operation{
				ID: "createAccount", Summary: "Register an account",
				Description: "The password must meet the password rules (see the password field); a refusal is 400 invalid_request whose `errors` member gives every reason.",
				Request: jsonBody(object(map[string]schema{
					"email": {"type": "string", "format": "email"}, "password": s.newPasswordSchema(),
					"first_name": stringSchema(), "last_name": stringSchema(),
				}, "email", "password", "first_name", "last_name")),
				Responses: map[int]response{http.StatusCreated: {Description: "The account was created.",
					Schema: object(map[string]schema{"account_id": stringSchema()}, "account_id")}},
			},
			errors: []problemLine{{http.StatusConflict, "conflict: the email is taken"},
				{http.StatusBadRequest, unknownClient}},
			h: s.register,
		},
		{
			method: http.MethodPost, path: "/login", access: public,
			op: operation{
				ID: "login", Summary: "Sign in with email and password",
				Description: "An unknown email gets the same answer, after the same work, as a wrong password.",
				Request: jsonBody(object(map[string]schema{
					"email": stringSchema(), "password": stringSchema(),
					"client_id": {"type": "string", "description": "The application signing in; the X-Vigil-Client header is used when absent."},
				}, "email", "password")),
				Responses: map[int]response{http.StatusOK: loginAnswer},
			},
			errors: []problemLine{{http.StatusUnauthorized, "invalid_credentials: wrong email or password"},
				{http.StatusTooManyRequests, throttledText}, {http.StatusBadRequest, unknownClient}},
			h: s.login,
		},
		{
			method: http.MethodPost, path: "/login/second-factor", access: public,
			op: operation{
				ID: "loginSecondFactor", Summary: "Complete a sign-in with a second factor",
				Request: jsonBody(object(map[string]schema{
					"login_ticket": stringSchema(),
					"method":       {"type": "string", "enum": []string{domain.MethodTOTP, domain.MethodBackupCode}},
					"code":         stringSchema(),
				}, "login_ticket", "method", "code")),
				Responses: map[int]response{http.StatusOK: {Description: "authenticated, with an aal2 session.",
					Schema: ref("LoginResult"), Headers: loginAnswer.Headers}},
			},
			errors: []problemLine{{http.StatusUnauthorized, "invalid_credentials: a wrong or used code, or a login ticket that is unknown, expired, used or burnt by 5 wrong codes"},
				{http.StatusTooManyRequests, throttledText}},
			h: s.loginSecondFactor,
		},
		{
			method: http.MethodPost, path: "/logout", access: signedIn, cap: domain.CapSession,
			op: operation{
				ID: "logout", Summary: "Sign the current session out",
				Responses: map[int]response{http.StatusNoContent: {Description: "Signed out; the session cookie is cleared.",
					Headers: map[string]string{"Set-Cookie": "clears vigil_session"}}},
			},
			h: s.logout,
		},
		{
			method: http.MethodGet, path: "/whoami", access: signedIn, cap: domain.CapSession, read: true,
			op: operation{
				ID: "getWhoami", Summary: "The session of this token",
				Description: "Answered from memory; relying applications call it on their requests.",
				Responses:   map[int]response{http.StatusOK: {Description: "The session.", Schema: ref("Session")}},
			},
			h: s.whoami,
		},
		{
			method: http.MethodPost, path: "/reauth", access: signedIn, cap: domain.CapEnroll,
			op: operation{
				ID: "reauth", Summary: "Re-authenticate (step-up)",
				Description: "Give exactly one of: password; code (a TOTP code); ceremony_id and credential (the answer to the " +
					"options of POST /api/v1/reauth/passkey/options, which a passkey re-authentication makes aal2). Renews authenticated_at.",
				Request: jsonBody(object(map[string]schema{
					"password":    stringSchema(),
					"code":        {"type": "string", "description": "A current TOTP code."},
					"ceremony_id": {"type": "string", "description": "From POST /api/v1/reauth/passkey/options; with credential."},
					"credential":  credentialSchema("navigator.credentials.get"),
				})),
				Responses: map[int]response{http.StatusNoContent: noContent("Re-authenticated.")},
			},
			errors: []problemLine{{http.StatusForbidden, wrongSecretText},
				{http.StatusForbidden, passkeyRefusedSignedInText},
				{http.StatusTooManyRequests, throttledText},
				{http.StatusBadRequest, "invalid_request: not exactly one of password, code, and ceremony_id with credential"},
				{http.StatusBadRequest, ceremonyText},
				{http.StatusNotFound, passkeysOffText}},
			h: s.reauth,
		},
		{
			method: http.MethodGet, path: "/csrf", access: signedIn, cap: domain.CapSession, read: true,
			op: operation{
				ID: "getCSRFToken", Summary: "The CSRF token of this session",
				Description: "Cookie-authenticated POST, PUT, PATCH and DELETE requests send it in X-CSRF-Token.",
				Responses: map[int]response{http.StatusOK: {Description: "The token.",
					Schema: object(map[string]schema{"csrf_token": stringSchema()}, "csrf_token")}},
			},
			h: s.csrf,
		},
	}
}

type registerRequest struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

func (s *jsonAPI) register(c *gin.Context) {
	var req registerRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.Register(c.Request.Context(), domain.Registration{
		Email: req.Email, Password: req.Password, FirstName: req.FirstName, LastName: req.LastName,
	}, rm)
	if err != nil {
		if errors.Is(err, domain.ErrConflict) {
			err = Public(ErrConflict, "An account with this email already exists.", err)
		}
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"account_id": res.AccountID})
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	ClientID string `json:"client_id"`
}

func (s *jsonAPI) login(c *gin.Context) {
	var req loginRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := errors.Join(required("email", req.Email), required("password", req.Password)); err != nil {
		writeError(c, err)
		return
	}
	clientID := signInClient(c, req.ClientID)
	rm := requestMeta(c)
	res, err := s.svc.Login(c.Request.Context(), req.Email, req.Password, clientID, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerLogin(c, res)
}

type secondFactorRequest struct {
	LoginTicket string `json:"login_ticket"`
	Method      string `json:"method"`
	Code        string `json:"code"`
}

func (s *jsonAPI) loginSecondFactor(c *gin.Context) {
	var req secondFactorRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := errors.Join(required("login_ticket", req.LoginTicket), required("method", req.Method), required("code", req.Code)); err != nil {
		writeError(c, err)
		return
	}
	rm := requestMeta(c)
	res, err := s.svc.SecondFactor(c.Request.Context(), req.LoginTicket, req.Method, req.Code, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerLogin(c, res)
}

// loginResponse is API.md's answer of /login and /login/second-factor.
type loginResponse struct {
	Status       domain.LoginStatus `json:"status"`
	SessionToken string             `json:"session_token,omitempty"`
	Session      *sessionJSON       `json:"session,omitempty"`
	LoginTicket  string             `json:"login_ticket,omitempty"`
	Methods      []string           `json:"methods,omitempty"`
}

// answerLogin writes a sign-in step's result; a new session also gets its cookie.
func (s *jsonAPI) answerLogin(c *gin.Context, res domain.LoginResult) {
	s.setPosition(c, res.Position)
	out := loginResponse{Status: res.Status}
	switch {
	case res.Authenticated != nil:
		view := sessionView(res.Authenticated.Session)
		out.SessionToken, out.Session = res.Authenticated.Token, &view
		s.setSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
	case res.SecondFactor != nil:
		out.LoginTicket, out.Methods = res.SecondFactor.Ticket, res.SecondFactor.Methods
	}
	c.JSON(http.StatusOK, out)
}

func (s *jsonAPI) logout(c *gin.Context) {
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.Logout(c.Request.Context(), callerOf(c), rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.clearSessionCookie(c)
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *jsonAPI) whoami(c *gin.Context) {
	c.JSON(http.StatusOK, sessionView(callerOf(c)))
}

type reauthRequest struct {
	Password   string          `json:"password"`
	Code       string          `json:"code"`
	CeremonyID string          `json:"ceremony_id"`
	Credential json.RawMessage `json:"credential"`
}

// reauth renews the session's authenticated_at with exactly one of the password, a TOTP
// code, or a passkey's answer (ceremony_id and credential, both needed).
func (s *jsonAPI) reauth(c *gin.Context) {
	var req reauthRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	withPasskey := req.CeremonyID != "" || req.Credential != nil
	given := 0
	for _, ok := range []bool{req.Password != "", req.Code != "", withPasskey} {
		if ok {
			given++
		}
	}
	if given != 1 {
		writeError(c, &domain.ValidationError{Field: "password",
			Reason: "give exactly one of password, code, and ceremony_id with credential"})
		return
	}
	if withPasskey {
		if err := errors.Join(required("ceremony_id", req.CeremonyID), credentialObject(req.Credential)); err != nil {
			writeError(c, err)
			return
		}
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var pos uint64
	if withPasskey {
		pos, err = s.svc.FinishPasskeyReauth(c.Request.Context(), callerOf(c), req.CeremonyID, req.Credential, rm)
	} else {
		pos, err = s.svc.Reauth(c.Request.Context(), callerOf(c), domain.ReauthInput{Password: req.Password, Code: req.Code}, rm)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *jsonAPI) csrf(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"csrf_token": s.csrfToken(callerOf(c).ID)})
}

// newPasswordSchema is the schema of a new password: the bounds and rules of the password
// policy in effect, so that /openapi.json and docs/API.md say what is enforced.
func (s *jsonAPI) newPasswordSchema() schema {
	pol := s.svc.PasswordPolicy()
	c := pol.Config()
	return schema{"type": "string", "minLength": c.MinLength, "maxLength": c.MaxLength,
		"description": strings.Join(pol.Rules(), " ")}
}
