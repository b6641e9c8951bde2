package handlers

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// totpRoutes: TOTP devices, backup codes and turning 2FA off (API.md "The account's own
// pages"; passkeys are in passkeys.go). Adding, showing and confirming a TOTP device are
// enrollment routes: a restricted session may use them.
func (s *jsonAPI) totpRoutes() []apiRoute {
	codes := schema{"type": "array", "items": stringSchema(), "minItems": 10, "maxItems": 10}
	return []apiRoute{
		{
			method: http.MethodPost, path: "/me/totp", access: signedIn, cap: domain.CapEnroll,
			op: operation{
				ID: "addTOTPDevice", Summary: "Add a TOTP device (pending until confirmed)",
				Description: "Needs a recent authentication. The secret is shown here and in the QR code only while the device is pending.",
				Request:     jsonBody(object(map[string]schema{"name": {"type": "string", "minLength": 1, "maxLength": 64}}, "name")),
				Responses: map[int]response{http.StatusCreated: {Description: "The pending device.",
					Schema: object(map[string]schema{
						"device_id":   stringSchema(),
						"secret":      {"type": "string", "description": "Base32, for typing into an authenticator app."},
						"otpauth_url": {"type": "string", "description": "otpauth://totp/... (SHA-1, 6 digits, 30 s)."},
					}, "device_id", "secret", "otpauth_url")}},
			},
			errors: []problemLine{{http.StatusForbidden, reauthText}},
			h:      s.addTOTPDevice,
		},
		{
			method: http.MethodGet, path: "/me/totp/:id/qr.png", access: signedIn, cap: domain.CapEnroll, read: true,
			op: operation{
				ID: "getTOTPQRCode", Summary: "The QR code of a pending TOTP device",
				Responses: map[int]response{http.StatusOK: {Description: "A PNG of the otpauth URL.", ContentType: "image/png",
					Schema: schema{"type": "string", "contentMediaType": "image/png"}}},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: the caller has no pending TOTP device with this id"}},
			h:      s.totpQRCode,
		},
		{
			method: http.MethodPost, path: "/me/totp/:id/confirm", access: signedIn, cap: domain.CapEnroll,
			op: operation{
				ID: "confirmTOTPDevice", Summary: "Confirm a pending TOTP device with a current code",
				Description: "The session becomes aal2 (and loses an enrollment restriction). When this turns 2FA on, the answer holds ten backup codes, shown once.",
				Request:     jsonBody(object(map[string]schema{"code": stringSchema()}, "code")),
				Responses: map[int]response{http.StatusOK: {Description: "Confirmed.",
					Schema: object(map[string]schema{"backup_codes": codes})}},
			},
			errors: []problemLine{{http.StatusForbidden, reauthText}, {http.StatusForbidden, wrongSecretText},
				{http.StatusNotFound, "not_found: the caller has no TOTP device with this id"},
				{http.StatusConflict, "conflict: the device is already confirmed"}},
			h: s.confirmTOTPDevice,
		},
		{
			method: http.MethodDelete, path: "/me/totp/:id", access: signedIn,
			op: operation{
				ID: "removeTOTPDevice", Summary: "Remove a TOTP device",
				Description: "Removing the last second factor turns 2FA off and drops the backup codes.",
				Responses:   map[int]response{http.StatusNoContent: noContent("Removed.")},
			},
			errors: []problemLine{{http.StatusForbidden, reauthText},
				{http.StatusNotFound, "not_found: the caller has no TOTP device with this id"},
				{http.StatusConflict, "conflict: an organisation requires 2FA and this is the last second factor"}},
			h: s.removeTOTPDevice,
		},
		{
			method: http.MethodPost, path: "/me/backup-codes", access: signedIn,
			op: operation{
				ID: "regenerateBackupCodes", Summary: "Replace the backup codes",
				Description: "Every earlier code stops working. Needs a recent authentication and 2FA on.",
				Responses: map[int]response{http.StatusCreated: {Description: "Ten new codes, shown once.",
					Schema: object(map[string]schema{"codes": codes}, "codes")}},
			},
			errors: []problemLine{{http.StatusForbidden, reauthText}, {http.StatusConflict, "conflict: two-factor authentication is off"}},
			h:      s.regenerateBackupCodes,
		},
		{
			method: http.MethodPost, path: "/me/two-factor/disable", access: signedIn,
			op: operation{
				ID: "disableTwoFactor", Summary: "Turn two-factor authentication off",
				Description: "Removes every TOTP device, passkey and backup code. Needs the password and a recent authentication.",
				Request:     jsonBody(object(map[string]schema{"password": stringSchema()}, "password")),
				Responses:   map[int]response{http.StatusNoContent: noContent("2FA is off.")},
			},
			errors: []problemLine{{http.StatusForbidden, reauthText}, {http.StatusForbidden, wrongSecretText},
				{http.StatusTooManyRequests, throttledText},
				{http.StatusConflict, "conflict: an organisation requires 2FA"}},
			h: s.disableTwoFactor,
		},
	}
}

type addTOTPRequest struct {
	Name string `json:"name"`
}

func (s *jsonAPI) addTOTPDevice(c *gin.Context) {
	var req addTOTPRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	en, err := s.svc.AddTOTPDevice(c.Request.Context(), callerOf(c), req.Name, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, en.Position)
	c.JSON(http.StatusCreated, gin.H{"device_id": en.DeviceID, "secret": en.Secret, "otpauth_url": en.OTPAuthURL})
}

func (s *jsonAPI) totpQRCode(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	png, err := s.svc.TOTPQRCode(c.Request.Context(), callerOf(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "image/png", png)
}

type confirmTOTPRequest struct {
	Code string `json:"code"`
}

func (s *jsonAPI) confirmTOTPDevice(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	var req confirmTOTPRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := required("code", req.Code); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.ConfirmTOTPDevice(c.Request.Context(), callerOf(c), id, req.Code, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	out := gin.H{}
	if res.BackupCodes != nil {
		out["backup_codes"] = res.BackupCodes
	}
	c.JSON(http.StatusOK, out)
}

func (s *jsonAPI) removeTOTPDevice(c *gin.Context) { s.removeOwned(c, s.svc.RemoveTOTPDevice) }

// removeOwned answers the DELETE of one of the caller's second factors (a TOTP device, a
// passkey): the path id goes to remove with the caller and the request meta; 204 with the
// position written.
func (s *jsonAPI) removeOwned(c *gin.Context, remove func(context.Context, domain.Session, string, domain.RequestMeta) (uint64, error)) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := remove(c.Request.Context(), callerOf(c), id, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *jsonAPI) regenerateBackupCodes(c *gin.Context) {
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	res, err := s.svc.RegenerateBackupCodes(c.Request.Context(), callerOf(c), rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, res.Position)
	c.JSON(http.StatusCreated, gin.H{"codes": res.Codes})
}

type disableTwoFactorRequest struct {
	Password string `json:"password"`
}

func (s *jsonAPI) disableTwoFactor(c *gin.Context) {
	var req disableTwoFactorRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if err := required("password", req.Password); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.meta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.DisableTwoFactor(c.Request.Context(), callerOf(c), req.Password, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}
