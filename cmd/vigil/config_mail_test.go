package main

import (
	"strings"
	"testing"
)

// TestMailSettings: --smtp-url and --mail-from (or their variables) reach the app's
// configuration; a bad value stops start-up with one line naming the flag and never the
// SMTP password.
func TestMailSettings(t *testing.T) {
	c, err := parseServe([]string{"--smtp-url", "smtp://vigil:s3cret@mail.example.com:587?tls=required", "--mail-from", "Security <security@example.com>"}, envMap())
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.SMTPURL != "smtp://vigil:s3cret@mail.example.com:587?tls=required" || c.Mail.From != "Security <security@example.com>" {
		t.Fatalf("mail settings %+v", c.Mail)
	}
	c, err = parseServe(nil, envMap("VIGIL_SMTP_URL", "smtps://mail.example.com"))
	if err != nil || c.Mail.SMTPURL != "smtps://mail.example.com" || c.Mail.From != "" {
		t.Fatalf("from the environment: %+v, %v", c.Mail, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtp-url", "http://vigil:hunter2@mail.example.com"}, "--smtp-url"},
		{[]string{"--smtp-url", "smtp://vigil:hunter2@mail.example.com:99999"}, "--smtp-url"},
		{[]string{"--smtp-url", "smtp://vigil:hunter2@mail.example.com?tls=sometimes"}, "--smtp-url"},
		{[]string{"--mail-from", "not an address"}, "--mail-from"},
	} {
		_, err := parseServe(tt.args, envMap())
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line naming %s without the password", tt.args, err, tt.want)
		}
	}
}
