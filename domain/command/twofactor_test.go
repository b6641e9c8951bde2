package command_test

import (
	"bytes"
	"errors"
	"image/png"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/throttle"
)

func noThrottle(c *command.Config) {
	c.Throttle = throttle.Config{FreeFailures: 1000, IPFreeFailures: 1000}
}

func TestTOTPEnrollment(t *testing.T) {
	h := newHarness(t, func(c *command.Config) { c.Issuer = "Acme Vigil" })
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	enr, err := h.svc.AddTOTPDevice(h.ctx, sess, "Phone", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(enr.OTPAuthURL)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("issuer") != "Acme Vigil" ||
		u.Query().Get("secret") != enr.Secret || u.Path != "/Acme Vigil:ann@example.com" {
		t.Fatalf("otpauth URL %q", enr.OTPAuthURL)
	}
	if len(enr.Secret) != 32 {
		t.Fatalf("secret %q is not 160 bits of base32", enr.Secret)
	}
	evs := h.events(domain.AccountStream(id))
	added := h.decode(evs[len(evs)-1]).(domain.TOTPDeviceAdded)
	if added.Secret.KeyID == "" || bytes.Contains(evs[len(evs)-1].Data, []byte(enr.Secret)) {
		t.Fatal("TOTP secret stored in clear")
	}
	qr, err := h.svc.TOTPQRCode(h.ctx, sess, enr.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(qr))
	if err != nil || img.Bounds().Dx() != credential.QRCodeSize {
		t.Fatalf("QR PNG: %v", err)
	}
	if _, err := h.svc.ConfirmTOTPDevice(h.ctx, sess, enr.DeviceID, "000000", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCode) {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	// a code of the previous step (clock skew) confirms
	h.clock.Advance(30 * time.Second)
	prev := h.clock.Now()
	h.clock.Advance(30 * time.Second)
	code := func() string {
		cur := h.clock.Now()
		h.clock.Advance(prev.Sub(cur))
		defer h.clock.Advance(cur.Sub(prev))
		return h.code(enr.Secret)
	}()
	res, err := h.svc.ConfirmTOTPDevice(h.ctx, sess, enr.DeviceID, code, command.RequestMeta{})
	if err != nil || len(res.BackupCodes) != 10 {
		t.Fatalf("confirm: %+v %v", res, err)
	}
	if _, err := h.svc.TOTPQRCode(h.ctx, sess, enr.DeviceID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("QR of a confirmed device: %v", err)
	}
	// a second device confirms without new backup codes
	h.clock.Advance(30 * time.Second)
	enr2, _ := h.svc.AddTOTPDevice(h.ctx, sess, "Tablet", command.RequestMeta{})
	res, err = h.svc.ConfirmTOTPDevice(h.ctx, sess, enr2.DeviceID, h.code(enr2.Secret), command.RequestMeta{})
	if err != nil || res.BackupCodes != nil {
		t.Fatalf("second device: %+v %v", res, err)
	}
	wantTypes := []string{"AccountRegistered", "EmailVerificationRequested", "TOTPDeviceAdded", "TOTPDeviceConfirmed", "BackupCodesGenerated", "TOTPDeviceAdded", "TOTPDeviceConfirmed"}
	if got := h.types(domain.AccountStream(id)); !slices.Equal(got, wantTypes) {
		t.Fatalf("account stream %v", got)
	}
	// removing one of two devices keeps 2FA; removing the last turns it off
	if _, err := h.svc.RemoveTOTPDevice(h.ctx, sess, enr.DeviceID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := h.svc.Security(h.ctx, id); !sec.TwoFactorEnabled || sec.BackupCodes.Remaining != 10 {
		t.Fatalf("after removing one device %+v", sec)
	}
	if _, err := h.svc.RemoveTOTPDevice(h.ctx, sess, enr2.DeviceID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := h.svc.Security(h.ctx, id); sec.TwoFactorEnabled || sec.BackupCodes.Remaining != 0 {
		t.Fatalf("after removing the last device %+v", sec)
	}
	if got := h.types(domain.AccountStream(id)); got[len(got)-1] != "TwoFactorDisabled" {
		t.Fatalf("account stream %v", got)
	}
	// a password sign-in is enough again
	h.login("ann@example.com")
}

func TestTOTPCodeUsedOnceUnderConcurrency(t *testing.T) {
	h := newHarness(t, noThrottle)
	h.register("ann@example.com")
	_, secret, _ := h.enrollTOTP(h.login("ann@example.com").Session, "Phone")
	tickets := make([]string, 20)
	for i := range tickets {
		tickets[i] = h.ticket("ann@example.com").Ticket
	}
	code := h.code(secret)
	errs := race(20, func(i int) error {
		_, err := h.svc.SecondFactor(h.ctx, tickets[i], "totp", code, command.RequestMeta{})
		return err
	})
	ok, invalid := count(errs, domain.ErrInvalidCode)
	if ok != 1 || invalid != 19 {
		t.Fatalf("%d successes, %d invalid codes: %v", ok, invalid, errs)
	}
	// also for re-authentication: one session, 20 concurrent reauths with one code
	h.clock.Advance(30 * time.Second)
	sess := h.svc.AccountSessions(h.login2FA(secret).AccountID)[0]
	code = h.code(secret)
	h.clock.Advance(time.Second)
	errs = race(20, func(int) error {
		_, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Code: code}, command.RequestMeta{})
		return err
	})
	if ok, invalid := count(errs, domain.ErrInvalidCode); ok != 1 || invalid != 19 {
		t.Fatalf("reauth: %d successes, %d invalid codes: %v", ok, invalid, errs)
	}
}

// login2FA signs ann in with a TOTP code of the current step and moves to the next step.
func (h *harness) login2FA(secret string) domain.Session {
	h.t.Helper()
	tk := h.ticket("ann@example.com")
	res, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "totp", h.code(secret), command.RequestMeta{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.clock.Advance(30 * time.Second)
	return res.Authenticated.Session
}

func TestBackupCodesUsedOnceUnderConcurrency(t *testing.T) {
	h := newHarness(t, noThrottle)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	_, secret, codes := h.enrollTOTP(sess, "Phone")
	tickets := make([]string, 20)
	for i := range tickets {
		tickets[i] = h.ticket("ann@example.com").Ticket
	}
	errs := race(20, func(i int) error {
		_, err := h.svc.SecondFactor(h.ctx, tickets[i], "backup_code", codes[4], command.RequestMeta{})
		return err
	})
	if ok, invalid := count(errs, domain.ErrInvalidCode); ok != 1 || invalid != 19 {
		t.Fatalf("%d successes, %d invalid codes: %v", ok, invalid, errs)
	}
	used := 0
	for _, e := range h.events(domain.AccountStream(id)) {
		if e.Type == domain.EventBackupCodeUsed {
			used++
		}
	}
	if used != 1 {
		t.Fatalf("%d BackupCodeUsed events", used)
	}
	if sec, _ := h.svc.Security(h.ctx, id); sec.BackupCodes.Remaining != 9 {
		t.Fatalf("remaining %d", sec.BackupCodes.Remaining)
	}
	// regeneration needs a recent authentication, then invalidates every earlier code
	h.clock.Advance(10 * time.Minute)
	sess = h.login2FA(secret)
	h.clock.Advance(6 * time.Minute)
	if _, err := h.svc.RegenerateBackupCodes(h.ctx, sess, command.RequestMeta{}); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("regenerate without step-up: %v", err)
	}
	if _, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	sess, _ = h.svc.SessionByID(sess.ID)
	regen, err := h.svc.RegenerateBackupCodes(h.ctx, sess, command.RequestMeta{})
	if err != nil || len(regen.BackupCodes) != 10 {
		t.Fatalf("%+v %v", regen, err)
	}
	tk := h.ticket("ann@example.com")
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", codes[5], command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCode) {
		t.Fatalf("old code after regeneration: %v", err)
	}
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", regen.BackupCodes[5], command.RequestMeta{}); err != nil {
		t.Fatalf("new code: %v", err)
	}
	if sec, _ := h.svc.Security(h.ctx, id); sec.BackupCodes.Remaining != 9 {
		t.Fatalf("remaining %d", sec.BackupCodes.Remaining)
	}
}

func TestStepUpReauthAndPasswordChange(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	other1 := h.login("ann@example.com")
	other2 := h.login("ann@example.com")

	h.clock.Advance(6 * time.Minute)
	if err := h.svc.RequireRecentAuth(sess, 0); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("step-up after 6 minutes: %v", err)
	}
	if _, err := h.svc.ChangePassword(h.ctx, sess, goodPassword, "lantern-orchid-basalt-93", true, command.RequestMeta{}); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("password change without step-up: %v", err)
	}
	if _, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: "wrong-password-123"}, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("reauth with a wrong password: %v", err)
	}
	if _, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{}, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("empty reauth: %v", err)
	}
	pos, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: goodPassword}, command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatal(err)
	}
	fresh, _ := h.svc.SessionByID(sess.ID)
	if !fresh.AuthenticatedAt.Equal(h.clock.Now()) || h.svc.RequireRecentAuth(fresh, 0) != nil {
		t.Fatalf("authenticated_at %s", fresh.AuthenticatedAt)
	}
	if got := h.types(domain.SessionStream(sess.ID)); got[len(got)-1] != "ReauthSucceeded" {
		t.Fatalf("session stream %v", got)
	}
	if _, err := h.svc.ChangePassword(h.ctx, sess, "wrong-password-123", "lantern-orchid-basalt-93", false, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("wrong current password: %v", err)
	}
	var pe *domain.PasswordPolicyError
	if _, err := h.svc.ChangePassword(h.ctx, sess, goodPassword, "password1234", false, command.RequestMeta{}); !errors.As(err, &pe) {
		t.Fatalf("weak new password: %v", err)
	}
	res, err := h.svc.ChangePassword(h.ctx, sess, goodPassword, "lantern-orchid-basalt-93", true, command.RequestMeta{})
	if err != nil || res.SignedOut != 2 || res.Position == 0 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, tok := range []string{other1.Token, other2.Token} {
		if _, err := h.svc.Whoami(h.ctx, tok); !errors.Is(err, domain.ErrSessionNotFound) {
			t.Fatalf("other session survived the password change: %v", err)
		}
	}
	if ev := h.events(domain.SessionStream(other1.Session.ID)); h.decode(ev[len(ev)-1]).(domain.SessionSignedOut).Reason != "password_changed" {
		t.Fatal("reason is not password_changed")
	}
	if _, err := h.svc.SessionByID(sess.ID); err != nil {
		t.Fatal("current session signed out")
	}
	if _, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	h.clock.Advance(time.Second)
	if _, err := h.svc.Login(h.ctx, "ann@example.com", "lantern-orchid-basalt-93", "", command.RequestMeta{}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	sec, _ := h.svc.Security(h.ctx, id)
	if !sec.PasswordChangedAt.Equal(h.clock.Now().Add(-time.Second)) {
		t.Fatalf("password_changed_at %s", sec.PasswordChangedAt)
	}
}

func TestDisableTwoFactor(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	h.enrollTOTP(sess, "Phone")
	if _, err := h.svc.DisableTwoFactor(h.ctx, sess, "wrong-password-123", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := h.svc.DisableTwoFactor(h.ctx, sess, goodPassword, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	sec, _ := h.svc.Security(h.ctx, id)
	if sec.TwoFactorEnabled || len(sec.TOTPDevices) != 0 || sec.BackupCodes.Remaining != 0 {
		t.Fatalf("%+v", sec)
	}
	if res, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{}); err != nil || res.Status != command.StatusAuthenticated {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestArgon2CostChangeRehashesAtLogin(t *testing.T) {
	h := newHarness(t)
	id := h.register("ann@example.com")
	cfg := h.cfg
	cfg.Argon2 = credential.Argon2Config{MemoryKiB: 8192, Iterations: 2}
	svc2, err := command.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	evs := h.events(domain.AccountStream(id))
	last := h.decode(evs[len(evs)-1])
	re, ok := last.(domain.PasswordRehashed)
	if !ok || re.PasswordHash[:30] != "$argon2id$v=19$m=8192,t=2,p=1$" {
		t.Fatalf("last event %#v", last)
	}
	if _, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{}); err != nil {
		t.Fatalf("old-cost service verifies the new hash: %v", err)
	}
}
