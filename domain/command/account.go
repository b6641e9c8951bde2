package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Registration is the input of Register.
type Registration struct {
	Email     string
	Password  string
	FirstName string
	LastName  string
}

// RegisterResult is what Register wrote.
type RegisterResult struct {
	AccountID string
	Position  uint64
}

// reservationGrace: a reservation whose account does not (yet) use the email is only taken
// over after this long, so that a registration or email change between its two appends
// is not robbed; older ones are leftovers of a crash or a failed change.
const reservationGrace = time.Minute

// Register creates an account. The email is normalised (validate.Email), names checked
// (validate.Name), the password checked by the policy (*PasswordPolicyError) and hashed.
// The email is then reserved on its system-email-<hash> stream (EmailReserved, appended
// with the expected version it was found free at, so of concurrent registrations of one
// email exactly one wins; the others get ErrConflict) before AccountRegistered opens the
// account stream, with EmailVerificationRequested for the email in the same append. An
// email of Config.BootstrapAdmins not spent yet then grants the account role admin (see
// BootstrapAdmins).
func (s *Service) Register(ctx context.Context, in Registration, rm RequestMeta) (RegisterResult, error) {
	email, err := validate.Email(in.Email)
	if err != nil {
		return RegisterResult{}, err
	}
	first, err := validate.Name("first_name", in.FirstName)
	if err != nil {
		return RegisterResult{}, err
	}
	last, err := validate.Name("last_name", in.LastName)
	if err != nil {
		return RegisterResult{}, err
	}
	if err := checkNewPassword(s.policy, in.Password, email, first, last); err != nil {
		return RegisterResult{}, err
	}
	hash, err := s.hasher.Hash(in.Password)
	if err != nil {
		return RegisterResult{}, err
	}
	id := domain.NewID()
	md := s.metadata(id, domain.Actor{Type: domain.ActorAccount, ID: id}, rm)
	if _, err := s.reserveEmail(ctx, email, id, md); err != nil {
		return RegisterResult{}, err
	}
	now := s.now()
	// The verification link of the new email goes in the same append.
	res, err := s.appendEvents(ctx, domain.AccountStream(id), expect.NoStream, []domain.Event{
		domain.DecideRegister(id, email, first, last, hash, now), s.verificationRequest(id, email, now)}, md)
	if err != nil {
		s.releaseEmail(ctx, email, id, md)
		return RegisterResult{}, err
	}
	out := RegisterResult{AccountID: id, Position: res.LastPosition}
	if s.isBootstrapEmail(email) {
		pos, err := s.bootstrapAdmin(ctx, email, id)
		if err != nil {
			return out, fmt.Errorf("registered, but the admin bootstrap failed: %w", err)
		}
		out.Position = max(out.Position, pos)
	}
	return out, nil
}

// reservation is the state of an email's reservation stream.
type reservation struct {
	holder  string // account id, "" when free
	at      time.Time
	version uint64
}

// emailStream is the reservation stream of a normalised email, named by its keyed hash.
func (s *Service) emailStream(email string) string {
	return domain.EmailStream(s.cfg.Keyring.Index("email", email))
}

func (s *Service) readReservation(ctx context.Context, email string) (reservation, error) {
	var r reservation
	stream := s.emailStream(email)
	for {
		events, err := s.cfg.Store.ReadStream(ctx, stream, r.version+1, s.cfg.ReadPageSize)
		if err != nil {
			return r, fmt.Errorf("read email reservation: %w", err)
		}
		for _, env := range events {
			e, err := domain.DecodeEvent(env)
			if err != nil {
				return r, err
			}
			switch e := e.(type) {
			case domain.EmailReserved:
				r.holder, r.at = e.AccountID, e.At
			case domain.EmailReleased:
				if r.holder == e.AccountID {
					r.holder = ""
				}
			}
			r.version = env.Version
		}
		if len(events) < s.cfg.ReadPageSize {
			return r, nil
		}
	}
}

// reserveEmail claims email for accountID (a no-op when it already holds it). It returns
// ErrConflict when another account uses the email.
func (s *Service) reserveEmail(ctx context.Context, email, accountID string, md domain.Metadata) (uint64, error) {
	for attempt := 1; ; attempt++ {
		r, err := s.readReservation(ctx, email)
		if err != nil {
			return 0, err
		}
		if r.holder == accountID {
			return 0, nil
		}
		now := s.now()
		if r.holder != "" {
			taken := true
			if now.Sub(r.at) > reservationGrace {
				a, err := s.repo.Load(ctx, r.holder)
				switch {
				case errors.Is(err, domain.ErrNotFound):
					taken = false
				case err != nil:
					return 0, err
				default:
					taken = a.Email() == email
				}
			}
			if taken {
				return 0, fmt.Errorf("email is taken: %w", domain.ErrConflict)
			}
		}
		res, err := s.appendEvents(ctx, s.emailStream(email), expect.Exact(r.version), []domain.Event{domain.EmailReserved{AccountID: accountID, At: now}}, md)
		if err == nil {
			return res.LastPosition, nil
		}
		if !errors.Is(err, expect.ErrWrongVersion) || attempt >= s.cfg.MaxRetries {
			return 0, err
		}
	}
}

// releaseEmail frees email if accountID holds it (best effort: a leftover reservation is
// taken over after reservationGrace).
func (s *Service) releaseEmail(ctx context.Context, email, accountID string, md domain.Metadata) uint64 {
	for attempt := 1; attempt <= s.cfg.MaxRetries; attempt++ {
		r, err := s.readReservation(ctx, email)
		if err != nil || r.holder != accountID {
			return 0
		}
		res, err := s.appendEvents(ctx, s.emailStream(email), expect.Exact(r.version), []domain.Event{domain.EmailReleased{AccountID: accountID, At: s.now()}}, md)
		if err == nil {
			return res.LastPosition
		}
		if !errors.Is(err, expect.ErrWrongVersion) {
			return 0
		}
	}
	return 0
}

// findAccount returns the account that uses email (normalised), or ErrNotFound.
func (s *Service) findAccount(ctx context.Context, email string) (*domain.Account, error) {
	r, err := s.readReservation(ctx, email)
	if err != nil {
		return nil, err
	}
	if r.holder == "" {
		return nil, fmt.Errorf("email: %w", domain.ErrNotFound)
	}
	a, err := s.repo.Load(ctx, r.holder)
	if err != nil {
		return nil, err
	}
	if a.Email() != email {
		return nil, fmt.Errorf("email: %w", domain.ErrNotFound)
	}
	return a, nil
}

// LookupEmail returns the id of the account whose sign-in email is email (normalised
// first), or an error wrapping ErrNotFound (also for a malformed email).
func (s *Service) LookupEmail(ctx context.Context, email string) (string, error) {
	norm, err := validate.Email(email)
	if err != nil {
		return "", fmt.Errorf("email: %w", domain.ErrNotFound)
	}
	a, err := s.findAccount(ctx, norm)
	if err != nil {
		return "", err
	}
	return a.ID(), nil
}

// Account loads an account (from its latest snapshot and the events after it). It returns
// ErrNotFound for an unknown id.
func (s *Service) Account(ctx context.Context, accountID string) (*domain.Account, error) {
	return s.repo.Load(ctx, accountID)
}

// Security returns the account's security state, with the organisations whose policy
// requires 2FA.
func (s *Service) Security(ctx context.Context, accountID string) (domain.SecurityState, error) {
	a, err := s.repo.Load(ctx, accountID)
	if err != nil {
		return domain.SecurityState{}, err
	}
	st := a.Security()
	if st.TwoFactorRequiredBy, err = s.requiredBy(ctx, accountID); err != nil {
		return domain.SecurityState{}, err
	}
	return st, nil
}

// ChangeEmail changes the caller's sign-in email: the new one is reserved first
// (ErrConflict when taken), then EmailChanged and the new email's
// EmailVerificationRequested are appended (the email is unverified until its link is
// followed) and the old one released. The
// same email is a no-op (position 0).
func (s *Service) ChangeEmail(ctx context.Context, caller domain.Session, newEmail string, rm RequestMeta) (uint64, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return 0, err
	}
	email, err := validate.Email(newEmail)
	if err != nil {
		return 0, err
	}
	a, md, err := s.callerAccount(ctx, cur, rm)
	if err != nil {
		return 0, err
	}
	if a.Email() == email {
		return 0, nil
	}
	if _, err := s.reserveEmail(ctx, email, cur.AccountID, md); err != nil {
		return 0, err
	}
	res, before, err := s.updateAccount(ctx, cur.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		now := s.now()
		events := a.DecideChangeEmail(email, now)
		if len(events) > 0 { // the new email's verification link, in the same append
			events = append(events, s.verificationRequest(a.ID(), email, now))
		}
		return events, nil
	})
	if err != nil {
		s.releaseEmail(ctx, email, cur.AccountID, md)
		return 0, err
	}
	pos := res.LastPosition
	if res.LastPosition != 0 && before.Email() != email {
		if p := s.releaseEmail(ctx, before.Email(), cur.AccountID, md); p != 0 {
			pos = p
		}
	}
	return pos, nil
}

// ChangeName sets the caller's first and last name (validate.Name); unchanged names write
// nothing.
func (s *Service) ChangeName(ctx context.Context, caller domain.Session, firstName, lastName string, rm RequestMeta) (uint64, error) {
	return s.updateOwn(ctx, caller, domain.CapProfile, rm, func(a *domain.Account, now time.Time) ([]domain.Event, error) {
		return a.DecideChangeName(firstName, lastName, now)
	})
}

// UpdateProfile applies patch to the caller's profile (see ProfilePatch for the rules); an
// unchanged profile writes nothing.
func (s *Service) UpdateProfile(ctx context.Context, caller domain.Session, patch domain.ProfilePatch, rm RequestMeta) (uint64, error) {
	return s.updateOwn(ctx, caller, domain.CapProfile, rm, func(a *domain.Account, now time.Time) ([]domain.Event, error) {
		return a.DecideUpdateProfile(patch, now)
	})
}

// ChangePassword replaces the caller's password. It needs a recent authentication
// (ErrReauthenticationRequired), the current password (ErrInvalidCredentials, throttled
// like a sign-in), and a new password the policy accepts (*PasswordPolicyError). With
// signOutOthers every other session of the account ends with reason password_changed.
func (s *Service) ChangePassword(ctx context.Context, caller domain.Session, currentPassword, newPassword string, signOutOthers bool, rm RequestMeta) (SignOutResult, error) {
	cur, err := s.sensitive(caller, domain.CapControl)
	if err != nil {
		return SignOutResult{}, err
	}
	a, md, err := s.callerAccount(ctx, cur, rm)
	if err != nil {
		return SignOutResult{}, err
	}
	if err := s.checkPassword(ctx, a, currentPassword, cur.ID, md, rm); err != nil {
		return SignOutResult{}, err
	}
	if err := checkNewPassword(s.policy, newPassword, a.Email(), a.FirstName(), a.LastName()); err != nil {
		return SignOutResult{}, err
	}
	hash, err := s.hasher.Hash(newPassword)
	if err != nil {
		return SignOutResult{}, err
	}
	verified := a.PasswordHash()
	res, _, err := s.updateAccount(ctx, cur.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		if a.PasswordHash() != verified {
			// The password changed meanwhile: the current password must match the new state.
			if ok, _, err := s.hasher.Verify(currentPassword, a.PasswordHash()); err != nil || !ok {
				return nil, domain.ErrInvalidCredentials
			}
			verified = a.PasswordHash()
		}
		return a.DecidePasswordChange(hash, s.now()), nil
	})
	if err != nil {
		return SignOutResult{}, err
	}
	out := SignOutResult{Position: res.LastPosition}
	if signOutOthers {
		n, pos, err := s.signOutAll(ctx, cur.AccountID, cur.ID, reasons.SignOutPasswordChanged, md)
		out.SignedOut = n
		if pos > out.Position {
			out.Position = pos
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// checkPassword verifies password against a's hash for a signed-in caller (password
// change, disabling 2FA, re-authentication), throttled per account like a sign-in (the
// attempt is counted before the hash is checked, and given back when the password is
// right); a wrong password is recorded as LoginFailed (stage reauth) and gives
// ErrInvalidCredentials.
func (s *Service) checkPassword(ctx context.Context, a *domain.Account, password, sessionID string, md domain.Metadata, rm RequestMeta) error {
	now := s.now()
	at, err := s.reserveReauth(ctx, a, domain.MethodPassword, sessionID, md)
	if err != nil {
		return err
	}
	defer at.Settle(ctx)
	ok, _, err := s.hasher.Verify(password, a.PasswordHash())
	if err != nil {
		return err
	}
	if !ok {
		at.Failed()
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, Stage: domain.StageReauth,
			Method: domain.MethodPassword, SessionID: sessionID, At: now}, md)
		return domain.ErrInvalidCredentials
	}
	return nil
}

// GrantRole gives accountID role (RoleAdmin or RoleAuditor); granting a held role writes
// nothing. The caller (the HTTP layer or start-up from --admin-emails) has checked that
// the actor may do so; rm.Actor names the admin (default: the system).
func (s *Service) GrantRole(ctx context.Context, accountID, role string, rm RequestMeta) (uint64, error) {
	res, _, err := s.updateAccount(ctx, accountID, s.metadata(accountID, domain.Actor{Type: domain.ActorSystem}, rm), func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideGrantRole(role, s.now())
	})
	return res.LastPosition, err
}

// RevokeRole takes role from accountID; revoking a role not held writes nothing.
func (s *Service) RevokeRole(ctx context.Context, accountID, role string, rm RequestMeta) (uint64, error) {
	res, _, err := s.updateAccount(ctx, accountID, s.metadata(accountID, domain.Actor{Type: domain.ActorSystem}, rm), func(a *domain.Account) ([]domain.Event, error) {
		return a.DecideRevokeRole(role, s.now())
	})
	return res.LastPosition, err
}

// Client is an application whose users sign in through Vigil.
type Client struct {
	ID   string
	Name string
}

// RegisterClient registers an application (ClientRegistered on client-<id>) and returns it.
// The name is 1..100 characters without control characters.
func (s *Service) RegisterClient(ctx context.Context, name string, rm RequestMeta) (Client, uint64, error) {
	n, err := validate.Text("name", name, maxClientName, true)
	if err != nil {
		return Client{}, 0, err
	}
	c := Client{ID: domain.NewID(), Name: n}
	res, err := s.appendEvents(ctx, domain.ClientStream(c.ID), expect.NoStream, []domain.Event{domain.ClientRegistered{ClientID: c.ID, Name: n, At: s.now()}},
		s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
	if err != nil {
		return Client{}, 0, err
	}
	s.clients.Store(c.ID, c)
	return c, res.LastPosition, nil
}

// Client returns the client with this id; "portal" always exists. An unknown id gives
// ErrUnknownClient.
func (s *Service) Client(ctx context.Context, clientID string) (Client, error) {
	if c, ok := s.clients.Load(clientID); ok {
		return c.(Client), nil
	}
	if clientID == "" || len(clientID) > 64 {
		return Client{}, ErrUnknownClient
	}
	events, err := s.cfg.Store.ReadStream(ctx, domain.ClientStream(clientID), 1, 1)
	if err != nil {
		return Client{}, fmt.Errorf("load client: %w", err)
	}
	if len(events) == 0 {
		return Client{}, ErrUnknownClient
	}
	e, err := domain.DecodeEvent(events[0])
	if err != nil {
		return Client{}, err
	}
	reg, ok := e.(domain.ClientRegistered)
	if !ok {
		return Client{}, ErrUnknownClient
	}
	c := Client{ID: clientID, Name: reg.Name}
	s.clients.Store(clientID, c)
	return c, nil
}
