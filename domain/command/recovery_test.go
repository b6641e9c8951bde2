package command_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
)

// The recovery links (API.md "Mail, recovery and account protection"). Every token is
// derived as the mail outbox derives it: from the logged event (request id and time, or the
// reported event's id and time) with the server keyring, and checked against the hash the
// event keeps.

const newPassword = "lantern-orchard-quartz-82"

// recoveryHarness is a harness without the reset answer's padding (timed in the handler
// tests).
func recoveryHarness(t *testing.T, opts ...func(*command.Config)) *harness {
	return newHarness(t, append([]func(*command.Config){func(c *command.Config) { c.ResetAnswerTime = -1 }}, opts...)...)
}

// lastOf returns the last event of type typ on stream, decoded, and its envelope.
func lastOf[E domain.Event](h *harness, stream string) (E, domain.Envelope) {
	h.t.Helper()
	evs := h.events(stream)
	for i := len(evs) - 1; i >= 0; i-- {
		if e, ok := h.decode(evs[i]).(E); ok {
			return e, evs[i]
		}
	}
	var zero E
	h.t.Fatalf("no %T on %s", zero, stream)
	return zero, domain.Envelope{}
}

// link derives the token of a link event as the outbox does, and checks the event keeps its
// hash.
func (h *harness) link(purpose, accountID, ref string, at time.Time, tokenHash string) string {
	h.t.Helper()
	token := h.cfg.Keyring.LinkToken(credential.LinkClaims{Purpose: purpose, AccountID: accountID, Ref: ref, IssuedAt: at})
	if tokenHash != "" && credential.HashLinkToken(token) != tokenHash {
		h.t.Fatalf("the %s token derived from the log does not match the event's token_hash", purpose)
	}
	return token
}

// verifyLink is the token of the account's newest verification request.
func (h *harness) verifyLink(accountID string) string {
	h.t.Helper()
	e, _ := lastOf[domain.EmailVerificationRequested](h, domain.AccountStream(accountID))
	return h.link(credential.LinkVerifyEmail, accountID, e.RequestID, e.At, e.TokenHash)
}

// resetLink is the token of the account's newest reset request.
func (h *harness) resetLink(accountID string) string {
	h.t.Helper()
	e, _ := lastOf[domain.PasswordResetRequested](h, domain.AccountStream(accountID))
	return h.link(credential.LinkResetPassword, accountID, e.RequestID, e.At, e.TokenHash)
}

func (h *harness) verified(accountID string) bool {
	h.t.Helper()
	a, err := h.svc.Account(h.ctx, accountID)
	if err != nil {
		h.t.Fatal(err)
	}
	return a.Recovery().EmailVerified
}

func wantInvalidToken(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, command.ErrInvalidToken) {
		t.Fatalf("%s: got %v, want ErrInvalidToken", what, err)
	}
}

func TestVerifyEmailOnceForTheNewestLinkOfTheCurrentEmail(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("vera@example.com")
	reg, _ := lastOf[domain.EmailVerificationRequested](h, domain.AccountStream(id))
	if reg.Email != "vera@example.com" || !reg.At.Equal(start) {
		t.Fatalf("registration's verification request %+v", reg)
	}
	if h.verified(id) {
		t.Fatal("verified before the link was followed")
	}
	token := h.verifyLink(id)

	// The same claims for another purpose, a forged MAC, garbage: invalid, nothing written.
	wrong := h.link(credential.LinkResetPassword, id, reg.RequestID, reg.At, "")
	for name, tok := range map[string]string{"wrong purpose": wrong, "forged": token[:len(token)-2] + "AA", "garbage": "x.y", "empty": ""} {
		_, err := h.svc.VerifyEmail(h.ctx, tok, command.RequestMeta{})
		wantInvalidToken(t, name, err)
	}
	// A token for an account that does not exist.
	_, err := h.svc.VerifyEmail(h.ctx, h.link(credential.LinkVerifyEmail, domain.NewID(), reg.RequestID, reg.At, ""), command.RequestMeta{})
	wantInvalidToken(t, "unknown account", err)

	h.clock.Advance(23 * time.Hour)
	pos, err := h.svc.VerifyEmail(h.ctx, token, command.RequestMeta{IP: "192.0.2.9"})
	if err != nil || pos == 0 {
		t.Fatalf("verify: %d %v", pos, err)
	}
	ev, env := lastOf[domain.EmailVerified](h, domain.AccountStream(id))
	if ev.RequestID != reg.RequestID || ev.Email != "vera@example.com" || env.Position != pos || env.Metadata.IP != "192.0.2.9" {
		t.Fatalf("EmailVerified %+v at %d", ev, env.Position)
	}
	if !h.verified(id) {
		t.Fatal("not verified after the link")
	}
	_, err = h.svc.VerifyEmail(h.ctx, token, command.RequestMeta{})
	wantInvalidToken(t, "second use", err)
	if got := h.types(domain.AccountStream(id)); slices.Index(got, domain.EventEmailVerified) != len(got)-1 || len(got) != 3 {
		t.Fatalf("account stream %v", got)
	}
}

func TestVerifyEmailExpiresAndIsSuperseded(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("exp@example.com")
	first := h.verifyLink(id)
	h.clock.Advance(24 * time.Hour)
	_, err := h.svc.VerifyEmail(h.ctx, first, command.RequestMeta{})
	wantInvalidToken(t, "24 h after", err)

	// A new request: the newest link works, the one before it no longer does.
	sess := h.login("exp@example.com")
	if _, err := h.svc.RequestEmailVerification(h.ctx, sess.Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	second := h.verifyLink(id)
	h.clock.Advance(time.Minute)
	if _, err := h.svc.RequestEmailVerification(h.ctx, sess.Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	third := h.verifyLink(id)
	if second == third {
		t.Fatal("two requests gave one link")
	}
	_, err = h.svc.VerifyEmail(h.ctx, second, command.RequestMeta{})
	wantInvalidToken(t, "superseded", err)
	if _, err := h.svc.VerifyEmail(h.ctx, third, command.RequestMeta{}); err != nil {
		t.Fatalf("newest link: %v", err)
	}
	if !h.verified(id) {
		t.Fatal("not verified")
	}
}

func TestEmailChangeNeedsANewVerification(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("old@example.com")
	oldLink := h.verifyLink(id)
	if _, err := h.svc.VerifyEmail(h.ctx, oldLink, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	// A second link for the old email, not followed before the change.
	sess := h.login("old@example.com")
	if _, err := h.svc.RequestEmailVerification(h.ctx, sess.Session, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	pendingOld := h.verifyLink(id)
	if _, err := h.svc.ChangeEmail(h.ctx, sess.Session, "new@example.com", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if h.verified(id) {
		t.Fatal("email_verified stayed true after the change")
	}
	req, _ := lastOf[domain.EmailVerificationRequested](h, domain.AccountStream(id))
	if req.Email != "new@example.com" {
		t.Fatalf("the change's verification request is for %q", req.Email)
	}
	_, err := h.svc.VerifyEmail(h.ctx, pendingOld, command.RequestMeta{})
	wantInvalidToken(t, "the old email's link", err)
	if _, err := h.svc.VerifyEmail(h.ctx, h.verifyLink(id), command.RequestMeta{}); err != nil {
		t.Fatalf("the new email's link: %v", err)
	}
	if !h.verified(id) {
		t.Fatal("not verified after the new link")
	}
}

func TestVerifyEmailConcurrentUsesOneWins(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("race@example.com")
	token := h.verifyLink(id)
	errs := race(8, func(int) error {
		_, err := h.svc.VerifyEmail(h.ctx, token, command.RequestMeta{})
		return err
	})
	if ok, invalid := count(errs, command.ErrInvalidToken); ok != 1 || invalid != 7 {
		t.Fatalf("%d succeeded, %d invalid: %v", ok, invalid, errs)
	}
}

func TestRequestEmailVerificationIsThrottledAndTheHolders(t *testing.T) {
	h := recoveryHarness(t)
	h.register("spam@example.com")
	sess := h.login("spam@example.com")
	var throttled error
	for i := 0; i < 10 && throttled == nil; i++ {
		_, throttled = h.svc.RequestEmailVerification(h.ctx, sess.Session, command.RequestMeta{})
	}
	var te *throttle.Error
	if !errors.As(throttled, &te) || te.RetryAfter <= 0 {
		t.Fatalf("ten requests in a row: %v, want a throttle error", throttled)
	}
	_, err := h.svc.RequestEmailVerification(h.ctx, domain.Session{ID: "nope", AccountID: sess.Session.AccountID}, command.RequestMeta{})
	if !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func TestPasswordResetRequestAnswersAlikeAndIsThrottled(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("pat@example.com")
	head := func() uint64 {
		p, err := h.store.Head(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := head()
	if err := h.svc.RequestPasswordReset(h.ctx, "nobody@example.com", command.RequestMeta{IP: "192.0.2.5"}); err != nil {
		t.Fatalf("unknown email: %v", err)
	}
	if head() != before {
		t.Fatal("a reset request for an unknown email wrote to the log")
	}
	if err := h.svc.RequestPasswordReset(h.ctx, " PAT@example.com ", command.RequestMeta{IP: "192.0.2.5"}); err != nil {
		t.Fatalf("known email: %v", err)
	}
	req, env := lastOf[domain.PasswordResetRequested](h, domain.AccountStream(id))
	if !req.At.Equal(start) || env.Metadata.IP != "192.0.2.5" || req.TokenHash == "" {
		t.Fatalf("PasswordResetRequested %+v %+v", req, env.Metadata)
	}
	if err := h.svc.RequestPasswordReset(h.ctx, "not an email", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("malformed email: %v", err)
	}

	// Per email: the free requests, then a wait; unknown emails throttle exactly alike.
	for _, email := range []string{"pat@example.com", "ghost@example.com"} {
		n := 0
		var err error
		for ; n < 20; n++ {
			if err = h.svc.RequestPasswordReset(h.ctx, email, command.RequestMeta{}); err != nil {
				break
			}
		}
		var te *throttle.Error
		if !errors.As(err, &te) || n > 6 {
			t.Fatalf("%s: %d requests went through, then %v", email, n, err)
		}
	}
	// Per client address, across emails.
	var err error
	for i := 0; i < 40 && err == nil; i++ {
		err = h.svc.RequestPasswordReset(h.ctx, "someone"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", command.RequestMeta{IP: "198.51.100.4"})
	}
	var te *throttle.Error
	if !errors.As(err, &te) {
		t.Fatalf("40 emails from one address: %v, want a throttle error", err)
	}
	// Sign-ins are counted apart: the reset requests did not lock the account's sign-in.
	h.login("pat@example.com")
}

func TestPasswordResetConfirm(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("rita@example.com")
	first := h.login("rita@example.com")
	h.enrollTOTP(first.Session, "Phone")
	if err := h.svc.RequestPasswordReset(h.ctx, "rita@example.com", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	token := h.resetLink(id)
	req, _ := lastOf[domain.PasswordResetRequested](h, domain.AccountStream(id))

	// Wrong purpose (the verification link's claims) and a forged token: invalid.
	_, err := h.svc.ConfirmPasswordReset(h.ctx, h.link(credential.LinkVerifyEmail, id, req.RequestID, req.At, ""), newPassword, command.RequestMeta{})
	wantInvalidToken(t, "wrong purpose", err)
	_, err = h.svc.ConfirmPasswordReset(h.ctx, "A"+token[1:], newPassword, command.RequestMeta{})
	wantInvalidToken(t, "forged", err)
	// The policy applies; the link still works after a refused password.
	var pe *domain.PasswordPolicyError
	if _, err := h.svc.ConfirmPasswordReset(h.ctx, token, "short", command.RequestMeta{}); !errors.As(err, &pe) {
		t.Fatalf("weak password: %v", err)
	}

	h.clock.Advance(29 * time.Minute)
	res, err := h.svc.ConfirmPasswordReset(h.ctx, token, newPassword, command.RequestMeta{})
	if err != nil || res.SignedOut != 1 || res.Position == 0 {
		t.Fatalf("confirm: %+v %v", res, err)
	}
	done, _ := lastOf[domain.PasswordResetCompleted](h, domain.AccountStream(id))
	if done.RequestID != req.RequestID || done.PasswordHash == "" {
		t.Fatalf("PasswordResetCompleted %+v", done)
	}
	out, _ := lastOf[domain.SessionSignedOut](h, domain.SessionStream(first.Session.ID))
	if out.Reason != reasons.SignOutPasswordReset {
		t.Fatalf("session signed out with %q", out.Reason)
	}
	if _, err := h.svc.Whoami(h.ctx, first.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("whoami after the reset: %v", err)
	}
	_, err = h.svc.ConfirmPasswordReset(h.ctx, token, "another-pass-phrase-93", command.RequestMeta{})
	wantInvalidToken(t, "second use", err)

	// The old password is gone; the new one needs the second factor still.
	if _, err := h.svc.Login(h.ctx, "rita@example.com", goodPassword, "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	lr, err := h.svc.Login(h.ctx, "rita@example.com", newPassword, "", command.RequestMeta{})
	if err != nil || lr.Status != command.StatusSecondFactorRequired {
		t.Fatalf("new password: %+v %v", lr, err)
	}
}

func TestPasswordResetLinkExpiresAndIsSuperseded(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("sam@example.com")
	reset := func() string {
		t.Helper()
		if err := h.svc.RequestPasswordReset(h.ctx, "sam@example.com", command.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
		return h.resetLink(id)
	}
	expired := reset()
	h.clock.Advance(30 * time.Minute)
	_, err := h.svc.ConfirmPasswordReset(h.ctx, expired, newPassword, command.RequestMeta{})
	wantInvalidToken(t, "30 min after", err)

	older := reset()
	h.clock.Advance(time.Second)
	newer := reset()
	_, err = h.svc.ConfirmPasswordReset(h.ctx, older, newPassword, command.RequestMeta{})
	wantInvalidToken(t, "superseded by a newer request", err)

	// A password change after the request: the link no longer works.
	sess := h.login("sam@example.com")
	if _, err := h.svc.ChangePassword(h.ctx, sess.Session, goodPassword, "changed-by-hand-pass-77", false, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.ConfirmPasswordReset(h.ctx, newer, newPassword, command.RequestMeta{})
	wantInvalidToken(t, "after a password change", err)
	if got := h.types(domain.AccountStream(id)); slices.Contains(got, domain.EventPasswordResetCompleted) {
		t.Fatalf("a refused link wrote: %v", got)
	}
}

func TestPasswordResetConcurrentUsesOneWins(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("duo@example.com")
	if err := h.svc.RequestPasswordReset(h.ctx, "duo@example.com", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	token := h.resetLink(id)
	errs := race(4, func(i int) error {
		_, err := h.svc.ConfirmPasswordReset(h.ctx, token, newPassword, command.RequestMeta{})
		return err
	})
	if ok, invalid := count(errs, command.ErrInvalidToken); ok != 1 || invalid != 3 {
		t.Fatalf("%d succeeded, %d invalid: %v", ok, invalid, errs)
	}
}

func TestReportNotMeFromTheMail(t *testing.T) {
	h := recoveryHarness(t)
	// A not-me link is issued at its event's RecordedAt, the store's (real) clock: the
	// service's clock starts there.
	h.clock.Advance(time.Since(h.clock.Now()))
	id := h.register("nina@example.com")
	mine := h.login("nina@example.com")
	h.clock.Advance(time.Minute)
	theirs := h.login("nina@example.com")
	// The mail is about the second sign-in: its LoginSucceeded, issued at its time.
	_, signin := lastOf[domain.LoginSucceeded](h, domain.SessionStream(theirs.Session.ID))
	token := h.link(credential.LinkNotMe, id, signin.ID, signin.RecordedAt, "")

	_, err := h.svc.ReportNotMe(h.ctx, h.link(credential.LinkResetPassword, id, signin.ID, signin.RecordedAt, ""), command.RequestMeta{})
	wantInvalidToken(t, "wrong purpose", err)
	_, err = h.svc.ReportNotMe(h.ctx, h.link(credential.LinkNotMe, id, signin.ID, h.clock.Now().Add(time.Hour), ""), command.RequestMeta{})
	wantInvalidToken(t, "issued in the future", err)

	h.clock.Advance(time.Minute)
	pos, err := h.svc.ReportNotMe(h.ctx, token, command.RequestMeta{IP: "203.0.113.8"})
	if err != nil || pos == 0 {
		t.Fatalf("report: %d %v", pos, err)
	}
	for _, s := range []command.Authenticated{mine, theirs} {
		out, _ := lastOf[domain.SessionSignedOut](h, domain.SessionStream(s.Session.ID))
		if out.Reason != reasons.SignOutReportedNotMe {
			t.Fatalf("session %s signed out with %q", s.Session.ID, out.Reason)
		}
	}
	rep, env := lastOf[domain.SuspiciousActivityReported](h, domain.AccountStream(id))
	if rep.EventID != signin.ID || rep.Source != domain.ReportFromMail || env.Metadata.IP != "203.0.113.8" {
		t.Fatalf("SuspiciousActivityReported %+v", rep)
	}
	stream := h.types(domain.AccountStream(id))
	if stream[len(stream)-2] != domain.EventSuspiciousActivityReported || stream[len(stream)-1] != domain.EventPasswordResetRequested {
		t.Fatalf("account stream %v", stream)
	}
	// The reset link it asked for works.
	if _, err := h.svc.ConfirmPasswordReset(h.ctx, h.resetLink(id), newPassword, command.RequestMeta{}); err != nil {
		t.Fatalf("the reset link of the report: %v", err)
	}

	// Used: invalid, and it signs nobody out.
	again, err := h.svc.Login(h.ctx, "nina@example.com", newPassword, "", command.RequestMeta{})
	if err != nil || again.Authenticated == nil {
		t.Fatalf("sign in: %+v %v", again, err)
	}
	_, err = h.svc.ReportNotMe(h.ctx, token, command.RequestMeta{})
	wantInvalidToken(t, "second use", err)
	if _, err := h.svc.Whoami(h.ctx, again.Authenticated.Token); err != nil {
		t.Fatalf("a used link signed a session out: %v", err)
	}

	// Expiry: 7 days after the event's time.
	issued := signin.RecordedAt.Truncate(time.Second) // a token's time is to the second
	h.clock.Advance(issued.Add(7 * 24 * time.Hour).Add(-time.Second).Sub(h.clock.Now()))
	if _, err := h.svc.ReportNotMe(h.ctx, h.link(credential.LinkNotMe, id, domain.NewID(), signin.RecordedAt, ""), command.RequestMeta{}); err != nil {
		t.Fatalf("a link 7 days less a second old: %v", err)
	}
	h.clock.Advance(2 * time.Second)
	_, err = h.svc.ReportNotMe(h.ctx, h.link(credential.LinkNotMe, id, domain.NewID(), signin.RecordedAt, ""), command.RequestMeta{})
	wantInvalidToken(t, "7 days after", err)
}

func TestReportActivityFromThePortal(t *testing.T) {
	h := recoveryHarness(t)
	id := h.register("paul@example.com")
	other := h.login("paul@example.com")
	me := h.login("paul@example.com")
	_, signin := lastOf[domain.LoginSucceeded](h, domain.SessionStream(other.Session.ID))
	pos, err := h.svc.ReportActivity(h.ctx, me.Session, signin.ID, command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatalf("report: %d %v", pos, err)
	}
	if _, err := h.svc.Whoami(h.ctx, me.Token); err != nil {
		t.Fatalf("the reporting session was signed out: %v", err)
	}
	if _, err := h.svc.Whoami(h.ctx, other.Token); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("the other session: %v", err)
	}
	rep, _ := lastOf[domain.SuspiciousActivityReported](h, domain.AccountStream(id))
	if rep.EventID != signin.ID || rep.Source != domain.ReportFromPortal {
		t.Fatalf("SuspiciousActivityReported %+v", rep)
	}
	n := len(h.events(domain.AccountStream(id)))
	if pos, err := h.svc.ReportActivity(h.ctx, me.Session, signin.ID, command.RequestMeta{}); err != nil || pos != 0 {
		t.Fatalf("second report: %d %v", pos, err)
	}
	if len(h.events(domain.AccountStream(id))) != n {
		t.Fatal("a second report wrote")
	}
	// The mail's link for an event reported from the portal is used up too.
	_, err = h.svc.ReportNotMe(h.ctx, h.link(credential.LinkNotMe, id, signin.ID, signin.RecordedAt, ""), command.RequestMeta{})
	wantInvalidToken(t, "reported from the portal", err)
}
