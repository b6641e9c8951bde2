package command_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
)

func TestLoginPasswordOnly(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	res, err := h.svc.Login(h.ctx, "ANN@example.com ", goodPassword, domain.PortalClientID, command.RequestMeta{IP: "192.0.2.1", UserAgent: "Firefox"})
	if err != nil || res.Status != command.StatusAuthenticated || res.Position == 0 {
		t.Fatalf("%+v %v", res, err)
	}
	a := res.Authenticated
	if len(a.Token) != 43 || strings.ContainsAny(a.Token, "+/=") {
		t.Fatalf("token %q is not 256 bits of base64url", a.Token)
	}
	s := a.Session
	if s.AccountID != id || s.AAL != domain.AAL1 || !slices.Equal(s.AMR, []string{"pwd"}) || s.ClientID != "portal" ||
		!s.ExpiresAt.Equal(start.Add(12*time.Hour)) || s.IdleTimeout != 30*time.Minute || s.Restricted {
		t.Fatalf("session %+v", s)
	}
	who, err := h.svc.Whoami(h.ctx, a.Token)
	if err != nil || who.ID != s.ID {
		t.Fatalf("whoami %+v %v", who, err)
	}
	evs := h.events(domain.SessionStream(s.ID))
	if len(evs) != 2 || evs[0].Type != "LoginSucceeded" || evs[1].Type != "SessionStarted" || evs[1].Position != res.Position {
		t.Fatalf("session stream %+v", evs)
	}
	st := h.decode(evs[1]).(domain.SessionStarted)
	if strings.Contains(string(evs[1].Data), a.Token) || len(st.TokenHash) != 64 {
		t.Fatal("token stored in clear")
	}
	if ls := h.decode(evs[0]).(domain.LoginSucceeded); ls.Method != "password" || ls.AAL != "aal1" || ls.ClientID != "portal" {
		t.Fatalf("LoginSucceeded %+v", ls)
	}
	if evs[0].Metadata.IP != "192.0.2.1" || evs[0].Metadata.ClientID != "portal" || evs[0].Metadata.SubjectAccountID != id {
		t.Fatalf("metadata %+v", evs[0].Metadata)
	}
	// a sign-in does not grow the account stream
	if got := h.types(domain.AccountStream(id)); len(got) != 2 {
		t.Fatalf("account stream %v", got)
	}
	if _, err := h.svc.Whoami(h.ctx, "not-a-token"); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	_, errWrong := h.svc.Login(h.ctx, "ann@example.com", "wrong-password-123", "", command.RequestMeta{})
	_, errUnknown := h.svc.Login(h.ctx, "nobody@example.com", "wrong-password-123", "", command.RequestMeta{IP: "192.0.2.9"})
	_, errMalformed := h.svc.Login(h.ctx, "not an email", "x", "", command.RequestMeta{})
	for _, err := range []error{errWrong, errUnknown, errMalformed} {
		if !errors.Is(err, domain.ErrInvalidCredentials) || err.Error() != domain.ErrInvalidCredentials.Error() {
			t.Fatalf("error %v is not plain ErrInvalidCredentials", err)
		}
	}
	acc := h.events(domain.AccountStream(id))
	if len(acc) != 3 || h.decode(acc[2]).(domain.LoginFailed).Reason != reasons.LoginFailedInvalidCredentials {
		t.Fatalf("account stream %v", h.types(domain.AccountStream(id)))
	}
	if lf := h.decode(acc[2]).(domain.LoginFailed); lf.AttemptedEmail != "" {
		t.Fatal("attempted email on the account stream")
	}
	sys := h.events(domain.SigninStream)
	if len(sys) != 2 {
		t.Fatalf("system-signin %v", h.types(domain.SigninStream))
	}
	lf := h.decode(sys[0]).(domain.LoginFailed)
	if lf.Reason != reasons.LoginFailedUnknownAccount || lf.AttemptedEmail != "nobody@example.com" || sys[0].Metadata.IP != "192.0.2.9" {
		t.Fatalf("LoginFailed %+v %+v", lf, sys[0].Metadata)
	}
	if _, err := h.svc.LookupEmail(h.ctx, "nobody@example.com"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatal("an unknown email created an account")
	}
	all, _ := h.store.ReadAll(h.ctx, 0, 100)
	for _, e := range all {
		if e.Type == domain.EventAccountRegistered && e.StreamID != domain.AccountStream(id) {
			t.Fatal("an unknown email created an account")
		}
	}
}

func TestLoginWithTOTP(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	_, secret, codes := h.enrollTOTP(sess, "Phone")
	if len(codes) != 10 {
		t.Fatalf("%d backup codes", len(codes))
	}
	tk := h.ticket("ann@example.com")
	if !slices.Equal(tk.Methods, []string{"totp", "backup_code"}) || !tk.ExpiresAt.Equal(h.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("ticket %+v", tk)
	}
	code := h.code(secret)
	res, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", code, command.RequestMeta{})
	if err != nil || res.Status != command.StatusAuthenticated {
		t.Fatalf("%+v %v", res, err)
	}
	s := res.Authenticated.Session
	if s.AAL != domain.AAL2 || !slices.Equal(s.AMR, []string{"pwd", "otp"}) {
		t.Fatalf("session %+v", s)
	}
	if ls := h.decode(h.events(domain.SessionStream(s.ID))[0]).(domain.LoginSucceeded); ls.Method != "totp" || ls.AAL != "aal2" {
		t.Fatalf("LoginSucceeded %+v", ls)
	}
	// the ticket is single-use
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", code, command.RequestMeta{}); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("ticket reused: %v", err)
	}
	// the same code (time step) is refused on a new ticket, the next step works
	tk = h.ticket("ann@example.com")
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", code, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCode) {
		t.Fatalf("replayed code: %v", err)
	}
	h.clock.Advance(30 * time.Second)
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", h.code(secret), command.RequestMeta{}); err != nil {
		t.Fatalf("next step: %v", err)
	}
	// a backup code works once
	tk = h.ticket("ann@example.com")
	res, err = h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", strings.ToLower(codes[0]), command.RequestMeta{})
	if err != nil || !slices.Equal(res.Authenticated.Session.AMR, []string{"pwd", "backup_code"}) {
		t.Fatalf("backup code: %+v %v", res, err)
	}
	tk = h.ticket("ann@example.com")
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", codes[0], command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCode) {
		t.Fatalf("backup code reused: %v", err)
	}
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "sms", "123456", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("unknown method: %v", err)
	}
	sec, _ := h.svc.Security(h.ctx, sess.AccountID)
	if !sec.TwoFactorEnabled || sec.BackupCodes.Remaining != 9 || len(sec.TOTPDevices) != 1 || sec.TOTPDevices[0].LastUsedAt.IsZero() {
		t.Fatalf("security %+v", sec)
	}
}

func TestLoginTicketBurnsAndExpires(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	_, secret, _ := h.enrollTOTP(h.login("ann@example.com").Session, "Phone")

	tk := h.ticket("ann@example.com")
	for i := 0; i < 5; i++ {
		if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", "000000", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", h.code(secret), command.RequestMeta{}); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("ticket survived five wrong codes: %v", err)
	}
	if failed := h.failureReasons(domain.AccountStream(id))[reasons.LoginFailedInvalidSecondFactor]; failed != 5 {
		t.Fatalf("%d invalid_second_factor events", failed)
	}

	h.clock.Advance(time.Hour) // past the throttling of the failures above
	tk = h.ticket("ann@example.com")
	h.clock.Advance(5*time.Minute + time.Second)
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", h.code(secret), command.RequestMeta{}); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("expired ticket: %v", err)
	}
	if _, err := h.svc.SecondFactor(h.ctx, "made-up", "totp", h.code(secret), command.RequestMeta{}); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("unknown ticket: %v", err)
	}
}

func TestThrottling(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	rm := command.RequestMeta{IP: "198.51.100.1"}
	wrong := func() error {
		_, err := h.svc.Login(h.ctx, "ann@example.com", "wrong-password-123", "", rm)
		return err
	}
	for i := 0; i < 6; i++ { // five free failures, the sixth starts a 1 s wait
		if err := wrong(); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	var te *throttle.Error
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		// even the right password is refused while throttled, without a hash
		_, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", rm)
		if !errors.As(err, &te) || te.RetryAfter != want {
			t.Fatalf("want a %s wait, got %v", want, err)
		}
		if err := wrong(); !errors.As(err, &te) {
			t.Fatalf("second attempt in the window: %v", err)
		}
		h.clock.Advance(want)
		if err := wrong(); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("after the wait: %v", err)
		}
	}
	if te.RetryAfterSeconds() != 4 {
		t.Fatalf("Retry-After %d", te.RetryAfterSeconds())
	}
	// throttled rejections are recorded once per window
	if throttled := h.failureReasons(domain.AccountStream(id))[reasons.LoginFailedThrottled]; throttled != 3 {
		t.Fatalf("%d throttled events for 3 windows (6 rejections)", throttled)
	}
	// a success resets the account's count
	h.clock.Advance(8 * time.Second)
	if _, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", rm); err != nil {
		t.Fatalf("login after the wait: %v", err)
	}
	for i := 0; i < 5; i++ {
		if err := wrong(); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("after reset, failure %d: %v", i+1, err)
		}
	}
	// unknown emails throttle exactly alike (nothing to learn from a 429)
	for i := 0; i < 6; i++ {
		_, _ = h.svc.Login(h.ctx, "ghost@example.com", "wrong-password-123", "", command.RequestMeta{})
	}
	if _, err := h.svc.Login(h.ctx, "ghost@example.com", "x", "", command.RequestMeta{}); !errors.As(err, &te) || te.RetryAfter != time.Second {
		t.Fatalf("unknown email: %v", err)
	}
}

func TestThrottlingPerIP(t *testing.T) {
	h := newHarness(t)
	rm := command.RequestMeta{IP: "203.0.113.5"}
	for i := 0; i < 20; i++ { // 20 different accounts, one IP: the IP's free failures
		_, _ = h.svc.Login(h.ctx, "user"+string(rune('a'+i))+"@example.com", "wrong-password-123", "", rm)
	}
	var te *throttle.Error
	if _, err := h.svc.Login(h.ctx, "fresh@example.com", "x", "", rm); errors.As(err, &te) {
		t.Fatalf("throttled after 20 IP failures: %v", err)
	}
	if _, err := h.svc.Login(h.ctx, "fresh2@example.com", "x", "", rm); !errors.As(err, &te) {
		t.Fatalf("IP not throttled after 22 failures: %v", err)
	}
	if _, err := h.svc.Login(h.ctx, "fresh2@example.com", "x", "", command.RequestMeta{IP: "203.0.113.6"}); errors.As(err, &te) {
		t.Fatal("another IP is throttled")
	}
}

func TestEnrollmentRequired(t *testing.T) {
	h := newHarness(t, func(c *command.Config) { c.TwoFactorPolicy = requiredPolicy{orgs: []string{"org-1"}} })
	h.register("ann@example.com")
	res, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{})
	if err != nil || res.Status != command.StatusEnrollmentRequired || !res.Authenticated.Session.Restricted {
		t.Fatalf("%+v %v", res, err)
	}
	sess := res.Authenticated.Session
	if _, err := h.svc.ChangeName(h.ctx, sess, "A", "B", command.RequestMeta{}); !errors.Is(err, domain.ErrEnrollmentRequired) {
		t.Fatalf("restricted session changed a name: %v", err)
	}
	_, secret, codes := h.enrollTOTP(sess, "Phone")
	if len(codes) != 10 || secret == "" {
		t.Fatal("no backup codes")
	}
	who, err := h.svc.Whoami(h.ctx, res.Authenticated.Token)
	if err != nil || who.Restricted || who.AAL != domain.AAL2 || !slices.Equal(who.AMR, []string{"pwd", "otp"}) {
		t.Fatalf("after enrollment %+v %v", who, err)
	}
	if _, err := h.svc.ChangeName(h.ctx, who, "A", "B", command.RequestMeta{}); err != nil {
		t.Fatalf("unrestricted session: %v", err)
	}
	sec, _ := h.svc.Security(h.ctx, sess.AccountID)
	if !slices.Equal(sec.TwoFactorRequiredBy, []string{"org-1"}) {
		t.Fatalf("required by %v", sec.TwoFactorRequiredBy)
	}
	h.clock.Advance(time.Minute)
	if _, err := h.svc.DisableTwoFactor(h.ctx, who, goodPassword, command.RequestMeta{}); !errors.Is(err, domain.ErrTwoFactorRequired) {
		t.Fatalf("disable under policy: %v", err)
	}
	devID := sec.TOTPDevices[0].ID
	if _, err := h.svc.RemoveTOTPDevice(h.ctx, who, devID, command.RequestMeta{}); !errors.Is(err, domain.ErrTwoFactorRequired) {
		t.Fatalf("remove last factor under policy: %v", err)
	}
}
