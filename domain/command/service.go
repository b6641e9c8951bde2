package command

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/expect"
	webauthn "github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/domain/validate"
)

// TwoFactorPolicy says which organisations require the account to use two-factor
// authentication (OrgIndex implements it from the organisations' events). While the list is not empty,
// 2FA cannot be turned off, the last factor cannot be removed, and a sign-in without a
// second factor gets a restricted session (enrollment_required). Implementations must be
// safe for concurrent use.
type TwoFactorPolicy interface {
	RequiredBy(ctx context.Context, accountID string) (orgIDs []string, err error)
}

// noTwoFactorPolicy requires 2FA of nobody (for tests and tools; the Service's default is
// its OrgIndex).
type noTwoFactorPolicy struct{}

var _ TwoFactorPolicy = noTwoFactorPolicy{}

// RequiredBy implements TwoFactorPolicy: always none.
func (noTwoFactorPolicy) RequiredBy(context.Context, string) ([]string, error) { return nil, nil }

// Config configures NewService. Store and Keyring are required; zero values of the rest
// take the defaults shown.
type Config struct {
	// Store is the event log (the SQLite or KurrentDB backend). Required.
	Store domain.EventStore
	// Keyring seals TOTP secrets with the server key. Required.
	Keyring *credential.Keyring
	// DataKeys destroys an erased account's data keys (EraseAccount); nil: erasure appends its
	// events and signs out, but no key is destroyed (tests without sealing).
	DataKeys DataKeys
	// Snapshots keeps account snapshots; default an in-memory store (per process).
	Snapshots ephemeral.SnapshotStore
	// SnapshotEvery: a snapshot is written when loading an account replayed at least this
	// many events after the last one; default 100.
	SnapshotEvery int
	// Tickets keeps login tickets; default an in-memory store (see ephemeral.TicketStore).
	Tickets ephemeral.TicketStore
	// Sessions is the in-memory session index; default a new one. Pass a shared index to
	// feed it from the sessions projection too (SessionIndex.Apply).
	Sessions *SessionIndex
	// Hasher hashes passwords; default credential.NewArgon2Hasher(Argon2).
	Hasher *credential.Argon2Hasher
	// Argon2 configures the default Hasher (ignored when Hasher is set).
	Argon2 credential.Argon2Config
	// PasswordPolicy configures the new-password rules.
	PasswordPolicy credential.PasswordPolicyConfig
	// Throttle configures sign-in throttling and where its counts live (Throttle.Store,
	// default in memory).
	Throttle throttle.Config
	// TwoFactorPolicy is consulted when disabling 2FA, removing the last factor and signing
	// in without a second factor; default the Orgs directory (the organisations' policies).
	TwoFactorPolicy TwoFactorPolicy
	// Orgs is the in-memory directory of organisations; default a new one. Feed it from the
	// log (Service.Apply) so that every instance knows every organisation.
	Orgs *OrgIndex
	// BootstrapAdmins are emails (normalised by NewService) that each grant role admin once,
	// ever: to the first account registering with it or holding it at BootstrapAdmins.
	BootstrapAdmins []string
	// Issuer names Vigil in authenticator apps (otpauth URLs); default "Vigil".
	Issuer string
	// Passkeys configures WebAuthn (relying party, origins, ceremony store); the zero value
	// disables passkeys (the passkey commands return ErrPasskeysDisabled).
	Passkeys webauthn.Config
	// SessionLifetime is a session's absolute lifetime; default 12h (ASVS 4.0.3 L2).
	SessionLifetime time.Duration
	// SessionIdleTimeout ends a session unused for this long; default 30m (ASVS L2).
	SessionIdleTimeout time.Duration
	// TouchInterval: at most one SessionAccessed per session per interval; default 1m.
	TouchInterval time.Duration
	// StepUpWindow: sensitive changes need an authentication at most this old; default 5m.
	StepUpWindow time.Duration
	// TicketTTL is a login ticket's lifetime; default 5m.
	TicketTTL time.Duration
	// ResetAnswerTime: a password-reset request (RequestPasswordReset) answers no sooner
	// than this after it began, whether the email has an account or not, so that its time
	// does not tell; default 250ms, negative for none.
	ResetAnswerTime time.Duration
	// TicketMaxTries is the number of second-factor tries per ticket; default 5.
	TicketMaxTries int
	// MaxRetries bounds the reload-decide-append attempts of a command that meets
	// ErrWrongExpectedVersion; default 10.
	MaxRetries int
	// ReadPageSize is the page size of stream reads; default 500.
	ReadPageSize int
	// CatchUp, when set, waits (bounded by its context) until the in-memory indexes hold
	// every event the log had when it was called. Whoami calls it before answering that a
	// token is unknown, so that a session started a moment ago on another instance sharing
	// the log is found (several instances behind a balancer without sticky sessions). nil:
	// no wait (one instance, whose own sign-ins are indexed before they answer).
	CatchUp func(ctx context.Context) error
	// Now is the clock; default time.Now. Times are used in UTC.
	Now func() time.Time
	// Rand supplies tokens, TOTP secrets and backup codes; default crypto/rand.Reader. It
	// must be safe for concurrent use.
	Rand io.Reader
}

func (c *Config) fill() error {
	if c.Store == nil {
		return errors.New("domain: Config.Store is required")
	}
	if c.Keyring == nil {
		return errors.New("domain: Config.Keyring is required")
	}
	if c.Snapshots == nil {
		c.Snapshots = ephemeral.NewMemorySnapshotStore()
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 100
	}
	if c.Tickets == nil {
		c.Tickets = ephemeral.NewMemoryTicketStore()
	}
	if c.Sessions == nil {
		c.Sessions = newSessionIndex()
	}
	if c.Orgs == nil {
		c.Orgs = NewOrgIndex()
	}
	if c.TwoFactorPolicy == nil {
		c.TwoFactorPolicy = c.Orgs
	}
	if c.Issuer == "" {
		c.Issuer = "Vigil"
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.SessionLifetime, 12*time.Hour)
	setDur(&c.SessionIdleTimeout, 30*time.Minute)
	setDur(&c.TouchInterval, time.Minute)
	setDur(&c.StepUpWindow, 5*time.Minute)
	setDur(&c.TicketTTL, 5*time.Minute)
	setDur(&c.ResetAnswerTime, 250*time.Millisecond)
	if c.TicketMaxTries == 0 {
		c.TicketMaxTries = 5
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 10
	}
	if c.ReadPageSize == 0 {
		c.ReadPageSize = 500
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	switch {
	case c.SnapshotEvery < 1:
		return fmt.Errorf("domain: SnapshotEvery %d must be positive", c.SnapshotEvery)
	case c.SessionLifetime < time.Minute:
		return fmt.Errorf("domain: SessionLifetime %s is below 1m", c.SessionLifetime)
	case c.SessionIdleTimeout < time.Minute:
		return fmt.Errorf("domain: SessionIdleTimeout %s is below 1m", c.SessionIdleTimeout)
	case c.TouchInterval < 0 || c.TouchInterval >= c.SessionIdleTimeout:
		return fmt.Errorf("domain: TouchInterval %s must be below the idle timeout", c.TouchInterval)
	case c.StepUpWindow < 0, c.TicketTTL < 0:
		return errors.New("domain: StepUpWindow and TicketTTL must not be negative")
	case c.TicketMaxTries < 1, c.MaxRetries < 1, c.ReadPageSize < 1:
		return errors.New("domain: TicketMaxTries, MaxRetries and ReadPageSize must be positive")
	case len(c.Issuer) > 100:
		return errors.New("domain: Issuer is longer than 100 characters")
	}
	return nil
}

// Service runs the account, sign-in and session commands. Each command loads what it
// needs from the event store, decides, and appends with the expected stream version; on
// ErrWrongExpectedVersion it reloads and decides again, at most Config.MaxRetries times
// (then it returns an error wrapping ErrWrongExpectedVersion). Every command that writes
// returns the global position of its last event (0 when it wrote nothing), so a later read
// can wait for the projections to pass it. A Service is safe for concurrent use.
type Service struct {
	cfg     Config
	repo    *domain.AccountRepository
	hasher  *credential.Argon2Hasher
	policy  *credential.PasswordPolicy
	index   *SessionIndex
	tickets ephemeral.TicketStore
	twoFA   TwoFactorPolicy
	orgs    *OrgIndex
	dels    *delegationIndex
	clients sync.Map // client id -> Client, positive cache (clients are never removed)
	// bootstrap holds Config.BootstrapAdmins, normalised.
	bootstrap map[string]struct{}
}

// NewService validates cfg, fills its defaults and returns the service. Building the
// default hasher computes one argon2 hash (the dummy for unknown emails).
func NewService(cfg Config) (*Service, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := cfg.Throttle.Fill(); err != nil {
		return nil, err
	}
	if err := cfg.Passkeys.Fill(); err != nil {
		return nil, err
	}
	if cfg.Hasher == nil {
		h, err := credential.NewArgon2Hasher(cfg.Argon2)
		if err != nil {
			return nil, err
		}
		cfg.Hasher = h
	}
	pol, err := credential.NewPasswordPolicy(cfg.PasswordPolicy)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		repo:    &domain.AccountRepository{Store: cfg.Store, Snapshots: cfg.Snapshots, Every: cfg.SnapshotEvery, PageSize: cfg.ReadPageSize},
		hasher:  cfg.Hasher,
		policy:  pol,
		index:   cfg.Sessions,
		tickets: cfg.Tickets,
		twoFA:   cfg.TwoFactorPolicy,
		orgs:    cfg.Orgs,
		dels:    newDelegationIndex(),
	}
	s.clients.Store(domain.PortalClientID, Client{ID: domain.PortalClientID, Name: domain.PortalClientName})
	s.bootstrap = make(map[string]struct{}, len(cfg.BootstrapAdmins))
	for _, e := range cfg.BootstrapAdmins {
		norm, err := validate.Email(e)
		if err != nil {
			return nil, fmt.Errorf("domain: BootstrapAdmins: %w", err)
		}
		s.bootstrap[norm] = struct{}{}
	}
	return s, nil
}

// Sessions returns the service's session index (to feed it from a projection).
func (s *Service) Sessions() *SessionIndex { return s.index }

// Orgs returns the service's organisation directory.
func (s *Service) Orgs() *OrgIndex { return s.orgs }

// Apply feeds one envelope of the log to the in-memory indexes (sessions, organisations,
// delegations); each ignores what is not its own or what it has already seen. The errors of
// the indexes are joined. Safe for concurrent use.
func (s *Service) Apply(env domain.Envelope) error {
	return errors.Join(s.index.Apply(env), s.orgs.Apply(env), s.dels.apply(env))
}

// Hasher returns the password hasher.
func (s *Service) Hasher() *credential.Argon2Hasher { return s.hasher }

// PasswordPolicy returns the rules new passwords must meet (registration, password change).
func (s *Service) PasswordPolicy() *credential.PasswordPolicy { return s.policy }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// RequestMeta describes the request behind a command; it becomes the events' metadata.
// IP and UserAgent are personal data.
type RequestMeta struct {
	IP        string
	UserAgent string
	// ClientID names the application the request came from; Login's clientID argument and
	// a session's client take precedence.
	ClientID      string
	CorrelationID string
	CausationID   string
	// Actor overrides who acted: an admin, a service; nil means the subject account itself
	// (the system for the expiry sweeper and for administrative commands).
	Actor *domain.Actor
}

func (s *Service) metadata(subjectAccountID string, def domain.Actor, rm RequestMeta) domain.Metadata {
	actor := def
	if rm.Actor != nil {
		actor = *rm.Actor
	}
	return domain.Metadata{Actor: actor, SubjectAccountID: subjectAccountID, IP: rm.IP, UserAgent: rm.UserAgent,
		ClientID: rm.ClientID, CorrelationID: rm.CorrelationID, CausationID: rm.CausationID}
}

// callerMetadata is the metadata of a self-service command of caller's session.
func (s *Service) callerMetadata(caller domain.Session, rm RequestMeta) domain.Metadata {
	actor := domain.Actor{Type: domain.ActorAccount, ID: caller.AccountID}
	if caller.ActorAccountID != "" {
		actor = domain.Actor{Type: domain.ActorDelegate, ID: caller.ActorAccountID}
	}
	if rm.ClientID == "" {
		rm.ClientID = caller.ClientID
	}
	return s.metadata(caller.AccountID, actor, rm)
}

func (s *Service) appendEvents(ctx context.Context, stream string, expected expect.Version, events []domain.Event, md domain.Metadata) (domain.AppendResult, error) {
	data, err := encodeEvents(events, md)
	if err != nil {
		return domain.AppendResult{}, err
	}
	res, err := s.cfg.Store.Append(ctx, stream, expected, data)
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
	}
	return res, nil
}

// updateAccount loads the account, lets decide return events, and appends them with the
// version it loaded; on a version conflict it starts over (bounded). It returns the
// append's result (zero when decide returned no event) and the account decide saw.
func (s *Service) updateAccount(ctx context.Context, accountID string, md domain.Metadata, decide func(a *domain.Account) ([]domain.Event, error)) (domain.AppendResult, *domain.Account, error) {
	load := func(ctx context.Context) (*domain.Account, error) { return s.repo.Load(ctx, accountID) }
	res, a, _, err := update(ctx, s, "account "+accountID, domain.AccountStream(accountID), load, func(*domain.Account) domain.Metadata { return md }, decide)
	return res, a, err
}

// update is the optimistic loop of every command: load the aggregate, let decide return
// events, append them with the version it loaded; on a version conflict start over, at most
// Config.MaxRetries times (name says what in the error). It returns the append's result and
// the events appended (both zero when decide wrote nothing or failed) and the aggregate
// decide saw (nil when load failed).
func update[A interface{ Version() uint64 }](ctx context.Context, s *Service, name, stream string, load func(context.Context) (A, error), md func(A) domain.Metadata, decide func(A) ([]domain.Event, error)) (domain.AppendResult, A, []domain.Event, error) {
	for attempt := 1; ; attempt++ {
		a, err := load(ctx)
		if err != nil {
			var none A
			return domain.AppendResult{}, none, nil, err
		}
		events, err := decide(a)
		if err != nil || len(events) == 0 {
			return domain.AppendResult{}, a, nil, err
		}
		res, err := s.appendEvents(ctx, stream, expect.Exact(a.Version()), events, md(a))
		if err == nil {
			return res, a, events, nil
		}
		if !errors.Is(err, expect.ErrWrongVersion) || attempt >= s.cfg.MaxRetries {
			return domain.AppendResult{}, a, nil, fmt.Errorf("%s after %d attempts: %w", name, attempt, err)
		}
	}
}

// loadSession reads a session stream and rebuilds it.
func (s *Service) loadSession(ctx context.Context, sessionID string) (*domain.SessionRecord, error) {
	stream := domain.SessionStream(sessionID)
	var all []domain.Envelope
	for {
		events, err := s.cfg.Store.ReadStream(ctx, stream, uint64(len(all))+1, s.cfg.ReadPageSize)
		if err != nil {
			return nil, fmt.Errorf("load session %s: %w", sessionID, err)
		}
		all = append(all, events...)
		if len(events) < s.cfg.ReadPageSize {
			break
		}
	}
	return domain.Rebuild[*domain.SessionRecord](sessionID, all)
}

// updateSession is updateAccount for a session stream. After a successful append the
// session index is updated before it returns (so a sign-out fails whoami at once); when
// decide writes nothing the index still learns the state it read.
func (s *Service) updateSession(ctx context.Context, sessionID string, mdFor func(*domain.SessionRecord) domain.Metadata, decide func(r *domain.SessionRecord) ([]domain.Event, error)) (domain.AppendResult, *domain.SessionRecord, error) {
	load := func(ctx context.Context) (*domain.SessionRecord, error) { return s.loadSession(ctx, sessionID) }
	res, r, events, err := update(ctx, s, "session "+sessionID, domain.SessionStream(sessionID), load, mdFor, decide)
	if r == nil || len(events) == 0 {
		if r != nil && (err == nil || errors.Is(err, domain.ErrSessionNotFound)) {
			s.index.observe(r)
		}
		return res, r, err
	}
	next, err := domain.Next(r, events, res.NextVersion)
	if err != nil {
		return res, nil, err
	}
	s.index.observe(next)
	return res, next, nil
}

// authorize checks that caller (a session from Whoami) is still active and holds capability
// need (Session.Allows: ErrDelegateNotAllowed, ErrEnrollmentRequired, ErrMFARequired), and
// returns its current state from the index, with the organisations' 2FA policy applied
// (Service.effective). Every self-service command calls it, or sensitive, first.
func (s *Service) authorize(caller domain.Session, need domain.Capability) (domain.Session, error) {
	cur, ok := s.index.Get(caller.ID)
	if !ok || cur.AccountID != caller.AccountID || cur.ExpiredReason(s.now()) != "" || !s.actingValid(cur, s.now()) {
		return domain.Session{}, fmt.Errorf("caller session: %w", domain.ErrSessionNotFound)
	}
	cur = s.effective(cur)
	if err := cur.Allows(need); err != nil {
		return domain.Session{}, fmt.Errorf("caller session lacks capability %s: %w", need, err)
	}
	return cur, nil
}

// RequireRecentAuth returns ErrReauthenticationRequired unless sess authenticated (signed
// in or re-authenticated) within window before now; window 0 means Config.StepUpWindow.
// With Config.CatchUp it looks at the session again after catching up before refusing (a
// re-authentication on another instance sharing the log).
func (s *Service) RequireRecentAuth(sess domain.Session, window time.Duration) error {
	if window <= 0 {
		window = s.cfg.StepUpWindow
	}
	if s.now().Sub(sess.AuthenticatedAt) <= window {
		return nil
	}
	if s.cfg.CatchUp != nil {
		// On a shared log the re-authentication may have happened a moment ago on another
		// instance: look again once the feed holds the log's head.
		ctx, cancel := context.WithTimeout(context.Background(), catchUpWait)
		err := s.cfg.CatchUp(ctx)
		cancel()
		if cur, ok := s.index.Get(sess.ID); err == nil && ok && cur.AccountID == sess.AccountID &&
			s.now().Sub(cur.AuthenticatedAt) <= window {
			return nil
		}
	}
	return ErrReauthenticationRequired
}

// Authorize checks, without running a command, that caller may run one needing capability
// need (and, with recent, an authentication within the step-up window), so that a request
// that changes several things can be refused before it writes any of them. It returns the
// caller's current session. The commands check again themselves.
func (s *Service) Authorize(caller domain.Session, need domain.Capability, recent bool) (domain.Session, error) {
	if recent {
		return s.sensitive(caller, need)
	}
	return s.authorize(caller, need)
}

// sensitive authorizes caller for a sensitive change: authorize with need, then an
// authentication within the step-up window (ErrReauthenticationRequired).
func (s *Service) sensitive(caller domain.Session, need domain.Capability) (domain.Session, error) {
	cur, err := s.authorize(caller, need)
	if err != nil {
		return domain.Session{}, err
	}
	if err := s.RequireRecentAuth(cur, 0); err != nil {
		return domain.Session{}, err
	}
	return cur, nil
}

// effective applies the organisations' 2FA policy to a session: a session that has not
// proved a second factor (not aal2) of an account that a policy requires 2FA of is
// restricted to enrolling one, also when it started before the policy was switched on, and
// on every instance as soon as its organisation directory has the policy. It reads only
// memory (the organisation directory), so whoami stays fast. A policy that cannot be read
// restricts (fails closed).
func (s *Service) effective(sess domain.Session) domain.Session {
	if sess.Restricted || sess.AAL == domain.AAL2 {
		return sess
	}
	orgs, err := s.twoFA.RequiredBy(context.Background(), sess.AccountID)
	if err != nil || len(orgs) > 0 {
		sess.Restricted = true
	}
	return sess
}

func (s *Service) requiredBy(ctx context.Context, accountID string) ([]string, error) {
	orgs, err := s.twoFA.RequiredBy(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("two-factor policy: %w", err)
	}
	return orgs, nil
}

// updateOwn runs decide on the caller's own account, once the caller is authorised for
// need, with the caller's metadata, and answers the log position (0 when decide wrote
// nothing): the shape of the account holder's plain commands.
func (s *Service) updateOwn(ctx context.Context, caller domain.Session, need domain.Capability, rm RequestMeta, decide func(a *domain.Account, now time.Time) ([]domain.Event, error)) (uint64, error) {
	cur, err := s.authorize(caller, need)
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateAccount(ctx, cur.AccountID, s.callerMetadata(cur, rm), func(a *domain.Account) ([]domain.Event, error) {
		return decide(a, s.now())
	})
	return res.LastPosition, err
}

// removeSecondFactor runs decide, the removal of one of the caller's second factors, after
// a recent authentication, giving it the organisations whose policy requires 2FA (read once,
// before the account): removing the last factor is refused while any does.
func (s *Service) removeSecondFactor(ctx context.Context, caller domain.Session, rm RequestMeta, decide func(a *domain.Account, orgs []string, now time.Time) ([]domain.Event, error)) (uint64, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	orgs, err := s.requiredBy(ctx, cur.AccountID)
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateAccount(ctx, cur.AccountID, s.callerMetadata(cur, rm), func(a *domain.Account) ([]domain.Event, error) {
		return decide(a, orgs, s.now())
	})
	return res.LastPosition, err
}

// provedSecondFactor records on the caller's session (a ReauthSucceeded with method and amr)
// that it has just shown a second factor by enrolling one, when the session is not yet aal2
// or is restricted to enrolling; it answers the position written (0 for none).
func (s *Service) provedSecondFactor(ctx context.Context, cur domain.Session, md domain.Metadata, method, amr string) (uint64, error) {
	if cur.AAL == domain.AAL2 && !cur.Restricted {
		return 0, nil
	}
	res, _, err := s.updateSession(ctx, cur.ID, func(*domain.SessionRecord) domain.Metadata { return md }, func(r *domain.SessionRecord) ([]domain.Event, error) {
		return r.DecideReauth(method, amr, s.now())
	})
	return res.LastPosition, err
}

// callerAccount loads the caller's account, with the metadata of the events the caller's
// command writes on it.
func (s *Service) callerAccount(ctx context.Context, cur domain.Session, rm RequestMeta) (*domain.Account, domain.Metadata, error) {
	a, err := s.repo.Load(ctx, cur.AccountID)
	return a, s.callerMetadata(cur, rm), err
}
