package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/web"
)

// totpRoutes: TOTP devices, backup codes and turning 2FA off (API.md "The account's own
// pages"; passkeys are in passkeys.go). Adding, showing and confirming a TOTP device are
// enrollment routes: a restricted session may use them.
func (s *API) totpRoutes() []web.Route {
	codes := web.Schema{"type": "array", "items": web.StringSchema(), "minItems": 10, "maxItems": 10}
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/me/totp", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "addTOTPDevice", Summary: "Add a TOTP device (pending until confirmed)",
				Description: "Needs a recent authentication. The secret is shown here and in the QR code only while the device is pending.",
				Request:     web.JsonBody(web.Object(map[string]web.Schema{"name": {"type": "string", "minLength": 1, "maxLength": 64}}, "name")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The pending device.",
					Schema: web.Object(map[string]web.Schema{
						"device_id":   web.StringSchema(),
						"secret":      {"type": "string", "description": "Base32, for typing into an authenticator app."},
						"otpauth_url": {"type": "string", "description": "otpauth://totp/... (SHA-1, 6 digits, 30 s)."},
					}, "device_id", "secret", "otpauth_url")}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}},
			Handler: s.addTOTPDevice,
		},
		{
			Method: http.MethodGet, Path: "/me/totp/:id/qr.png", Access: web.AccessSignedIn, Cap: domain.CapEnroll, Read: true,
			Op: web.Operation{
				ID: "getTOTPQRCode", Summary: "The QR code of a pending TOTP device",
				Responses: map[int]web.Response{http.StatusOK: {Description: "A PNG of the otpauth URL.", ContentType: "image/png",
					Schema: web.Schema{"type": "string", "contentMediaType": "image/png"}}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: the caller has no pending TOTP device with this id"}},
			Handler: s.totpQRCode,
		},
		{
			Method: http.MethodPost, Path: "/me/totp/:id/confirm", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "confirmTOTPDevice", Summary: "Confirm a pending TOTP device with a current code",
				Description: "The session becomes aal2 (and loses an enrollment restriction). When this turns 2FA on, the answer holds ten backup codes, shown once.",
				Request:     web.JsonBody(web.Object(map[string]web.Schema{"code": web.StringSchema()}, "code")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "Confirmed.",
					Schema: web.Object(map[string]web.Schema{"backup_codes": codes})}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}, {Status: http.StatusForbidden, Text: web.WrongSecretText},
				{Status: http.StatusNotFound, Text: "not_found: the caller has no TOTP device with this id"},
				{Status: http.StatusConflict, Text: "conflict: the device is already confirmed"}},
			Handler: s.confirmTOTPDevice,
		},
		{
			Method: http.MethodDelete, Path: "/me/totp/:id", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "removeTOTPDevice", Summary: "Remove a TOTP device",
				Description: "Removing the last second factor turns 2FA off and drops the backup codes.",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Removed.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusNotFound, Text: "not_found: the caller has no TOTP device with this id"},
				{Status: http.StatusConflict, Text: "conflict: an organisation requires 2FA and this is the last second factor"}},
			Handler: s.removeTOTPDevice,
		},
		{
			Method: http.MethodPost, Path: "/me/backup-codes", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "regenerateBackupCodes", Summary: "Replace the backup codes",
				Description: "Every earlier code stops working. Needs a recent authentication and 2FA on.",
				Responses: map[int]web.Response{http.StatusCreated: {Description: "Ten new codes, shown once.",
					Schema: web.Object(map[string]web.Schema{"codes": codes}, "codes")}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}, {Status: http.StatusConflict, Text: "conflict: two-factor authentication is off"}},
			Handler: s.regenerateBackupCodes,
		},
		{
			Method: http.MethodPost, Path: "/me/two-factor/disable", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "disableTwoFactor", Summary: "Turn two-factor authentication off",
				Description: "Removes every TOTP device, passkey and backup code. Needs the password and a recent authentication.",
				Request:     web.JsonBody(web.Object(map[string]web.Schema{"password": web.StringSchema()}, "password")),
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("2FA is off.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText}, {Status: http.StatusForbidden, Text: web.WrongSecretText},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText},
				{Status: http.StatusConflict, Text: "conflict: an organisation requires 2FA"}},
			Handler: s.disableTwoFactor,
		},
	}
}

type addTOTPRequest struct {
	Name string `json:"name"`
}

func (s *API) addTOTPDevice(c *gin.Context) {
	var req addTOTPRequest
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	en, err := s.svc.AddTOTPDevice(c.Request.Context(), web.CallerOf(c), req.Name, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, en.Position)
	c.JSON(http.StatusCreated, gin.H{"device_id": en.DeviceID, "secret": en.Secret, "otpauth_url": en.OTPAuthURL})
}

func (s *API) totpQRCode(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	png, err := s.svc.TOTPQRCode(c.Request.Context(), web.CallerOf(c), id)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	c.Data(http.StatusOK, "image/png", png)
}

type confirmTOTPRequest struct {
	Code string `json:"code"`
}

func (s *API) confirmTOTPDevice(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	var req confirmTOTPRequest
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if err := web.Required("code", req.Code); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	res, err := s.svc.ConfirmTOTPDevice(c.Request.Context(), web.CallerOf(c), id, req.Code, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, res.Position)
	out := gin.H{}
	if res.BackupCodes != nil {
		out["backup_codes"] = res.BackupCodes
	}
	c.JSON(http.StatusOK, out)
}

func (s *API) removeTOTPDevice(c *gin.Context) { s.removeOwned(c, s.svc.RemoveTOTPDevice) }

// removeOwned answers the DELETE of one of the caller's second factors (a TOTP device, a
// passkey): the path id goes to remove with the caller and the request meta; 204 with the
// position written.
func (s *API) removeOwned(c *gin.Context, remove func(context.Context, domain.Session, string, domain.RequestMeta) (uint64, error)) {
	id, err := web.PathID(c, "id")
	if err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	pos, err := remove(c.Request.Context(), web.CallerOf(c), id, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *API) regenerateBackupCodes(c *gin.Context) {
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	res, err := s.svc.RegenerateBackupCodes(c.Request.Context(), web.CallerOf(c), rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"codes": res.Codes})
}

type disableTwoFactorRequest struct {
	Password string `json:"password"`
}

func (s *API) disableTwoFactor(c *gin.Context) {
	var req disableTwoFactorRequest
	if err := web.BindJSON(c, &req); err != nil {
		web.WriteError(c, err)
		return
	}
	if err := web.Required("password", req.Password); err != nil {
		web.WriteError(c, err)
		return
	}
	rm, err := s.Meta(c)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	pos, err := s.svc.DisableTwoFactor(c.Request.Context(), web.CallerOf(c), req.Password, rm)
	if err != nil {
		web.WriteError(c, err)
		return
	}
	s.SetPosition(c, pos)
	c.Status(http.StatusNoContent)
}
