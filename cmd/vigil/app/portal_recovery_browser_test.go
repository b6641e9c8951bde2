package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// The recovery pages in a real Chromium, through the real app: the links a mail would carry
// are derived as the mail outbox derives them, from the logged event with the server key.

// recoveryApp is portalApp that also answers the server keyring and a handle on the log.
func recoveryApp(t *testing.T) (base string, kr *credential.Keyring, log *sqlite.Store) {
	t.Helper()
	var cfg Config
	base = portalApp(t, func(c *Config) { cfg = *c })
	key, err := serverKey(cfg, false, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if kr, err = credential.NewKeyring(credential.KeyringConfig{Key: key}); err != nil {
		t.Fatal(err)
	}
	if log, err = sqlite.Open(sqlite.Config{Path: filepath.Join(cfg.DataDir, EventsFile), Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return base, kr, log
}

// lastLogged is the newest event of type typ on stream.
func lastLogged(t *testing.T, log *sqlite.Store, stream, typ string) (domain.Envelope, domain.Event) {
	t.Helper()
	evs, err := log.ReadStream(context.Background(), stream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ {
			ev, err := domain.DecodeEvent(evs[i])
			if err != nil {
				t.Fatal(err)
			}
			return evs[i], ev
		}
	}
	t.Fatalf("no %s on %s", typ, stream)
	return domain.Envelope{}, nil
}

// TestPortalRecoveryInChromium: the verification link's page; "Forgot your password?" from
// the sign-in page, the reset page of the mailed link, and a sign-in with the new password;
// the not-me page of a security mail's link; the activity page's "This wasn't me".
func TestPortalRecoveryInChromium(t *testing.T) {
	requireBrowser(t)
	base, kr, log := recoveryApp(t)
	b := newBrowser(t, base)
	const email, newPassword = "grace@example.com", "harbour-violet-compass-58"
	status, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/accounts",
		fmt.Sprintf(`{"email":%q,"password":%q,"first_name":"Grace","last_name":"Hopper"}`, email, browserPassword))
	id, _ := m["account_id"].(string)
	if status != 201 || id == "" {
		t.Fatalf("register: %d %v", status, m)
	}

	// The verification mail's link: the page says what it does, its button confirms.
	_, ev := lastLogged(t, log, domain.AccountStream(id), domain.EventEmailVerificationRequested)
	vr := ev.(domain.EmailVerificationRequested)
	verify := kr.LinkToken(credential.LinkClaims{Purpose: credential.LinkVerifyEmail, AccountID: id, Ref: vr.RequestID, IssuedAt: vr.At})
	b.open("/verify-email?token=" + verify)
	if h := b.text("h1"); h != "Confirm your email address" {
		t.Fatalf("verify page heading %q", h)
	}
	b.shot("verify-email")
	b.submit("confirm the email", chromedp.Click(chromedp.CSS(`form[action="/verify-email"] button`)))
	if s := b.text("#verified"); !strings.Contains(s, "confirmed") {
		t.Fatalf("after confirming: %q", b.text("main"))
	}
	b.shot("email-verified")
	// The link works once.
	b.open("/verify-email?token=" + verify)
	if st := b.submit("confirm again", chromedp.Click(chromedp.CSS(`form[action="/verify-email"] button`))); st != 400 {
		t.Errorf("a used verification link answered %d", st)
	}

	// Forgot the password: from the sign-in page.
	b.open("/signin")
	b.submit("forgot password link", chromedp.Click(chromedp.ID("forgot-password")))
	if p := b.path(); p != "/forgot-password" {
		t.Fatalf("the link led to %s", p)
	}
	b.shot("forgot-password")
	b.submit("ask for a reset link",
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.Click(chromedp.CSS(`form[action="/forgot-password"] button`)))
	sentKnown := b.text("#reset-sent")
	b.shot("reset-link-sent")
	// An unknown email gets the same page (but for the address typed).
	b.open("/forgot-password")
	b.submit("ask for an unknown email",
		chromedp.SetValue(chromedp.ID("email"), "nobody@example.com"),
		chromedp.Click(chromedp.CSS(`form[action="/forgot-password"] button`)))
	if sentUnknown := b.text("#reset-sent"); strings.ReplaceAll(sentUnknown, "nobody@example.com", email) != sentKnown {
		t.Errorf("known email: %q; unknown email: %q", sentKnown, sentUnknown)
	}

	// The reset mail's link.
	_, ev = lastLogged(t, log, domain.AccountStream(id), domain.EventPasswordResetRequested)
	rr := ev.(domain.PasswordResetRequested)
	reset := kr.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: id, Ref: rr.RequestID, IssuedAt: rr.At})
	if credential.HashLinkToken(reset) != rr.TokenHash {
		t.Fatal("the reset token derived from the log does not match its hash")
	}
	b.open("/reset-password?token=" + reset)
	if h := b.text("h1"); h != "Choose a new password" {
		t.Fatalf("reset page heading %q", h)
	}
	b.shot("reset-password")
	// A weak password is refused next to the field; the link still works after.
	if st := b.submit("weak password",
		chromedp.SetValue(chromedp.ID("new_password"), "password1234"),
		chromedp.Click(chromedp.CSS(`form[action="/reset-password"] button`))); st != 400 {
		t.Errorf("weak password answered %d", st)
	}
	if b.count("#new_password-error") != 1 {
		t.Errorf("no error next to the field: %s", b.text("main"))
	}
	b.submit("set the new password",
		chromedp.SetValue(chromedp.ID("new_password"), newPassword),
		chromedp.Click(chromedp.CSS(`form[action="/reset-password"] button`)))
	if p := b.path(); p != "/signin" || !strings.Contains(b.text("p.flash"), "password was reset") {
		t.Fatalf("after the reset: %s %q", p, b.text("main"))
	}
	b.shot("password-reset-done")

	// The old password no longer works; the new one does.
	code, _, _ := doJSON(t, http.MethodPost, base+"/api/v1/login", fmt.Sprintf(`{"email":%q,"password":%q}`, email, browserPassword))
	if code != 401 {
		t.Errorf("the old password answered %d", code)
	}
	b.submit("sign in with the new password",
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), newPassword),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type=submit]`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("after signing in with the new password: %s %q", p, b.text("main"))
	}
	if s := b.text("#email-status"); !strings.Contains(s, "is verified") {
		t.Errorf("account page email status %q", s)
	}

	// Someone else signs in (an API client); the security mail's not-me link is about it.
	code, body, _ := doJSON(t, http.MethodPost, base+"/api/v1/login", fmt.Sprintf(`{"email":%q,"password":%q}`, email, newPassword))
	intruder, _ := body["session_token"].(string)
	sess, _ := body["session"].(map[string]any)
	intruderID, _ := sess["session_id"].(string)
	if code != 200 || intruder == "" {
		t.Fatalf("API sign-in: %d %v", code, body)
	}
	signin, _ := lastLogged(t, log, domain.SessionStream(intruderID), domain.EventLoginSucceeded)
	notMe := kr.LinkToken(credential.LinkClaims{Purpose: credential.LinkNotMe, AccountID: id, Ref: signin.ID, IssuedAt: signin.RecordedAt})
	b.open("/not-me?token=" + notMe)
	if h := b.text("h1"); h != "This wasn't me" || !strings.Contains(b.text("main"), "sign out every session") {
		t.Fatalf("not-me page: %q %q", h, b.text("main"))
	}
	b.shot("not-me")
	b.submit("report it", chromedp.Click(chromedp.CSS(`form[action="/not-me"] button`)))
	if s := b.text("#not-me-done"); !strings.Contains(s, "signed out") {
		t.Fatalf("after reporting: %q", b.text("main"))
	}
	b.shot("not-me-done")
	if s := whoamiStatus(t, base, intruder); s != 401 {
		t.Errorf("the reported session's whoami: %d", s)
	}
	_, ev = lastLogged(t, log, domain.AccountStream(id), domain.EventSuspiciousActivityReported)
	if rep := ev.(domain.SuspiciousActivityReported); rep.EventID != signin.ID || rep.Source != domain.ReportFromMail {
		t.Errorf("report %+v", rep)
	}
	// This browser's session was signed out too.
	b.open("/account")
	if p := b.path(); p != "/signin" {
		t.Errorf("after the report the account page is at %s", p)
	}

	// The activity page's "This wasn't me" on another sign-in: that session ends, this stays.
	b.submit("sign in again",
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), newPassword),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type=submit]`)))
	_, body, hdr := doJSON(t, http.MethodPost, base+"/api/v1/login", fmt.Sprintf(`{"email":%q,"password":%q}`, email, newPassword),
		"User-Agent", "curl/8.5.0")
	other, _ := body["session_token"].(string)
	sess, _ = body["session"].(map[string]any)
	otherID, _ := sess["session_id"].(string)
	otherSignin, _ := lastLogged(t, log, domain.SessionStream(otherID), domain.EventLoginSucceeded)
	b.open("/activity?type=LoginSucceeded&min_position=" + hdr.Get("Vigil-Position"))
	button := `form[action="/activity/` + otherSignin.ID + `/not-me"] button`
	if n := b.count(button); n != 1 {
		t.Fatalf("buttons for the sign-in %s: %d; %s", otherSignin.ID, n, b.text("main"))
	}
	b.shot("activity-not-me")
	b.submit("this wasn't me", chromedp.Click(chromedp.CSS(button)))
	if p := b.path(); p != "/activity" || !strings.Contains(b.text("p.flash"), "Thanks for telling us") {
		t.Fatalf("after the report: %s %q", p, b.text("main"))
	}
	b.shot("activity-reported")
	if s := whoamiStatus(t, base, other); s != 401 {
		t.Errorf("the reported session's whoami: %d", s)
	}
	b.open("/account")
	if p := b.path(); p != "/account" {
		t.Errorf("the reporting session was signed out: at %s", p)
	}
}

// TestPortalRecoveryForms: the recovery forms need the anonymous forms' CSRF token, a link
// page without its token is a 400 page, and "Forgot your password?" answers an unknown email
// with the same page as a known one.
func TestPortalRecoveryForms(t *testing.T) {
	base := portalApp(t, nil)
	c := newPortalClient(t, base)
	if a := c.signUp("known@example.com"); a.path != "/account" {
		t.Fatalf("sign-up landed on %s", a.path)
	}
	c.post("/signout", url.Values{"csrf_token": {csrf(t, c.get("/account"))}})
	for _, path := range []string{"/forgot-password", "/verify-email", "/reset-password", "/not-me"} {
		if a := c.post(path, url.Values{"email": {"known@example.com"}, "token": {"x"}}); a.status != 403 {
			t.Errorf("POST %s without the form token: %d", path, a.status)
		}
	}
	for _, path := range []string{"/verify-email", "/reset-password", "/not-me"} {
		if a := c.get(path); a.status != 400 || !strings.Contains(a.body, "incomplete") {
			t.Errorf("GET %s without a token: %d", path, a.status)
		}
	}
	if a := c.get("/reset-password?token=abc"); a.status != 200 || !strings.Contains(a.body, `name="token" value="abc"`) {
		t.Errorf("GET /reset-password?token=abc: %d", a.status)
	}
	tok := csrf(t, c.get("/forgot-password"))
	known := c.post("/forgot-password", url.Values{"csrf_token": {tok}, "email": {"known@example.com"}})
	unknown := c.post("/forgot-password", url.Values{"csrf_token": {tok}, "email": {"nobody@example.com"}})
	if known.status != 200 || unknown.status != 200 ||
		strings.ReplaceAll(unknown.body, "nobody@example.com", "known@example.com") != known.body {
		t.Errorf("forgot-password: known %d, unknown %d; the pages differ", known.status, unknown.status)
	}
	// A used-up or forged link's form: the 400 page that says to ask for a new one.
	tok = csrf(t, c.get("/not-me?token=abc"))
	if a := c.post("/not-me", url.Values{"csrf_token": {tok}, "token": {"abc"}}); a.status != 400 || !strings.Contains(a.body, "Ask for a new one") {
		t.Errorf("POST /not-me with a forged token: %d", a.status)
	}
}
