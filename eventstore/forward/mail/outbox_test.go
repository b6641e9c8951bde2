package mail_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

var linkRE = regexp.MustCompile(`https://id\.example\.com/(verify-email|reset-password|not-me)\?token=([A-Za-z0-9_.\-]+)`)

// links returns the links of a body by page ("not-me" -> token).
func links(body string) map[string]string {
	out := map[string]string{}
	for _, m := range linkRE.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// trigger is one event that mails the account holder.
type trigger struct {
	name string
	kind string
	// append appends the triggering event(s) for account acct (email addr) and returns the
	// triggering envelope, the address the mail goes to, the link expected beside not-me
	// (purpose and ref) and the not-me ref ("" for none).
	append func(f *fixture, acct string) (ev domain.Envelope, to, purpose, ref, notMeRef string)
	// text must appear in the text body.
	text []string
}

func triggers() []trigger {
	now := func() time.Time { return time.Now().UTC() }
	plain := func(kind string, e func() domain.Event, text ...string) func(*fixture, string) (domain.Envelope, string, string, string, string) {
		return func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
			ev := f.appendTo(domain.AccountStream(acct), md(acct), e())
			return ev, "", "", "", ev.ID
		}
	}
	return []trigger{
		{name: "EmailVerificationRequested", kind: mail.KindVerifyEmail,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				req, at := domain.NewID(), now()
				tok := f.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkVerifyEmail, AccountID: acct, Ref: req, IssuedAt: at})
				ev := f.appendTo(domain.AccountStream(acct), md(acct), domain.EmailVerificationRequested{RequestID: req,
					Email: "ada@example.com", TokenHash: credential.HashLinkToken(tok), At: at})
				return ev, "ada@example.com", credential.LinkVerifyEmail, req, ""
			}, text: []string{"ada@example.com", "24 hours"}},
		{name: "PasswordResetRequested", kind: mail.KindPasswordReset,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				req, at := domain.NewID(), now()
				tok := f.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: acct, Ref: req, IssuedAt: at})
				ev := f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordResetRequested{RequestID: req,
					TokenHash: credential.HashLinkToken(tok), At: at})
				return ev, "", credential.LinkResetPassword, req, ""
			}, text: []string{"30 minutes", "London, United Kingdom", "Firefox 133 on Linux", ipLondon}},
		{name: "SignInRiskDetected", kind: mail.KindSignInRisk,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				login := domain.NewID()
				m := md(acct)
				m.IP = ipSaoPaul
				ev := f.appendTo(domain.AccountStream(acct), m, domain.SignInRiskDetected{SessionID: domain.NewID(), LoginEventID: login,
					Signals: []string{domain.SignalNewDevice, domain.SignalNewCountry, domain.SignalImpossibleTravel},
					Device:  "Firefox 133 on Linux", Country: "BR", PreviousCountry: "GB", SpeedKMH: 9400, At: now()})
				return ev, "", "", "", login
			}, text: []string{"São Paulo, Brazil", ipSaoPaul, "not seen on your account before: Brazil", "(United Kingdom)", "9400 km/h", "device not seen on your account before: Firefox 133 on Linux"}},
		{name: "PasswordChanged", kind: mail.KindPasswordChanged,
			append: plain(mail.KindPasswordChanged, func() domain.Event { return domain.PasswordChanged{PasswordHash: "$argon2id$y", At: now()} }),
			text:   []string{"password of your Vigil account was changed"}},
		{name: "PasswordResetCompleted", kind: mail.KindPasswordResetCompleted,
			append: plain("", func() domain.Event {
				return domain.PasswordResetCompleted{RequestID: domain.NewID(), PasswordHash: "$argon2id$z", At: now()}
			}), text: []string{"was reset"}},
		{name: "EmailChanged", kind: mail.KindEmailChanged,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				ev := f.appendTo(domain.AccountStream(acct), md(acct), domain.EmailChanged{OldEmail: "ada@example.com", NewEmail: "ada@new.example", At: now()})
				return ev, "ada@example.com", "", "", ev.ID
			}, text: []string{"from ada@example.com to ada@new.example"}},
		{name: "TwoFactorDisabled", kind: mail.KindTwoFactorDisabled,
			append: plain("", func() domain.Event { return domain.TwoFactorDisabled{Reason: "user", At: now()} }),
			text:   []string{"only the password"}},
		{name: "TOTPDeviceConfirmed", kind: mail.KindTOTPAdded,
			append: plain("", func() domain.Event { return domain.TOTPDeviceConfirmed{DeviceID: "d1", Step: 1, At: now()} }),
			text:   []string{"authenticator app was added"}},
		{name: "TOTPDeviceRemoved", kind: mail.KindTOTPRemoved,
			append: plain("", func() domain.Event { return domain.TOTPDeviceRemoved{DeviceID: "d1", At: now()} }),
			text:   []string{"authenticator app was removed"}},
		{name: "PasskeyRegistered", kind: mail.KindPasskeyAdded,
			append: plain("", func() domain.Event {
				return domain.PasskeyRegistered{PasskeyID: "p1", Name: "YubiKey 5", CredentialID: []byte{1}, PublicKey: []byte{2}, At: now()}
			}), text: []string{"“YubiKey 5”"}},
		{name: "PasskeyRemoved", kind: mail.KindPasskeyRemoved,
			append: plain("", func() domain.Event { return domain.PasskeyRemoved{PasskeyID: "p1", At: now()} }),
			text:   []string{"passkey was removed"}},
		{name: "BackupCodesGenerated", kind: mail.KindBackupCodesGenerated,
			append: plain("", func() domain.Event {
				return domain.BackupCodesGenerated{SetID: "s1", CodeHashes: []string{"h"}, At: now()}
			}), text: []string{"New backup codes"}},
		{name: "DelegationGranted", kind: mail.KindDelegationGranted,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				del := f.account("grace@example.com", "Grace", "")
				id := domain.NewID()
				ev := f.appendTo(domain.DelegationStream(id), md(acct), domain.DelegationGranted{DelegationID: id, OwnerAccountID: acct,
					DelegateAccountID: del, ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), At: now()})
				return ev, "", "", "", ev.ID
			}, text: []string{"Grace Tester <grace@example.com> can now act", "2 January 2030"}},
		{name: "SessionSignedOut by an admin", kind: mail.KindSignedOutByAdmin,
			append: func(f *fixture, acct string) (domain.Envelope, string, string, string, string) {
				sid := domain.NewID()
				user := md(acct)
				user.IP = ipSaoPaul
				f.appendTo(domain.SessionStream(sid), user,
					domain.LoginSucceeded{AccountID: acct, SessionID: sid, Method: "password", AMR: []string{"pwd"}, AAL: "aal1", At: now()},
					domain.SessionStarted{SessionID: sid, AccountID: acct, TokenHash: "x", AMR: []string{"pwd"}, AAL: "aal1", StartedAt: now(), ExpiresAt: now().Add(time.Hour)})
				admin := domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: acct, IP: "10.9.9.9", UserAgent: "curl/8.5.0"}
				ev := f.appendTo(domain.SessionStream(sid), admin, domain.SessionSignedOut{Reason: reasons.SignOutByAdmin, At: now()})
				return ev, "", "", "", ev.ID
			}, text: []string{"administrator signed out", "São Paulo, Brazil", ipSaoPaul}},
	}
}

// TestEveryTriggerMailsTheRightAddressWithWorkingLinks: each triggering event, appended to
// a real sealed log as its command does, gives one message to the right address, naming
// time, place, device and IP, whose links carry tokens that open with the server key for the
// right purpose and claims.
func TestEveryTriggerMailsTheRightAddressWithWorkingLinks(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	for i, tr := range triggers() {
		t.Run(tr.name, func(t *testing.T) {
			f.t = t
			acct := f.account("ada@example.com", "Ada", "")
			ev, to, purpose, ref, notMeRef := tr.append(f, acct)
			if to == "" {
				to = "ada@example.com"
			}
			msgs := f.waitMessages(i + 1)
			m := msgs[i]
			if got := m.Header.Get(mail.HeaderKind); got != tr.kind {
				t.Fatalf("kind %q, want %q", got, tr.kind)
			}
			if got := m.Header.Get(mail.HeaderEvent); got != ev.ID {
				t.Fatalf("event header %q, want %s", got, ev.ID)
			}
			if len(m.To) != 1 || m.To[0] != to {
				t.Fatalf("sent to %v, want %s", m.To, to)
			}
			if m.From != "no-reply@id.example.com" {
				t.Fatalf("envelope from %q", m.From)
			}
			if !strings.Contains(m.Header.Get("To"), to) || m.Header.Get("Subject") == "" {
				t.Fatalf("header To %q, Subject %q", m.Header.Get("To"), m.Header.Get("Subject"))
			}
			for _, want := range tr.text {
				if !strings.Contains(m.Text, want) {
					t.Errorf("text body lacks %q:\n%s", want, m.Text)
				}
			}
			if !strings.Contains(m.HTML, "<html") || !strings.Contains(m.Text, "Hello Ada,") {
				t.Fatalf("bodies: text %q, html %d bytes", m.Text, len(m.HTML))
			}
			text, html := links(m.Text), links(m.HTML)
			if len(text) != len(html) {
				t.Fatalf("links differ between text %v and HTML %v", text, html)
			}
			for page, tok := range text {
				if html[page] != tok {
					t.Fatalf("%s link differs between text and HTML", page)
				}
			}
			if purpose != "" {
				c, err := f.keyring.OpenLinkToken(purpose, text[purpose])
				if err != nil || c.AccountID != acct || c.Ref != ref {
					t.Fatalf("%s link: claims %+v, %v; want account %s ref %s", purpose, c, err, acct, ref)
				}
			}
			if notMeRef == "" {
				if _, ok := text[credential.LinkNotMe]; ok {
					t.Fatalf("a %s mail carries a not-me link", tr.kind)
				}
				return
			}
			c, err := f.keyring.OpenLinkToken(credential.LinkNotMe, text[credential.LinkNotMe])
			if err != nil || c.AccountID != acct || c.Ref != notMeRef || !c.IssuedAt.Equal(ev.RecordedAt.Truncate(time.Second)) {
				t.Fatalf("not-me link: claims %+v, %v; want account %s ref %s issued %v", c, err, acct, notMeRef, ev.RecordedAt)
			}
			if _, err := f.keyring.OpenLinkToken(credential.LinkResetPassword, text[credential.LinkNotMe]); err == nil {
				t.Fatal("the not-me token opens for another purpose")
			}
			for _, label := range []string{"When: ", "Where: ", "Device: ", "IP address: ", "This wasn't me"} {
				if !strings.Contains(m.Text, label) {
					t.Fatalf("security mail lacks %q:\n%s", label, m.Text)
				}
			}
			if !strings.Contains(m.Text, ev.RecordedAt.UTC().Format("15:04:05")+" UTC") {
				t.Fatalf("the time of the event is not named:\n%s", m.Text)
			}
		})
	}
	f.t = t
	// The outbox counts a mail once its SMTP transaction has ended, which can be just after
	// the server handed the last message over: wait for the count, then check it is exact.
	want := float64(len(triggers()))
	testwait.Until(t, 10*time.Second, "vigil_mail_sent_total to count every mail", func() (bool, string) {
		got := counter(t, f.reg, "vigil_mail_sent_total")
		return got >= want, fmt.Sprint(got)
	})
	if got := counter(t, f.reg, "vigil_mail_sent_total"); got != want {
		t.Fatalf("vigil_mail_sent_total %v, want %v", got, want)
	}
}

// TestNoMailForOtherEvents: events that do not concern the holder's security (a sign-in
// without signals, a logout, a profile change), an erased account and a verification
// request for an address the account no longer has get no mail.
func TestNoMailForOtherEvents(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	acct := f.account("ada@example.com", "Ada", "")
	sid := domain.NewID()
	now := time.Now().UTC()
	f.appendTo(domain.SessionStream(sid), md(acct),
		domain.LoginSucceeded{AccountID: acct, SessionID: sid, Method: "password", AMR: []string{"pwd"}, AAL: "aal1", At: now},
		domain.SessionStarted{SessionID: sid, AccountID: acct, TokenHash: "x", AMR: []string{"pwd"}, AAL: "aal1", StartedAt: now, ExpiresAt: now.Add(time.Hour)},
		domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: now})
	f.appendTo(domain.AccountStream(acct), md(acct), domain.NameChanged{FirstName: "Ada", LastName: "L", At: now})
	// A verification of an address the account left since.
	req := domain.NewID()
	tok := f.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkVerifyEmail, AccountID: acct, Ref: req, IssuedAt: now})
	f.appendTo(domain.AccountStream(acct), md(acct), domain.EmailVerificationRequested{RequestID: req, Email: "old@example.com", TokenHash: credential.HashLinkToken(tok), At: now})
	// An erased account's password change.
	gone := f.account("gone@example.com", "Gone", "")
	f.appendTo(domain.AccountStream(gone), md(gone), domain.AccountErased{At: now}, domain.PasswordChanged{PasswordHash: "h", At: now})
	// A forged reset request (its hash is not the server key's token) mails nothing.
	f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordResetRequested{RequestID: domain.NewID(), TokenHash: strings.Repeat("0", 64), At: now})
	// The first authenticator app issues the first backup codes in the same decision: one
	// mail (the app's), not two.
	f.appendTo(domain.AccountStream(gone), md(gone), domain.TOTPDeviceConfirmed{DeviceID: "d", Step: 1, At: now}, domain.BackupCodesGenerated{SetID: "s", CodeHashes: []string{"h"}, At: now})
	enrolled := f.account("enrolled@example.com", "E", "")
	f.appendTo(domain.AccountStream(enrolled), md(enrolled), domain.TOTPDeviceConfirmed{DeviceID: "d", Step: 1, At: now}, domain.BackupCodesGenerated{SetID: "s", CodeHashes: []string{"h"}, At: now})
	msgs := f.waitMessages(1)
	if got := msgs[0].Header.Get(mail.HeaderKind); got != mail.KindTOTPAdded {
		t.Fatalf("first mail %q, want %s", got, mail.KindTOTPAdded)
	}
	marker := f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordChanged{PasswordHash: "h", At: now})
	f.waitMessages(2)
	if err := f.outbox.WaitFor(context.Background(), marker.Position); err != nil {
		t.Fatal(err)
	}
	msgs = f.smtp.Messages()
	if len(msgs) != 2 || msgs[1].Header.Get(mail.HeaderEvent) != marker.ID {
		t.Fatalf("mail %v, want only the enrolment's and the marker's", kinds(msgs))
	}
	for reason, want := range map[string]float64{"erased": 2, "stale_request": 1, "token_mismatch": 1, "enrolment": 2} {
		if got := skipped(t, f, reason); got != want {
			t.Errorf("vigil_mail_skipped_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func skipped(t testing.TB, f *fixture, reason string) float64 {
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_mail_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestMailInTheAccountsLocale: a profile locale fr or de (any region) gets French or German
// mail; an unknown one English.
func TestMailInTheAccountsLocale(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	cases := []struct {
		locale  string
		subject string
		text    []string
	}{
		{"fr-CA", "Votre mot de passe Vigil a été modifié", []string{"Bonjour Ada,", "Ce n'était pas moi", "Quand : ", "Appareil : ", "Firefox 133 sous Linux", "London, Royaume-Uni"}},
		{"de", "Ihr Vigil-Passwort wurde geändert", []string{"Hallo Ada,", "Das war ich nicht", "Wann: ", "Gerät: ", "Firefox 133 unter Linux", "London, Vereinigtes Königreich"}},
		{"ja", "Your Vigil password was changed", []string{"Hello Ada,", "This wasn't me"}},
	}
	for i, c := range cases {
		acct := f.account("ada"+c.locale+"@example.com", "Ada", c.locale)
		f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordChanged{PasswordHash: "h", At: time.Now().UTC()})
		m := f.waitMessages(i + 1)[i]
		if got := m.Header.Get("Subject"); !strings.Contains(decodeHeader(got), c.subject) {
			t.Errorf("%s: subject %q, want %q", c.locale, decodeHeader(got), c.subject)
		}
		for _, want := range c.text {
			if !strings.Contains(m.Text, want) {
				t.Errorf("%s: text lacks %q:\n%s", c.locale, want, m.Text)
			}
		}
	}
}

// TestEMLFilesWithoutSMTP: without --smtp-url every message is an .eml file under the mail
// directory, its path logged (and nothing else of it: no token in the log).
func TestEMLFilesWithoutSMTP(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	dir := filepath.Join(f.dir, "mail")
	var paths []string
	files := &mail.FileSender{Dir: dir, From: from(t), Written: func(p string) { paths = append(paths, p) }}
	f.start(files)
	acct := f.account("ada@example.com", "Ada", "")
	req, at := domain.NewID(), time.Now().UTC()
	tok := f.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: acct, Ref: req, IssuedAt: at})
	ev := f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordResetRequested{RequestID: req, TokenHash: credential.HashLinkToken(tok), At: at})
	if err := f.outbox.WaitFor(context.Background(), ev.Position); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".eml") {
		t.Fatalf("mail dir: %v %v", entries, err)
	}
	fi, _ := entries[0].Info()
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	m := mailtest.Parse(raw)
	if got := links(m.Text)[credential.LinkResetPassword]; got != tok {
		t.Fatalf("the .eml's reset link token %q, want the request's", got)
	}
	if !strings.Contains(m.Header.Get("To"), "ada@example.com") {
		t.Fatalf("To %q", m.Header.Get("To"))
	}
	if len(paths) != 1 || paths[0] != filepath.Join(dir, entries[0].Name()) {
		t.Fatalf("written %v", paths)
	}
	if strings.Contains(f.logs.String(), tok) || strings.Contains(f.logs.String(), url.QueryEscape(tok)) {
		t.Fatal("the token is in the log")
	}

	// An erasure removes the account's files, and only those.
	other := f.account("bob@example.com", "Bob", "")
	f.appendTo(domain.AccountStream(other), md(other), domain.PasswordChanged{PasswordHash: "$argon2id$x", At: time.Now().UTC()})
	erased := f.appendTo(domain.AccountStream(acct), md(acct), domain.AccountErased{At: time.Now().UTC()})
	if err := f.outbox.WaitFor(context.Background(), erased.Position); err != nil {
		t.Fatal(err)
	}
	entries, err = os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.Contains(entries[0].Name(), other) {
		t.Fatalf("after the erasure of %s the mail dir holds %v (%v), want only %s's file", acct, entries, err, other)
	}
}

func decodeHeader(s string) string {
	d, err := (&mimeDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// TestNotMeAboutAnEmailChangeMailsTheOldAddress: a "this wasn't me" about an email change
// disputes the new address, so the reset link it brings goes to the address the account had
// before (where the notice went), never to the new one, which may be the attacker's.
func TestNotMeAboutAnEmailChangeMailsTheOldAddress(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	acct := f.account("ada@example.com", "Ada", "")
	changed := f.appendTo(domain.AccountStream(acct), md(acct),
		domain.EmailChanged{OldEmail: "ada@example.com", NewEmail: "mallory@evil.example", At: now()})
	reset := resetRequest(f, acct)
	f.appendTo(domain.AccountStream(acct), md(acct),
		domain.SuspiciousActivityReported{EventID: changed.ID, Source: domain.ReportFromMail, At: now()}, reset)
	// A report about another event (a sign-in) sends the link to the current address.
	reset2 := resetRequest(f, acct)
	f.appendTo(domain.AccountStream(acct), md(acct),
		domain.SuspiciousActivityReported{EventID: domain.NewID(), Source: domain.ReportFromMail, At: now()}, reset2)

	msgs := f.waitMessages(3)
	if got := kinds(msgs); got[1] != mail.KindPasswordReset || got[2] != mail.KindPasswordReset {
		t.Fatalf("kinds %v", got)
	}
	if len(msgs[1].To) != 1 || msgs[1].To[0] != "ada@example.com" {
		t.Errorf("the reset link after disputing the email change went to %v, want the old address", msgs[1].To)
	}
	if len(msgs[2].To) != 1 || msgs[2].To[0] != "mallory@evil.example" {
		t.Errorf("the reset link after disputing a sign-in went to %v, want the current address", msgs[2].To)
	}
}

// resetRequest is a PasswordResetRequested of acct whose token hash the outbox accepts.
func resetRequest(f *fixture, acct string) domain.PasswordResetRequested {
	id, at := domain.NewID(), now()
	tok := f.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: acct, Ref: id, IssuedAt: at})
	return domain.PasswordResetRequested{RequestID: id, TokenHash: credential.HashLinkToken(tok), At: at}
}

func now() time.Time { return time.Now().UTC() }
