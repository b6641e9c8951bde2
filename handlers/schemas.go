package handlers

import (
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// apiTime is a time in API.md's format: RFC 3339 in UTC, null when zero.
type apiTime time.Time

// MarshalJSON writes the time as an RFC 3339 UTC string, or null.
func (t apiTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format(time.RFC3339Nano) + `"`), nil
}

// sessionJSON is API.md's whoami answer, also the `session` of sign-in answers.
type sessionJSON struct {
	AccountID       string   `json:"account_id"`
	ActorAccountID  string   `json:"actor_account_id,omitempty"`
	SessionID       string   `json:"session_id"`
	AAL             string   `json:"aal"`
	AMR             []string `json:"amr"`
	AuthenticatedAt apiTime  `json:"authenticated_at"`
	ExpiresAt       apiTime  `json:"expires_at"`
	Restricted      bool     `json:"restricted"`
}

func sessionView(sess domain.Session) sessionJSON {
	amr := sess.AMR
	if amr == nil {
		amr = []string{}
	}
	return sessionJSON{
		AccountID: sess.AccountID, ActorAccountID: sess.ActorAccountID, SessionID: sess.ID,
		AAL: sess.AAL, AMR: amr, AuthenticatedAt: apiTime(sess.AuthenticatedAt), ExpiresAt: apiTime(sess.ExpiresAt),
		Restricted: sess.Restricted,
	}
}

// defineAPISchemas adds the component schemas of the JSON API.
func (s *jsonAPI) defineAPISchemas() {
	factors := schema{"type": "string", "enum": []string{"pwd", "otp", "backup_code", "passkey"}}
	s.doc.define("Session", object(map[string]schema{
		"account_id":       {"type": "string", "description": "The account the session is for."},
		"actor_account_id": {"type": "string", "description": "The delegate acting for account_id; absent otherwise."},
		"session_id":       stringSchema(),
		"aal":              {"type": "string", "enum": []string{domain.AAL1, domain.AAL2}},
		"amr":              arrayOf(factors),
		"authenticated_at": dateTime(),
		"expires_at":       dateTime(),
		"restricted":       {"type": "boolean", "description": "The session may only enroll a second factor (enrollment_required)."},
	}, "account_id", "session_id", "aal", "amr", "authenticated_at", "expires_at", "restricted"))
	s.doc.define("LoginResult", schema{
		"type":        "object",
		"description": "authenticated and enrollment_required carry session_token and session (and set the vigil_session cookie); second_factor_required carries login_ticket and methods.",
		"properties": map[string]schema{
			"status": {"type": "string", "enum": []string{string(domain.StatusAuthenticated),
				string(domain.StatusSecondFactorRequired), string(domain.StatusEnrollmentRequired)}},
			"session_token": {"type": "string", "description": "The session's bearer token, shown once."},
			"session":       ref("Session"),
			"login_ticket":  {"type": "string", "description": "Single-use; valid 5 minutes and 5 tries."},
			"methods":       arrayOf(schema{"type": "string", "enum": []string{"totp", "backup_code", "passkey"}}),
		},
		"required": []string{"status"},
	})
	profileProps := map[string]schema{}
	for _, f := range profileFields {
		profileProps[f] = stringSchema()
	}
	profileProps["country"] = schema{"type": "string", "description": "ISO 3166-1 alpha-2 code, or empty."}
	profileProps["locale"] = schema{"type": "string", "description": "BCP 47 language tag, or empty."}
	profileProps["telephone"] = schema{"type": "string", "description": "+, digits, spaces, dots, hyphens and parentheses with 3 to 15 digits, or empty."}
	s.doc.define("Profile", object(profileProps, profileFields...))
	s.doc.define("Me", object(map[string]schema{
		"account_id": stringSchema(),
		"email":      {"type": "string", "format": "email"},
		"first_name": stringSchema(),
		"last_name":  stringSchema(),
		"profile":    ref("Profile"),
	}, "account_id", "email", "first_name", "last_name", "profile"))
	s.doc.define("SecurityState", object(map[string]schema{
		"password_changed_at":    nullableDateTime(),
		"two_factor_enabled":     boolSchema(),
		"two_factor_required_by": schema{"type": "array", "items": stringSchema(), "description": "Ids of the organisations whose policy requires 2FA."},
		"totp_devices": arrayOf(object(map[string]schema{
			"id":           stringSchema(),
			"name":         stringSchema(),
			"confirmed":    {"type": "boolean", "description": "false while pending (not yet confirmed with a code)."},
			"created_at":   dateTime(),
			"last_used_at": nullableDateTime(),
		}, "id", "name", "confirmed", "created_at", "last_used_at")),
		"passkeys": arrayOf(ref("Passkey")),
		"backup_codes": object(map[string]schema{
			"remaining":    integerSchema(),
			"generated_at": nullableDateTime(),
		}, "remaining", "generated_at"),
	}, "password_changed_at", "two_factor_enabled", "two_factor_required_by", "totp_devices", "passkeys", "backup_codes"))
	s.definePasskeySchemas()
}
