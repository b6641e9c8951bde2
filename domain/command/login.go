package command

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/domain/validate"
)

// LoginStatus is the outcome of a sign-in step, as API.md's status field.
type LoginStatus string

// Login outcomes.
const (
	StatusAuthenticated        LoginStatus = "authenticated"
	StatusSecondFactorRequired LoginStatus = "second_factor_required"
	// StatusEnrollmentRequired: an organisation requires 2FA and the account has none; the
	// session is restricted to enrolling one (Session.Restricted).
	StatusEnrollmentRequired LoginStatus = "enrollment_required"
)

// Authenticated is a new session and its token. The token is shown once: only its hash is
// stored.
type Authenticated struct {
	Session domain.Session
	Token   string
}

// SecondFactorRequired asks for a second factor: Ticket is the single-use login ticket,
// Methods the methods the account can use (totp, backup_code, passkey).
type SecondFactorRequired struct {
	Ticket    string
	Methods   []string
	ExpiresAt time.Time
}

// LoginResult is the outcome of Login or SecondFactor: Authenticated is set for
// StatusAuthenticated and StatusEnrollmentRequired, SecondFactor for
// StatusSecondFactorRequired. Position is the global position of the last event written.
type LoginResult struct {
	Status        LoginStatus
	Authenticated *Authenticated
	SecondFactor  *SecondFactorRequired
	Position      uint64
}

// maxAttemptedEmail bounds the attempted email kept in LoginFailed for unknown accounts.
const maxAttemptedEmail = 320

// Login checks an email and password for client clientID ("" for none; an unknown id is
// ErrUnknownClient) and answers:
//   - StatusAuthenticated with a new session (aal1, amr [pwd]) when the account has no
//     second factor;
//   - StatusSecondFactorRequired with a login ticket when it has one;
//   - StatusEnrollmentRequired with a restricted session when the TwoFactorPolicy requires
//     2FA and the account has none;
//   - ErrInvalidCredentials for a wrong password and, after the same argon2 work (the
//     dummy hash), for an unknown email;
//   - *throttle.Error when the account (keyed by email, so unknown emails throttle alike)
//     or the client IP failed too often; the attempt is counted before the password is
//     checked, so parallel attempts get no more checks than sequential ones. A completed
//     sign-in resets the account's count; a right password that leads to a second factor
//     only gives its own attempt back.
//
// Every failure is recorded as LoginFailed: on the account stream for a known account, on
// system-signin for an unknown one (no account is created), naming the attempted email
// only when it is a valid email address (never what else was typed: perhaps a password);
// throttled rejections at most once per throttling window and key.
func (s *Service) Login(ctx context.Context, email, password, clientID string, rm RequestMeta) (LoginResult, error) {
	if clientID != "" {
		if _, err := s.Client(ctx, clientID); err != nil {
			return LoginResult{}, err
		}
	}
	rm.ClientID = clientID
	now := s.now()
	norm, emailErr := validate.Email(email)
	attempted, key := norm, throttle.AccountKey(norm)
	if emailErr != nil {
		attempted, key = "", throttle.TypedKey(email)
	}
	ipKey := ""
	if rm.IP != "" {
		ipKey = throttle.IPKey(rm.IP)
	}
	at, err := s.reserveSignIn(ctx, key, ipKey, attempted, domain.StagePassword, domain.MethodPassword, rm)
	if err != nil {
		return LoginResult{}, err
	}
	defer at.Settle(ctx)
	var a *domain.Account
	if emailErr == nil {
		var err error
		a, err = s.findAccount(ctx, norm)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return LoginResult{}, err
		}
	}
	// The append after the hash (the session, or the failure) is announced to the log as the
	// hash starts, so that a commit just before it may wait and share its sync (with 16
	// sign-ins on two cores, two hashes end a few milliseconds apart).
	var arrival *domain.Expectation
	announce := func(end time.Time) { arrival = domain.ExpectAppend(s.cfg.Store, end) }
	defer func() { arrival.Done() }()
	if a == nil {
		s.hasher.VerifyDummyNotify(password, announce)
		ctx = domain.WithExpectation(ctx, arrival)
		at.Failed()
		s.recordFailure(ctx, "", attempted, domain.LoginFailed{Reason: reasons.LoginFailedUnknownAccount, Stage: domain.StagePassword,
			Method: domain.MethodPassword, At: now}, s.metadata("", domain.Actor{Type: domain.ActorAccount}, rm))
		return LoginResult{}, domain.ErrInvalidCredentials
	}
	md := s.metadata(a.ID(), domain.Actor{Type: domain.ActorAccount, ID: a.ID()}, rm)
	ok, rehash, err := s.hasher.VerifyNotify(password, a.PasswordHash(), announce)
	if err != nil {
		return LoginResult{}, fmt.Errorf("account %s: %w", a.ID(), err)
	}
	ctx = domain.WithExpectation(ctx, arrival)
	if !ok {
		at.Failed()
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StagePassword,
			Method: domain.MethodPassword, At: now}, md)
		return LoginResult{}, domain.ErrInvalidCredentials
	}
	if rehash {
		s.rehash(ctx, a, password, md)
	}
	if a.TwoFactorEnabled() {
		return s.issueTicket(ctx, a, clientID) // the attempt is refunded: not a failure, not yet a sign-in
	}
	orgs, err := s.requiredBy(ctx, a.ID())
	if err != nil {
		return LoginResult{}, err
	}
	res, err := s.startSession(ctx, a.ID(), clientID, domain.MethodPassword, []string{domain.AMRPassword}, len(orgs) > 0, rm)
	if err == nil {
		at.Succeeded()
	}
	return res, err
}

// SecondFactor completes a sign-in with the login ticket from Login and a TOTP code
// (method "totp") or a backup code (method "backup_code"). The code is spent by appending
// TOTPCodeAccepted or BackupCodeUsed with the account's expected version, so of concurrent
// requests with one code exactly one succeeds. It answers StatusAuthenticated with an aal2
// session, ErrInvalidCode for a wrong or used code (the fifth wrong code burns the ticket),
// ErrTicketInvalid for an unknown, expired, used or burnt ticket, *throttle.Error (counted
// per account and client IP before the code is checked, like Login), or a
// *ValidationError for another method.
func (s *Service) SecondFactor(ctx context.Context, ticket, method, code string, rm RequestMeta) (LoginResult, error) {
	var amr string
	switch method {
	case domain.MethodTOTP:
		amr = domain.AMROTP
	case domain.MethodBackupCode:
		amr = domain.AMRBackupCode
	default:
		return LoginResult{}, validate.Invalid("method", "must be %q or %q", domain.MethodTOTP, domain.MethodBackupCode)
	}
	now := s.now()
	t, err := s.tickets.Attempt(ctx, ticket, now, s.cfg.TicketMaxTries)
	if err != nil {
		return LoginResult{}, err
	}
	rm.ClientID = t.ClientID
	key, ipKey := throttle.AccountKey(t.Email), ""
	if rm.IP != "" {
		ipKey = throttle.IPKey(rm.IP)
	}
	at, err := s.reserveSignIn(ctx, key, ipKey, t.Email, domain.StageSecondFactor, method, rm)
	if err != nil {
		return LoginResult{}, err
	}
	defer at.Settle(ctx)
	md := s.metadata(t.AccountID, domain.Actor{Type: domain.ActorAccount, ID: t.AccountID}, rm)
	_, _, err = s.updateAccount(ctx, t.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideSecondFactor(s.cfg.Keyring, method, code, "login", s.now())
	})
	if errors.Is(err, domain.ErrInvalidCode) {
		at.Failed()
		s.recordFailure(ctx, t.AccountID, "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor, Stage: domain.StageSecondFactor,
			Method: method, At: now}, md)
		if t.Tries >= s.cfg.TicketMaxTries {
			s.tickets.Consume(ctx, ticket)
		}
		return LoginResult{}, domain.ErrInvalidCode
	}
	if err != nil {
		return LoginResult{}, err
	}
	if !s.tickets.Consume(ctx, ticket) {
		return LoginResult{}, ErrTicketInvalid
	}
	res, err := s.startSession(ctx, t.AccountID, t.ClientID, method, []string{domain.AMRPassword, amr}, false, rm)
	if err == nil {
		at.Succeeded()
	}
	return res, err
}

// reserveSignIn counts a sign-in attempt on the account key and the IP key ("" for none)
// before its credential is checked (see attempt; the caller defers its settle). When
// either key is waiting it answers a *throttle.Error, recording the first refusal of a
// wait as LoginFailed (throttled): on the account of email when there is one, else on
// system-signin naming email (a normalised valid email, or "" for none).
func (s *Service) reserveSignIn(ctx context.Context, key, ipKey, email, stage, method string, rm RequestMeta) (*throttle.Attempt, error) {
	now := s.now()
	at, d, err := s.cfg.Throttle.Reserve(ctx, key, ipKey, now)
	if err != nil || d.Wait == 0 {
		return at, err
	}
	if d.First {
		ev := domain.LoginFailed{Reason: reasons.LoginFailedThrottled, Stage: stage, Method: method, RetryAfterMS: d.Wait.Milliseconds(), At: now}
		var a *domain.Account
		if email != "" {
			a, _ = s.findAccount(ctx, email)
		}
		if a != nil {
			s.recordFailure(ctx, a.ID(), "", ev, s.metadata(a.ID(), domain.Actor{Type: domain.ActorAccount, ID: a.ID()}, rm))
		} else {
			s.recordFailure(ctx, "", email, ev, s.metadata("", domain.Actor{Type: domain.ActorAccount}, rm))
		}
	}
	return nil, &throttle.Error{RetryAfter: d.Wait}
}

// reserveReauth counts a re-authentication attempt of a signed-in caller on a's account
// key before its credential is checked (see attempt; the caller defers its settle), or
// answers a *throttle.Error, recording the first refusal of a wait (stage reauth).
func (s *Service) reserveReauth(ctx context.Context, a *domain.Account, method, sessionID string, md domain.Metadata) (*throttle.Attempt, error) {
	now := s.now()
	at, d, err := s.cfg.Throttle.Reserve(ctx, throttle.AccountKey(a.Email()), "", now)
	if err != nil || d.Wait == 0 {
		return at, err
	}
	if d.First {
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedThrottled, Stage: domain.StageReauth, Method: method,
			SessionID: sessionID, RetryAfterMS: d.Wait.Milliseconds(), At: now}, md)
	}
	return nil, &throttle.Error{RetryAfter: d.Wait}
}

// recordFailure appends a LoginFailed: to the account's stream when accountID is known,
// else to system-signin with the attempted email when it is a valid email address (what
// else was typed into the email field, perhaps a password, is never recorded). Recording
// is best effort: a store error must not turn a refused sign-in into a different answer.
// It returns the position.
func (s *Service) recordFailure(ctx context.Context, accountID, attemptedEmail string, ev domain.LoginFailed, md domain.Metadata) uint64 {
	stream := domain.SigninStream
	ev.AttemptedEmail = ""
	if accountID != "" {
		stream = domain.AccountStream(accountID)
	} else if norm, err := validate.Email(attemptedEmail); err == nil {
		ev.AttemptedEmail = truncateBytes(norm, maxAttemptedEmail)
	}
	res, err := s.appendEvents(ctx, stream, expect.Any, []domain.Event{ev}, md)
	if err != nil {
		return 0
	}
	return res.LastPosition
}

// rehash stores the password with the current argon2 cost (best effort).
func (s *Service) rehash(ctx context.Context, a *domain.Account, password string, md domain.Metadata) {
	hash, err := s.hasher.Hash(password)
	if err != nil {
		return
	}
	_, _ = s.appendEvents(ctx, domain.AccountStream(a.ID()), expect.Exact(a.Version()),
		[]domain.Event{domain.PasswordRehashed{PasswordHash: hash, At: s.now()}}, md)
}

func (s *Service) issueTicket(ctx context.Context, a *domain.Account, clientID string) (LoginResult, error) {
	id, err := randomToken(s.cfg.Rand)
	if err != nil {
		return LoginResult{}, err
	}
	now := s.now()
	t := ephemeral.LoginTicket{ID: id, AccountID: a.ID(), Email: a.Email(), ClientID: clientID,
		Methods: a.SecondFactorMethods(), CreatedAt: now, ExpiresAt: now.Add(s.cfg.TicketTTL)}
	if err := s.tickets.Put(ctx, t); err != nil {
		return LoginResult{}, fmt.Errorf("store login ticket: %w", err)
	}
	return LoginResult{Status: StatusSecondFactorRequired,
		SecondFactor: &SecondFactorRequired{Ticket: id, Methods: slices.Clone(t.Methods), ExpiresAt: t.ExpiresAt}}, nil
}

// startSession opens a session stream (LoginSucceeded, SessionStarted) and indexes it.
func (s *Service) startSession(ctx context.Context, accountID, clientID, method string, amr []string, restricted bool, rm RequestMeta) (LoginResult, error) {
	md := s.metadata(accountID, domain.Actor{Type: domain.ActorAccount, ID: accountID}, rm)
	return s.openSession(ctx, domain.SessionStart{AccountID: accountID, ClientID: clientID, Method: method, AMR: amr,
		Restricted: restricted, Lifetime: s.cfg.SessionLifetime, IdleTimeout: s.cfg.SessionIdleTimeout}, md)
}

// openSession draws the token and the id of a new session described by in, appends its
// first two events with metadata md and indexes it.
func (s *Service) openSession(ctx context.Context, in domain.SessionStart, md domain.Metadata) (LoginResult, error) {
	token, err := randomToken(s.cfg.Rand)
	if err != nil {
		return LoginResult{}, err
	}
	sid := domain.NewID()
	in.SessionID, in.TokenHash = sid, hexTokenHash(token)
	events := domain.DecideStartSession(in, s.now())
	res, err := s.appendEvents(ctx, domain.SessionStream(sid), expect.NoStream, events, md)
	if err != nil {
		return LoginResult{}, err
	}
	r, err := domain.Next(domain.NewSessionRecord(sid), events, res.NextVersion)
	if err != nil {
		return LoginResult{}, err
	}
	s.index.observe(r)
	status := StatusAuthenticated
	if in.Restricted {
		status = StatusEnrollmentRequired
	}
	return LoginResult{Status: status, Authenticated: &Authenticated{Session: r.Session(), Token: token},
		Position: res.LastPosition}, nil
}

// ReauthInput is a re-authentication: exactly one of Password and Code (a TOTP code).
type ReauthInput struct {
	Password string
	Code     string
}

// Reauth renews the caller session's authenticated_at (step-up) after checking its
// password or a TOTP code (spent like at sign-in): ReauthSucceeded on the session stream.
// A wrong credential is ErrInvalidCredentials / ErrInvalidCode, recorded and throttled
// like a sign-in. Restricted sessions may re-authenticate; a delegate's acting session may
// not (ErrForbidden: it holds no credential of the owner).
func (s *Service) Reauth(ctx context.Context, caller domain.Session, in ReauthInput, rm RequestMeta) (uint64, error) {
	cur, err := s.authorize(caller, domain.CapEnroll)
	if err != nil {
		return 0, err
	}
	if (in.Password == "") == (in.Code == "") {
		return 0, validate.Invalid("password", "give either the password or a code")
	}
	a, md, err := s.callerAccount(ctx, cur, rm)
	if err != nil {
		return 0, err
	}
	method, amr := domain.MethodPassword, domain.AMRPassword
	if in.Password != "" {
		if err := s.checkPassword(ctx, a, in.Password, cur.ID, md, rm); err != nil {
			return 0, err
		}
	} else {
		method, amr = domain.MethodTOTP, domain.AMROTP
		if err := s.spendCode(ctx, a, domain.MethodTOTP, in.Code, cur.ID, md); err != nil {
			return 0, err
		}
	}
	res, _, err := s.updateSession(ctx, cur.ID, func(*domain.SessionRecord) domain.Metadata { return md }, func(r *domain.SessionRecord) ([]domain.Event, error) {
		return r.DecideReauth(method, amr, s.now())
	})
	return res.LastPosition, err
}

// spendCode checks and spends a second-factor code of a signed-in caller, throttled per
// account (counted before the check); a wrong code is recorded (stage reauth) and gives
// ErrInvalidCode.
func (s *Service) spendCode(ctx context.Context, a *domain.Account, method, code, sessionID string, md domain.Metadata) error {
	now := s.now()
	at, err := s.reserveReauth(ctx, a, method, sessionID, md)
	if err != nil {
		return err
	}
	defer at.Settle(ctx)
	_, _, err = s.updateAccount(ctx, a.ID(), md, func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideSecondFactor(s.cfg.Keyring, method, code, "reauth", s.now())
	})
	if errors.Is(err, domain.ErrInvalidCode) {
		at.Failed()
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor, Stage: domain.StageReauth,
			Method: method, SessionID: sessionID, At: now}, md)
	}
	return err
}

// randomToken draws 256 bits from r, base64url without padding (43 characters).
func randomToken(r io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut at a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
