package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// The recovery routes (API.md "Mail, recovery and account protection") over the real
// server. Tokens are derived as the mail outbox derives them: from the logged event with the
// server keyring.

const resetPassword = "lantern-orchard-quartz-82"

// lastEvent returns the newest event of type typ on stream (read raw from the log: the
// members the tests read are not personal, so not sealed).
func (e *env) lastEvent(stream, typ string) (domain.Envelope, domain.Event) {
	e.t.Helper()
	evs, err := e.events.ReadStream(context.Background(), stream, 1, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ {
			ev, err := domain.DecodeEvent(evs[i])
			if err != nil {
				e.t.Fatal(err)
			}
			return evs[i], ev
		}
	}
	e.t.Fatalf("no %s on %s", typ, stream)
	return domain.Envelope{}, nil
}

// linkToken derives a link's token and checks it against the hash the event keeps.
func (e *env) linkToken(purpose, accountID, ref string, at time.Time, hash string) string {
	e.t.Helper()
	tok := e.kr.LinkToken(credential.LinkClaims{Purpose: purpose, AccountID: accountID, Ref: ref, IssuedAt: at})
	if hash != "" && credential.HashLinkToken(tok) != hash {
		e.t.Fatalf("the %s token derived from the log does not match its token_hash", purpose)
	}
	return tok
}

func (e *env) verifyToken(accountID string) string {
	e.t.Helper()
	_, ev := e.lastEvent(domain.AccountStream(accountID), domain.EventEmailVerificationRequested)
	r := ev.(domain.EmailVerificationRequested)
	return e.linkToken(credential.LinkVerifyEmail, accountID, r.RequestID, r.At, r.TokenHash)
}

func (e *env) resetToken(accountID string) string {
	e.t.Helper()
	_, ev := e.lastEvent(domain.AccountStream(accountID), domain.EventPasswordResetRequested)
	r := ev.(domain.PasswordResetRequested)
	return e.linkToken(credential.LinkResetPassword, accountID, r.RequestID, r.At, r.TokenHash)
}

func TestEmailVerificationRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("vera@example.com")
	s := e.login("vera@example.com", testPassword)
	me := e.expect(e.do("GET", "/api/v1/me", nil, s.auth()), 200, "")
	if me["email_verified"] != false {
		t.Fatalf("a new account's email_verified: %v", me["email_verified"])
	}
	first := e.verifyToken(id)
	e.checkBadBodies("POST", "/api/v1/email/verify", map[string]any{"token": first}, nil)

	// Another link's token, garbage, nothing: invalid_token or invalid_request, nothing written.
	before := e.head()
	reset := e.linkToken(credential.LinkResetPassword, id, "x", time.Now(), "")
	for _, tok := range []string{reset, "garbage", strings.Repeat("a", 600) + "." + "b"} {
		p := e.expect(e.do("POST", "/api/v1/email/verify", map[string]string{"token": tok}, nil), 400, "invalid_token")
		if p["title"] != "Invalid token" || p["type"] != "urn:vigil:problem:invalid_token" || p["detail"] == "" {
			t.Errorf("problem %v", p)
		}
	}
	e.expect(e.do("POST", "/api/v1/email/verify", map[string]string{"token": ""}, nil), 400, "invalid_request")
	if e.head() != before {
		t.Error("refused verifications wrote to the log")
	}

	// A new link supersedes the first.
	r := e.do("POST", "/api/v1/me/email/verification", nil, s.auth())
	e.expect(r, 202, "")
	if len(r.body) != 0 {
		t.Errorf("202 with a body: %s", r.body)
	}
	second := e.verifyToken(id)
	e.expect(e.do("POST", "/api/v1/email/verify", map[string]string{"token": first}, nil), 400, "invalid_token")
	r = e.do("POST", "/api/v1/email/verify", map[string]string{"token": second}, nil)
	e.expect(r, 204, "")
	me = e.expect(e.do("GET", "/api/v1/me?min_position="+r.header.Get("Vigil-Position"), nil, s.auth()), 200, "")
	if me["email_verified"] != true {
		t.Fatalf("email_verified after the link: %v", me["email_verified"])
	}
	e.expect(e.do("POST", "/api/v1/email/verify", map[string]string{"token": second}, nil), 400, "invalid_token")

	// An email change: unverified until the new address's link is followed.
	m := e.expect(e.do("PATCH", "/api/v1/me", map[string]any{"email": "vera.new@example.com"}, s.auth()), 200, "")
	if m["email_verified"] != false {
		t.Fatalf("email_verified after an email change: %v", m["email_verified"])
	}
	e.expect(e.do("POST", "/api/v1/email/verify", map[string]string{"token": e.verifyToken(id)}, nil), 204, "")
	if m := e.expect(e.do("GET", "/api/v1/me", nil, s.auth()), 200, ""); m["email_verified"] != true {
		t.Fatalf("email_verified after the new link: %v", m["email_verified"])
	}

	// Mailing a link needs the holder's session; asking too often is 429.
	e.expect(e.do("POST", "/api/v1/me/email/verification", nil, nil), 401, "unauthenticated")
	e.expect(e.do("POST", "/api/v1/me/email/verification", nil, hdr{"Cookie": "vigil_session=" + s.token}), 403, "csrf_failed")
	var last resp
	for range 10 {
		if last = e.do("POST", "/api/v1/me/email/verification", nil, s.auth()); last.code != 202 {
			break
		}
	}
	e.expect(last, 429, "too_many_attempts")
	if last.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestPasswordResetRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.register("rita@example.com")
	s1 := e.login("rita@example.com", testPassword)
	s2 := e.login("rita@example.com", testPassword)
	e.enrollTOTP(s1)
	e.checkBadBodies("POST", "/api/v1/password-reset", map[string]any{"email": "rita@example.com"}, nil)
	e.expect(e.do("POST", "/api/v1/password-reset", map[string]any{"email": "not an email"}, nil), 400, "invalid_request")

	known := e.do("POST", "/api/v1/password-reset", map[string]string{"email": "Rita@Example.com"}, nil)
	before := e.head()
	unknown := e.do("POST", "/api/v1/password-reset", map[string]string{"email": "nobody@example.com"}, nil)
	e.expect(known, 202, "")
	e.expect(unknown, 202, "")
	if !bytes.Equal(known.body, unknown.body) || known.header.Get("Content-Type") != unknown.header.Get("Content-Type") {
		t.Errorf("known %q %q, unknown %q %q", known.body, known.header.Get("Content-Type"), unknown.body, unknown.header.Get("Content-Type"))
	}
	if e.head() != before || unknown.header.Get("Vigil-Position") != strconv.FormatUint(before, 10) {
		t.Errorf("unknown email: head %d -> %d, Vigil-Position %s", before, e.head(), unknown.header.Get("Vigil-Position"))
	}
	token := e.resetToken(id)

	confirm := func(tok, pw string) resp {
		return e.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": tok, "new_password": pw}, nil)
	}
	e.checkBadBodies("POST", "/api/v1/password-reset/confirm", map[string]any{"token": token, "new_password": resetPassword}, nil)
	before = e.head()
	p := e.expect(confirm(token, "password1234"), 400, "invalid_request")
	errs, _ := p["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "new_password" {
		t.Errorf("weak password problem %v", p)
	}
	e.expect(confirm("garbage", resetPassword), 400, "invalid_token")
	e.expect(confirm(e.verifyToken(id), resetPassword), 400, "invalid_token")
	if e.head() != before {
		t.Error("refused confirmations wrote to the log")
	}

	r := confirm(token, resetPassword)
	e.expect(r, 204, "")
	for _, s := range []session{s1, s2} {
		e.expect(e.do("GET", "/api/v1/whoami", nil, s.auth()), 401, "unauthenticated")
		env, ev := e.lastEvent(domain.SessionStream(s.id), domain.EventSessionSignedOut)
		if ev.(domain.SessionSignedOut).Reason != reasons.SignOutPasswordReset || env.Position > mustPos(t, r) {
			t.Errorf("session %s: %+v at %d", s.id, ev, env.Position)
		}
	}
	e.expect(confirm(token, "another-pass-phrase-93"), 400, "invalid_token")
	e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "rita@example.com", "password": testPassword}, nil), 401, "invalid_credentials")
	// Second factors stay: the new password leads to the second factor.
	m := e.expect(e.do("POST", "/api/v1/login", map[string]string{"email": "rita@example.com", "password": resetPassword}, nil), 200, "")
	if m["status"] != "second_factor_required" {
		t.Fatalf("sign-in after the reset: %v", m)
	}

	// Throttled like sign-in, per email (unknown ones alike).
	for _, email := range []string{"rita@example.com", "ghost@example.com"} {
		var last resp
		for range 8 {
			if last = e.do("POST", "/api/v1/password-reset", map[string]string{"email": email}, nil); last.code != 202 {
				break
			}
		}
		e.expect(last, 429, "too_many_attempts")
		if ra, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q", email, last.header.Get("Retry-After"))
		}
	}
}

func mustPos(t *testing.T, r resp) uint64 {
	t.Helper()
	p, err := strconv.ParseUint(r.header.Get("Vigil-Position"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPasswordResetTimeDoesNotTellTheEmailExists compares the medians of the answer times
// for emails with and without an account, interleaved, with a generous factor: it would
// fail if an account's request took an append that an unknown email does not wait for.
func TestPasswordResetTimeDoesNotTellTheEmailExists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withTrustedProxies())
	const n = 7
	for i := range n {
		e.register(fmt.Sprintf("known%d@example.com", i))
	}
	var known, unknown []time.Duration
	for i := range n {
		for _, k := range []bool{true, false} {
			email, ip := fmt.Sprintf("ghost%d@example.com", i), fmt.Sprintf("198.51.100.%d", 2*i+1)
			if k {
				email, ip = fmt.Sprintf("known%d@example.com", i), fmt.Sprintf("198.51.100.%d", 2*i+2)
			}
			before := e.head()
			start := time.Now()
			r := e.do("POST", "/api/v1/password-reset", map[string]string{"email": email}, hdr{"X-Forwarded-For": ip})
			d := time.Since(start)
			e.expect(r, 202, "")
			if k {
				known = append(known, d)
			} else {
				unknown = append(unknown, d)
				if e.head() != before {
					t.Fatalf("the unknown email %s wrote to the log", email)
				}
			}
		}
	}
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median answer: known email %s, unknown email %s", mk, mu)
	if mk > 2*mu || mu > 2*mk {
		t.Errorf("the answer time tells: median %s with an account, %s without", mk, mu)
	}
}

func TestNotMeRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A not-me link is issued at its event's RecordedAt (the store's real clock).
	e.clk.Advance(time.Since(e.clk.Now()))
	id := e.register("nina@example.com")
	other := e.register("olga@example.com")
	mine := e.login("nina@example.com", testPassword)
	theirs := e.login("nina@example.com", testPassword)
	third := e.login("nina@example.com", testPassword)
	olga := e.login("olga@example.com", testPassword)

	// The portal's report: an entry of the caller's activity log.
	r := e.do("GET", "/api/v1/me/activity?type=LoginSucceeded&min_position="+strconv.FormatUint(e.head(), 10), nil, mine.auth())
	items := e.expect(r, 200, "")["items"].([]any)
	signin, _ := e.lastEvent(domain.SessionStream(theirs.id), domain.EventLoginSucceeded)
	found := false
	for _, it := range items {
		found = found || it.(map[string]any)["id"] == signin.ID
	}
	if !found {
		t.Fatalf("the sign-in %s is not in the activity log: %s", signin.ID, r.body)
	}
	olgaSignin, _ := e.lastEvent(domain.SessionStream(olga.id), domain.EventLoginSucceeded)
	before := e.head()
	e.expect(e.do("POST", "/api/v1/me/activity/"+olgaSignin.ID+"/not-me", nil, mine.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/me/activity/nothing-has-this-id/not-me", nil, mine.auth()), 404, "not_found")
	e.expect(e.do("POST", "/api/v1/me/activity/"+signin.ID+"/not-me", nil, nil), 401, "unauthenticated")
	if e.head() != before {
		t.Error("refused reports wrote to the log")
	}
	e.expect(e.do("POST", "/api/v1/me/activity/"+signin.ID+"/not-me", nil, mine.auth()), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, mine.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, theirs.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, third.auth()), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/whoami", nil, olga.auth()), 200, "")
	_, rep := e.lastEvent(domain.AccountStream(id), domain.EventSuspiciousActivityReported)
	if r := rep.(domain.SuspiciousActivityReported); r.EventID != signin.ID || r.Source != domain.ReportFromPortal {
		t.Errorf("report %+v", r)
	}
	e.resetToken(id) // a reset link was asked for

	// The mail's link, about Olga's sign-in (no session needed).
	token := e.linkToken(credential.LinkNotMe, other, olgaSignin.ID, olgaSignin.RecordedAt, "")
	e.checkBadBodies("POST", "/api/v1/not-me", map[string]any{"token": token}, nil)
	e.expect(e.do("POST", "/api/v1/not-me", map[string]string{"token": "x." + token}, nil), 400, "invalid_token")
	e.expect(e.do("POST", "/api/v1/not-me", map[string]string{"token": token}, nil), 204, "")
	e.expect(e.do("GET", "/api/v1/whoami", nil, olga.auth()), 401, "unauthenticated")
	env, ev := e.lastEvent(domain.SessionStream(olga.id), domain.EventSessionSignedOut)
	if ev.(domain.SessionSignedOut).Reason != reasons.SignOutReportedNotMe {
		t.Errorf("Olga's session: %+v (%s)", ev, env.ID)
	}
	_, rep = e.lastEvent(domain.AccountStream(other), domain.EventSuspiciousActivityReported)
	if r := rep.(domain.SuspiciousActivityReported); r.EventID != olgaSignin.ID || r.Source != domain.ReportFromMail {
		t.Errorf("report %+v", r)
	}
	again := e.login("olga@example.com", testPassword)
	e.expect(e.do("POST", "/api/v1/not-me", map[string]string{"token": token}, nil), 400, "invalid_token")
	e.expect(e.do("GET", "/api/v1/whoami", nil, again.auth()), 200, "")
	// The reset link it mailed sets a new password.
	e.expect(e.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": e.resetToken(other), "new_password": resetPassword}, nil), 204, "")
	e.login("olga@example.com", resetPassword)
}
