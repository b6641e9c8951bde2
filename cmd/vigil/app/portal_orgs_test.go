package app

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// Plain-HTTP tests of the portal's Organisations and Delegations pages through the real
// app: CSRF refusals, bad input shown next to its field with a 4xx and nothing written,
// the forbidden cases (a member cannot change the policy or the membership, an outsider
// does not see the organisation), a real organisation policy sending a member to the
// enrollment page, and acting for the owner of a delegation with its banner.

var orgPath = regexp.MustCompile(`^/orgs/([^/]+)$`)

// enableTOTP sets up an authenticator app through the Security page and returns its secret.
func (c *portalClient) enableTOTP() string {
	c.t.Helper()
	tok := csrf(c.t, c.get("/security"))
	a := c.post("/security/totp", url.Values{"csrf_token": {tok}, "name": {"Phone"}})
	m := pendingTOTP.FindStringSubmatch(a.body)
	if m == nil {
		c.t.Fatalf("TOTP set-up page: %s %.300s", a.path, a.body)
	}
	code, err := totp.GenerateCode(m[1], time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	if a := c.post(a.path+"/confirm", url.Values{"csrf_token": {tok}, "code": {code}}); !strings.Contains(a.body, "Your backup codes") {
		c.t.Fatalf("TOTP confirmation: %d %.300s", a.status, a.body)
	}
	return m[1]
}

// signIn signs in with the password through the sign-in form and answers the page.
func (c *portalClient) signIn(email string) answer {
	c.t.Helper()
	tok := csrf(c.t, c.get("/signin"))
	return c.post("/signin", url.Values{"csrf_token": {tok}, "email": {email}, "password": {browserPassword}})
}

func TestPortalOrganisations(t *testing.T) {
	base := portalApp(t, nil)
	owner, member, outsider := newPortalClient(t, base), newPortalClient(t, base), newPortalClient(t, base)
	owner.signUp("olga@example.com")
	member.signUp("max@example.com")
	outsider.signUp("eve@example.com")

	a := owner.get("/orgs")
	if a.status != 200 || !strings.Contains(a.body, "You belong to no organisation yet.") || !strings.Contains(a.body, `href="/orgs" aria-current="page"`) {
		t.Fatalf("empty organisations page: %d %.500s", a.status, a.body)
	}
	tok := csrf(t, a)
	// Without the CSRF token: 403, nothing created.
	if a := owner.post("/orgs", url.Values{"name": {"Acme"}}); a.status != 403 {
		t.Errorf("create without CSRF: %d", a.status)
	}
	// A blank name: 400 next to the field, nothing created.
	a = owner.post("/orgs", url.Values{"csrf_token": {tok}, "name": {"   "}})
	if a.status != 400 || !strings.Contains(a.body, `id="org-name-error"`) || !strings.Contains(a.body, `aria-invalid="true"`) {
		t.Errorf("blank name: %d %.500s", a.status, a.body)
	}
	if a := owner.get("/orgs"); !strings.Contains(a.body, "You belong to no organisation yet.") {
		t.Error("a refused organisation was created")
	}
	a = owner.post("/orgs", url.Values{"csrf_token": {tok}, "name": {"Acme"}})
	m := orgPath.FindStringSubmatch(a.path)
	if a.status != 200 || m == nil || !strings.Contains(a.body, "The organisation was created.") || !strings.Contains(a.body, "olga@example.com") {
		t.Fatalf("create: %d %s %.500s", a.status, a.path, a.body)
	}
	orgURL := a.path
	if a := owner.get("/orgs"); !strings.Contains(a.body, `href="/orgs/`+m[1]+`">Acme</a>`) {
		t.Errorf("the organisations list lacks Acme: %.500s", a.body)
	}

	// Add a member: an unknown email and a bad role are refused next to their fields.
	a = owner.post(orgURL+"/members", url.Values{"csrf_token": {tok}, "email": {"nobody@example.com"}, "role": {"member"}})
	if a.status != 404 || !strings.Contains(a.body, `id="member_email-error"`) || !strings.Contains(a.body, "No account has this email.") ||
		!strings.Contains(a.body, `value="nobody@example.com"`) {
		t.Errorf("unknown member email: %d %.500s", a.status, a.body)
	}
	a = owner.post(orgURL+"/members", url.Values{"csrf_token": {tok}, "email": {"max@example.com"}, "role": {"boss"}})
	if a.status != 400 || !strings.Contains(a.body, `id="member_role-error"`) {
		t.Errorf("bad role: %d %.500s", a.status, a.body)
	}
	if a := owner.get(orgURL); strings.Contains(a.body, "max@example.com") {
		t.Error("a refused member was added")
	}
	a = owner.post(orgURL+"/members", url.Values{"csrf_token": {tok}, "email": {"max@example.com"}, "role": {"member"}})
	if a.status != 200 || !strings.Contains(a.body, "The member was added.") || !strings.Contains(a.body, "max@example.com") {
		t.Fatalf("add member: %d %.500s", a.status, a.body)
	}

	// The last owner cannot be removed: 409 next to that member's Remove button.
	self := regexp.MustCompile(`data-member="([^"]+)">\s*<td data-label="Email">olga@example.com`).FindStringSubmatch(a.body)
	if self == nil {
		t.Fatalf("no member row for the owner: %.800s", a.body)
	}
	a = owner.post(orgURL+"/members/"+self[1]+"/remove", url.Values{"csrf_token": {tok}})
	if a.status != 409 || !strings.Contains(a.body, `id="member-`+self[1]+`-error"`) || !strings.Contains(a.body, "olga@example.com") {
		t.Errorf("removing the last owner: %d %.500s", a.status, a.body)
	}

	// The owner without 2FA may not require it: 403 next to the password field.
	a = owner.post(orgURL+"/two-factor-policy", url.Values{"csrf_token": {tok}, "required": {"on"}, "password": {browserPassword}})
	if a.status != 403 || !strings.Contains(a.body, `id="policy_password-error"`) || !strings.Contains(a.body, "is <strong>not required</strong>") {
		t.Errorf("policy without 2FA: %d %.500s", a.status, a.body)
	}

	// The member sees the organisation but cannot change it; an outsider does not see it.
	a = member.get(orgURL)
	mtok := csrf(t, a)
	if a.status != 200 || strings.Contains(a.body, "/two-factor-policy") || strings.Contains(a.body, "Add member") {
		t.Errorf("member's view: %d %.500s", a.status, a.body)
	}
	if a := member.post(orgURL+"/two-factor-policy", url.Values{"csrf_token": {mtok}, "required": {"on"}, "password": {browserPassword}}); a.status != 403 {
		t.Errorf("a member changed the policy: %d", a.status)
	}
	if a := member.post(orgURL+"/members", url.Values{"csrf_token": {mtok}, "email": {"eve@example.com"}, "role": {"member"}}); a.status != 403 {
		t.Errorf("a member added a member: %d", a.status)
	}
	if a := member.get(orgURL + "/activity"); a.status != 403 {
		t.Errorf("a member read the members' activity: %d", a.status)
	}
	if a := outsider.get(orgURL); a.status != 404 || strings.Contains(a.body, "Acme") {
		t.Errorf("an outsider's view: %d", a.status)
	}
	if a := outsider.post(orgURL+"/members/x/remove", url.Values{"csrf_token": {csrf(t, outsider.get("/orgs"))}}); a.status != 404 {
		t.Errorf("an outsider removed a member: %d", a.status)
	}

	// With 2FA on, a wrong password is refused next to the field; the right one requires 2FA.
	owner.enableTOTP()
	a = owner.post(orgURL+"/two-factor-policy", url.Values{"csrf_token": {tok}, "required": {"on"}, "password": {"not the password"}})
	if a.status != 403 || !strings.Contains(a.body, "That is not your password.") || !strings.Contains(a.body, "is <strong>not required</strong>") {
		t.Errorf("policy with a wrong password: %d %.500s", a.status, a.body)
	}
	a = owner.post(orgURL+"/two-factor-policy", url.Values{"csrf_token": {tok}, "required": {"on"}, "password": {browserPassword}})
	if a.status != 200 || !strings.Contains(a.body, "is <strong>required</strong>") || !strings.Contains(a.body, `id="two-factor-report"`) {
		t.Fatalf("require 2FA: %d %.500s", a.status, a.body)
	}

	// The member, signing in again without a second factor, must enroll.
	member.post("/signout", url.Values{"csrf_token": {mtok}})
	if a := member.signIn("max@example.com"); a.path != "/enroll" {
		t.Errorf("the member signed in to %s", a.path)
	}

	// Managed organisations: an unknown id is refused next to the field; an organisation
	// the owner also owns is added.
	a = owner.post(orgURL+"/managed-orgs", url.Values{"csrf_token": {tok}, "org_id": {"no-such-org"}})
	if a.status != 404 || !strings.Contains(a.body, `id="managed_org_id-error"`) || !strings.Contains(a.body, `value="no-such-org"`) {
		t.Errorf("unknown managed org: %d %.500s", a.status, a.body)
	}
	sub := orgPath.FindStringSubmatch(owner.post("/orgs", url.Values{"csrf_token": {tok}, "name": {"Acme Sub"}}).path)
	if sub == nil {
		t.Fatal("second organisation not created")
	}
	a = owner.post(orgURL+"/managed-orgs", url.Values{"csrf_token": {tok}, "org_id": {sub[1]}})
	if a.status != 200 || !strings.Contains(a.body, "The organisation now manages the other one.") || !strings.Contains(a.body, "Acme Sub <code>"+sub[1]) {
		t.Errorf("add managed org: %d %.500s", a.status, a.body)
	}
	// The members' activity, for the owner, names the member of each row.
	a = owner.get(orgURL + "/activity")
	if a.status != 200 || !strings.Contains(a.body, `<th scope="col">Member</th>`) || !strings.Contains(a.body, "olga@example.com") ||
		!strings.Contains(a.body, `action="`+orgURL+`/activity"`) {
		t.Errorf("members' activity: %d %.500s", a.status, a.body)
	}
	if a := owner.get(orgURL + "/activity?from=yesterday"); a.status != 400 || !strings.Contains(a.body, `id="from-error"`) {
		t.Errorf("bad activity filter: %d", a.status)
	}

	// Removing a member: gone from the list, and the organisation is hidden from them again.
	a = owner.post(orgURL+"/members", url.Values{"csrf_token": {tok}, "email": {"eve@example.com"}, "role": {"admin"}})
	eve := regexp.MustCompile(`data-member="([^"]+)">\s*<td data-label="Email">eve@example.com`).FindStringSubmatch(a.body)
	if eve == nil {
		t.Fatalf("eve not added: %d %.500s", a.status, a.body)
	}
	// Eve has no second factor and the organisation requires one: her session, opened before
	// she joined, is sent to enroll at once; once enrolled she sees the organisation.
	if a := outsider.get(orgURL); a.path != "/enroll" {
		t.Errorf("the new admin without 2FA reached %s, want /enroll", a.path)
	}
	outsider.enableTOTP()
	if a := outsider.get(orgURL); a.status != 200 || !strings.Contains(a.body, "Your role: admin") {
		t.Errorf("the new admin's view: %d", a.status)
	}
	a = owner.post(orgURL+"/members/"+eve[1]+"/remove", url.Values{"csrf_token": {tok}})
	if a.status != 200 || !strings.Contains(a.body, "The member was removed.") || strings.Contains(a.body, "eve@example.com") {
		t.Errorf("remove: %d %.500s", a.status, a.body)
	}
	if a := outsider.get(orgURL); a.status != 404 {
		t.Errorf("a removed member still sees the organisation: %d", a.status)
	}
}

func TestPortalDelegations(t *testing.T) {
	base := portalApp(t, nil)
	owner, delegate := newPortalClient(t, base), newPortalClient(t, base)
	owner.signUp("olga@example.com")
	delegate.signUp("eve@example.com")

	a := owner.get("/delegations")
	tok := csrf(t, a)
	if a.status != 200 || !strings.Contains(a.body, `for="delegate_email"`) || !strings.Contains(a.body, `for="expires_at"`) {
		t.Fatalf("delegations page: %d %.500s", a.status, a.body)
	}
	day := time.Now().UTC().AddDate(0, 0, 7).Format("2006-01-02")
	if a := owner.post("/delegations", url.Values{"delegate_email": {"eve@example.com"}, "expires_at": {day}}); a.status != 403 {
		t.Errorf("grant without CSRF: %d", a.status)
	}
	a = owner.post("/delegations", url.Values{"csrf_token": {tok}, "delegate_email": {"nobody@example.com"}, "expires_at": {day}})
	if a.status != 404 || !strings.Contains(a.body, `id="delegate_email-error"`) {
		t.Errorf("unknown delegate: %d %.500s", a.status, a.body)
	}
	a = owner.post("/delegations", url.Values{"csrf_token": {tok}, "delegate_email": {"eve@example.com"}, "expires_at": {"next week"}})
	if a.status != 400 || !strings.Contains(a.body, `id="expires_at-error"`) || !strings.Contains(a.body, `value="eve@example.com"`) {
		t.Errorf("bad date: %d %.500s", a.status, a.body)
	}
	far := time.Now().UTC().AddDate(0, 0, 120).Format("2006-01-02")
	a = owner.post("/delegations", url.Values{"csrf_token": {tok}, "delegate_email": {"eve@example.com"}, "expires_at": {far}})
	if a.status != 400 || !strings.Contains(a.body, "at most 90 days") {
		t.Errorf("too far: %d %.500s", a.status, a.body)
	}
	if a := delegate.get("/delegations"); strings.Contains(a.body, "olga@example.com") {
		t.Error("a refused delegation was granted")
	}
	a = owner.post("/delegations", url.Values{"csrf_token": {tok}, "delegate_email": {"eve@example.com"}, "expires_at": {day}})
	if a.status != 200 || !strings.Contains(a.body, "Access was granted.") || !strings.Contains(a.body, "eve@example.com") {
		t.Fatalf("grant: %d %.500s", a.status, a.body)
	}

	// The owner starts setting up an authenticator app (a pending device with its secret).
	stok := csrf(t, owner.get("/security"))
	setup := owner.post("/security/totp", url.Values{"csrf_token": {stok}, "name": {"Spare phone"}})
	secret := pendingTOTP.FindStringSubmatch(setup.body)
	if secret == nil {
		t.Fatalf("pending device: %s %.300s", setup.path, setup.body)
	}

	// The delegate acts for the owner: the banner names both; an acting session cannot
	// manage delegations.
	a = delegate.get("/delegations")
	act := regexp.MustCompile(`action="(/delegations/[^/"]+/act)"`).FindStringSubmatch(a.body)
	if act == nil || !strings.Contains(a.body, "olga@example.com") {
		t.Fatalf("received delegation: %.800s", a.body)
	}
	dtok := csrf(t, a)
	a = delegate.post(act[1], url.Values{"csrf_token": {dtok}})
	if a.path != "/account" || !strings.Contains(a.body, `id="acting-banner"`) ||
		!strings.Contains(a.body, "Acting for <strong>olga@example.com</strong> (you are eve@example.com)") {
		t.Fatalf("acting: %s %.800s", a.path, a.body)
	}
	atok := csrf(t, a)
	a = delegate.get("/delegations")
	if strings.Contains(a.body, `action="/delegations"`) {
		t.Error("the acting session is offered the grant form")
	}
	if a := delegate.post("/delegations", url.Values{"csrf_token": {atok}, "delegate_email": {"eve@example.com"}, "expires_at": {day}}); a.status != 403 {
		t.Errorf("an acting session granted a delegation: %d", a.status)
	}
	// Nor read the pending authenticator's secret, nor change the email, nor sign the owner
	// out (finding 1 of the security review).
	for _, a := range []answer{
		delegate.get(setup.path),
		delegate.post(setup.path+"/confirm", url.Values{"csrf_token": {atok}, "code": {"123456"}}),
		delegate.post("/account", url.Values{"csrf_token": {atok}, "email": {"eve+olga@example.com"}, "first_name": {"Olga"}, "last_name": {"Lee"}}),
		delegate.post("/sessions/sign-out-others", url.Values{"csrf_token": {atok}}),
	} {
		if a.status != 403 || strings.Contains(a.body, secret[1]) || !strings.Contains(a.body, "delegate") {
			t.Errorf("acting session: %s answered %d %.300s", a.path, a.status, a.body)
		}
	}
	if a := owner.get("/account"); a.status != 200 || !strings.Contains(a.body, "olga@example.com") {
		t.Errorf("the owner's account after the delegate's attempts: %d", a.status)
	}
	// The Security page shows a delegate the state, not the forms it may not use.
	if a := delegate.get("/security"); a.status != 200 || !strings.Contains(a.body, `id="acting-security"`) ||
		strings.Contains(a.body, `action="/security/password"`) || strings.Contains(a.body, `action="/security/totp"`) {
		t.Errorf("the Security page of an acting session: %d %.500s", a.status, a.body)
	}
	if a := owner.get("/security"); !strings.Contains(a.body, `action="/security/password"`) || strings.Contains(a.body, `id="acting-security"`) {
		t.Errorf("the owner's Security page lost its forms: %.300s", a.body)
	}
	// Stop acting: the acting session is signed out.
	if a := delegate.post("/signout", url.Values{"csrf_token": {atok}}); a.path != "/signin" {
		t.Errorf("stop acting: %s", a.path)
	}

	// The owner revokes; the delegate no longer sees it.
	a = owner.get("/delegations")
	rev := regexp.MustCompile(`action="(/delegations/[^/"]+/revoke)"`).FindStringSubmatch(a.body)
	if rev == nil {
		t.Fatalf("no revoke form: %.500s", a.body)
	}
	if a := owner.post(rev[1], url.Values{"csrf_token": {tok}}); a.status != 200 || !strings.Contains(a.body, "The access was revoked.") {
		t.Errorf("revoke: %d %.300s", a.status, a.body)
	}
	delegate.signIn("eve@example.com")
	if a := delegate.get("/delegations"); strings.Contains(a.body, "olga@example.com") {
		t.Error("a revoked delegation is still listed")
	}
}
