package command

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/domain/validate"
)

// The recovery commands (API.md "Mail, recovery and account protection"): email
// verification, password reset and "this wasn't me". They append the events the mail outbox
// turns into mail; the links' tokens are never stored (credential.LinkToken: a MAC over the
// purpose, the account, the request and its time, which the outbox re-derives from the
// logged event with the same server key), only their hash, in the event that issued them.
// Whether a token still works is decided from the account's events (domain.RecoveryState),
// so a link works once, and expires, on every instance and across restarts.

// How long the mailed links work, from their issue time.
const (
	VerifyEmailLinkTTL   = 24 * time.Hour
	ResetPasswordLinkTTL = 30 * time.Minute
	NotMeLinkTTL         = 7 * 24 * time.Hour
)

// linkClockSkew is how far in the future a not-me link's issue time may be (instances'
// clocks differ a little); a token from further ahead is refused.
const linkClockSkew = time.Minute

// verificationRequest is a new EmailVerificationRequested for email of accountID at now:
// the hash of the token the outbox will mail.
func (s *Service) verificationRequest(accountID, email string, now time.Time) domain.EmailVerificationRequested {
	id := domain.NewID()
	token := s.cfg.Keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkVerifyEmail, AccountID: accountID, Ref: id, IssuedAt: now})
	return domain.EmailVerificationRequested{RequestID: id, Email: email, TokenHash: credential.HashLinkToken(token), At: now}
}

// resetRequest is a new PasswordResetRequested of accountID at now.
func (s *Service) resetRequest(accountID string, now time.Time) domain.PasswordResetRequested {
	id := domain.NewID()
	token := s.cfg.Keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: accountID, Ref: id, IssuedAt: now})
	return domain.PasswordResetRequested{RequestID: id, TokenHash: credential.HashLinkToken(token), At: now}
}

// openLink checks token's MAC and purpose (ErrInvalidToken otherwise).
func (s *Service) openLink(purpose, token string) (credential.LinkClaims, string, error) {
	c, err := s.cfg.Keyring.OpenLinkToken(purpose, token)
	if err != nil {
		return credential.LinkClaims{}, "", ErrInvalidToken
	}
	return c, credential.HashLinkToken(token), nil
}

// sameHash compares two token hashes in constant time.
func sameHash(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// decideVerifyEmail confirms the verification link of claims c (its token's hash
// tokenHash): the newest request for the current email, unused, within VerifyEmailLinkTTL.
func decideVerifyEmail(a *domain.Account, c credential.LinkClaims, tokenHash string, now time.Time) ([]domain.Event, error) {
	r := a.Recovery()
	if a.Erased() || r.VerifyRequestID != c.Ref || !sameHash(r.VerifyTokenHash, tokenHash) || !now.Before(r.VerifyAt.Add(VerifyEmailLinkTTL)) {
		return nil, ErrInvalidToken
	}
	return []domain.Event{domain.EmailVerified{RequestID: c.Ref, Email: a.Email(), At: now}}, nil
}

// decideCompleteReset sets the new password hash with the reset link of c: the newest
// request, unused, within ResetPasswordLinkTTL, with no password change after it.
func decideCompleteReset(a *domain.Account, c credential.LinkClaims, tokenHash, passwordHash string, now time.Time) ([]domain.Event, error) {
	r := a.Recovery()
	if a.Erased() || r.ResetRequestID != c.Ref || !sameHash(r.ResetTokenHash, tokenHash) || !now.Before(r.ResetAt.Add(ResetPasswordLinkTTL)) {
		return nil, ErrInvalidToken
	}
	return []domain.Event{domain.PasswordResetCompleted{RequestID: c.Ref, PasswordHash: passwordHash, At: now}}, nil
}

// errAlreadyReported: the event was reported already (a not-me link is then used up).
var errAlreadyReported = errors.New("the event was already reported")

// decideReportNotMe records that the account holder did not do eventID (source mail or
// portal) and asks for a reset link (reset, issued at now).
func decideReportNotMe(a *domain.Account, eventID, source string, reset domain.PasswordResetRequested, now time.Time) ([]domain.Event, error) {
	if a.Erased() {
		return nil, fmt.Errorf("account %s: %w", a.ID(), domain.ErrNotFound)
	}
	if slices.Contains(a.Recovery().Reported, eventID) {
		return nil, errAlreadyReported
	}
	return []domain.Event{domain.SuspiciousActivityReported{EventID: eventID, Source: source, At: now}, reset}, nil
}

// Register and ChangeEmail append verificationRequest beside the event that gives the
// account its email (account.go).

// RequestEmailVerification issues a new verification link for the caller's current email
// (POST /api/v1/me/email/verification): EmailVerificationRequested, which supersedes the
// earlier links. The account holder's own session only; throttled per account like a
// sign-in (each request counts), since every request mails the address.
func (s *Service) RequestEmailVerification(ctx context.Context, caller domain.Session, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	at, d, err := s.cfg.Throttle.Reserve(ctx, "verify-mail:"+cur.AccountID, "", s.now())
	if err != nil {
		return 0, err
	}
	if d.Wait > 0 {
		return 0, &throttle.Error{RetryAfter: d.Wait}
	}
	at.Failed() // every request counts
	defer at.Settle(ctx)
	res, _, err := s.updateAccount(ctx, cur.AccountID, s.callerMetadata(cur, rm), func(a *domain.Account) ([]domain.Event, error) {
		if a.Erased() {
			return nil, fmt.Errorf("account %s: %w", a.ID(), domain.ErrNotFound)
		}
		return []domain.Event{s.verificationRequest(a.ID(), a.Email(), s.now())}, nil
	})
	return res.LastPosition, err
}

// VerifyEmail confirms the email with the token of a verification link (POST
// /api/v1/email/verify; no session needed): EmailVerified. A token that is malformed, forged,
// of another purpose, used, expired (VerifyEmailLinkTTL), superseded by a newer request or
// for an email the account no longer has is ErrInvalidToken.
func (s *Service) VerifyEmail(ctx context.Context, token string, rm RequestMeta) (uint64, error) {
	c, hash, err := s.openLink(credential.LinkVerifyEmail, token)
	if err != nil {
		return 0, err
	}
	md := s.metadata(c.AccountID, domain.Actor{Type: domain.ActorAccount, ID: c.AccountID}, rm)
	res, _, err := s.updateAccount(ctx, c.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		return decideVerifyEmail(a, c, hash, s.now())
	})
	if errors.Is(err, domain.ErrNotFound) {
		return 0, ErrInvalidToken
	}
	return res.LastPosition, err
}

// resetKey and resetIPKey are the throttling keys of password-reset requests: counted
// apart from sign-ins (a flood of reset requests must not lock the owner's sign-in), under
// the same rules and in the same store.
func resetKey(email string) string { return "reset-" + throttle.AccountKey(email) }
func resetIPKey(ip string) string  { return "reset-" + throttle.IPKey(ip) }

// RequestPasswordReset asks for a reset link for email (POST /api/v1/password-reset; no
// session needed). The answer is the same for an unknown email, which gets no event (and
// so no mail), and it comes no sooner than Config.ResetAnswerTime after the request began
// either way, so that neither the answer nor its time tells whether the email has an
// account. Requests are throttled per email and per client address like sign-ins, each
// one counting (*throttle.Error); a malformed email is a *ValidationError. The position
// written is not returned: it would tell.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, rm RequestMeta) error {
	norm, err := validate.Email(email)
	if err != nil {
		return err
	}
	ipKey := ""
	if rm.IP != "" {
		ipKey = resetIPKey(rm.IP)
	}
	at, d, err := s.cfg.Throttle.Reserve(ctx, resetKey(norm), ipKey, s.now())
	if err != nil {
		return err
	}
	if d.Wait > 0 {
		return &throttle.Error{RetryAfter: d.Wait}
	}
	at.Failed() // every request counts
	defer at.Settle(ctx)
	start := time.Now()
	defer s.padAnswer(ctx, start)
	a, err := s.findAccount(ctx, norm)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	md := s.metadata(a.ID(), domain.Actor{Type: domain.ActorAccount, ID: a.ID()}, rm)
	// The request is recorded even when the client has gone: it was counted.
	_, _, err = s.updateAccount(context.WithoutCancel(ctx), a.ID(), md, func(a *domain.Account) ([]domain.Event, error) {
		if a.Erased() {
			return nil, fmt.Errorf("account %s: %w", a.ID(), domain.ErrNotFound)
		}
		return []domain.Event{s.resetRequest(a.ID(), s.now())}, nil
	})
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	return err
}

// padAnswer waits until Config.ResetAnswerTime has passed since start (real time: it is
// about what a client can measure).
func (s *Service) padAnswer(ctx context.Context, start time.Time) {
	d := s.cfg.ResetAnswerTime - time.Since(start)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ConfirmPasswordReset sets a new password with the token of a reset link (POST
// /api/v1/password-reset/confirm; no session needed): PasswordResetCompleted, then every
// session of the account (and those it holds acting for others) is signed out with reason
// password_reset, and the account's sign-in throttle is reset. Second factors stay, so the
// next sign-in still asks for one. A token that is malformed, forged, of another purpose,
// used, expired (ResetPasswordLinkTTL), superseded by a newer request or followed by a
// password change is ErrInvalidToken (checked before the password); a password the policy
// refuses is a *PasswordPolicyError.
func (s *Service) ConfirmPasswordReset(ctx context.Context, token, newPassword string, rm RequestMeta) (SignOutResult, error) {
	c, tokenHash, err := s.openLink(credential.LinkResetPassword, token)
	if err != nil {
		return SignOutResult{}, err
	}
	a, err := s.repo.Load(ctx, c.AccountID)
	if errors.Is(err, domain.ErrNotFound) {
		return SignOutResult{}, ErrInvalidToken
	}
	if err != nil {
		return SignOutResult{}, err
	}
	if _, err := decideCompleteReset(a, c, tokenHash, "", s.now()); err != nil {
		return SignOutResult{}, err
	}
	if err := checkNewPassword(s.policy, newPassword, a.Email(), a.FirstName(), a.LastName()); err != nil {
		return SignOutResult{}, err
	}
	hash, err := s.hasher.Hash(newPassword)
	if err != nil {
		return SignOutResult{}, err
	}
	md := s.metadata(a.ID(), domain.Actor{Type: domain.ActorAccount, ID: a.ID()}, rm)
	res, after, err := s.updateAccount(ctx, a.ID(), md, func(a *domain.Account) ([]domain.Event, error) {
		return decideCompleteReset(a, c, tokenHash, hash, s.now())
	})
	if err != nil {
		return SignOutResult{}, err
	}
	// The password is replaced first, so that no session can start with the old one after
	// the sign-out below.
	out := SignOutResult{Position: res.LastPosition}
	n, pos, err := s.signOutEverywhere(ctx, a.ID(), "", reasons.SignOutPasswordReset, md)
	out.SignedOut, out.Position = n, max(out.Position, pos)
	if err != nil {
		return out, err
	}
	_ = s.cfg.Throttle.Store.Reset(ctx, throttle.AccountKey(after.Email()))
	return out, nil
}

// signOutEverywhere signs out every session of accountID and those it holds acting for
// others, except keep ("" for none), with reason.
func (s *Service) signOutEverywhere(ctx context.Context, accountID, keep, reason string, md domain.Metadata) (int, uint64, error) {
	n, pos, err := s.signOutAll(ctx, accountID, keep, reason, md)
	if err != nil {
		return n, pos, err
	}
	for _, sess := range s.index.actingAs(accountID) {
		if sess.ID == keep {
			continue
		}
		p, err := s.signOut(ctx, sess.ID, "", reason, md)
		if errors.Is(err, domain.ErrSessionNotFound) {
			continue
		}
		if err != nil {
			return n, pos, err
		}
		n, pos = n+1, max(pos, p)
	}
	return n, pos, nil
}

// ReportNotMe is "this wasn't me" from a mail's link (POST /api/v1/not-me; no session
// needed): the token names the event the mail was about. Every session of the account
// (and those it holds acting for others) is signed out with reason reported_not_me, then
// SuspiciousActivityReported (source mail) and a PasswordResetRequested (the outbox mails
// the reset link) are appended. A token that is malformed, forged, of another purpose,
// older than NotMeLinkTTL, or names an event already reported is ErrInvalidToken (and
// signs nobody out).
func (s *Service) ReportNotMe(ctx context.Context, token string, rm RequestMeta) (uint64, error) {
	c, _, err := s.openLink(credential.LinkNotMe, token)
	if err != nil {
		return 0, err
	}
	now := s.now()
	if !now.Before(c.IssuedAt.Add(NotMeLinkTTL)) || c.IssuedAt.After(now.Add(linkClockSkew)) {
		return 0, ErrInvalidToken
	}
	md := s.metadata(c.AccountID, domain.Actor{Type: domain.ActorAccount, ID: c.AccountID}, rm)
	pos, err := s.reportNotMe(ctx, c.AccountID, "", c.Ref, domain.ReportFromMail, md)
	if errors.Is(err, domain.ErrNotFound) || errors.Is(err, errAlreadyReported) {
		return 0, ErrInvalidToken
	}
	return pos, err
}

// ReportActivity is "this wasn't me" from the portal's activity page (POST
// /api/v1/me/activity/{id}/not-me): the account holder's own session reports eventID, an
// entry of its activity log (the caller checks that it is the caller's). Every other
// session of the account is signed out (reason reported_not_me; the caller's stays), then
// SuspiciousActivityReported (source portal) and a PasswordResetRequested are appended.
// Reporting an event again changes nothing (position 0).
func (s *Service) ReportActivity(ctx context.Context, caller domain.Session, eventID string, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	if eventID == "" {
		return 0, &domain.ValidationError{Field: "id", Reason: "names no event"}
	}
	pos, err := s.reportNotMe(ctx, cur.AccountID, cur.ID, eventID, domain.ReportFromPortal, s.callerMetadata(cur, rm))
	if errors.Is(err, errAlreadyReported) {
		return 0, nil
	}
	return pos, err
}

// reportNotMe checks that eventID can be reported, signs out the account's sessions but
// keep, then appends the report and a reset request (checked again). Signing out first
// leaves nothing half done for a retry: a failed append can be retried with the same link.
func (s *Service) reportNotMe(ctx context.Context, accountID, keep, eventID, source string, md domain.Metadata) (uint64, error) {
	a, err := s.repo.Load(ctx, accountID)
	if err != nil {
		return 0, err
	}
	if _, err := decideReportNotMe(a, eventID, source, domain.PasswordResetRequested{}, s.now()); err != nil {
		return 0, err
	}
	_, last, err := s.signOutEverywhere(ctx, accountID, keep, reasons.SignOutReportedNotMe, md)
	if err != nil {
		return last, err
	}
	res, _, err := s.updateAccount(ctx, accountID, md, func(a *domain.Account) ([]domain.Event, error) {
		now := s.now()
		return decideReportNotMe(a, eventID, source, s.resetRequest(a.ID(), now), now)
	})
	if err != nil {
		return last, err
	}
	return max(last, res.LastPosition), nil
}
