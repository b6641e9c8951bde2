package app

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/forward/mail"
	"github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestMailEndToEnd: through the real app and its HTTP API, registration mails a verification
// link that verifies the address, a password change is mailed with details and a not-me link,
// the not-me link signs out and mails a reset link, which sets a new password; everything is
// counted on /metrics. Without --smtp-url the mail are .eml files under <data-dir>/mail/ whose
// paths are logged.
func TestMailEndToEnd(t *testing.T) {
	const pw = "umbrella-cactus-violin-47"
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	register := func(t *testing.T, base string) string {
		if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"ann@example.com","password":"`+pw+`","first_name":"Ann","last_name":"Lee"}`); code != 201 {
			t.Fatalf("register: %d %v", code, m)
		}
		code, m := postJSON(t, base+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
		token, _ := m["session_token"].(string)
		if code != 200 || token == "" {
			t.Fatalf("login: %d %v", code, m)
		}
		return token
	}
	changePassword := func(t *testing.T, base, token string) {
		if code, m := postJSON(t, base+"/api/v1/me/password", `{"current_password":"`+pw+`","new_password":"another-long-passphrase-58"}`,
			"Authorization", "Bearer "+token, "User-Agent", firefox); code != 204 {
			t.Fatalf("change password: %d %v", code, m)
		}
	}

	t.Run("smtp", func(t *testing.T) {
		// The reply lags the recording, so a mail shows in srv.Messages before it is counted.
		srv := mailtest.Start(t, mailtest.Config{ReplyDelay: 100 * time.Millisecond})
		sc, err := mail.ParseSMTPURL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		a, stop := runApp(t, Config{
			Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: t.TempDir(),
			Argon2MemoryKiB: 8192, Argon2Iterations: 1, Mail: MailConfig{SMTP: &sc, From: "Security <security@example.com>"},
		})
		defer stop()
		base := a.URL()
		waitServing(t, base)
		// waitKind waits for the next mail of kind and returns it.
		seen := 0
		waitKind := func(kind string) mailtest.Message {
			t.Helper()
			var found *mailtest.Message
			testwait.Until(t, 10*time.Second, "a "+kind+" mail", func() (bool, string) {
				msgs := srv.Messages()
				for i := seen; i < len(msgs); i++ {
					if msgs[i].Header.Get(mail.HeaderKind) == kind {
						found, seen = &msgs[i], i+1
						return true, ""
					}
				}
				return false, fmt.Sprint(len(msgs), " messages")
			})
			if found.To[0] != "ann@example.com" || found.From != "security@example.com" {
				t.Fatalf("%s mail from %s to %v", kind, found.From, found.To)
			}
			return *found
		}
		token := register(t, base)
		v := waitKind(mail.KindVerifyEmail)
		if code, m := postJSON(t, base+"/api/v1/email/verify", `{"token":"`+linkToken(t, v.Text, "verify-email")+`"}`); code != 204 {
			t.Fatalf("the verification link: %d %v", code, m)
		}

		changePassword(t, base, token)
		m := waitKind(mail.KindPasswordChanged)
		for _, want := range []string{"Hello Ann,", "Firefox 133 on Linux", "127.0.0.1"} {
			if !strings.Contains(m.Text, want) {
				t.Fatalf("text lacks %q:\n%s", want, m.Text)
			}
		}
		if code, m := postJSON(t, base+"/api/v1/not-me", `{"token":"`+linkToken(t, m.Text, "not-me")+`"}`); code != 204 {
			t.Fatalf("the not-me link: %d %v", code, m)
		}
		if code := whoamiStatus(t, base, token); code != 401 {
			t.Fatalf("whoami after not-me: %d, want the session signed out", code)
		}
		r := waitKind(mail.KindPasswordReset)
		if code, m := postJSON(t, base+"/api/v1/password-reset/confirm", `{"token":"`+linkToken(t, r.Text, "reset-password")+`","new_password":"a-third-passphrase-of-69"}`); code != 204 {
			t.Fatalf("the reset link: %d %v", code, m)
		}
		waitKind(mail.KindPasswordResetCompleted)

		// Each mail is counted once its SMTP transaction ends, after the server recorded it.
		testwait.Until(t, 10*time.Second, "/metrics to count each sent mail", func() (bool, string) {
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, kind := range []string{mail.KindVerifyEmail, mail.KindPasswordChanged, mail.KindPasswordReset, mail.KindPasswordResetCompleted} {
				if !strings.Contains(string(body), `vigil_mail_sent_total{kind="`+kind+`"} 1`) {
					return false, "lacks the sent " + kind + " mail:\n" + grepLines(string(body), "vigil_mail")
				}
			}
			return true, ""
		})
	})

	t.Run("eml", func(t *testing.T) {
		dir := t.TempDir()
		logs := &testkit.SyncBuffer{}
		a, stop := runApp(t, Config{
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), Listener: listen(t), DataDir: dir,
			Argon2MemoryKiB: 8192, Argon2Iterations: 1,
		})
		defer stop()
		waitServing(t, a.URL())
		changePassword(t, a.URL(), register(t, a.URL()))
		var files []string // written ones: a file being written has a hidden temporary name
		testwait.Until(t, 10*time.Second, "the password change's .eml file in <data-dir>/mail", func() (bool, string) {
			files, _ = filepath.Glob(filepath.Join(dir, MailDir, "[^.]*-"+mail.KindPasswordChanged+".eml"))
			return len(files) == 1, "none"
		})
		path := files[0]
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := mailtest.Parse(raw)
		if !strings.Contains(m.Header.Get("From"), "no-reply@localhost") || !strings.Contains(m.Text, "/not-me?token=") {
			t.Fatalf("the .eml: From %q\n%s", m.Header.Get("From"), m.Text)
		}
		testwait.Until(t, 5*time.Second, "the file's path in the log", func() (bool, string) {
			return strings.Contains(logs.String(), path), grepLines(logs.String(), "mail")
		})
		if strings.Contains(logs.String(), "token=") {
			t.Fatal("a link's token is in the log")
		}
	})
}

// linkToken returns the token of the <public-url>/<page>?token= link in a mail's text.
func linkToken(t *testing.T, text, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "/"+page+"?token=")
	if !ok {
		t.Fatalf("no %s link in:\n%s", page, text)
	}
	if i := strings.IndexAny(rest, " \r\n"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
