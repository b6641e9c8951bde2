package api

import (
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// apiTime is a time in API.md's format: RFC 3339 in UTC, null when zero.
type APITime time.Time

// MarshalJSON writes the time as an RFC 3339 UTC string, or null.
func (t APITime) MarshalJSON() ([]byte, error) {
	return t.appendJSON(make([]byte, 0, len(`"2006-01-02T15:04:05.999999999Z"`))), nil
}

// sessionJSON is API.md's whoami answer, also the `session` of sign-in answers.
type sessionJSON struct {
	AccountID       string   `json:"account_id"`
	ActorAccountID  string   `json:"actor_account_id,omitempty"`
	SessionID       string   `json:"session_id"`
	AAL             string   `json:"aal"`
	AMR             []string `json:"amr"`
	AuthenticatedAt APITime  `json:"authenticated_at"`
	ExpiresAt       APITime  `json:"expires_at"`
	Restricted      bool     `json:"restricted"`
}

func sessionView(sess domain.Session) sessionJSON {
	amr := sess.AMR
	if amr == nil {
		amr = []string{}
	}
	return sessionJSON{
		AccountID: sess.AccountID, ActorAccountID: sess.ActorAccountID, SessionID: sess.ID,
		AAL: sess.AAL, AMR: amr, AuthenticatedAt: APITime(sess.AuthenticatedAt), ExpiresAt: APITime(sess.ExpiresAt),
		Restricted: sess.Restricted,
	}
}

// defineAPISchemas adds the component schemas of the JSON API.
func (s *API) defineAPISchemas() {
	factors := web.Schema{"type": "string", "enum": []string{"pwd", "otp", "backup_code", "passkey"}}
	s.Doc.Define("Session", web.Object(map[string]web.Schema{
		"account_id":       {"type": "string", "description": "The account the session is for."},
		"actor_account_id": {"type": "string", "description": "The delegate acting for account_id; absent otherwise."},
		"session_id":       web.StringSchema(),
		"aal":              {"type": "string", "enum": []string{domain.AAL1, domain.AAL2}},
		"amr":              web.ArrayOf(factors),
		"authenticated_at": web.DateTime(),
		"expires_at":       web.DateTime(),
		"restricted":       {"type": "boolean", "description": "The session may only enroll a second factor (enrollment_required)."},
	}, "account_id", "session_id", "aal", "amr", "authenticated_at", "expires_at", "restricted"))
	s.Doc.Define("LoginResult", web.Schema{
		"type":        "object",
		"description": "authenticated and enrollment_required carry session_token and session (and set the vigil_session cookie); second_factor_required carries login_ticket and methods.",
		"properties": map[string]web.Schema{
			"status": {"type": "string", "enum": []string{string(command.StatusAuthenticated),
				string(command.StatusSecondFactorRequired), string(command.StatusEnrollmentRequired)}},
			"session_token": {"type": "string", "description": "The session's bearer token, shown once."},
			"session":       web.Ref("Session"),
			"login_ticket":  {"type": "string", "description": "Single-use; valid 5 minutes and 5 tries."},
			"methods":       web.ArrayOf(web.Schema{"type": "string", "enum": []string{"totp", "backup_code", "passkey"}}),
		},
		"required": []string{"status"},
	})
	profileProps := map[string]web.Schema{}
	for _, f := range profileFields {
		profileProps[f] = web.StringSchema()
	}
	profileProps["country"] = web.Schema{"type": "string", "description": "ISO 3166-1 alpha-2 code, or empty."}
	profileProps["locale"] = web.Schema{"type": "string", "description": "BCP 47 language tag, or empty."}
	profileProps["telephone"] = web.Schema{"type": "string", "description": "+, digits, spaces, dots, hyphens and parentheses with 3 to 15 digits, or empty."}
	s.Doc.Define("Profile", web.Object(profileProps, profileFields...))
	s.Doc.Define("Me", web.Object(map[string]web.Schema{
		"account_id": web.StringSchema(),
		"email":      {"type": "string", "format": "email"},
		"email_verified": {"type": "boolean",
			"description": "The current email's verification link was followed; false after an email change until the new one is."},
		"first_name": web.StringSchema(),
		"last_name":  web.StringSchema(),
		"profile":    web.Ref("Profile"),
	}, "account_id", "email", "email_verified", "first_name", "last_name", "profile"))
	s.Doc.Define("SecurityState", web.Object(map[string]web.Schema{
		"password_changed_at":    web.NullableDateTime(),
		"two_factor_enabled":     web.BoolSchema(),
		"two_factor_required_by": web.Schema{"type": "array", "items": web.StringSchema(), "description": "Ids of the organisations whose policy requires 2FA."},
		"totp_devices": web.ArrayOf(web.Object(map[string]web.Schema{
			"id":           web.StringSchema(),
			"name":         web.StringSchema(),
			"confirmed":    {"type": "boolean", "description": "false while pending (not yet confirmed with a code)."},
			"created_at":   web.DateTime(),
			"last_used_at": web.NullableDateTime(),
		}, "id", "name", "confirmed", "created_at", "last_used_at")),
		"passkeys": web.ArrayOf(web.Ref("Passkey")),
		"backup_codes": web.Object(map[string]web.Schema{
			"remaining":    web.IntegerSchema(),
			"generated_at": web.NullableDateTime(),
		}, "remaining", "generated_at"),
	}, "password_changed_at", "two_factor_enabled", "two_factor_required_by", "totp_devices", "passkeys", "backup_codes"))
	s.definePasskeySchemas()
}
