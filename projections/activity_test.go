package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

// wantActivity is the expected newest activity row after a case. Empty strings mean empty
// (or null); client is the client's name.
type wantActivity struct {
	typ, outcome, desc, details        string
	account, actor, client             string
	access, accessDetails, ip, country string
}

// byOwner is md as done by the organisation owner acc-o (the subject stays).
func byOwner(md domain.Metadata) domain.Metadata {
	md.Actor = domain.Actor{Type: domain.ActorAccount, ID: "acc-o"}
	return md
}

func TestActivityReducer(t *testing.T) {
	e, r := startGeo(t, func(geo *geoip.Resolver) projections.Projection { return projections.Activity{GeoIP: geo} })
	ctx := context.Background()
	t0 := testStart
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	acct := domain.AccountStream("acc-a")
	// md is a request of acc-a itself from London with Chrome through the portal.
	md := domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ipLondon, UserAgent: uaChromeMac, ClientID: domain.PortalClientID}
	with := func(f func(*domain.Metadata)) domain.Metadata {
		m := md
		f(&m)
		return m
	}
	admin := with(func(m *domain.Metadata) {
		m.Actor = domain.Actor{Type: domain.ActorAdmin, ID: "acc-admin"}
		m.IP, m.UserAgent, m.ClientID = ipGoogle, uaCurl, ""
	})
	chrome := "Chrome 126 on macOS (desktop)"
	portal := domain.PortalClientName
	ok := func(typ, desc, details string) wantActivity {
		return wantActivity{typ: typ, outcome: "success", desc: desc, details: details, account: "acc-a", client: portal,
			access: "browser", accessDetails: chrome, ip: ipLondon, country: "GB"}
	}
	sealed := credential.SealedSecret{KeyID: "k1", Nonce: []byte("nonce-secret"), Ciphertext: []byte("ciphertext-secret")}

	cases := []struct {
		name   string
		stream string
		md     domain.Metadata
		events []domain.Event
		want   *wantActivity // nil: no new row
	}{
		{"ClientRegistered makes no row", domain.ClientStream("c1"), domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}},
			[]domain.Event{domain.ClientRegistered{ClientID: "c1", Name: "Acme CRM", At: at(0)}}, nil},
		{"AccountRegistered", acct, md, []domain.Event{domain.AccountRegistered{AccountID: "acc-a", Email: "ann@example.com",
			FirstName: "Ann", LastName: "Lee", PasswordHash: "$argon2id$secret-hash", At: at(1)}},
			ptr(ok("AccountRegistered", "Account created", `{}`))},
		{"EmailChanged", acct, md, []domain.Event{domain.EmailChanged{OldEmail: "ann@example.com", NewEmail: "ann@example.org", At: at(2)}},
			ptr(ok("EmailChanged", "Email address changed", `{}`))},
		{"NameChanged", acct, md, []domain.Event{domain.NameChanged{FirstName: "Anne", LastName: "Lee", At: at(3)}},
			ptr(ok("NameChanged", "Name changed", `{}`))},
		{"ProfileUpdated", acct, md, []domain.Event{domain.ProfileUpdated{Profile: domain.Profile{City: "Leeds"}, At: at(4)}},
			ptr(ok("ProfileUpdated", "Profile updated", `{}`))},
		{"PasswordChanged", acct, md, []domain.Event{domain.PasswordChanged{PasswordHash: "$argon2id$secret-hash-2", At: at(5)}},
			ptr(ok("PasswordChanged", "Password changed", `{}`))},
		{"TOTPDeviceAdded", acct, md, []domain.Event{domain.TOTPDeviceAdded{DeviceID: "d1", Name: "Phone", Secret: sealed, At: at(6)}},
			ptr(ok("TOTPDeviceAdded", `Authenticator app "Phone" added (not yet confirmed)`, `{"device_id":"d1","device_name":"Phone"}`))},
		{"TOTPDeviceConfirmed", acct, md, []domain.Event{domain.TOTPDeviceConfirmed{DeviceID: "d1", Step: 100, At: at(7)}},
			ptr(ok("TOTPDeviceConfirmed", `Authenticator app "Phone" confirmed`, `{"device_id":"d1","device_name":"Phone"}`))},
		{"BackupCodesGenerated", acct, md, []domain.Event{domain.BackupCodesGenerated{SetID: "set1",
			CodeHashes: slices.Repeat([]string{"code-hash-secret"}, 10), At: at(8)}},
			ptr(ok("BackupCodesGenerated", "New backup codes generated (10)", `{"count":10}`))},
		{"LoginSucceeded through a client (SessionStarted makes no row of its own)", domain.SessionStream("s1"),
			with(func(m *domain.Metadata) { m.SubjectAccountID, m.ClientID = "", "c1" }),
			[]domain.Event{
				domain.LoginSucceeded{AccountID: "acc-a", SessionID: "s1", Method: domain.MethodTOTP, AMR: []string{"pwd", "otp"},
					AAL: domain.AAL2, ClientID: "c1", At: at(9)},
				domain.SessionStarted{SessionID: "s1", AccountID: "acc-a", TokenHash: "token-hash-secret", ClientID: "c1",
					AMR: []string{"pwd", "otp"}, AAL: domain.AAL2, StartedAt: at(9), ExpiresAt: at(9).Add(24 * time.Hour)}},
			&wantActivity{typ: "LoginSucceeded", outcome: "success", desc: "Signed in with password and authenticator app",
				details: `{"aal":"aal2","amr":["pwd","otp"],"method":"totp","session_id":"s1"}`, account: "acc-a", client: "Acme CRM",
				access: "browser", accessDetails: chrome, ip: ipLondon, country: "GB"}},
		{"TOTPCodeAccepted", acct, md, []domain.Event{domain.TOTPCodeAccepted{DeviceID: "d1", Step: 101, Purpose: "login", At: at(10)}},
			ptr(ok("TOTPCodeAccepted", `Authenticator app "Phone" code used to sign in`, `{"device_id":"d1","device_name":"Phone","purpose":"login"}`))},
		{"BackupCodeUsed", acct, md, []domain.Event{domain.BackupCodeUsed{SetID: "set1", Index: 3, Purpose: "reauth", At: at(11)}},
			ptr(ok("BackupCodeUsed", "Backup code used to confirm your identity", `{"purpose":"reauth"}`))},
		{"ReauthSucceeded, attributed through its session", domain.SessionStream("s1"),
			with(func(m *domain.Metadata) { m.SubjectAccountID, m.ClientID = "", "" }),
			[]domain.Event{domain.ReauthSucceeded{Method: domain.MethodPassword, AMR: []string{"pwd", "otp"}, AAL: domain.AAL2, At: at(12)}},
			&wantActivity{typ: "ReauthSucceeded", outcome: "success", desc: "Identity confirmed with password",
				details: `{"aal":"aal2","amr":["pwd","otp"],"method":"password","session_id":"s1"}`, account: "acc-a", client: "Acme CRM",
				access: "browser", accessDetails: chrome, ip: ipLondon, country: "GB"}},
		{"PasskeyRegistered", acct, md, []domain.Event{domain.PasskeyRegistered{PasskeyID: "p1", Name: "YubiKey",
			CredentialID: []byte("credential-id"), PublicKey: []byte("public-key-secret"), AAGUID: []byte("aaguid"),
			BackupEligible: true, At: at(13)}},
			ptr(ok("PasskeyRegistered", `Passkey "YubiKey" added`, `{"backed_up":false,"backup_eligible":true,"name":"YubiKey","passkey_id":"p1"}`))},
		{"PasskeyRenamed", acct, md, []domain.Event{domain.PasskeyRenamed{PasskeyID: "p1", Name: "Blue key", At: at(14)}},
			ptr(ok("PasskeyRenamed", `Passkey "YubiKey" renamed to "Blue key"`, `{"name":"Blue key","old_name":"YubiKey","passkey_id":"p1"}`))},
		{"PasskeyUsed", acct, md, []domain.Event{domain.PasskeyUsed{PasskeyID: "p1", SignCount: 5, BackupState: true, At: at(15)}},
			ptr(ok("PasskeyUsed", `Passkey "Blue key" used`, `{"backed_up":true,"name":"Blue key","passkey_id":"p1"}`))},
		{"PasskeyCloneSuspected is a failure", acct, md, []domain.Event{domain.PasskeyCloneSuspected{PasskeyID: "p1",
			StoredSignCount: 5, ReceivedSignCount: 3, At: at(16)}},
			ptr(withOutcome(ok("PasskeyCloneSuspected", `Passkey "Blue key" refused: it may have been cloned`,
				`{"name":"Blue key","passkey_id":"p1","received_sign_count":3,"stored_sign_count":5}`), "failure"))},
		{"PasskeyRemoved", acct, md, []domain.Event{domain.PasskeyRemoved{PasskeyID: "p1", At: at(17)}},
			ptr(ok("PasskeyRemoved", `Passkey "Blue key" removed`, `{"name":"Blue key","passkey_id":"p1"}`))},
		{"TOTPDeviceRemoved", acct, md, []domain.Event{domain.TOTPDeviceRemoved{DeviceID: "d1", At: at(18)}},
			ptr(ok("TOTPDeviceRemoved", `Authenticator app "Phone" removed`, `{"device_id":"d1","device_name":"Phone"}`))},
		{"TwoFactorDisabled", acct, md, []domain.Event{domain.TwoFactorDisabled{Reason: domain.TwoFactorDisabledLastFactorGone, At: at(19)}},
			ptr(ok("TwoFactorDisabled", "Two-factor authentication turned off: the last second factor was removed", `{"reason":"last_factor_removed"}`))},
		{"RoleGranted by an admin", acct, admin, []domain.Event{domain.RoleGranted{Role: domain.RoleAuditor, At: at(20)}},
			&wantActivity{typ: "RoleGranted", outcome: "success", desc: `Role "auditor" granted`, details: `{"role":"auditor"}`,
				account: "acc-a", actor: "acc-admin", access: "api", accessDetails: "curl 8.5.0", ip: ipGoogle, country: "US"}},
		{"RoleRevoked by an admin", acct, admin, []domain.Event{domain.RoleRevoked{Role: domain.RoleAuditor, At: at(21)}},
			&wantActivity{typ: "RoleRevoked", outcome: "success", desc: `Role "auditor" revoked`, details: `{"role":"auditor"}`,
				account: "acc-a", actor: "acc-admin", access: "api", accessDetails: "curl 8.5.0", ip: ipGoogle, country: "US"}},
		{"LoginFailed: wrong password", acct, with(func(m *domain.Metadata) { m.IP, m.UserAgent, m.ClientID = ipSweden, uaCurl, "" }),
			[]domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StagePassword,
				Method: domain.MethodPassword, At: at(22)}},
			&wantActivity{typ: "LoginFailed", outcome: "failure", desc: "Sign-in failed: wrong password",
				details: `{"method":"password","reason":"invalid_credentials","stage":"password"}`, account: "acc-a",
				access: "api", accessDetails: "curl 8.5.0", ip: ipSweden, country: "SE"}},
		{"LoginFailed: throttled", acct, md, []domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedThrottled,
			Stage: domain.StagePassword, Method: domain.MethodPassword, RetryAfterMS: 30000, At: at(23)}},
			ptr(withOutcome(ok("LoginFailed", "Sign-in blocked: too many failed attempts",
				`{"method":"password","reason":"throttled","retry_after_ms":30000,"stage":"password"}`), "failure"))},
		{"LoginFailed: wrong second factor", acct, md, []domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor,
			Stage: domain.StageSecondFactor, Method: domain.MethodTOTP, At: at(24)}},
			ptr(withOutcome(ok("LoginFailed", "Sign-in failed: wrong authenticator app code",
				`{"method":"totp","reason":"invalid_second_factor","stage":"second_factor"}`), "failure"))},
		{"LoginFailed: re-authentication", acct, md, []domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials,
			Stage: domain.StageReauth, Method: domain.MethodPassword, SessionID: "s1", At: at(25)}},
			ptr(withOutcome(ok("LoginFailed", "Identity confirmation failed: wrong password",
				`{"method":"password","reason":"invalid_credentials","session_id":"s1","stage":"reauth"}`), "failure"))},
		{"LoginFailed of an unknown email has no account and no email", domain.SigninStream,
			domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount}, IP: ipTelstra, UserAgent: uaFirefoxWin},
			[]domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedUnknownAccount, Stage: domain.StagePassword,
				Method: domain.MethodPassword, AttemptedEmail: "who@example.com", At: at(26)}},
			&wantActivity{typ: "LoginFailed", outcome: "failure", desc: "Sign-in failed: unknown email address",
				details: `{"method":"password","reason":"unknown_account","stage":"password"}`,
				access:  "browser", accessDetails: "Firefox 127 on Windows (desktop)", ip: ipTelstra}},
		{"SessionSignedOut by an admin", domain.SessionStream("s1"), admin,
			[]domain.Event{domain.SessionSignedOut{Reason: reasons.SignOutByAdmin, At: at(27)}},
			&wantActivity{typ: "SessionSignedOut", outcome: "success", desc: "Session signed out by an administrator",
				details: `{"reason":"signed_out_by_admin","session_id":"s1","signed_out_by":"admin"}`, account: "acc-a", actor: "acc-admin",
				access: "api", accessDetails: "curl 8.5.0", ip: ipGoogle, country: "US"}},
		{"SessionStarted makes no row (an iPhone in Mountain View)", domain.SessionStream("s2"),
			with(func(m *domain.Metadata) { m.IP, m.UserAgent, m.ClientID = ipGoogle, uaSafariIOS, "" }),
			[]domain.Event{
				domain.SessionStarted{SessionID: "s2", AccountID: "acc-a", TokenHash: "h2", AMR: []string{"pwd"}, AAL: domain.AAL1,
					StartedAt: at(28), ExpiresAt: at(28).Add(time.Hour)},
			}, nil},
		{"SessionExpired shows where the session was used from", domain.SessionStream("s2"),
			domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: "acc-a"},
			[]domain.Event{domain.SessionExpired{Reason: reasons.ExpiredIdle, At: at(29)}},
			&wantActivity{typ: "SessionExpired", outcome: "success", desc: "Session expired after inactivity",
				details: `{"reason":"idle","session_id":"s2"}`, account: "acc-a", access: "browser",
				accessDetails: "Safari 17 on iOS (iPhone)", ip: ipGoogle, country: "US"}},
		{"SessionSignedOut by a delegate", domain.SessionStream("s3"),
			with(func(m *domain.Metadata) { m.Actor = domain.Actor{Type: domain.ActorDelegate, ID: "acc-d"} }),
			[]domain.Event{domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: at(30)}},
			ptr(withActor(ok("SessionSignedOut", "Signed out", `{"reason":"logout","session_id":"s3","signed_out_by":"delegate"}`), "acc-d"))},
		{"LoginFailed: a passkey of no account", domain.SigninStream,
			domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount}, IP: ipPrivate, UserAgent: uaSafariIOS},
			[]domain.Event{domain.LoginFailed{Reason: reasons.LoginFailedUnknownAccount, Stage: domain.StagePassword,
				Method: domain.MethodPasskey, At: at(31)}},
			&wantActivity{typ: "LoginFailed", outcome: "failure", desc: "Sign-in failed: unknown passkey",
				details: `{"method":"passkey","reason":"unknown_account","stage":"password"}`,
				access:  "browser", accessDetails: "Safari 17 on iOS (iPhone)", ip: ipPrivate}},
		// Organisations (issue 5): in the log of the account they are about, by whoever acted.
		{"OrgCreated", domain.OrgStream("o1"), md, []domain.Event{domain.OrgCreated{OrgID: "o1", Name: "Acme",
			OwnerAccountID: "acc-a", At: at(32)}},
			ptr(ok("OrgCreated", `Organisation "Acme" created`, `{"name":"Acme","org_id":"o1"}`))},
		{"MemberAdded by an owner", domain.OrgStream("o1"), byOwner(md), []domain.Event{domain.MemberAdded{OrgID: "o1",
			AccountID: "acc-a", Role: domain.OrgRoleAdmin, At: at(33)}},
			ptr(withActor(ok("MemberAdded", `Added to organisation "Acme" as admin`, `{"account_id":"acc-a","org_id":"o1","role":"admin"}`), "acc-o"))},
		{"MemberRoleChanged", domain.OrgStream("o1"), byOwner(md), []domain.Event{domain.MemberRoleChanged{OrgID: "o1",
			AccountID: "acc-a", OldRole: domain.OrgRoleAdmin, Role: domain.OrgRoleMember, At: at(34)}},
			ptr(withActor(ok("MemberRoleChanged", `Role in organisation "Acme" changed to member`,
				`{"account_id":"acc-a","old_role":"admin","org_id":"o1","role":"member"}`), "acc-o"))},
		{"TwoFactorRequirementChanged", domain.OrgStream("o1"), md, []domain.Event{domain.TwoFactorRequirementChanged{OrgID: "o1",
			Required: true, ChangedBy: "acc-a", At: at(35)}},
			ptr(ok("TwoFactorRequirementChanged", `Two-factor authentication required in organisation "Acme"`,
				`{"changed_by":"acc-a","org_id":"o1","required":true}`))},
		{"ManagedOrgAdded", domain.OrgStream("o1"), md, []domain.Event{domain.ManagedOrgAdded{OrgID: "o1", ManagedOrgID: "o2", At: at(36)}},
			ptr(ok("ManagedOrgAdded", `Organisation "Acme" now manages an organisation`, `{"managed_org_id":"o2","org_id":"o1"}`))},
		{"MemberRemoved", domain.OrgStream("o1"), byOwner(md), []domain.Event{domain.MemberRemoved{OrgID: "o1", AccountID: "acc-a", At: at(37)}},
			ptr(withActor(ok("MemberRemoved", `Removed from organisation "Acme"`, `{"account_id":"acc-a","org_id":"o1"}`), "acc-o"))},
		// Delegations: in the owner's log; the acting session's sign-in names the delegate.
		{"DelegationGranted", domain.DelegationStream("g1"), md, []domain.Event{domain.DelegationGranted{DelegationID: "g1",
			OwnerAccountID: "acc-a", DelegateAccountID: "acc-d", ExpiresAt: t0.Add(24 * time.Hour), At: at(38)}},
			ptr(ok("DelegationGranted", "Access delegated until 2026-03-02T12:00:00Z",
				`{"delegate_account_id":"acc-d","delegation_id":"g1","expires_at":"2026-03-02T12:00:00Z"}`))},
		{"LoginSucceeded of an acting session", domain.SessionStream("s4"),
			with(func(m *domain.Metadata) { m.Actor = domain.Actor{Type: domain.ActorDelegate, ID: "acc-d"} }),
			[]domain.Event{
				domain.LoginSucceeded{AccountID: "acc-a", SessionID: "s4", Method: domain.MethodDelegation, AMR: []string{"pwd"},
					AAL: domain.AAL1, At: at(39)},
				domain.SessionStarted{SessionID: "s4", AccountID: "acc-a", ActorAccountID: "acc-d", DelegationID: "g1",
					TokenHash: "h4", AMR: []string{"pwd"}, AAL: domain.AAL1, StartedAt: at(39), ExpiresAt: at(39).Add(time.Hour)}},
			ptr(withActor(ok("LoginSucceeded", "Delegate started acting for the account",
				`{"aal":"aal1","amr":["pwd"],"method":"delegation","session_id":"s4"}`), "acc-d"))},
		{"DelegationRevoked", domain.DelegationStream("g1"), md, []domain.Event{domain.DelegationRevoked{DelegationID: "g1", At: at(40)}},
			ptr(ok("DelegationRevoked", "Delegated access revoked", `{"delegation_id":"g1"}`))},
		{"DelegationExpired", domain.DelegationStream("g2"), md, []domain.Event{domain.DelegationExpired{DelegationID: "g2", At: at(41)}},
			ptr(ok("DelegationExpired", "Delegated access expired", `{"delegation_id":"g2"}`))},
		{"EmailVerified", acct, md, []domain.Event{domain.EmailVerified{RequestID: "r1", Email: "ann@example.org", At: at(42)}},
			ptr(ok("EmailVerified", "Email address verified", `{}`))},
		{"PasswordResetRequested", acct, md, []domain.Event{domain.PasswordResetRequested{RequestID: "r2", TokenHash: "token-hash-secret", At: at(43)}},
			ptr(ok("PasswordResetRequested", "Password reset link requested", `{}`))},
		{"PasswordResetCompleted", acct, md, []domain.Event{domain.PasswordResetCompleted{RequestID: "r2", PasswordHash: "$argon2id$secret-hash-3", At: at(44)}},
			ptr(ok("PasswordResetCompleted", "Password reset with a mailed link", `{}`))},
		{"SuspiciousActivityReported", acct, md, []domain.Event{domain.SuspiciousActivityReported{EventID: "e1", Source: domain.ReportFromMail, At: at(45)}},
			ptr(ok("SuspiciousActivityReported", `Reported as "this wasn't me"`, `{"event_id":"e1","source":"mail"}`))},
		{"SignInRiskDetected", domain.AccountStream("acc-a"),
			with(func(m *domain.Metadata) { m.Actor = domain.Actor{Type: domain.ActorSystem} }),
			[]domain.Event{domain.SignInRiskDetected{SessionID: "s9", LoginEventID: "no-such-event",
				Signals: []string{domain.SignalNewCountry, domain.SignalImpossibleTravel}, Device: "Chrome on macOS",
				Country: "GB", PreviousCountry: "BR", SpeedKMH: 9400, At: at(46)}},
			ptr(ok("SignInRiskDetected", "Unusual sign-in: new country, impossible travel",
				`{"country":"GB","device":"Chrome on macOS","login_event_id":"no-such-event","previous_country":"BR",`+
					`"session_id":"s9","signals":["new_country","impossible_travel"],"speed_kmh":9400}`))},
	}

	covered := map[string]bool{}
	var lastPos uint64
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pos := e.emit(c.stream, c.md, c.events...)
			e.waitFor(r, pos)
			rows, _, err := e.db.Activity(ctx, projections.ActivityFilter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if len(rows) > 0 && rows[0].Position != lastPos {
					t.Fatalf("a row appeared: %s", mustJSON(t, rows[0]))
				}
				return
			}
			if len(rows) != 1 || rows[0].Position <= lastPos || rows[0].Position > pos {
				t.Fatalf("newest row %s; want one of the events after %d up to %d", mustJSON(t, rows), lastPos, pos)
			}
			lastPos = rows[0].Position
			got, w := rows[0], *c.want
			covered[got.Type] = true
			checkActivity(t, got, w, at(i))
		})
	}
	for _, typ := range projections.ActivityTypes() {
		if !covered[typ] {
			t.Errorf("no case covers activity type %s", typ)
		}
	}

	// One row in full, as the API shows it.
	rows, _, err := e.db.Activity(ctx, projections.ActivityFilter{Types: []string{"LoginSucceeded"}})
	if err != nil || len(rows) != 2 {
		t.Fatalf("LoginSucceeded rows: %v %v", rows, err)
	}
	rows = rows[1:] // the sign-in with a second factor, before the acting session's
	var full map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, rows[0])), &full); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "position", "time", "type", "outcome", "ip", "location", "asn", "access_type", "access_details",
		"client", "actor_account_id", "details", "account_id", "description"} {
		if _, ok := full[k]; !ok {
			t.Errorf("activity JSON lacks %q: %v", k, full)
		}
	}
	if loc := mustJSON(t, rows[0].Location); loc != `{"city":"London","region":"England","country":"United Kingdom","country_code":"GB","latitude":51.5142,"longitude":-0.0931}` {
		t.Errorf("location JSON %s", loc)
	}
	if full["actor_account_id"] != nil || rows[0].ASN != 20712 || rows[0].ASOrg != "Andrews & Arnold Ltd" {
		t.Errorf("row %s", mustJSON(t, rows[0]))
	}

	// Nothing secret or personal leaked into any row.
	all := activityAll(t, e.db, projections.ActivityFilter{})
	for _, r := range all {
		js := mustJSON(t, r)
		for _, bad := range []string{"secret", "hash", "public-key", "credential-id", "aaguid", "ann@", "who@", "Leeds"} {
			if strings.Contains(js, bad) {
				t.Errorf("row %s holds %q", js, bad)
			}
		}
	}

	t.Run("queries", func(t *testing.T) {
		count := func(f projections.ActivityFilter) int {
			t.Helper()
			return len(activityAll(t, e.db, f))
		}
		if n, want := len(all), len(cases)-2; n != want { // ClientRegistered and SessionStarted make none
			t.Fatalf("%d rows, want %d", n, want)
		}
		if n := count(projections.ActivityFilter{AccountID: "acc-a"}); n != len(all)-2 {
			t.Errorf("acc-a has %d rows, want all but the two of no account (%d)", n, len(all)-2)
		}
		if n := count(projections.ActivityFilter{IP: ipSweden}); n != 1 {
			t.Errorf("rows from %s: %d", ipSweden, n)
		}
		if n := count(projections.ActivityFilter{CountryCode: "us"}); n != 4 {
			t.Errorf("rows from the US: %d, want 4 (two role changes, the admin sign-out, the expiry)", n)
		}
		if n := count(projections.ActivityFilter{Types: []string{"LoginFailed"}}); n != 6 {
			t.Errorf("LoginFailed rows: %d", n)
		}
		if n := count(projections.ActivityFilter{Outcome: "failure"}); n != 7 {
			t.Errorf("failures: %d", n)
		}
		if n := count(projections.ActivityFilter{AccountID: "acc-a", Types: []string{"LoginFailed", "PasskeyCloneSuspected"}, Outcome: "failure"}); n != 5 {
			t.Errorf("acc-a's failures: %d", n)
		}
		if n := count(projections.ActivityFilter{From: at(10), To: at(12)}); n != 3 {
			t.Errorf("rows from 10 to 12 minutes: %d", n)
		}
		if n := count(projections.ActivityFilter{AccountID: "acc-a", From: at(29), To: at(31)}); n != 2 {
			t.Errorf("acc-a rows from 29 minutes: %d", n)
		}
		if _, _, err := e.db.Activity(ctx, projections.ActivityFilter{Outcome: "maybe"}); !errors.Is(err, projections.ErrBadFilter) {
			t.Errorf("outcome maybe: %v", err)
		}
		if _, _, err := e.db.Activity(ctx, projections.ActivityFilter{From: at(2), To: at(1)}); !errors.Is(err, projections.ErrBadFilter) {
			t.Errorf("from after to: %v", err)
		}
		// Pages of 4 walk the same rows, newest first.
		var paged []uint64
		cursor := ""
		for {
			rows, next, err := e.db.Activity(ctx, projections.ActivityFilter{Limit: 4, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				paged = append(paged, r.Position)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		var want []uint64
		for _, r := range all {
			want = append(want, r.Position)
		}
		if !slices.Equal(paged, want) || !slices.IsSortedFunc(want, func(a, b uint64) int { return int(b) - int(a) }) {
			t.Errorf("paged %v, want %v newest first", paged, want)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func withOutcome(w wantActivity, outcome string) wantActivity { w.outcome = outcome; return w }

func withActor(w wantActivity, actor string) wantActivity { w.actor = actor; return w }

func checkActivity(t *testing.T, got projections.ActivityRow, w wantActivity, at time.Time) {
	t.Helper()
	actor := ""
	if got.ActorAccountID != nil {
		actor = *got.ActorAccountID
	}
	client := ""
	if got.Client != nil {
		client = got.Client.Name
	}
	country := ""
	if got.Location != nil {
		country = got.Location.CountryCode
	}
	if got.Type != w.typ || got.Outcome != w.outcome || got.Description != w.desc || string(got.Details) != w.details ||
		got.AccountID != w.account || actor != w.actor || client != w.client || got.AccessType != w.access ||
		got.AccessDetails != w.accessDetails || got.IP != w.ip || country != w.country || !got.Time.Equal(at) || got.ID == "" {
		t.Fatalf("row %s\nwant %+v at %s", mustJSON(t, got), w, at)
	}
}

// activityAll pages through every row that matches f.
func activityAll(t *testing.T, db *projections.DB, f projections.ActivityFilter) []projections.ActivityRow {
	t.Helper()
	var out []projections.ActivityRow
	f.Limit = projections.MaxLimit
	for {
		rows, next, err := db.Activity(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
		if next == "" {
			return out
		}
		f.Cursor = next
	}
}

// TestActivityTimeWindows checks time filters against a brute-force filter on a log whose
// event times are out of position order (as when commands commit out of order), including
// an event far older than the 70 before it.
func TestActivityTimeWindows(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(projections.Activity{})
	md := domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ipLondon}
	offsets := []int{0, 3, 1, 2, 7, 5, 6, 4, 9, 8}
	var times []time.Time
	for round := range 8 {
		for _, o := range offsets {
			times = append(times, testStart.Add(time.Duration(round*10+o)*time.Minute))
		}
	}
	times = append(times, testStart.Add(-time.Minute), testStart.Add(90*time.Minute), testStart.Add(45*time.Minute))
	var pos uint64
	for i, at := range times {
		account := "acc-a"
		if i%3 == 0 {
			account = "acc-b"
		}
		m := md
		m.SubjectAccountID, m.Actor = account, self(account)
		pos = e.emit(domain.AccountStream(account), m, domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials,
			Stage: domain.StagePassword, Method: domain.MethodPassword, At: at})
	}
	e.waitFor(r, pos)
	all := activityAll(t, e.db, projections.ActivityFilter{})
	if len(all) != len(times) {
		t.Fatalf("%d rows, want %d", len(all), len(times))
	}
	for from := -2; from <= 92; from += 3 {
		for _, width := range []int{0, 1, 4, 13, 40, 100} {
			for _, account := range []string{"", "acc-a"} {
				f := projections.ActivityFilter{AccountID: account, From: testStart.Add(time.Duration(from) * time.Minute)}
				f.To = f.From.Add(time.Duration(width) * time.Minute)
				var want []uint64
				for _, r := range all {
					if !r.Time.Before(f.From) && !r.Time.After(f.To) && (account == "" || r.AccountID == account) {
						want = append(want, r.Position)
					}
				}
				var got []uint64
				for _, r := range activityAll(t, e.db, f) {
					got = append(got, r.Position)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("window %s..%s account %q: positions %v, want %v", f.From, f.To, account, got, want)
				}
				// From or To alone.
				for _, g := range []projections.ActivityFilter{{AccountID: account, From: f.From}, {AccountID: account, To: f.To}} {
					var want, got []uint64
					for _, r := range all {
						if (g.From.IsZero() || !r.Time.Before(g.From)) && (g.To.IsZero() || !r.Time.After(g.To)) && (account == "" || r.AccountID == account) {
							want = append(want, r.Position)
						}
					}
					for _, r := range activityAll(t, e.db, g) {
						got = append(got, r.Position)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("filter %+v: positions %v, want %v", g, got, want)
					}
				}
			}
		}
	}
}

// TestActivityTimeBoundsAcrossBatches checks every row's time_max and time_min against their
// definition (the latest time up to the row, the earliest from the row on) after replays in
// batches of 1, 7 and 5,000 events, on a log of 700 out-of-order events whose last one is
// older than all the others: lowering reaches past the rows a batch remembers.
func TestActivityTimeBoundsAcrossBatches(t *testing.T) {
	e := newEnv(t)
	md := domain.Metadata{Actor: self("acc-a"), SubjectAccountID: "acc-a", IP: ipLondon}
	r := rand.New(rand.NewPCG(3, 4))
	var evs []domain.Event
	for i := range 700 {
		at := testStart.Add(time.Duration(i)*time.Minute + time.Duration(r.IntN(600))*time.Second)
		if i == 699 {
			at = testStart.Add(-time.Hour)
		}
		evs = append(evs, domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StagePassword, Method: domain.MethodPassword, At: at})
	}
	e.emit(domain.AccountStream("acc-a"), md, evs...)
	for _, batch := range []int{1, 7, 5000} {
		db, err := projections.Open(projections.Config{Path: filepath.Join(t.TempDir(), "p.db"), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := projections.ReplayWith(context.Background(), projections.ReplayConfig{DB: db, Log: e.store,
			Projections: []projections.Projection{projections.Activity{}}, BatchSize: batch}); err != nil {
			t.Fatal(err)
		}
		rows := dump(t, db, `SELECT printf('%020d', position), time, time_max, time_min FROM activity`)
		if len(rows) != len(evs) {
			t.Fatalf("batch %d: %d rows", batch, len(rows))
		}
		type row struct{ tm, tmax, tmin int64 }
		var rs []row
		for _, line := range rows {
			var pos string
			var x row
			if _, err := fmt.Sscanf(strings.ReplaceAll(line, "|", " "), "%s %d %d %d", &pos, &x.tm, &x.tmax, &x.tmin); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			rs = append(rs, x)
		}
		for i, x := range rs {
			wantMax, wantMin := x.tm, x.tm
			for _, y := range rs[:i] {
				wantMax = max(wantMax, y.tm)
			}
			for _, y := range rs[i:] {
				wantMin = min(wantMin, y.tm)
			}
			if x.tmax != wantMax || x.tmin != wantMin {
				t.Fatalf("batch %d: row %d has time_max %d time_min %d, want %d and %d", batch, i, x.tmax, x.tmin, wantMax, wantMin)
			}
		}
		db.Close()
	}
}
