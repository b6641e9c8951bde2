package app

import (
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

// TestMailEndToEnd: through the real app and its HTTP API, a password change is mailed to
// the account's address through --smtp-url, with a working not-me link, and counted on
// /metrics; without --smtp-url the same mail is an .eml file under <data-dir>/mail/ whose path
// is logged.
func TestMailEndToEnd(t *testing.T) {
	const pw = "umbrella-cactus-violin-47"
	changePassword := func(t *testing.T, base string) {
		if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"ann@example.com","password":"`+pw+`","first_name":"Ann","last_name":"Lee"}`); code != 201 {
			t.Fatalf("register: %d %v", code, m)
		}
		code, m := postJSON(t, base+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
		token, _ := m["session_token"].(string)
		if code != 200 || token == "" {
			t.Fatalf("login: %d %v", code, m)
		}
		if code, m := postJSON(t, base+"/api/v1/me/password", `{"current_password":"`+pw+`","new_password":"another-long-passphrase-58"}`,
			"Authorization", "Bearer "+token, "User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"); code != 204 {
			t.Fatalf("change password: %d %v", code, m)
		}
	}

	t.Run("smtp", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Config{})
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
		changePassword(t, base)
		var msgs []mailtest.Message
		testwait.Until(t, 10*time.Second, "the password change's mail", func() (bool, string) {
			msgs = srv.Messages()
			return len(msgs) == 1, "none"
		})
		m := msgs[0]
		if m.To[0] != "ann@example.com" || m.From != "security@example.com" || m.Header.Get(mail.HeaderKind) != mail.KindPasswordChanged {
			t.Fatalf("mail from %s to %v kind %s", m.From, m.To, m.Header.Get(mail.HeaderKind))
		}
		for _, want := range []string{"Hello Ann,", "Firefox 133 on Linux", "127.0.0.1", "http://localhost:8080/not-me?token="} {
			if !strings.Contains(m.Text, want) {
				t.Fatalf("text lacks %q:\n%s", want, m.Text)
			}
		}
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `vigil_mail_sent_total{kind="password_changed"} 1`) {
			t.Fatalf("/metrics lacks the sent mail:\n%s", grepLines(string(body), "vigil_mail"))
		}
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
		changePassword(t, a.URL())
		var files []string // written ones: a file being written has a hidden temporary name
		testwait.Until(t, 10*time.Second, "an .eml file in <data-dir>/mail", func() (bool, string) {
			files, _ = filepath.Glob(filepath.Join(dir, MailDir, "[^.]*.eml"))
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

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
