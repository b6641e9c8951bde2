package main

import (
	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
)

// Settings of the mail outbox (API.md "Running": --smtp-url, --mail-from).
const (
	optSMTPURL  = "smtp-url"
	optMailFrom = "mail-from"
)

var mailOptions = []cli.Option{
	{Flag: optSMTPURL, Env: "VIGIL_SMTP_URL", Meta: "URL", DefHelp: "none (mail as .eml files in <data-dir>/mail/)", Help: "outgoing mail: smtp://[user:pass@]host:port (STARTTLS when offered, ?tls=required to insist) or smtps://[user:pass@]host:port (TLS from the start)"},
	{Flag: optMailFrom, Env: "VIGIL_MAIL_FROM", Meta: "ADDRESS", DefHelp: "Vigil <no-reply@HOST> with the host of --public-url", Help: "the sender of the mail"},
}

func init() { serveOptions = append(serveOptions, mailOptions...) }

// validateMail checks the mail settings (the public URL is parsed already).
func validateMail(s cli.Settings, c Config) (app.MailConfig, error) {
	var mc app.MailConfig
	if u := s[optSMTPURL]; u.Value != "" {
		if _, err := mail.ParseSMTPURL(u.Value); err != nil {
			return mc, u.Errorf("%v", err)
		}
		mc.SMTPURL = u.Value
	}
	if f := s[optMailFrom]; f.Value != "" {
		if _, err := mail.ParseFrom(f.Value, c.PublicURL.String()); err != nil {
			return mc, f.Errorf("%v", err)
		}
		mc.From = f.Value
	}
	return mc, nil
}
