package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
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
			Handler: web.Command(s.Core, web.MetaCaller, s.addTOTPDevice),
		},
		{
			Method: http.MethodGet, Path: "/me/totp/:id/qr.png", Access: web.AccessSignedIn, Cap: domain.CapEnroll, Read: true,
			Op: web.Operation{
				ID: "getTOTPQRCode", Summary: "The QR code of a pending TOTP device",
				Responses: map[int]web.Response{http.StatusOK: {Description: "A PNG of the otpauth URL.", ContentType: "image/png",
					Schema: web.Schema{"type": "string", "contentMediaType": "image/png"}}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: the caller has no pending TOTP device with this id"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.totpQRCode),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.confirmTOTPDevice),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.removeTOTPDevice),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.regenerateBackupCodes),
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
			Handler: web.Command(s.Core, web.MetaCaller, s.disableTwoFactor),
		},
	}
}

type addTOTPRequest struct {
	Name string `json:"name"`
}

func (s *API) addTOTPDevice(r *web.Call[addTOTPRequest]) (web.Reply, error) {
	en, err := s.svc.AddTOTPDevice(r.Ctx, r.Caller, r.In.Name, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"device_id": en.DeviceID, "secret": en.Secret, "otpauth_url": en.OTPAuthURL}, en.Position), nil
}

func (s *API) totpQRCode(r *web.Call[web.NoBody]) (web.Reply, error) {
	png, err := s.svc.TOTPQRCode(r.Ctx, r.Caller, r.ID)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Raw("image/png", png), nil
}

type confirmTOTPRequest struct {
	Code string `json:"code"`
}

// Check refuses a request without its code.
func (r confirmTOTPRequest) Check() error { return web.Required("code", r.Code) }

func (s *API) confirmTOTPDevice(r *web.Call[confirmTOTPRequest]) (web.Reply, error) {
	res, err := s.svc.ConfirmTOTPDevice(r.Ctx, r.Caller, r.ID, r.In.Code, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	out := gin.H{}
	if res.BackupCodes != nil {
		out["backup_codes"] = res.BackupCodes
	}
	return web.JSON(http.StatusOK, out, res.Position), nil
}

func (s *API) removeTOTPDevice(r *web.Call[web.NoBody]) (web.Reply, error) {
	return s.removeOwned(r, s.svc.RemoveTOTPDevice)
}

// removeOwned answers the DELETE of one of the caller's second factors (a TOTP device, a
// passkey): the path id goes to remove with the caller and the request meta; 204 with the
// position written.
func (s *API) removeOwned(r *web.Call[web.NoBody], remove func(context.Context, domain.Session, string, command.RequestMeta) (uint64, error)) (web.Reply, error) {
	pos, err := remove(r.Ctx, r.Caller, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *API) regenerateBackupCodes(r *web.Call[web.NoBody]) (web.Reply, error) {
	res, err := s.svc.RegenerateBackupCodes(r.Ctx, r.Caller, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"codes": res.BackupCodes}, res.Position), nil
}

type disableTwoFactorRequest struct {
	Password string `json:"password"`
}

// Check refuses a request without the password.
func (r disableTwoFactorRequest) Check() error { return web.Required("password", r.Password) }

func (s *API) disableTwoFactor(r *web.Call[disableTwoFactorRequest]) (web.Reply, error) {
	pos, err := s.svc.DisableTwoFactor(r.Ctx, r.Caller, r.In.Password, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}
