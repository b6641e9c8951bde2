package domain

import (
	"slices"
	"testing"
	"time"
)

// TestAccountRecoveryState: what the recovery events leave in the account, event by event
// and through a snapshot (continueWith), which the link commands decide on.
func TestAccountRecoveryState(t *testing.T) {
	t1 := t0.Add(time.Hour)
	verify := EmailVerificationRequested{RequestID: "v1", Email: "ann@example.com", TokenHash: "hv1", At: t0}
	a := rebuild(t, registered, verify)
	r := a.Recovery()
	if r.EmailVerified || r.VerifyRequestID != "v1" || r.VerifyTokenHash != "hv1" || !r.VerifyAt.Equal(t0) || r.ResetRequestID != "" {
		t.Fatalf("after the registration's request: %+v", r)
	}
	a = continueWith(t, a, EmailVerified{RequestID: "v1", Email: "ann@example.com", At: t1})
	if r := a.Recovery(); !r.EmailVerified || r.VerifyRequestID != "" {
		t.Fatalf("after EmailVerified: %+v", r)
	}
	// An email change clears the verification; the old email's pending link is not shown.
	a = continueWith(t, a, EmailVerificationRequested{RequestID: "v2", Email: "ann@example.com", TokenHash: "hv2", At: t1},
		EmailChanged{OldEmail: "ann@example.com", NewEmail: "ann@example.org", At: t1})
	if r := a.Recovery(); r.EmailVerified || r.VerifyRequestID != "" {
		t.Fatalf("after the email change: %+v", r)
	}
	// A confirmation of an email the account no longer has verifies nothing.
	a = continueWith(t, a, EmailVerified{RequestID: "v2", Email: "ann@example.com", At: t1})
	if a.Recovery().EmailVerified {
		t.Fatal("an old email's confirmation verified the new one")
	}

	// Reset: the newest request is pending until a reset or a password change.
	a = continueWith(t, a, PasswordResetRequested{RequestID: "r1", TokenHash: "hr1", At: t0},
		PasswordResetRequested{RequestID: "r2", TokenHash: "hr2", At: t1})
	if r := a.Recovery(); r.ResetRequestID != "r2" || r.ResetTokenHash != "hr2" || !r.ResetAt.Equal(t1) {
		t.Fatalf("two requests: %+v", r)
	}
	b := continueWith(t, a, PasswordChanged{PasswordHash: "h1", At: t1})
	if r := b.Recovery(); r.ResetRequestID != "" {
		t.Fatalf("after a password change: %+v", r)
	}
	a = continueWith(t, a, PasswordResetCompleted{RequestID: "r2", PasswordHash: "h2", At: t1})
	if r := a.Recovery(); r.ResetRequestID != "" || a.PasswordHash() != "h2" || !a.Security().PasswordChangedAt.Equal(t1) {
		t.Fatalf("after the reset: %+v %s", r, a.PasswordHash())
	}

	// Reports, each event once; a risk signal changes nothing.
	a = continueWith(t, a, SuspiciousActivityReported{EventID: "e1", Source: ReportFromMail, At: t1},
		SuspiciousActivityReported{EventID: "e1", Source: ReportFromPortal, At: t1},
		SignInRiskDetected{SessionID: "s1", LoginEventID: "e2", Signals: []string{SignalNewCountry}, At: t1},
		SuspiciousActivityReported{EventID: "e2", Source: ReportFromPortal, At: t1})
	if got := a.Recovery().Reported; !slices.Equal(got, []string{"e1", "e2"}) {
		t.Fatalf("reported %v", got)
	}
	// Erasure forgets it all.
	a = continueWith(t, a, AccountErased{At: t1})
	if r := a.Recovery(); r.EmailVerified || len(r.Reported) != 0 || r.ResetRequestID != "" {
		t.Fatalf("after erasure: %+v", r)
	}
}
