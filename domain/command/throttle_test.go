package command_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
)

// freeChecks: five free failures and the one that starts the first wait are checked.
const freeChecks = 5 + 1

// countOutcomes sorts the errors of a burst into checked (wrong credential) and throttled.
func countOutcomes(t *testing.T, errs []error, wrong error) (checked, throttled int) {
	t.Helper()
	var te *throttle.Error
	for _, err := range errs {
		switch {
		case errors.Is(err, wrong):
			checked++
		case errors.As(err, &te):
			if te.RetryAfter <= 0 {
				t.Errorf("throttled without a wait: %v", te)
			}
			throttled++
		default:
			t.Errorf("unexpected answer %v", err)
		}
	}
	return checked, throttled
}

func (h *harness) failureReasons(stream string) map[string]int {
	h.t.Helper()
	n := map[string]int{}
	for _, e := range h.events(stream) {
		if e.Type == domain.EventLoginFailed {
			n[h.decode(e).(domain.LoginFailed).Reason]++
		}
	}
	return n
}

// checkPasswordBurst checks the answers to 40 parallel wrong passwords for account id: at
// most freeChecks were checked, the rest throttled, and every check left its LoginFailed.
func (h *harness) checkPasswordBurst(id string, errs []error) {
	h.t.Helper()
	checked, throttled := countOutcomes(h.t, errs, domain.ErrInvalidCredentials)
	if checked > freeChecks || checked+throttled != 40 {
		h.t.Errorf("40 parallel wrong passwords: %d checked, %d throttled; want at most %d checked", checked, throttled, freeChecks)
	}
	if n := h.failureReasons(domain.AccountStream(id))[reasons.LoginFailedInvalidCredentials]; n != checked {
		h.t.Errorf("%d invalid_credentials events for %d checks", n, checked)
	}
}

func TestThrottlingHoldsUnderConcurrentLogins(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	errs := race(40, func(int) error {
		_, err := h.svc.Login(h.ctx, "ann@example.com", "wrong-password-123", "", command.RequestMeta{IP: "198.51.100.1"})
		return err
	})
	h.checkPasswordBurst(id, errs)
	// Unknown emails throttle alike, also in parallel.
	errs = race(40, func(int) error {
		_, err := h.svc.Login(h.ctx, "ghost@example.com", "wrong-password-123", "", command.RequestMeta{})
		return err
	})
	if checked, _ := countOutcomes(t, errs, domain.ErrInvalidCredentials); checked > freeChecks {
		t.Errorf("unknown email: %d checked", checked)
	}
}

func TestThrottlingHoldsUnderConcurrentReauth(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	errs := race(40, func(int) error {
		_, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: "wrong-password-123"}, command.RequestMeta{})
		return err
	})
	h.checkPasswordBurst(id, errs)
	var te *throttle.Error
	if _, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); !errors.As(err, &te) {
		t.Errorf("the right password after the burst: %v", err)
	}
}

func TestThrottlingIPv6CountsPer64(t *testing.T) {
	h := newHarness(t)
	wrong := func(i int, ip string) error {
		_, err := h.svc.Login(h.ctx, fmt.Sprintf("user%d@example.com", i), "wrong-password-123", "", command.RequestMeta{IP: ip})
		return err
	}
	// 20 failures (the IP's free ones) from two addresses of one /64, each on another email
	for i := range 20 {
		ip := "2001:db8::1"
		if i%2 == 1 {
			ip = "2001:db8::2"
		}
		if err := wrong(i, ip); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	var te *throttle.Error
	if err := wrong(100, "2001:db8::3"); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("the failure that starts the wait: %v", err)
	}
	if err := wrong(101, "2001:db8::ffff:1"); !errors.As(err, &te) {
		t.Fatalf("another address of the /64 is not throttled: %v", err)
	}
	if err := wrong(102, "2001:db8:0:1::1"); errors.As(err, &te) {
		t.Fatalf("the next /64 is throttled: %v", err)
	}

	// An IPv4-mapped address is its IPv4 address.
	for i := range 21 {
		ip := "203.0.113.5"
		if i%2 == 1 {
			ip = "::ffff:203.0.113.5"
		}
		if err := wrong(200+i, ip); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("IPv4 failure %d: %v", i+1, err)
		}
	}
	if err := wrong(300, "::ffff:203.0.113.5"); !errors.As(err, &te) {
		t.Fatalf("the mapped address counts apart from its IPv4 address: %v", err)
	}
	if err := wrong(301, "203.0.113.6"); errors.As(err, &te) {
		t.Fatalf("the next IPv4 address is throttled: %v", err)
	}
}

func TestLoginFailedKeepsNoIdentifierThatIsNotAnEmail(t *testing.T) {
	h := newHarness(t)
	const secret = "hunter2-secret"
	rm := command.RequestMeta{IP: "192.0.2.7"}
	var te *throttle.Error
	for i := range 7 { // six checked, the seventh throttled (and recorded)
		_, err := h.svc.Login(h.ctx, secret, "x", "", rm)
		if i < 6 && !errors.Is(err, domain.ErrInvalidCredentials) || i == 6 && !errors.As(err, &te) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	// With spaces and capitals: still not an email, still not kept.
	_, _ = h.svc.Login(h.ctx, "  Hunter2-Secret ", "x", "", command.RequestMeta{})
	all, err := h.store.ReadAll(h.ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, env := range all {
		raw, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ToLower(raw), []byte("hunter2")) {
			t.Errorf("an event kept what was typed as the email: %s", raw)
		}
		if env.Type == domain.EventLoginFailed {
			lf := h.decode(env).(domain.LoginFailed)
			seen[lf.Reason]++
			if lf.AttemptedEmail != "" {
				t.Errorf("attempted email %q", lf.AttemptedEmail)
			}
		}
	}
	if seen[reasons.LoginFailedUnknownAccount] != 7 || seen[reasons.LoginFailedThrottled] != 1 {
		t.Errorf("LoginFailed reasons %v, want 7 unknown_account and 1 throttled", seen)
	}
	// A valid email that has no account is still named (unknown_account).
	_, _ = h.svc.Login(h.ctx, "Nobody@Example.com", "x", "", command.RequestMeta{})
	sys := h.events(domain.SigninStream)
	if lf := h.decode(sys[len(sys)-1]).(domain.LoginFailed); lf.AttemptedEmail != "nobody@example.com" || lf.Reason != reasons.LoginFailedUnknownAccount {
		t.Errorf("unknown valid email: %+v", lf)
	}
}
