package portal

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The portal's recovery pages (API.md "Mail, recovery and account protection"): "Forgot
// your password?", and the pages the mailed links open (/verify-email, /reset-password,
// /not-me). A link's page reads the token from the query and shows what will happen; only
// its form, posted with the anonymous forms' CSRF token, runs the command. No page tells
// whether an email has an account.

// recoveryData is the data of the recovery pages: the link's token, and Done once the
// command ran.
type recoveryData struct {
	Token string
	Done  bool
}

// maxLinkToken bounds a token taken from the query or a form (credential.OpenLinkToken
// refuses longer ones too).
const maxLinkToken = 512

// linkToken returns the token of the query or form, or "" when it is missing or too long.
func linkToken(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > maxLinkToken {
		return ""
	}
	return v
}

// recoveryRoutes registers the recovery pages: anonymous, whether or not a session cookie
// comes along (a mailed link is followed in any browser).
func (p *Portal) recoveryRoutes() {
	e := p.engine
	e.GET("/forgot-password", p.forgotPasswordPage)
	e.POST("/forgot-password", p.anonForm, p.forgotPassword)
	e.GET("/verify-email", p.linkPage("verify_email", "Confirm your email address"))
	e.POST("/verify-email", p.anonForm, p.verifyEmail)
	e.GET("/reset-password", p.linkPage("reset_password", "Choose a new password"))
	e.POST("/reset-password", p.anonForm, p.resetPassword)
	e.GET("/not-me", p.linkPage("not_me", "This wasn't me"))
	e.POST("/not-me", p.anonForm, p.notMe)
}

func (p *Portal) forgotPasswordPage(c *gin.Context) {
	p.render(c, http.StatusOK, "forgot_password", pageData{Title: "Forgot your password?", Form: map[string]string{"email": ""}})
}

// forgotPassword asks for a reset link. Known email or not, the answer is the same page
// ("if the email has an account, a link is on its way"), after the same time.
func (p *Portal) forgotPassword(c *gin.Context) {
	email := strings.TrimSpace(c.PostForm("email"))
	pg := pageData{Title: "Forgot your password?", Form: map[string]string{"email": email}}
	err := web.Required("email", email)
	if err == nil {
		err = p.svc.RequestPasswordReset(c.Request.Context(), email, web.RequestMeta(c))
	}
	if err != nil {
		p.formError(c, "forgot_password", pg, err, "/forgot-password")
		return
	}
	pg.Data = recoveryData{Done: true}
	p.render(c, http.StatusOK, "forgot_password", pg)
}

// linkPage shows the page of a mailed link: what following it will do, and the form that
// does it. A link without a token gets the 400 error page.
func (p *Portal) linkPage(name, title string) gin.HandlerFunc {
	return func(c *gin.Context) {
		token := linkToken(c.Query("token"))
		if token == "" {
			p.errorPage(c, http.StatusBadRequest, "This link is incomplete: open the link from the mail again, in full.")
			return
		}
		p.render(c, http.StatusOK, name, pageData{Title: title, Data: recoveryData{Token: token}})
	}
}

// linkFailed shows why a link's form did not go through: an unusable token gets the 400
// page that says to ask for a new link.
func (p *Portal) linkFailed(c *gin.Context, err error, back string) {
	if errors.Is(err, command.ErrInvalidToken) {
		p.errorPage(c, http.StatusBadRequest, "This link is invalid, has expired or was already used. Ask for a new one.")
		return
	}
	p.fail(c, err, back)
}

func (p *Portal) verifyEmail(c *gin.Context) {
	token := linkToken(c.PostForm("token"))
	if token == "" {
		p.linkFailed(c, command.ErrInvalidToken, "/")
		return
	}
	pos, err := p.svc.VerifyEmail(c.Request.Context(), token, web.RequestMeta(c))
	if err != nil {
		p.linkFailed(c, err, "/")
		return
	}
	p.wait(c.Request.Context(), pos)
	p.render(c, http.StatusOK, "verify_email", pageData{Title: "Email verified", Data: recoveryData{Done: true}})
}

func (p *Portal) resetPassword(c *gin.Context) {
	token := linkToken(c.PostForm("token"))
	password := c.PostForm("new_password")
	pg := pageData{Title: "Choose a new password", Data: recoveryData{Token: token}}
	if token == "" {
		p.linkFailed(c, command.ErrInvalidToken, "/")
		return
	}
	if err := web.Required("new_password", password); err != nil {
		p.formError(c, "reset_password", pg, err, "/")
		return
	}
	res, err := p.svc.ConfirmPasswordReset(c.Request.Context(), token, password, web.RequestMeta(c))
	if errors.Is(err, command.ErrInvalidToken) {
		p.linkFailed(c, err, "/")
		return
	}
	if err != nil {
		p.formError(c, "reset_password", pg, web.WithPasswordField("new_password", err), "/")
		return
	}
	// Every session was signed out, this browser's too.
	p.ClearSessionCookie(c)
	p.done(c, res.Position, "/signin?done=password-reset")
}

func (p *Portal) notMe(c *gin.Context) {
	token := linkToken(c.PostForm("token"))
	if token == "" {
		p.linkFailed(c, command.ErrInvalidToken, "/")
		return
	}
	pos, err := p.svc.ReportNotMe(c.Request.Context(), token, web.RequestMeta(c))
	if err != nil {
		p.linkFailed(c, err, "/")
		return
	}
	p.ClearSessionCookie(c)
	p.wait(c.Request.Context(), pos)
	p.render(c, http.StatusOK, "not_me", pageData{Title: "Reported", Data: recoveryData{Done: true}})
}

// reportActivity is the activity page's "This wasn't me" on one of its entries: every other
// session is signed out and a reset link mailed (the JSON API's command).
func (p *Portal) reportActivity(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/activity")
		return
	}
	pos, err := p.api.ReportActivity(c.Request.Context(), web.CallerOf(c), id, web.RequestMeta(c))
	if err != nil {
		p.fail(c, err, "/activity")
		return
	}
	p.done(c, pos, "/activity?done=reported")
}

// requestVerification mails a new verification link for the caller's email (the Account
// page's button).
func (p *Portal) requestVerification(c *gin.Context) {
	pos, err := p.svc.RequestEmailVerification(c.Request.Context(), web.CallerOf(c), web.RequestMeta(c))
	if err != nil {
		p.fail(c, err, "/account")
		return
	}
	p.done(c, pos, "/account?done=verification-sent")
}
