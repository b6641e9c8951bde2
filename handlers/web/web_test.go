package web

import (
	"strings"
	"testing"
)

func TestOpenAPIPath(t *testing.T) {
	for in, want := range map[string]string{
		"/healthz":                          "/healthz",
		"/api/v1/me/totp/:id/qr.png":        "/api/v1/me/totp/{id}/qr.png",
		"/api/v1/orgs/:id/members/:account": "/api/v1/orgs/{id}/members/{account}",
		"/assets/*path":                     "/assets/{path}",
	} {
		if got, _ := OpenAPIPath(in); got != want {
			t.Errorf("openAPIPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCamelWords(t *testing.T) {
	for in, want := range map[string]string{
		"getTOTPQRCode":      "get TOTPQR Code",
		"listMySessions":     "list My Sessions",
		"LoginResult":        "Login Result",
		"Me":                 "Me",
		"getCSRFToken":       "get CSRF Token",
		"Login200JSONResult": "Login200JSON Result",
	} {
		if got := strings.Join(camelWords(in), " "); got != want {
			t.Errorf("camelWords(%q) = %q, want %q", in, got, want)
		}
	}
}
