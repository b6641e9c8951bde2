package mail_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

func (f *fixture) passwordChanged(acct string) domain.Envelope {
	f.t.Helper()
	return f.appendTo(domain.AccountStream(acct), md(acct), domain.PasswordChanged{PasswordHash: "h", At: time.Now().UTC()})
}

// byEvent counts the messages per triggering event.
func byEvent(ms []mailtest.Message) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.Header.Get(mail.HeaderEvent)]++
	}
	return out
}

// TestSMTPDownThenUp: while the SMTP server is down, the outbox retries with back-off
// (failures on /metrics, the outbox reported stuck), drops nothing, and once the server is
// back delivers every message once, in order.
func TestSMTPDownThenUp(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	acct := f.account("ada@example.com", "Ada", "")
	first := f.passwordChanged(acct)
	f.waitMessages(1)
	f.smtp.Stop()
	second := f.passwordChanged(acct)
	third := f.passwordChanged(acct)
	testwait.Until(t, 10*time.Second, "the outbox to report the failing message", func() (bool, string) {
		n := counter(t, f.reg, "vigil_mail_outbox_failures_total")
		return n >= 1 && counter(t, f.reg, "vigil_mail_send_failures_total") >= 3, "no report"
	})
	if f.outbox.Position() >= second.Position {
		t.Fatalf("the checkpoint %d moved past an unsent message at %d", f.outbox.Position(), second.Position)
	}
	// Back-off: a handful of attempts in this time, not a busy loop.
	if n := counter(t, f.reg, "vigil_mail_send_failures_total"); n > 50 {
		t.Fatalf("%v attempts while the server was down: no back-off", n)
	}
	f.smtp.Restart()
	msgs := f.waitMessages(3)
	if err := f.outbox.WaitFor(context.Background(), third.Position); err != nil {
		t.Fatal(err)
	}
	msgs = f.smtp.Messages()
	got := byEvent(msgs)
	if len(msgs) != 3 || got[first.ID] != 1 || got[second.ID] != 1 || got[third.ID] != 1 {
		t.Fatalf("after the server came back: %v", got)
	}
	if msgs[1].Header.Get(mail.HeaderEvent) != second.ID || msgs[2].Header.Get(mail.HeaderEvent) != third.ID {
		t.Fatal("messages out of log order")
	}
}

// TestCleanRestartSendsNothingAgain: a clean stop and a new outbox on the same checkpoint
// file send no message again; events appended while it was stopped are mailed.
func TestCleanRestartSendsNothingAgain(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	acct := f.account("ada@example.com", "Ada", "")
	var evs []domain.Envelope
	for range 5 {
		evs = append(evs, f.passwordChanged(acct))
	}
	f.waitMessages(5)
	f.stop()
	while := f.passwordChanged(acct)
	f.start(nil)
	marker := f.passwordChanged(acct)
	if err := f.outbox.WaitFor(context.Background(), marker.Position); err != nil {
		t.Fatal(err)
	}
	got := byEvent(f.smtp.Messages())
	for _, e := range append(evs, while, marker) {
		if got[e.ID] != 1 {
			t.Fatalf("event %d mailed %d times after a clean restart: %v", e.Position, got[e.ID], got)
		}
	}
	if len(got) != 7 {
		t.Fatalf("%d events mailed, want 7", len(got))
	}
}

// TestNoMailForHistoryBeforeTheFirstStart: an outbox started on a log with history (an
// upgraded or rebuilt server) begins at the head: nothing before it is mailed.
func TestNoMailForHistoryBeforeTheFirstStart(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	acct := f.account("ada@example.com", "Ada", "")
	for range 3 {
		f.passwordChanged(acct)
	}
	f.start(nil)
	marker := f.passwordChanged(acct)
	if err := f.outbox.WaitFor(context.Background(), marker.Position); err != nil {
		t.Fatal(err)
	}
	msgs := f.smtp.Messages()
	if len(msgs) != 1 || msgs[0].Header.Get(mail.HeaderEvent) != marker.ID {
		t.Fatalf("mail %v, want only the event after the start", byEvent(msgs))
	}
}

// TestRejectedRecipientDoesNotBlockTheOutbox: a 5xx answer to a recipient is final: counted,
// logged, and the next message goes out.
func TestRejectedRecipientDoesNotBlockTheOutbox(t *testing.T) {
	f := newFixture(t, mailtest.Config{Reject: func(rcpt string) bool { return strings.HasPrefix(rcpt, "bounce") }})
	f.start(nil)
	bad := f.account("bounce@example.com", "B", "")
	good := f.account("ada@example.com", "Ada", "")
	f.passwordChanged(bad)
	ok := f.passwordChanged(good)
	msgs := f.waitMessages(1)
	if err := f.outbox.WaitFor(context.Background(), ok.Position); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].To[0] != "ada@example.com" {
		t.Fatalf("messages %v", byEvent(msgs))
	}
	if got := counter(t, f.reg, "vigil_mail_rejected_total"); got != 1 {
		t.Fatalf("vigil_mail_rejected_total %v, want 1", got)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "refused the message") || strings.Contains(logs, "bounce@") {
		t.Fatalf("the refusal is not logged, or its log line names the address:\n%s", logs)
	}
}

// TestSTARTTLSAndAuth: smtp:// upgrades with STARTTLS when offered and authenticates with
// the URL's user and password; ?tls=required refuses a server without STARTTLS; smtps://
// speaks TLS from the start.
func TestSTARTTLSAndAuth(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil) // only for its self-signed certificate
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ts.Close()
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	client := &tls.Config{RootCAs: pool, ServerName: "example.com"} // httptest's certificate names example.com

	for _, c := range []struct {
		name     string
		server   mailtest.Config
		query    string
		wantSent bool
	}{
		{"STARTTLS with AUTH PLAIN", mailtest.Config{TLS: serverTLS, Username: "vigil", Password: "s3cret"}, "", true},
		{"smtps", mailtest.Config{TLS: serverTLS, Implicit: true, Username: "vigil", Password: "s3cret"}, "", true},
		{"tls=required without STARTTLS", mailtest.Config{}, "?tls=required", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := mailtest.Start(t, c.server)
			cfg, err := mail.ParseSMTPURL(srv.URL() + c.query)
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLSConfig = client
			s, err := mail.NewSMTPSender(cfg, from(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			msg := &mail.Message{EventID: domain.NewID(), Kind: mail.KindPasswordChanged, Subject: "s", Text: "t", HTML: "<p>h</p>", Date: time.Now()}
			msg.To.Address = "ada@example.com"
			err = s.Send(context.Background(), msg)
			if c.wantSent != (err == nil) {
				t.Fatalf("send: %v (want sent: %v)", err, c.wantSent)
			}
			if c.wantSent && len(srv.Messages()) != 1 {
				t.Fatalf("server holds %d messages", len(srv.Messages()))
			}
		})
	}
}

// TestParseSMTPURL: the forms API.md names, and errors that never repeat the password.
func TestParseSMTPURL(t *testing.T) {
	for in, want := range map[string]mail.SMTPConfig{
		"smtp://mailpit:1025":                     {Host: "mailpit", Port: 1025},
		"smtp://u:p%40ss@smtp.example.com":        {Host: "smtp.example.com", Port: 587, Username: "u", Password: "p@ss"},
		"smtp://smtp.example.com:25?tls=required": {Host: "smtp.example.com", Port: 25, RequireTLS: true},
		"smtps://u:p@smtp.example.com":            {Host: "smtp.example.com", Port: 465, SSL: true, Username: "u", Password: "p"},
	} {
		got, err := mail.ParseSMTPURL(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://x:25", "smtp://", "smtp://u:hunter2@h:0", "smtp://u:hunter2@h:25?tls=maybe", "smtp://u:hunter2@h:25/path"} {
		_, err := mail.ParseSMTPURL(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error repeats the password: %v", bad, err)
		}
	}
}

// TestRecipientFollowsTheAccount: the address, name and erasure are the account's at the time
// the mail goes out: after an email change the next mail goes to the new address (the notice
// of the change to the old one), and after an erasure nothing goes out.
func TestRecipientFollowsTheAccount(t *testing.T) {
	f := newFixture(t, mailtest.Config{})
	f.start(nil)
	acct := f.account("ada@example.com", "Ada", "")
	f.passwordChanged(acct)
	f.waitMessages(1) // the recipient is read when the mail goes out: one step at a time
	now := time.Now().UTC()
	f.appendTo(domain.AccountStream(acct), md(acct), domain.EmailChanged{OldEmail: "ada@example.com", NewEmail: "ada@new.example", At: now},
		domain.NameChanged{FirstName: "Augusta", LastName: "King", At: now})
	f.passwordChanged(acct)
	f.waitMessages(3)
	f.appendTo(domain.AccountStream(acct), md(acct), domain.AccountErased{At: now})
	f.passwordChanged(acct)
	other := f.account("grace@example.com", "Grace", "")
	marker := f.passwordChanged(other)
	defer func() {
		if t.Failed() {
			t.Log(f.logs.String())
		}
	}()
	f.waitMessages(4)
	if err := f.outbox.WaitFor(context.Background(), marker.Position); err != nil {
		t.Fatal(err)
	}
	msgs := f.smtp.Messages()
	var got []string
	for _, m := range msgs {
		got = append(got, m.Header.Get(mail.HeaderKind)+"→"+m.To[0])
	}
	want := []string{"password_changed→ada@example.com", "email_changed→ada@example.com", "password_changed→ada@new.example", "password_changed→grace@example.com"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("mail %v, want %v", got, want)
	}
	if !strings.Contains(msgs[2].Text, "Hello Augusta,") || !strings.Contains(msgs[2].Header.Get("To"), "Augusta King") {
		t.Fatalf("the renamed account's mail: To %q\n%s", msgs[2].Header.Get("To"), msgs[2].Text)
	}
}

// TestKeptConnectionDroppedByTheServer: the sender keeps its connection between messages;
// when the server has dropped it meanwhile, the next Send opens a new one and succeeds.
func TestKeptConnectionDroppedByTheServer(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Config{})
	cfg, err := mail.ParseSMTPURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := mail.NewSMTPSender(cfg, from(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func() error {
		m := &mail.Message{EventID: domain.NewID(), Kind: mail.KindPasswordChanged, Subject: "s", Text: "t", HTML: "h", Date: time.Now()}
		m.To.Address = "ada@example.com"
		return s.Send(context.Background(), m)
	}
	for range 3 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Sessions() != 1 {
		t.Fatalf("%d sessions for 3 messages: the connection was not kept", srv.Sessions())
	}
	srv.Stop() // closes the kept connection
	srv.Restart()
	if err := send(); err != nil {
		t.Fatalf("send after the server dropped the connection: %v", err)
	}
	if len(srv.Messages()) != 4 || srv.Sessions() != 2 {
		t.Fatalf("%d messages in %d sessions", len(srv.Messages()), srv.Sessions())
	}
}
