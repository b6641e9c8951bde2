package app

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// TestPortalOrgsInChromium runs issue 5's portal scenarios in a real Chromium: the owner
// signs up and sets up an authenticator app, creates an organisation, adds a member and
// requires 2FA (re-entering the password); that member, signing in without a second factor,
// lands on the enrollment page (a real organisation policy, not a static one). The owner
// grants a delegation; the delegate acts for the owner and sees the "Acting for" banner,
// then stops acting. Every new page is saved as a PNG (the folder is logged).
func TestPortalOrgsInChromium(t *testing.T) {
	requireBrowser(t)
	base := portalApp(t, nil)
	// The member and the delegate sign up through the portal over plain HTTP.
	newPortalClient(t, base).signUp("max@example.com")
	newPortalClient(t, base).signUp("eve@example.com")
	b := newBrowser(t, base)
	const owner = "olga@example.com"

	b.open("/signup")
	b.submit("sign up",
		chromedp.SetValue(chromedp.ID("email"), owner),
		chromedp.SetValue(chromedp.ID("first_name"), "Olga"),
		chromedp.SetValue(chromedp.ID("last_name"), "Owner"),
		chromedp.SetValue(chromedp.ID("password"), browserPassword),
		chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("after sign-up the browser is at %s: %s", p, b.text("main"))
	}

	// The owner needs 2FA to require it: an authenticator app, as in TestPortalInChromium.
	b.open("/security")
	b.submit("add an authenticator", chromedp.Click(chromedp.CSS(`form[action="/security/totp"] button`)))
	secret := b.attr("#totp-secret", "data-secret")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.submit("confirm the authenticator",
		chromedp.SetValue(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`form[action$="/confirm"] button`)))
	if h := b.text("h1"); h != "Your backup codes" {
		t.Fatalf("after confirming: %q %s", h, b.text("main"))
	}

	// Create an organisation from the nav's Organisations page.
	b.open("/account")
	b.submit("open Organisations", chromedp.Click(chromedp.CSS(`nav a[href="/orgs"]`)))
	if h := b.text("h1"); h != "Organisations" {
		t.Fatalf("Organisations heading %q", h)
	}
	b.shot("orgs")
	b.submit("create an organisation",
		chromedp.SetValue(chromedp.ID("org-name"), "Acme Certificates"),
		chromedp.Click(chromedp.CSS(`form[action="/orgs"] button`)))
	if !strings.HasPrefix(b.path(), "/orgs/") || b.text("#org-name") != "Acme Certificates" {
		t.Fatalf("after creating: %s %s", b.location(), b.text("main"))
	}
	orgURL := b.path()

	// Add the member.
	b.submit("add a member",
		chromedp.SetValue(chromedp.ID("member_email"), "max@example.com"),
		chromedp.Click(chromedp.CSS(`form[action$="/members"] button`)))
	if rows := b.text("#members tbody"); !strings.Contains(rows, "max@example.com") || !strings.Contains(rows, "member") {
		t.Fatalf("members after adding: %s", rows)
	}

	// Require 2FA, re-entering the password: a wrong one first, shown next to the field.
	b.submit("require 2FA with a wrong password",
		chromedp.SetValue(chromedp.ID("policy_password"), "not the password"),
		chromedp.Click(chromedp.ID("policy-toggle")))
	if e := b.text("#policy_password-error"); !strings.Contains(e, "not your password") {
		t.Errorf("wrong password message %q", e)
	}
	b.submit("require 2FA",
		chromedp.SetValue(chromedp.ID("policy_password"), browserPassword),
		chromedp.Click(chromedp.ID("policy-toggle")))
	if s := b.text("#org-policy"); !strings.Contains(s, "is required") {
		t.Fatalf("policy after requiring: %s", s)
	}
	if r := b.text("#two-factor-report tbody"); !strings.Contains(r, "olga@example.com") || !strings.Contains(r, "max@example.com") {
		t.Errorf("two-factor report: %s", r)
	}
	b.shot("org")
	b.submit("open the members' activity", chromedp.Click(chromedp.ID("org-activity-link")))
	if tb := b.text("#activity tbody"); !strings.Contains(tb, "olga@example.com") {
		t.Errorf("members' activity: %s", tb)
	}
	b.shot("org-activity")
	b.step("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.open(orgURL)
	b.shot("org-phone")
	b.step("desktop viewport", chromedp.EmulateViewport(1280, 900))

	// Grant the delegate access for a week.
	b.open("/delegations")
	b.shot("delegations")
	b.submit("grant a delegation",
		chromedp.SetValue(chromedp.ID("delegate_email"), "eve@example.com"),
		chromedp.SetValue(chromedp.ID("expires_at"), time.Now().UTC().AddDate(0, 0, 7).Format("2006-01-02")),
		chromedp.Click(chromedp.CSS(`form[action="/delegations"] button`)))
	if g := b.text("#granted"); !strings.Contains(g, "eve@example.com") {
		t.Fatalf("granted list: %s; %s", g, b.text("main"))
	}
	b.signOut()

	// The member signs in without a second factor and must enroll.
	if p := b.signIn("max@example.com"); p != "/enroll" {
		t.Fatalf("the member signed in to %s: %s", p, b.text("main"))
	}
	if s := b.text("main"); !strings.Contains(s, "Your organisation requires two-factor authentication") {
		t.Errorf("enrollment page: %s", s)
	}
	b.shot("enroll-by-org-policy")
	b.signOut()

	// The delegate acts for the owner.
	if p := b.signIn("eve@example.com"); p != "/account" {
		t.Fatalf("the delegate signed in to %s", p)
	}
	b.open("/delegations")
	if r := b.text("#received"); !strings.Contains(r, owner) {
		t.Fatalf("received list: %s", r)
	}
	// The owner's organisation requires 2FA and the delegate has none: acting is refused.
	b.submit("act without a second factor", chromedp.Click(chromedp.CSS(`#received form[action$="/act"] button`)))
	if s := b.text("main"); !strings.Contains(s, "second factor") {
		t.Fatalf("acting without a second factor: %s %s", b.path(), s)
	}
	b.shot("act-needs-2fa")
	// The delegate sets up an authenticator app (the session proves a second factor), then acts.
	b.open("/security")
	b.submit("delegate adds an authenticator", chromedp.Click(chromedp.CSS(`form[action="/security/totp"] button`)))
	dcode, err := totp.GenerateCode(b.attr("#totp-secret", "data-secret"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.submit("delegate confirms the authenticator",
		chromedp.SetValue(chromedp.ID("code"), dcode),
		chromedp.Click(chromedp.CSS(`form[action$="/confirm"] button`)))
	b.open("/delegations")
	b.submit("act for the owner", chromedp.Click(chromedp.CSS(`#received form[action$="/act"] button`)))
	if p := b.path(); p != "/account" {
		t.Fatalf("acting landed on %s", p)
	}
	if s := b.text("#acting-banner"); !strings.Contains(s, "Acting for "+owner+" (you are eve@example.com)") {
		t.Errorf("banner %q", s)
	}
	if v := b.attr("#email", "value"); v != owner {
		t.Errorf("the acting session's account page shows %q", v)
	}
	b.shot("acting")
	b.submit("stop acting", chromedp.Click(chromedp.CSS(`#acting-banner button`)))
	if p := b.path(); p != "/signin" {
		t.Errorf("after stopping the browser is at %s", p)
	}
}
