package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// The web portal in a real Chromium (chromedp driving headless Debian chromium): the
// scenarios of issue 7, through the real app (SQLite log and read models, projections,
// GeoIP from a test mmdb, trusted proxies). Every page visited is saved as a PNG under a
// folder that survives the test; its path is logged.

// browserPassword passes the password policy (12+ characters, zxcvbn score 3+).
const browserPassword = "tq8#Lm2!vZ9pRw4x-portal"

// forwardedIP is the client address the browser's requests carry in X-Forwarded-For; the
// test mmdb places it in London.
const forwardedIP = "81.2.69.170"

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// requireBrowser skips the test when no Chromium is installed, unless
// VIGIL_REQUIRE_BROWSER=1 (CI), when it fails.
func requireBrowser(t *testing.T) string {
	t.Helper()
	p := findChromium()
	if p == "" {
		if os.Getenv("VIGIL_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium on PATH and VIGIL_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)")
		}
		t.Skip("no Chromium on PATH (apt-get install -y chromium); set VIGIL_REQUIRE_BROWSER=1 to make this a failure")
	}
	return p
}

// portalApp starts the real app for the portal tests on http://localhost:PORT (a secure
// context for WebAuthn, and the passkeys' relying party), trusting loopback proxies and
// locating addresses with a test city database. mutate may change the config.
func portalApp(t testing.TB, mutate func(*Config)) (base string) {
	t.Helper()
	dir := t.TempDir()
	city := filepath.Join(dir, "city.mmdb")
	geoiptestCity(t, city)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base = "http://localhost:" + port
	pub, _ := url.Parse(base)
	cfg := Config{
		Logger: discardLogger(), Listener: ln, DataDir: filepath.Join(dir, "data"), PublicURL: pub,
		Argon2MemoryKiB: 8192, Argon2Iterations: 1, GeoIPCityDB: city,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AdminEmails:    []string{"ada@example.com"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, _ := runApp(t, cfg)
	waitHealthy(t, a.URL())
	return base
}

// browserRun is a headless Chromium tab for one test, and where its screenshots go.
type browserRun struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	n     int
}

func newBrowser(t *testing.T, base string) *browserRun {
	t.Helper()
	exe := requireBrowser(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	shots, err := os.MkdirTemp("", "vigil-portal-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("portal screenshots: %s", shots)
	fmt.Fprintf(os.Stderr, "portal screenshots are in %s\n", shots)
	b := &browserRun{t: t, ctx: ctx, base: base, shots: shots}
	// Start the browser; every request then comes "through a trusted proxy" for forwardedIP.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"X-Forwarded-For": forwardedIP}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// step runs actions with a bound, failing the test with what.
func (b *browserRun) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(30*time.Second))
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
}

// submit runs actions that end in a form submission and waits for the next page.
func (b *browserRun) submit(what string, actions ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(30*time.Second))
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	return resp.Status
}

func (b *browserRun) open(path string) {
	b.t.Helper()
	b.step("open "+path, chromedp.Navigate(b.base+path))
}

func (b *browserRun) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(5*time.Second))
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// path returns the path of the current page.
func (b *browserRun) path() string {
	u, err := url.Parse(b.location())
	if err != nil {
		return ""
	}
	return u.Path
}

// waitPath waits until the current page is path (after a navigation made by script).
func (b *browserRun) waitPath(path string) {
	b.t.Helper()
	testwait.Until(b.t, 10*time.Second, "the browser to reach "+path, func() (bool, string) {
		if b.path() == path {
			return true, ""
		}
		return false, fmt.Sprintf("at %s; page text: %s", b.location(), b.tryText("main"))
	})
	b.step("wait for "+path, chromedp.WaitReady(chromedp.CSS("footer.foot")))
}

// tryText is text for a failure message: an error (the page navigating away) is returned as
// text rather than failing the test.
func (b *browserRun) tryText(css string) string {
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(5*time.Second))
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css), chromedp.AtLeast(0)))
	if err != nil {
		return fmt.Sprintf("(text of %s: %v)", css, err)
	}
	return s
}

func (b *browserRun) text(css string) string {
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(10*time.Second))
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v (at %s)", css, err, b.location())
	}
	return s
}

func (b *browserRun) attr(css, name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(10*time.Second))
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(css), name))
	if err != nil || !r.Exists {
		b.t.Fatalf("attribute %s of %s: %v (at %s)", name, css, err, b.location())
	}
	return r.Value
}

func (b *browserRun) count(css string) int {
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(10*time.Second))
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", css)))
	if err != nil {
		b.t.Fatalf("count %s: %v", css, err)
	}
	return n
}

// shot saves a full-page PNG of the current page as NN-name.png.
func (b *browserRun) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, testwait.Deadline(20*time.Second))
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.n++
	if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn signs in with the password on /signin and returns the page it lands on.
func (b *browserRun) signIn(email string) string {
	b.t.Helper()
	b.open("/signin")
	b.submit("sign in",
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), browserPassword),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type=submit]`)))
	return b.path()
}

func (b *browserRun) signOut() {
	b.t.Helper()
	b.submit("sign out", chromedp.Click(chromedp.CSS(`form.signout button`)))
	if p := b.path(); p != "/signin" {
		b.t.Fatalf("after sign-out the browser is at %s", p)
	}
}

// TestPortalInChromium runs the browser scenarios in order, on one account:
// sign up; sign in; a second session seen in Sessions and signed out (its token then fails
// whoami); an authenticator app set up with a code computed from the shown key, and a
// sign-in with a code; the backup codes downloaded and a sign-in with one; a passkey
// registered through the DevTools virtual authenticator and a sign-in with it without a
// username; the activity log with the London location of the forwarded address, on the
// list and on the map; and the security team's pages.
func TestPortalInChromium(t *testing.T) {
	requireBrowser(t)
	base := portalApp(t, nil)
	b := newBrowser(t, base)
	const email = "ada@example.com"

	// The start page is the sign-in page.
	b.open("/")
	if h := b.text("h1"); h != "Sign in" {
		t.Fatalf("start page heading %q", h)
	}
	b.shot("signin")

	// Sign up.
	b.open("/signup")
	b.shot("signup")
	b.submit("sign up",
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("first_name"), "Ada"),
		chromedp.SetValue(chromedp.ID("last_name"), "Lovelace"),
		chromedp.SetValue(chromedp.ID("password"), browserPassword),
		chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("after sign-up the browser is at %s: %s", p, b.text("main"))
	}
	if v := b.attr("#email", "value"); v != email {
		t.Errorf("account page email %q", v)
	}
	b.shot("account")

	// Sign out, and in again with the password.
	b.signOut()
	if p := b.signIn(email); p != "/account" {
		t.Fatalf("after sign-in the browser is at %s", p)
	}

	// A second session (an API client, through the proxy from London) shows in Sessions
	// and is signed out from there.
	code, body, pos := apiLogin(t, base, email, "X-Forwarded-For", "81.2.69.161", "User-Agent", "curl/8.5.0")
	token, _ := body["session_token"].(string)
	sess, _ := body["session"].(map[string]any)
	otherID, _ := sess["session_id"].(string)
	if code != 200 || token == "" || otherID == "" || pos == "" {
		t.Fatalf("API sign-in: %d %v", code, body)
	}
	// The page waits until the read models hold that sign-in (its Vigil-Position).
	b.open("/sessions?min_position=" + pos)
	if n := b.count("#sessions tbody tr"); n != 2 {
		t.Fatalf("sessions listed: %d, want 2; %s", n, b.text("main"))
	}
	if cur := b.text("#sessions tr.current"); !strings.Contains(cur, "This session") || !strings.Contains(cur, "London") {
		t.Errorf("current session row %q", cur)
	}
	b.shot("sessions")
	b.submit("sign out the other session", chromedp.Click(chromedp.CSS(`tr[data-session="`+otherID+`"] button`)))
	if n := b.count("#sessions tbody tr"); n != 1 {
		t.Errorf("sessions after signing one out: %d", n)
	}
	if s := whoamiStatus(t, base, token); s != 401 {
		t.Errorf("whoami of the signed-out session: %d, want 401", s)
	}

	// Set up an authenticator app: the code comes from the key the page shows.
	b.open("/security")
	b.shot("security")
	b.submit("add an authenticator", chromedp.Click(chromedp.CSS(`form[action="/security/totp"] button`)))
	b.shot("totp-setup")
	secret := b.attr("#totp-secret", "data-secret")
	if shown := strings.ReplaceAll(b.text("#totp-secret"), " ", ""); shown != secret || len(secret) < 16 {
		t.Fatalf("manual key %q, secret %q", shown, secret)
	}
	if n := b.count(`img.qr[src$="/qr.png"]`); n != 1 {
		t.Errorf("QR images: %d", n)
	}
	now := time.Now()
	totpCode, err := totp.GenerateCode(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	b.submit("confirm the authenticator",
		chromedp.SetValue(chromedp.ID("code"), totpCode),
		chromedp.Click(chromedp.CSS(`form[action$="/confirm"] button`)))
	if h := b.text("h1"); h != "Your backup codes" {
		t.Fatalf("after confirming: %q %s", h, b.text("main"))
	}
	b.shot("backup-codes")

	// Download the backup codes as a text file.
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	b.step("download the codes", chromedp.Click(chromedp.ID("backup-codes-download")))
	var codes []string
	testwait.Until(t, 10*time.Second, "a downloaded file with 10 codes", func() (bool, string) {
		codes = nil
		raw, err := os.ReadFile(filepath.Join(downloads, "vigil-backup-codes.txt"))
		if err != nil {
			return false, err.Error()
		}
		for _, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.Contains(line, " ") {
				codes = append(codes, line)
			}
		}
		return len(codes) == 10, fmt.Sprintf("codes %q", codes)
	})
	if shown := b.text("#backup-codes"); !strings.Contains(shown, codes[0]) || !strings.Contains(shown, codes[9]) {
		t.Errorf("the page shows %q, the file holds %v", shown, codes)
	}
	b.open("/security")
	if s := b.text("main"); !strings.Contains(s, "Two-factor authentication is on") || !strings.Contains(s, "10 of 10 codes left") {
		t.Errorf("security page after enabling 2FA: %s", s)
	}

	// Sign in again with a code (the next time step: the current one was used).
	b.signOut()
	if p := b.signIn(email); p != "/signin" || b.text("h1") != "Confirm it's you" {
		t.Fatalf("password sign-in with 2FA on: %s %q", p, b.text("h1"))
	}
	b.shot("second-factor")
	next, err := totp.GenerateCode(secret, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b.submit("sign in with a code",
		chromedp.SetValue(chromedp.ID("code_totp"), next),
		chromedp.Click(chromedp.CSS(`input[name=method][value=totp] ~ button, form:has(#code_totp) button`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("after the TOTP code the browser is at %s: %s", p, b.text("main"))
	}

	// Sign in with a backup code.
	b.signOut()
	b.signIn(email)
	b.submit("sign in with a backup code",
		chromedp.Click(chromedp.CSS("details summary")),
		chromedp.SetValue(chromedp.ID("code_backup_code"), codes[3]),
		chromedp.Click(chromedp.CSS(`form:has(#code_backup_code) button`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("after the backup code the browser is at %s: %s", p, b.text("main"))
	}

	// Register a passkey with the DevTools virtual authenticator, then sign in with it
	// without a username.
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}}); err != nil {
		t.Fatal(err)
	}
	b.open("/security")
	b.step("register a passkey",
		chromedp.SetValue(chromedp.ID("passkey-name"), "Laptop key"),
		chromedp.Click(chromedp.CSS(`#passkey-register button`)))
	testwait.Until(t, 10*time.Second, "the passkey registration to finish (done=passkey-added)", func() (bool, string) {
		loc := b.location()
		if strings.Contains(loc, "done=passkey-added") {
			return true, ""
		}
		return false, fmt.Sprintf("at %s; %s", loc, b.tryText("main"))
	})
	b.step("wait for the security page", chromedp.WaitReady(chromedp.CSS("footer.foot")))
	if v := b.attr(`form.rename input[name=name]`, "value"); v != "Laptop key" {
		t.Errorf("passkey listed as %q", v)
	}
	b.shot("security-passkey")
	b.submit("rename the passkey",
		chromedp.SetValue(chromedp.CSS(`form.rename input[name=name]`), "Work key"),
		chromedp.Click(chromedp.CSS(`form.rename button`)))
	if v := b.attr(`form.rename input[name=name]`, "value"); v != "Work key" || !strings.Contains(b.text(".flash"), "renamed") {
		t.Errorf("renamed passkey %q", v)
	}
	b.signOut()
	b.step("sign in with a passkey", chromedp.Click(chromedp.ID("passkey-signin")))
	b.waitPath("/account")
	b.shot("account-after-passkey")

	// The passkey as the second factor after the password.
	b.signOut()
	b.signIn(email)
	b.step("use the passkey as second factor", chromedp.Click(chromedp.ID("passkey-second-factor")))
	b.waitPath("/account")

	// The activity log: sign-ins located in London (the forwarded address), on the map too.
	b.open("/activity")
	if loc := b.text("#activity td.loc"); !strings.Contains(loc, "London") {
		t.Errorf("activity location %q", loc)
	}
	if n := b.count("#activity-map circle.place"); n < 1 {
		t.Errorf("places on the map: %d", n)
	}
	if n := b.count(`#activity-map path.land`); n != 1 {
		t.Errorf("land outlines: %d", n)
	}
	b.shot("activity")
	b.open("/activity?type=LoginSucceeded")
	if rows := b.text("#activity tbody"); !strings.Contains(rows, "LoginSucceeded") || strings.Contains(rows, "SessionSignedOut") {
		t.Errorf("filtered activity: %s", rows)
	}

	// The security team's pages (the account is in --admin-emails).
	b.open("/audit")
	b.shot("audit")
	b.submit("find the account",
		chromedp.SetValue(chromedp.ID("find"), email),
		chromedp.Click(chromedp.CSS(`form[action="/audit"] button`)))
	if !strings.HasPrefix(b.path(), "/audit/accounts/") {
		t.Fatalf("find went to %s", b.location())
	}
	if tl := b.text("#timeline"); !strings.Contains(tl, "AccountRegistered") || !strings.Contains(tl, "PasskeyRenamed") {
		t.Errorf("timeline: %.300s", tl)
	}
	b.submit("security state now",
		chromedp.SetValue(chromedp.ID("at"), time.Now().UTC().Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.CSS(`form:has(#at) button`)))
	if st := b.text("#state-at"); !strings.Contains(st, "on") || !strings.Contains(st, "Work key") {
		t.Errorf("state at now: %s", st)
	}
	b.shot("audit-account")

	// A phone-sized screen.
	b.step("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.open("/sessions")
	b.shot("sessions-phone")
}

// apiLogin signs in through the JSON API with the password and answers the status, the
// body and the Vigil-Position header.
func apiLogin(t *testing.T, base, email string, header ...string) (int, map[string]any, string) {
	t.Helper()
	status, m, h := doJSON(t, http.MethodPost, base+"/api/v1/login",
		fmt.Sprintf(`{"email":%q,"password":%q}`, email, browserPassword), header...)
	return status, m, h.Get("Vigil-Position")
}
