package domain

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
)

func cryptoRand() io.Reader { return rand.Reader }

// hexToken is the TokenHash of SessionStarted for token.
func hexToken(token string) string {
	h := credential.HashSessionToken(token)
	return hex.EncodeToString(h[:])
}

func startEvents(sid, account, token string, amr []string, now time.Time) []Event {
	return DecideStartSession(SessionStart{SessionID: sid, AccountID: account, TokenHash: hexToken(token),
		Method: MethodPassword, AMR: amr, Lifetime: 24 * time.Hour, IdleTimeout: 2 * time.Hour}, now)
}

func TestSessionDecisions(t *testing.T) {
	start := startEvents("s1", "a1", "tok", []string{AMRPassword}, t0)
	if ls := start[0].(LoginSucceeded); ls.AAL != AAL1 || !slices.Equal(ls.AMR, []string{"pwd"}) || ls.Method != MethodPassword {
		t.Fatalf("LoginSucceeded %+v", ls)
	}
	if ss := start[1].(SessionStarted); ss.ExpiresAt != t0.Add(24*time.Hour) || ss.IdleTimeoutSeconds != 7200 || ss.TokenHash == "tok" || len(ss.TokenHash) != 64 {
		t.Fatalf("SessionStarted %+v", ss)
	}
	if two := startEvents("s", "a", "t", []string{AMRPassword, AMROTP}, t0); two[1].(SessionStarted).AAL != AAL2 {
		t.Fatal("pwd+otp is not aal2")
	}
	r, err := rebuildSession("s1", envelopes(t, SessionStream("s1"), start...))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Session()
	if s.AccountID != "a1" || !s.AuthenticatedAt.Equal(t0) || !s.LastAccessedAt.Equal(t0) || s.IdleTimeout != 2*time.Hour {
		t.Fatalf("session %+v", s)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"fresh", t0.Add(time.Hour), ""},
		{"idle", t0.Add(2 * time.Hour), reasons.ExpiredIdle},
		{"lifetime", t0.Add(24 * time.Hour), reasons.ExpiredLifetime},
	} {
		if got := s.ExpiredReason(tc.at); got != tc.want {
			t.Errorf("%s: ExpiredReason = %q, want %q", tc.name, got, tc.want)
		}
	}
	// touch at most once per interval
	if ev := r.DecideAccess(t0.Add(30*time.Second), time.Minute); ev != nil {
		t.Fatalf("access within a minute of the start: %v", ev)
	}
	ev := r.DecideAccess(t0.Add(time.Minute), time.Minute)
	if len(ev) != 1 {
		t.Fatal("no access event after a minute")
	}
	all := append(slices.Clone(start), ev...)
	r, _ = rebuildSession("s1", envelopes(t, SessionStream("s1"), all...))
	if ev := r.DecideAccess(t0.Add(90*time.Second), time.Minute); ev != nil {
		t.Fatal("second access event within a minute")
	}
	if got := r.Session().LastAccessedAt; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last access %s", got)
	}
	// re-authentication
	ev, err = r.DecideReauth(MethodTOTP, AMROTP, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ra := ev[0].(ReauthSucceeded)
	if ra.AAL != AAL2 || !slices.Equal(ra.AMR, []string{"pwd", "otp"}) {
		t.Fatalf("reauth %+v", ra)
	}
	all = append(all, ev...)
	r, _ = rebuildSession("s1", envelopes(t, SessionStream("s1"), all...))
	if s := r.Session(); !s.AuthenticatedAt.Equal(t0.Add(time.Hour)) || s.AAL != AAL2 {
		t.Fatalf("after reauth %+v", s)
	}
	// expiry and sign-out
	if ev := r.DecideExpire(t0.Add(90 * time.Minute)); ev != nil {
		t.Fatal("expired while active")
	}
	if ev := r.DecideExpire(t0.Add(3*time.Hour + time.Second)); len(ev) != 1 || ev[0].(SessionExpired).Reason != reasons.ExpiredIdle {
		t.Fatalf("idle expiry %v", ev)
	}
	ev, err = r.DecideSignOut(reasons.SignOutLogout, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, ev...)
	r, _ = rebuildSession("s1", envelopes(t, SessionStream("s1"), all...))
	if ended, why := r.EndState(); !ended || why != reasons.SignOutLogout {
		t.Fatalf("ended %v %q", ended, why)
	}
	if _, err := r.DecideSignOut(reasons.SignOutLogout, t0); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("second sign-out: %v", err)
	}
	if r.DecideExpire(t0.Add(48*time.Hour)) != nil || r.DecideAccess(t0.Add(time.Hour), time.Minute) != nil {
		t.Fatal("events for an ended session")
	}
	if _, err := rebuildSession("s1", nil); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("empty stream: %v", err)
	}
}
