package portal

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The web portal (issue 7): server-rendered html/template pages for account owners and
// security teams, served by the same Server as the JSON API. It runs the same domain
// commands and projection queries as the API and reuses its session cookie, CSRF key and
// error table; JavaScript (assets/portal.js) is used only for the WebAuthn ceremonies, which
// call the JSON API's passkey routes.
//
// The portal's routes live on their own gin engine, so that the JSON API's engine (whose
// routes are exactly the OpenAPI document) stays as it is: Server.Handler sends a request
// to the portal when the first segment of its path is one the portal registered ("/" and
// e.g. /security, /assets), and everything else to the API engine.

//go:embed templates/*.html assets/*
var portalFS embed.FS

// portalCSP is the Content-Security-Policy of every portal answer: scripts, styles, images
// (the TOTP QR code) and fetches (the passkey ceremonies) only from the server itself, no
// inline script, event handler or style attribute, forms posted only here, nothing framed.
const portalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Names of the portal's form fields and cookies.
const (
	// csrfField is the hidden field of every portal form that carries the CSRF token.
	csrfField = "csrf_token"
	// preSessionCookie holds a random nonce that anonymous forms (sign-in, sign-up) bind
	// their CSRF token to, so that another site cannot submit them (login CSRF).
	preSessionCookie = "vigil_form"
)

// Portal is the web portal's engine and templates.
type Portal struct {
	*web.Core
	svc Service
	// api runs the commands and reads the portal shares with the JSON API; apiEngine
	// serves every path that is not the portal's.
	api       *api.API
	apiEngine http.Handler
	engine    *gin.Engine
	pages     map[string]*template.Template
	segments  map[string]bool
	assets    fs.FS
}

// portalPages are the page templates; each is parsed with layout.html.
var portalPages = []string{
	"signin", "signup", "second_factor", "reauth", "enroll", "account", "security", "totp_setup",
	"backup_codes", "sessions", "activity", "audit", "audit_account", "error",
	"orgs", "org", "org_activity", "delegations",
	"forgot_password", "verify_email", "reset_password", "not_me",
	"audit_signals", "audit_overview", // portal_risk.go
}

// New builds the portal on k beside the JSON API api (served by apiEngine), running
// svc's commands.
func New(k *web.Core, svc Service, api *api.API, apiEngine http.Handler) (*Portal, error) {
	p := &Portal{Core: k, svc: svc, api: api, apiEngine: apiEngine, pages: map[string]*template.Template{}, segments: map[string]bool{}}
	funcs := template.FuncMap{
		"when":     portalTime,
		"location": locationText,
		"join":     strings.Join,
		// signals lists the risk signals of an activity row, in words (portal_risk.go).
		"signals": rowSignalNames,
		// passwordHint is the policy's own summary, so the page says what Check enforces.
		"passwordHint": func() string { return svc.PasswordPolicy().Hint() },
	}
	for _, name := range portalPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(portalFS,
			"templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p.pages[name] = t
	}
	assets, err := fs.Sub(portalFS, "assets")
	if err != nil {
		return nil, err
	}
	p.assets = assets

	e, err := web.NewEngine()
	if err != nil {
		return nil, err
	}
	e.Use(append(k.Middleware(), portalHeaders)...)
	e.NoRoute(func(c *gin.Context) { p.errorPage(c, http.StatusNotFound, "There is no page here.") })
	e.NoMethod(func(c *gin.Context) {
		p.errorPage(c, http.StatusMethodNotAllowed, "This page does not take that method.")
	})
	p.engine = e
	p.routes()
	for _, r := range e.Routes() {
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.Path, "/"), "/")
		p.segments[seg] = true
	}
	return p, nil
}

// ServeHTTP sends portal paths to the portal's engine and the rest to the API's.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if p.segments[seg] {
		p.engine.ServeHTTP(w, r)
		return
	}
	p.apiEngine.ServeHTTP(w, r)
}

// portalHeaders sets the security headers of every portal answer.
func portalHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", portalCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(c.Request.URL.Path, "/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

// routes registers the portal's pages.
func (p *Portal) routes() {
	e := p.engine
	e.GET("/assets/*path", p.asset)
	// Anonymous pages.
	e.GET("/", p.home)
	e.GET("/signin", p.signinPage)
	e.POST("/signin", p.anonForm, p.signin)
	e.POST("/signin/second-factor", p.anonForm, p.signinSecondFactor)
	e.GET("/signup", p.signupPage)
	e.POST("/signup", p.anonForm, p.signup)
	p.recoveryRoutes()
	// Signed in. Each group names the capability its pages need (domain.Session.Allows):
	// restricted sessions may sign out and enroll; a delegate's acting session may read and
	// edit the names and profile; every other change is the account holder's (CapControl).
	session := e.Group("", p.auth(domain.CapSession))
	session.POST("/signout", p.signout)
	enroll := e.Group("", p.auth(domain.CapEnroll))
	enroll.GET("/reauth", p.reauthPage)
	enroll.POST("/reauth", p.reauth)
	enroll.GET("/enroll", p.enrollPage)
	enroll.POST("/security/totp", p.addTOTP)
	enroll.GET("/security/totp/:id", p.totpSetupPage)
	enroll.POST("/security/totp/:id/confirm", p.confirmTOTP)
	read := e.Group("", p.auth(domain.CapRead))
	read.GET("/account", p.accountPage)
	read.GET("/security", p.securityPage)
	read.GET("/sessions", p.sessionsPage)
	read.GET("/activity", p.activityPage)
	p.orgReadRoutes(read)
	profile := e.Group("", p.auth(domain.CapProfile))
	profile.POST("/account", p.saveAccount)
	profile.POST("/account/profile", p.saveProfile)
	in := e.Group("", p.auth(domain.CapControl))
	in.POST("/security/password", p.changePassword)
	in.POST("/security/totp/:id/remove", p.removeTOTP)
	in.POST("/security/backup-codes", p.regenerateCodes)
	in.POST("/security/passkeys/:id/rename", p.renamePasskey)
	in.POST("/security/passkeys/:id/remove", p.removePasskey)
	in.POST("/security/two-factor/disable", p.disableTwoFactor)
	in.POST("/sessions/:id/sign-out", p.signOutSession)
	in.POST("/sessions/sign-out-others", p.signOutOthers)
	in.POST("/activity/:id/not-me", p.reportActivity)
	in.POST("/account/verify-email", p.requestVerification)
	p.orgChangeRoutes(in)
	// The security teams'.
	team := e.Group("", p.auth(domain.CapControl), p.requireTeamRole)
	team.GET("/audit", p.auditPage)
	team.GET("/audit/accounts/:id", p.auditAccountPage)
	team.POST("/audit/sessions/:id/sign-out", p.auditSignOut)
	team.GET("/audit/signals", p.auditSignalsPage)
	team.GET("/audit/overview", p.auditOverviewPage)
}

// requireTeamRole is requireRole(auditor, admin) then domain.CapTeam for portal pages: a
// caller without either role gets the HTML 403 page instead of a problem document, one
// whose session did not prove a second factor the page that says so.
func (p *Portal) requireTeamRole(c *gin.Context) {
	if !p.hasTeamRole(c) {
		p.errorPage(c, http.StatusForbidden, "This page is for the security team (role auditor or admin).")
		return
	}
	if err := web.CallerOf(c).Allows(domain.CapTeam); err != nil {
		p.fail(c, err, "")
		return
	}
	c.Next()
}

// isTeam reports whether the caller's session may use the security team's pages: it holds
// domain.CapTeam (the holder's own, aal2) and its account role auditor or admin.
func (p *Portal) isTeam(c *gin.Context) bool {
	return web.CallerOf(c).Allows(domain.CapTeam) == nil && p.hasTeamRole(c)
}

// hasTeamRole reports whether the caller's account holds role auditor or admin.
func (p *Portal) hasTeamRole(c *gin.Context) bool {
	sess := web.CallerOf(c)
	if sess.ID == "" {
		return false
	}
	a, err := p.svc.Account(c.Request.Context(), sess.AccountID)
	if err != nil {
		return false
	}
	return a.HasRole(domain.RoleAuditor) || a.HasRole(domain.RoleAdmin)
}

// asset serves an embedded asset.
func (p *Portal) asset(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("path"), "/")
	if name == "" || strings.Contains(name, "..") {
		p.errorPage(c, http.StatusNotFound, "There is no such file.")
		return
	}
	if _, err := fs.Stat(p.assets, name); err != nil {
		p.errorPage(c, http.StatusNotFound, "There is no such file.")
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.FileFromFS(name, http.FS(p.assets))
}

// pageData is what every template gets: the layout's facts and the page's own data.
type pageData struct {
	Title      string
	CSRF       string
	SignedIn   bool
	Restricted bool
	Team       bool
	Email      string
	// ActingAs is the delegate's email in an acting session (Email is then the owner's).
	ActingAs string
	Nav      string
	Flash    string
	Error    string
	Errors   map[string]string
	Form     map[string]string
	Data     any
}

// render writes the page template name with status.
func (p *Portal) render(c *gin.Context, status int, name string, pg pageData) {
	if sess := web.CallerOf(c); sess.ID != "" {
		pg.SignedIn, pg.Restricted = true, sess.Restricted
		pg.CSRF = p.CsrfToken(sess.ID)
		if a, err := p.svc.Account(c.Request.Context(), sess.AccountID); err == nil {
			pg.Email = a.Email()
		}
		if !sess.Restricted {
			pg.Team = p.isTeam(c)
		}
		if sess.ActorAccountID != "" {
			pg.ActingAs = sess.ActorAccountID
			if a, err := p.svc.Account(c.Request.Context(), sess.ActorAccountID); err == nil {
				pg.ActingAs = a.Email()
			}
		}
	} else if pg.CSRF == "" {
		pg.CSRF = p.anonToken(c)
	}
	if pg.Flash == "" {
		pg.Flash = flashText(c.Query("done"))
	}
	t := p.pages[name]
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := t.Execute(c.Writer, pg); err != nil {
		web.LoggerFrom(c).ErrorContext(c.Request.Context(), "rendering a portal page failed",
			"page", name, "request_id", web.RequestID(c), "error", err.Error())
	}
}

// errorPage answers status with the error page and aborts the chain.
func (p *Portal) errorPage(c *gin.Context, status int, msg string) {
	c.Abort()
	p.render(c, status, "error", pageData{Title: http.StatusText(status), Error: msg})
}

// flashes are the confirmations a redirect after a change may show (?done=...): fixed
// texts, so nothing from the query reaches the page.
var flashes = map[string]string{
	"account":            "Your account details were saved.",
	"profile":            "Your profile was saved.",
	"password":           "Your password was changed.",
	"totp-added":         "The authenticator app was added.",
	"totp-removed":       "The authenticator app was removed.",
	"passkey-renamed":    "The passkey was renamed.",
	"passkey-removed":    "The passkey was removed.",
	"passkey-added":      "The passkey was registered.",
	"2fa-off":            "Two-factor authentication is off.",
	"signed-out":         "The session was signed out.",
	"signed-out-others":  "Every other session was signed out.",
	"reauth":             "Thanks: you can now make the change.",
	"bye":                "You are signed out.",
	"org-created":        "The organisation was created.",
	"member-added":       "The member was added.",
	"member-removed":     "The member was removed.",
	"org-policy":         "The two-factor requirement was saved.",
	"org-managed":        "The organisation now manages the other one.",
	"delegation-granted": "Access was granted.",
	"delegation-revoked": "The access was revoked.",
	"acting":             "You are now acting for this account.",
	"password-reset":     "Your password was reset, and every session signed out. Sign in with the new password.",
	"reported":           "Thanks for telling us. Every other session was signed out, and a link to set a new password is on its way to your email.",
	"verification-sent":  "A verification link is on its way to your email.",
}

func flashText(key string) string { return flashes[key] }

// anonToken returns the CSRF token of anonymous forms, bound to the pre-session cookie
// (set here when absent).
func (p *Portal) anonToken(c *gin.Context) string {
	if v, ok := c.Get("vigil.form_nonce"); ok {
		return p.CsrfToken("form:" + v.(string))
	}
	nonce := ""
	if ck, err := c.Request.Cookie(preSessionCookie); err == nil && len(ck.Value) == 43 {
		nonce = ck.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		nonce = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(c.Writer, &http.Cookie{Name: preSessionCookie, Value: nonce, Path: "/", MaxAge: 3600,
			HttpOnly: true, Secure: !p.InsecureCookies, SameSite: http.SameSiteLaxMode})
	}
	c.Set("vigil.form_nonce", nonce)
	return p.CsrfToken("form:" + nonce)
}

// anonForm checks the CSRF token of an anonymous form against the pre-session cookie; a
// form without it gets the 403 error page.
func (p *Portal) anonForm(c *gin.Context) {
	ck, err := c.Request.Cookie(preSessionCookie)
	if err != nil || ck.Value == "" || !p.ValidCSRF("form:"+ck.Value, c.PostForm(csrfField)) {
		p.errorPage(c, http.StatusForbidden, "The form was not sent from this site's own page, or it expired. Reload the page and try again.")
		return
	}
	c.Next()
}

// auth is the middleware of signed-in pages: the session cookie must name an active
// session (else a GET is sent to the sign-in page and anything else gets 401), the CSRF
// field of every POST must be the session's token (the API's key), and the session must
// hold capability need (domain.Session.Allows): a restricted session is sent to the
// enrollment page, anything else refused gets the 403 page saying why. The use is noted
// (Touch) as on the API.
func (p *Portal) auth(need domain.Capability) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		ck, err := c.Request.Cookie(web.SessionCookie)
		var sess domain.Session
		if err == nil && ck.Value != "" && len(ck.Value) <= web.MaxTokenLength {
			sess, err = p.svc.Whoami(ctx, ck.Value)
			if err != nil && errors.Is(err, domain.ErrSessionNotFound) {
				p.ClearSessionCookie(c)
			}
		} else {
			err = domain.ErrSessionNotFound
		}
		if err != nil {
			if !errors.Is(err, domain.ErrSessionNotFound) {
				p.fail(c, err, "")
				return
			}
			if c.Request.Method == http.MethodGet {
				c.Abort()
				c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.RequestURI()))
				return
			}
			p.errorPage(c, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if c.Request.Method != http.MethodGet && !p.ValidCSRF(sess.ID, c.PostForm(csrfField)) {
			p.errorPage(c, http.StatusForbidden, "The form was not sent from this site's own page. Reload the page and try again.")
			return
		}
		if err := sess.Allows(need); err != nil {
			switch {
			case errors.Is(err, domain.ErrEnrollmentRequired) && c.Request.Method == http.MethodGet:
				c.Abort()
				c.Redirect(http.StatusSeeOther, "/enroll")
			case errors.Is(err, domain.ErrEnrollmentRequired):
				p.errorPage(c, http.StatusForbidden, "Your organisation requires two-factor authentication: set up a second factor first.")
			default:
				p.fail(c, err, "")
			}
			return
		}
		if _, err := p.svc.Touch(ctx, sess.ID); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			web.LoggerFrom(c).WarnContext(ctx, "recording a session access failed",
				"route", web.RouteLabel(c), "request_id", web.RequestID(c), "error", err.Error())
		}
		c.Set(web.KeyCaller, sess)
		c.Next()
	}
}

// done waits (bounded, as ?min_position does) until the read models include pos, then
// redirects to to: the next page shows what the change wrote.
func (p *Portal) done(c *gin.Context, pos uint64, to string) {
	p.wait(c.Request.Context(), pos)
	c.Redirect(http.StatusSeeOther, to)
}

// wait waits at most minWait until the read models include pos.
func (p *Portal) wait(ctx context.Context, pos uint64) {
	if pos == 0 || p.Positions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.MinWait)
	_ = p.Positions.WaitFor(ctx, pos)
	cancel()
}

// fieldErrors turns a refused input (the problem's `errors` member) into messages by
// field, and the problem's detail for anything else, with the status the JSON API would
// answer (the error table of problem.go). A status of 500 or more is not the client's
// error: the caller then shows the error page (fail), which logs it.
func fieldErrors(err error) (fields map[string]string, msg string, status int) {
	pr, _ := web.ProblemFor(err)
	fields = map[string]string{}
	if fe, ok := pr.Extensions["errors"].([]web.FieldError); ok {
		for _, f := range fe {
			fields[f.Field] = strings.Join(f.Reasons, " ")
		}
	}
	msg = pr.Detail
	if msg == "" {
		msg = pr.Title + "."
	}
	return fields, msg, pr.Status
}

// fail answers a command's failure on a page that has no form to re-show: a step-up is
// sent to the re-authentication page, a client's mistake gets the error page with its
// status, anything else is logged and gets the 500 page.
func (p *Portal) fail(c *gin.Context, err error, back string) {
	if errors.Is(err, command.ErrReauthenticationRequired) {
		c.Abort()
		c.Redirect(http.StatusSeeOther, "/reauth?next="+url.QueryEscape(back))
		return
	}
	err = web.CallerError(c, err)
	pr, known := web.ProblemFor(err)
	if !known {
		web.LoggerFrom(c).ErrorContext(c.Request.Context(), "portal request failed",
			"route", web.RouteLabel(c), "request_id", web.RequestID(c), "error", err.Error())
		p.errorPage(c, http.StatusInternalServerError, "Something went wrong on our side; it has been logged.")
		return
	}
	msg := pr.Detail
	if msg == "" {
		msg = pr.Title + "."
	}
	p.errorPage(c, pr.Status, msg)
}

// formError re-shows page name with the values the user typed (secrets left out by the
// caller), err's messages next to their fields, and err's status. A step-up is sent to the
// re-authentication page; an error that is not the client's gets the error page.
func (p *Portal) formError(c *gin.Context, name string, pg pageData, err error, back string) {
	f, ok := p.formProblem(c, err, back)
	if !ok {
		return
	}
	if errors.Is(f.err, domain.ErrInvalidCredentials) || errors.Is(f.err, command.ErrTicketInvalid) {
		f.msg = "That did not match. Check it and try again."
	}
	pg.Errors = f.fields
	if pg.Error == "" {
		pg.Error = f.msg
	}
	p.render(c, f.status, name, pg)
}

// formProblem is what a form shows of err: err as the caller's (web.CallerError), its
// fields' messages, its message and status, with Retry-After for a throttle. ok is false
// when it has sent the user elsewhere instead: a step-up to the re-authentication page, an
// error that is not the client's to the error page (back is where that leads).
func (p *Portal) formProblem(c *gin.Context, err error, back string) (formFault, bool) {
	if errors.Is(err, command.ErrReauthenticationRequired) {
		p.fail(c, err, back)
		return formFault{}, false
	}
	f := formFault{err: web.CallerError(c, err)}
	f.fields, f.msg, f.status = fieldErrors(f.err)
	if f.status >= 500 {
		p.fail(c, f.err, back)
		return formFault{}, false
	}
	if te := (*throttle.Error)(nil); errors.As(f.err, &te) {
		c.Header("Retry-After", itoa(te.RetryAfterSeconds()))
	}
	return f, true
}

// formFault is what formProblem makes of a form's error.
type formFault struct {
	err    error
	fields map[string]string
	msg    string
	status int
}

// safeNext returns next when it is a clean path on this site, else def (API.md,
// "Operations"): one leading "/", at most 512 bytes of printable ASCII without a backslash
// (a browser drops tabs and newlines and reads "\" as "/", so "/\t/evil" and "/\evil" are
// another host), a URL without scheme, host or user, and a path, as sent and once
// percent-decoded, with no "//" and no "." or ".." segment (browsers resolve those, and
// net/http's redirect cleans the path: "/a/../\evil" became "/\evil").
func safeNext(next, def string) string {
	if next == "" || len(next) > 512 || next[0] != '/' {
		return def
	}
	for i := 0; i < len(next); i++ {
		if b := next[i]; b <= ' ' || b >= 0x7f || b == '\\' {
			return def
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return def
	}
	raw := next
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if !cleanPath(raw) || !cleanPath(u.Path) {
		return def
	}
	return next
}

// cleanPath reports whether p is "/" and segments without "//", "." or "..", spaces,
// control characters or backslashes.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return strings.IndexFunc(p, func(r rune) bool {
		return r == '\\' || r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) < 0
}

// withQuery adds the query parameter kv ("done=x") to the site path to, before its
// fragment.
func withQuery(to, kv string) string {
	frag := ""
	if i := strings.IndexByte(to, '#'); i >= 0 {
		to, frag = to[:i], to[i:]
	}
	if strings.Contains(to, "?") {
		return to + "&" + kv + frag
	}
	return to + "?" + kv + frag
}

// portalTime shows a time for people: UTC, to the minute; "—" when zero.
func portalTime(t any) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case api.APITime:
		tt = time.Time(v)
	}
	if tt.IsZero() {
		return "—"
	}
	return tt.UTC().Format("2006-01-02 15:04 UTC")
}
