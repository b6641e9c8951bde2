package portal

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The portal's Security page: password, authenticator apps (TOTP), backup codes, passkeys
// and turning 2FA off. Every change runs the domain command the JSON API runs; a change
// that needs a recent authentication sends the user to the step-up page first. Passkeys
// are registered by assets/portal.js through the JSON API (the WebAuthn ceremony needs the
// browser's JavaScript API).

// securityData is the Security page's data.
type securityData struct {
	State domain.SecurityState
	// Pending are TOTP devices added but not confirmed.
	Pending   []domain.TOTPDeviceInfo
	Confirmed []domain.TOTPDeviceInfo
}

func (p *Portal) securityPage(c *gin.Context) {
	p.renderSecurity(c, http.StatusOK, pageData{})
}

func (p *Portal) renderSecurity(c *gin.Context, status int, pg pageData) {
	st, err := p.svc.Security(c.Request.Context(), web.CallerOf(c).AccountID)
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	d := securityData{State: st}
	for _, t := range st.TOTPDevices {
		if t.Confirmed {
			d.Confirmed = append(d.Confirmed, t)
		} else {
			d.Pending = append(d.Pending, t)
		}
	}
	pg.Title, pg.Nav, pg.Data = "Security", "security", d
	if pg.Form == nil {
		pg.Form = map[string]string{}
	}
	p.render(c, status, "security", pg)
}

// securityError re-shows the Security page with err next to field (or on top).
func (p *Portal) securityError(c *gin.Context, err error, field string) {
	if errors.Is(err, command.ErrReauthenticationRequired) {
		p.fail(c, err, "/security")
		return
	}
	err = web.CallerError(c, err)
	fields, msg, status := fieldErrors(err)
	if status >= 500 {
		p.fail(c, err, "/security")
		return
	}
	if errors.Is(err, domain.ErrInvalidCredentials) && field != "" {
		fields[field] = "That is not right."
		msg = "That did not match."
	}
	if len(fields) == 0 && field != "" {
		fields[field] = msg
	}
	p.renderSecurity(c, status, pageData{Error: msg, Errors: fields})
}

func (p *Portal) changePassword(c *gin.Context) {
	cur, nw := c.PostForm("current_password"), c.PostForm("new_password")
	if err := errors.Join(web.Required("current_password", cur), web.Required("new_password", nw)); err != nil {
		p.securityError(c, err, "")
		return
	}
	res, err := p.svc.ChangePassword(c.Request.Context(), web.CallerOf(c), cur, nw, c.PostForm("sign_out_other_sessions") == "on", web.RequestMeta(c))
	if err != nil {
		p.securityError(c, web.WithPasswordField("new_password", err), "current_password")
		return
	}
	p.done(c, res.Position, "/security?done=password")
}

func (p *Portal) addTOTP(c *gin.Context) {
	name := strings.TrimSpace(c.PostForm("name"))
	back := "/security"
	if web.CallerOf(c).Restricted {
		back = "/enroll"
	}
	en, err := p.svc.AddTOTPDevice(c.Request.Context(), web.CallerOf(c), name, web.RequestMeta(c))
	if err != nil {
		if web.CallerOf(c).Restricted {
			p.fail(c, err, back)
			return
		}
		p.securityError(c, err, "name")
		return
	}
	p.done(c, en.Position, "/security/totp/"+url.PathEscape(en.DeviceID))
}

// totpSetupData is the authenticator set-up page's data.
type totpSetupData struct {
	ID     string
	Name   string
	Secret string
	// SecretGroups is Secret in groups of four, for reading aloud and typing.
	SecretGroups string
}

func (p *Portal) totpSetupPage(c *gin.Context) { p.renderTOTPSetup(c, http.StatusOK, pageData{}) }

func (p *Portal) renderTOTPSetup(c *gin.Context, status int, pg pageData) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	ctx := c.Request.Context()
	secret, _, err := p.svc.PendingTOTPKey(ctx, web.CallerOf(c), id)
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	d := totpSetupData{ID: id, Secret: secret}
	if st, err := p.svc.Security(ctx, web.CallerOf(c).AccountID); err == nil {
		for _, t := range st.TOTPDevices {
			if t.ID == id {
				d.Name = t.Name
			}
		}
	}
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	d.SecretGroups = strings.Join(groups, " ")
	pg.Title, pg.Nav, pg.Data = "Set up an authenticator app", "security", d
	p.render(c, status, "totp_setup", pg)
}

// backupCodesData is the page that shows new backup codes, once.
type backupCodesData struct {
	Codes []string
	// Download is a data: URL of the codes as a text file; the page is the only place the
	// codes are ever served (no route serves them again).
	Download template.URL
	Why      string
}

// showCodes answers with the page of new backup codes (not a redirect: they are shown once).
func (p *Portal) showCodes(c *gin.Context, codes []string, why string) {
	text := "Vigil backup codes\r\nEach code works once. Keep them somewhere safe.\r\n\r\n" + strings.Join(codes, "\r\n") + "\r\n"
	d := backupCodesData{Codes: codes, Why: why,
		Download: template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))}
	p.render(c, http.StatusOK, "backup_codes", pageData{Title: "Your backup codes", Nav: "security", Data: d})
}

func (p *Portal) confirmTOTP(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	code := strings.TrimSpace(c.PostForm("code"))
	if code == "" {
		p.renderTOTPSetup(c, http.StatusBadRequest, pageData{Error: "Enter the code the app shows.",
			Errors: map[string]string{"code": "Enter the six-digit code the app shows."}})
		return
	}
	res, err := p.svc.ConfirmTOTPDevice(c.Request.Context(), web.CallerOf(c), id, code, web.RequestMeta(c))
	if err != nil {
		if errors.Is(err, domain.ErrInvalidCredentials) {
			p.renderTOTPSetup(c, http.StatusForbidden, pageData{Error: "That code did not match.",
				Errors: map[string]string{"code": "That code is wrong or has expired; enter the current one."}})
			return
		}
		p.fail(c, err, "/security/totp/"+url.PathEscape(id))
		return
	}
	p.wait(c.Request.Context(), res.Position)
	if res.BackupCodes != nil {
		p.showCodes(c, res.BackupCodes, "Two-factor authentication is on. If you lose your authenticator app, sign in with one of these codes.")
		return
	}
	c.Redirect(http.StatusSeeOther, "/security?done=totp-added")
}

func (p *Portal) removeTOTP(c *gin.Context) {
	p.removeFactor(c, p.svc.RemoveTOTPDevice, "totp-removed")
}

func (p *Portal) removePasskey(c *gin.Context) {
	p.removeFactor(c, p.svc.RemovePasskey, "passkey-removed")
}

// removeFactor runs remove on the path's id and goes back to the Security page.
func (p *Portal) removeFactor(c *gin.Context, remove func(ctx context.Context, caller domain.Session, id string, rm command.RequestMeta) (uint64, error), done string) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	pos, err := remove(c.Request.Context(), web.CallerOf(c), id, web.RequestMeta(c))
	if err != nil {
		p.securityError(c, err, "")
		return
	}
	p.done(c, pos, "/security?done="+done)
}

func (p *Portal) regenerateCodes(c *gin.Context) {
	res, err := p.svc.RegenerateBackupCodes(c.Request.Context(), web.CallerOf(c), web.RequestMeta(c))
	if err != nil {
		p.securityError(c, err, "")
		return
	}
	p.wait(c.Request.Context(), res.Position)
	p.showCodes(c, res.BackupCodes, "Your earlier backup codes no longer work.")
}

func (p *Portal) renamePasskey(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/security")
		return
	}
	pos, err := p.svc.RenamePasskey(c.Request.Context(), web.CallerOf(c), id, strings.TrimSpace(c.PostForm("name")), web.RequestMeta(c))
	if err != nil {
		fields, msg, status := fieldErrors(err)
		if status >= 500 || errors.Is(err, command.ErrReauthenticationRequired) {
			p.fail(c, err, "/security")
			return
		}
		pg := pageData{Error: msg, Errors: map[string]string{}}
		for _, v := range fields {
			pg.Errors["passkey-"+id] = v
		}
		if len(fields) == 0 {
			pg.Errors["passkey-"+id] = msg
		}
		p.renderSecurity(c, status, pg)
		return
	}
	p.done(c, pos, "/security?done=passkey-renamed")
}

func (p *Portal) disableTwoFactor(c *gin.Context) {
	pw := c.PostForm("password")
	if pw == "" {
		p.securityError(c, &domain.ValidationError{Field: "disable_password", Reason: "Enter your password."}, "")
		return
	}
	pos, err := p.svc.DisableTwoFactor(c.Request.Context(), web.CallerOf(c), pw, web.RequestMeta(c))
	if err != nil {
		p.securityError(c, err, "disable_password")
		return
	}
	p.done(c, pos, "/security?done=2fa-off")
}
