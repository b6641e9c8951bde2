package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The portal's sign-up, sign-in (password, then a second factor), step-up and sign-out
// pages. Sign-ins name the built-in client "portal".

// secondFactorData is the second-factor page's data.
type secondFactorData struct {
	Ticket  string
	Next    string
	TOTP    bool
	Backup  bool
	Passkey bool
	Method  string
}

func itoa(n int) string { return strconv.Itoa(n) }

// home is "/": the sign-in page for anonymous visitors, the account page (or the
// enrollment page) for signed-in ones.
func (p *Portal) home(c *gin.Context) {
	if sess, ok := p.cookieSession(c); ok {
		if sess.Restricted {
			c.Redirect(http.StatusSeeOther, "/enroll")
			return
		}
		c.Redirect(http.StatusSeeOther, "/account")
		return
	}
	p.signinPage(c)
}

// cookieSession returns the active session of the request's cookie, if any.
func (p *Portal) cookieSession(c *gin.Context) (domain.Session, bool) {
	ck, err := c.Request.Cookie(web.SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > web.MaxTokenLength {
		return domain.Session{}, false
	}
	sess, err := p.svc.Whoami(c.Request.Context(), ck.Value)
	return sess, err == nil
}

func (p *Portal) signinPage(c *gin.Context) {
	p.render(c, http.StatusOK, "signin", pageData{Title: "Sign in",
		Form: map[string]string{"next": safeNext(c.Query("next"), ""), "email": ""}})
}

func (p *Portal) signin(c *gin.Context) {
	email, password := strings.TrimSpace(c.PostForm("email")), c.PostForm("password")
	next := safeNext(c.PostForm("next"), "")
	pg := pageData{Title: "Sign in", Form: map[string]string{"email": email, "next": next}}
	if err := errors.Join(web.Required("email", email), web.Required("password", password)); err != nil {
		p.formError(c, "signin", pg, err, "/signin")
		return
	}
	res, err := p.svc.Login(c.Request.Context(), email, password, domain.PortalClientID, web.RequestMeta(c))
	if err != nil {
		if errors.Is(err, domain.ErrInvalidCredentials) {
			pg.Error = "The email or password is wrong."
		}
		p.formError(c, "signin", pg, err, "/signin")
		return
	}
	p.signedIn(c, res, next)
}

// signedIn finishes a sign-in step: a new session gets its cookie and is sent on (to next,
// or to the enrollment page when restricted); a password that needs a second factor gets
// the second-factor page.
func (p *Portal) signedIn(c *gin.Context, res command.LoginResult, next string) {
	switch {
	case res.Authenticated != nil:
		p.SetSessionCookie(c, res.Authenticated.Token, res.Authenticated.Session.ExpiresAt)
		to := safeNext(next, "/account")
		if res.Authenticated.Session.Restricted {
			to = "/enroll"
		}
		p.done(c, res.Position, to)
	case res.SecondFactor != nil:
		d := secondFactorData{Ticket: res.SecondFactor.Ticket, Next: next}
		for _, m := range res.SecondFactor.Methods {
			switch m {
			case domain.MethodTOTP:
				d.TOTP = true
			case domain.MethodBackupCode:
				d.Backup = true
			case "passkey":
				d.Passkey = true
			}
		}
		p.render(c, http.StatusOK, "second_factor", pageData{Title: "Second factor", Data: d})
	default:
		p.fail(c, errors.New("portal: a sign-in result with neither session nor ticket"), "/signin")
	}
}

func (p *Portal) signinSecondFactor(c *gin.Context) {
	ticket, method, code := c.PostForm("login_ticket"), c.PostForm("method"), strings.TrimSpace(c.PostForm("code"))
	next := safeNext(c.PostForm("next"), "")
	d := secondFactorData{Ticket: ticket, Next: next, Method: method,
		TOTP: c.PostForm("has_totp") == "1", Backup: c.PostForm("has_backup") == "1", Passkey: c.PostForm("has_passkey") == "1"}
	pg := pageData{Title: "Second factor", Data: d}
	if method != domain.MethodTOTP && method != domain.MethodBackupCode {
		method = domain.MethodTOTP
	}
	field := "code_" + method
	if err := errors.Join(web.Required(field, code), web.Required("login_ticket", ticket)); err != nil {
		p.formError(c, "second_factor", pg, err, "/signin")
		return
	}
	res, err := p.svc.SecondFactor(c.Request.Context(), ticket, method, code, web.RequestMeta(c))
	if err != nil {
		if errors.Is(err, command.ErrTicketInvalid) {
			pg.Error = "This sign-in has expired or had too many wrong codes. Start again with your password."
		} else if errors.Is(err, domain.ErrInvalidCredentials) {
			pg.Errors = map[string]string{field: "That code is wrong or already used."}
		}
		p.formError(c, "second_factor", pg, err, "/signin")
		return
	}
	p.signedIn(c, res, next)
}

func (p *Portal) signupPage(c *gin.Context) {
	p.render(c, http.StatusOK, "signup", pageData{Title: "Create an account", Form: map[string]string{}})
}

func (p *Portal) signup(c *gin.Context) {
	in := command.Registration{
		Email: strings.TrimSpace(c.PostForm("email")), Password: c.PostForm("password"),
		FirstName: c.PostForm("first_name"), LastName: c.PostForm("last_name"),
	}
	pg := pageData{Title: "Create an account", Form: map[string]string{"email": in.Email, "first_name": in.FirstName, "last_name": in.LastName}}
	ctx := c.Request.Context()
	rm := web.RequestMeta(c)
	if _, err := p.svc.Register(ctx, in, rm); err != nil {
		if errors.Is(err, domain.ErrConflict) {
			err = web.Public(web.ErrConflict, "", err)
			pg.Errors = map[string]string{"email": "An account with this email already exists. Sign in instead."}
		}
		p.formError(c, "signup", pg, err, "/signup")
		return
	}
	res, err := p.svc.Login(ctx, in.Email, in.Password, domain.PortalClientID, rm)
	if err != nil {
		// Registered, but the sign-in did not go through (throttled, say): sign in by hand.
		c.Redirect(http.StatusSeeOther, "/signin")
		return
	}
	p.signedIn(c, res, "/account")
}

func (p *Portal) signout(c *gin.Context) {
	if _, err := p.svc.Logout(c.Request.Context(), web.CallerOf(c), web.RequestMeta(c)); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
		p.fail(c, err, "/")
		return
	}
	p.ClearSessionCookie(c)
	c.Redirect(http.StatusSeeOther, "/signin?done=bye")
}

// reauthData is the step-up page's data.
type reauthData struct {
	Next     string
	TOTP     bool
	Passkeys bool
}

func (p *Portal) reauthPage(c *gin.Context) {
	p.renderReauth(c, http.StatusOK, pageData{}, safeNext(c.Query("next"), "/security"))
}

func (p *Portal) renderReauth(c *gin.Context, status int, pg pageData, next string) {
	d := reauthData{Next: next}
	if st, err := p.svc.Security(c.Request.Context(), web.CallerOf(c).AccountID); err == nil {
		for _, t := range st.TOTPDevices {
			d.TOTP = d.TOTP || t.Confirmed
		}
		d.Passkeys = len(st.Passkeys) > 0
	}
	pg.Title, pg.Data = "Confirm it's you", d
	p.render(c, status, "reauth", pg)
}

func (p *Portal) reauth(c *gin.Context) {
	next := safeNext(c.PostForm("next"), "/security")
	password, code := c.PostForm("password"), strings.TrimSpace(c.PostForm("code"))
	field := "password"
	if password == "" && code != "" {
		field = "code"
	}
	var err error
	var pos uint64
	if password == "" && code == "" {
		err = &domain.ValidationError{Field: "password", Reason: "Enter your password."}
	} else {
		pos, err = p.svc.Reauth(c.Request.Context(), web.CallerOf(c), command.ReauthInput{Password: password, Code: code}, web.RequestMeta(c))
	}
	if err != nil {
		if errors.Is(err, domain.ErrInvalidCredentials) {
			err = web.CallerError(c, err)
			if field == "code" {
				err = errors.Join(err, &domain.ValidationError{Field: "code", Reason: "That code is wrong."})
			}
		}
		fields, msg, status := fieldErrors(err)
		if status >= 500 {
			p.fail(c, err, next)
			return
		}
		if errors.Is(err, domain.ErrInvalidCredentials) {
			msg = "That did not match."
			if field == "password" {
				fields["password"] = "The password is wrong."
			}
		}
		p.renderReauth(c, status, pageData{Error: msg, Errors: fields}, next)
		return
	}
	p.done(c, pos, withQuery(next, "done=reauth"))
}

// enrollPage is where a restricted session (an organisation requires 2FA, the account has
// none) sets up a second factor.
func (p *Portal) enrollPage(c *gin.Context) {
	sess := web.CallerOf(c)
	if !sess.Restricted {
		c.Redirect(http.StatusSeeOther, "/security")
		return
	}
	st, err := p.svc.Security(c.Request.Context(), sess.AccountID)
	if err != nil {
		p.fail(c, err, "/enroll")
		return
	}
	p.render(c, http.StatusOK, "enroll", pageData{Title: "Set up two-factor authentication", Data: st})
}

// nextQuery is "?next=" + the escaped path.
func nextQuery(path string) string { return "?next=" + url.QueryEscape(path) }
