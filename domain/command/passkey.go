package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	webauthn "github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/domain/validate"
)

// PasskeyCeremony is what the browser needs to run a WebAuthn ceremony: ID names the
// ceremony in the answer (single-use, valid until ExpiresAt), PublicKey holds the options
// navigator.credentials.create / get expect as "publicKey", in their JSON form (binary
// fields base64url, as PublicKeyCredential.parseCreationOptionsFromJSON and
// parseRequestOptionsFromJSON read them).
type PasskeyCeremony struct {
	ID        string
	PublicKey json.RawMessage
	ExpiresAt time.Time
}

// PasskeyRegistration is what FinishPasskeyRegistration did: the new passkey; BackupCodes
// holds ten new backup codes (shown once) when this passkey turned 2FA on, else nil;
// SignedOut counts the other sessions signed out.
type PasskeyRegistration struct {
	Passkey     domain.PasskeyInfo
	BackupCodes []string
	SignedOut   int
	Position    uint64
}

// passkeyConfig returns the passkey configuration, or ErrPasskeysDisabled.
func (s *Service) passkeyConfig() (*webauthn.Config, error) {
	if !s.cfg.Passkeys.Enabled() {
		return nil, ErrPasskeysDisabled
	}
	return &s.cfg.Passkeys, nil
}

// newCeremony draws a ceremony id and challenge, lets build fill and encode the options,
// and stores the ceremony.
func (s *Service) newCeremony(ctx context.Context, c ephemeral.Ceremony, options func(challenge []byte) (json.RawMessage, error)) (PasskeyCeremony, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if c.ID, err = randomToken(s.cfg.Rand); err != nil {
		return PasskeyCeremony{}, err
	}
	c.Challenge = make([]byte, webauthn.ChallengeSize)
	if _, err := io.ReadFull(s.cfg.Rand, c.Challenge); err != nil {
		return PasskeyCeremony{}, fmt.Errorf("passkey challenge: %w", err)
	}
	now := s.now()
	c.CreatedAt, c.ExpiresAt = now, now.Add(cfg.CeremonyTTL)
	opts, err := options(c.Challenge)
	if err != nil {
		return PasskeyCeremony{}, fmt.Errorf("passkey options: %w", err)
	}
	if err := cfg.Ceremonies.Put(ctx, c, now); err != nil {
		return PasskeyCeremony{}, err
	}
	return PasskeyCeremony{ID: c.ID, PublicKey: opts, ExpiresAt: c.ExpiresAt}, nil
}

// takeCeremony removes ceremony id from the store (single-use whatever follows) and checks
// it is of kind and, for a caller's ceremony, was begun by that session.
func (s *Service) takeCeremony(ctx context.Context, id string, kind ephemeral.CeremonyKind, caller *domain.Session) (ephemeral.Ceremony, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return ephemeral.Ceremony{}, err
	}
	c, err := cfg.Ceremonies.Take(ctx, id, s.now())
	if err != nil {
		return ephemeral.Ceremony{}, err
	}
	if c.Kind != kind || caller != nil && (c.SessionID != caller.ID || c.AccountID != caller.AccountID) {
		return ephemeral.Ceremony{}, ErrCeremonyInvalid
	}
	return c, nil
}

// BeginPasskeyRegistration starts registering a passkey named name (1..64 characters,
// else a *ValidationError) for the caller's account. It needs a recent authentication
// (ErrReauthenticationRequired; Config.StepUpWindow); a restricted session may use it
// (enrollment). An account holding the most passkeys it may gets ErrConflict. The creation
// options ask for a discoverable credential and user verification ("preferred" both),
// attestation "none", and exclude the account's passkeys; the user handle is the account
// id's bytes. It writes nothing; the ceremony is kept (ephemeral.CeremonyStore) until
// FinishPasskeyRegistration or passkey.Config.CeremonyTTL. ErrPasskeysDisabled without a
// passkey configuration.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, caller domain.Session, name string) (PasskeyCeremony, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	cur, err := s.sensitive(caller, domain.CapEnroll)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	n, err := validate.DeviceName(name)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	a, err := s.repo.Load(ctx, cur.AccountID)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if err := a.CanAddPasskey(); err != nil {
		return PasskeyCeremony{}, err
	}
	return s.newCeremony(ctx, ephemeral.Ceremony{Kind: ephemeral.CeremonyRegistration, AccountID: cur.AccountID, SessionID: cur.ID, Name: n,
		UserVerification: webauthn.UVPreferred}, func(challenge []byte) (json.RawMessage, error) {
		return webauthn.CreationOptions(cfg.RelyingParty(), webauthnUser(a), descriptors(a.Passkeys()), challenge)
	})
}

// FinishPasskeyRegistration completes a registration with the browser's answer
// (credential: the PublicKeyCredential JSON of navigator.credentials.create). The ceremony
// must have been begun by the caller's session (else ErrCeremonyInvalid, as for an
// unknown, expired or used one; it is used up whatever the outcome), and the caller still
// needs a recent authentication. The answer is verified (origin, RP id hash, challenge,
// user presence, the credential key's algorithm); a refused answer is a *ValidationError
// on field "credential", a credential the account holds already ErrConflict. It appends
// PasskeyRegistered with the account's expected version; the first second factor turns
// 2FA on and comes with ten backup codes (BackupCodesGenerated). The caller's session, having
// shown the new factor, becomes aal2 and loses an enrollment restriction (ReauthSucceeded,
// amr passkey). With signOutOthers every other session of the account ends (reason
// signed_out_by_user).
func (s *Service) FinishPasskeyRegistration(ctx context.Context, caller domain.Session, ceremonyID string, credential json.RawMessage, signOutOthers bool, rm RequestMeta) (PasskeyRegistration, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return PasskeyRegistration{}, err
	}
	cur, err := s.sensitive(caller, domain.CapEnroll)
	if err != nil {
		return PasskeyRegistration{}, err
	}
	c, err := s.takeCeremony(ctx, ceremonyID, ephemeral.CeremonyRegistration, &cur)
	if err != nil {
		return PasskeyRegistration{}, err
	}
	cred, err := webauthn.VerifyRegistration(cfg.RelyingParty(), credential, c.Challenge, c.UserVerification == webauthn.UVRequired)
	if err != nil {
		return PasskeyRegistration{}, &domain.ValidationError{Field: "credential", Reason: webauthnReason(err)}
	}
	set, codes, err := domain.NewBackupCodeSet(s.cfg.Rand, s.now())
	if err != nil {
		return PasskeyRegistration{}, err
	}
	md := s.callerMetadata(cur, rm)
	passkeyID := domain.NewID()
	var issued bool
	var reg domain.PasskeyRegistered
	res, _, err := s.updateAccount(ctx, cur.AccountID, md, func(a *domain.Account) ([]domain.Event, error) {
		events, codes, err := a.DecideRegisterPasskey(passkeyID, c.Name, cred, set, s.now())
		if err == nil {
			issued, reg = codes, events[0].(domain.PasskeyRegistered)
		}
		return events, err
	})
	if err != nil {
		return PasskeyRegistration{}, err
	}
	out := PasskeyRegistration{Position: res.LastPosition, Passkey: domain.PasskeyInfo{ID: passkeyID, Name: reg.Name,
		CreatedAt: reg.At, BackupEligible: cred.BackupEligible, BackedUp: cred.BackupState}}
	if issued {
		out.BackupCodes = codes
	}
	pos, err := s.provedSecondFactor(ctx, cur, md, domain.MethodPasskey, domain.AMRPasskey)
	out.Position = max(out.Position, pos)
	if err != nil {
		return out, err
	}
	if signOutOthers {
		n, pos, err := s.signOutAll(ctx, cur.AccountID, cur.ID, reasons.SignOutByUser, md)
		out.SignedOut, out.Position = n, max(out.Position, pos)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// RenamePasskey renames a passkey of the caller (name 1..64 characters, else a
// *ValidationError; ErrNotFound for an unknown id). It needs an active, unrestricted
// session but no recent authentication; the same name writes nothing (position 0).
func (s *Service) RenamePasskey(ctx context.Context, caller domain.Session, passkeyID, name string, rm RequestMeta) (uint64, error) {
	return s.updateOwn(ctx, caller, domain.CapControl, rm, func(a *domain.Account, now time.Time) ([]domain.Event, error) {
		return a.DecideRenamePasskey(passkeyID, name, now)
	})
}

// RemovePasskey removes a passkey of the caller (recent authentication needed;
// ErrNotFound for an unknown id). Removing the last second factor turns 2FA off and drops
// the backup codes (TwoFactorDisabled), which is ErrTwoFactorRequired while the
// TwoFactorPolicy requires 2FA: the rule of RemoveTOTPDevice.
func (s *Service) RemovePasskey(ctx context.Context, caller domain.Session, passkeyID string, rm RequestMeta) (uint64, error) {
	return s.removeSecondFactor(ctx, caller, rm, func(a *domain.Account, orgs []string, now time.Time) ([]domain.Event, error) {
		return a.DecideRemovePasskey(passkeyID, orgs, now)
	})
}

// BeginPasskeyLogin starts a passkey sign-in. With ticket "" it is usernameless: any
// discoverable credential of the relying party (empty allowCredentials) and user
// verification "required", since the passkey is then the whole sign-in (possession and
// the verified user: aal2). With a login ticket from Login (the password checked) the
// passkey is the second factor: allowCredentials lists the ticket account's passkeys, user
// verification "preferred"; the call counts one of the ticket's second-factor tries
// (ErrTicketInvalid for an unknown, expired, used or burnt ticket), and an account without
// a passkey gets ErrConflict. It writes nothing. A full ceremony store answers a
// *throttle.Error.
func (s *Service) BeginPasskeyLogin(ctx context.Context, ticket string) (PasskeyCeremony, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	if ticket == "" {
		return s.newCeremony(ctx, ephemeral.Ceremony{Kind: ephemeral.CeremonyLogin, UserVerification: webauthn.UVRequired}, func(challenge []byte) (json.RawMessage, error) {
			return webauthn.RequestOptions(cfg.RelyingParty(), nil, challenge, webauthn.UVRequired)
		})
	}
	t, err := s.tickets.Attempt(ctx, ticket, s.now(), s.cfg.TicketMaxTries)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	a, err := s.repo.Load(ctx, t.AccountID)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	allow := a.Passkeys()
	if len(allow) == 0 {
		return PasskeyCeremony{}, fmt.Errorf("the account has no passkey: %w", domain.ErrConflict)
	}
	return s.newCeremony(ctx, ephemeral.Ceremony{Kind: ephemeral.CeremonyLogin, AccountID: t.AccountID, UserVerification: webauthn.UVPreferred, Ticket: t},
		func(challenge []byte) (json.RawMessage, error) {
			return webauthn.RequestOptions(cfg.RelyingParty(), descriptors(allow), challenge, webauthn.UVPreferred)
		})
}

// FinishPasskeyLogin completes a passkey sign-in with the browser's answer (credential: the
// PublicKeyCredential JSON of navigator.credentials.get) for client clientID ("" for none,
// an unknown id is ErrUnknownClient; with a login ticket the ticket's client counts). The
// ceremony is used up whatever the outcome (ErrCeremonyInvalid for an unknown, expired or
// used one). The account is the one of the user handle (usernameless) or of the ticket;
// the assertion is verified against its passkey (origin, RP id hash, challenge, user
// presence, user verification when required, signature).
//
// Success appends PasskeyUsed (new sign count, backup state) with the account's expected
// version and starts a session through the path of every sign-in (LoginSucceeded,
// SessionStarted): amr [passkey] usernameless, [pwd passkey] with a ticket (which is
// consumed); both are aal2. A sign count that does not increase (when either count is
// non-zero) appends PasskeyCloneSuspected and LoginFailed (passkey_clone_suspected) and
// answers ErrPasskeyCloneSuspected. Any other failure is ErrPasskeyInvalid (it wraps
// ErrInvalidCredentials: an unknown credential looks like a wrong password), recorded as
// LoginFailed (invalid_second_factor on the account; unknown_account or
// invalid_credentials on system-signin when no account is identified), and throttled like
// other sign-ins per account and client IP (*throttle.Error); a failure that uses the
// ticket's last try burns the ticket.
func (s *Service) FinishPasskeyLogin(ctx context.Context, ceremonyID string, credential json.RawMessage, clientID string, rm RequestMeta) (LoginResult, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return LoginResult{}, err
	}
	c, err := s.takeCeremony(ctx, ceremonyID, ephemeral.CeremonyLogin, nil)
	if err != nil {
		return LoginResult{}, err
	}
	withTicket := c.Ticket.ID != ""
	if withTicket {
		clientID = c.Ticket.ClientID
	} else if clientID != "" {
		if _, err := s.Client(ctx, clientID); err != nil {
			return LoginResult{}, err
		}
	}
	rm.ClientID = clientID
	now := s.now()
	if withTicket && !now.Before(c.Ticket.ExpiresAt) {
		s.tickets.Consume(ctx, c.Ticket.ID)
		return LoginResult{}, ErrTicketInvalid
	}
	ipKey := ""
	if rm.IP != "" {
		ipKey = throttle.IPKey(rm.IP)
	}
	stage, amr := domain.StagePasskey, []string{domain.AMRPasskey}
	if withTicket {
		stage, amr = domain.StageSecondFactor, []string{domain.AMRPassword, domain.AMRPasskey}
	}
	// Identify the account: the ticket's, or the user handle's.
	p, perr := webauthn.ParseAssertion(credential)
	accountID := c.AccountID
	if !withTicket {
		accountID = ""
		if perr == nil {
			accountID = accountIDFromHandle(p.UserHandle)
		}
	}
	var a *domain.Account
	if accountID != "" {
		a, err = s.repo.Load(ctx, accountID)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return LoginResult{}, err
		}
		if err != nil {
			a = nil
		}
	}
	if a == nil {
		// No account: throttle and record by IP only (there is no email to key on). The
		// attempt counts as a failure: nothing is checked that could succeed.
		if ipKey != "" {
			_, d, err := s.cfg.Throttle.Reserve(ctx, "", ipKey, now)
			if err != nil {
				return LoginResult{}, err
			}
			if d.Wait > 0 {
				if d.First {
					s.recordFailure(ctx, "", "", domain.LoginFailed{Reason: reasons.LoginFailedThrottled, Stage: stage, Method: domain.MethodPasskey,
						RetryAfterMS: d.Wait.Milliseconds(), At: now}, s.metadata("", domain.Actor{Type: domain.ActorAccount}, rm))
				}
				return LoginResult{}, &throttle.Error{RetryAfter: d.Wait}
			}
		}
		reason := reasons.LoginFailedUnknownAccount
		if perr != nil || accountID == "" {
			reason = reasons.LoginFailedInvalidCredentials
		}
		s.recordFailure(ctx, "", "", domain.LoginFailed{Reason: reason, Stage: stage, Method: domain.MethodPasskey, At: now},
			s.metadata("", domain.Actor{Type: domain.ActorAccount}, rm))
		return LoginResult{}, domain.ErrPasskeyInvalid
	}
	at, err := s.reserveSignIn(ctx, throttle.AccountKey(a.Email()), ipKey, a.Email(), stage, domain.MethodPasskey, rm)
	if err != nil {
		return LoginResult{}, err
	}
	defer at.Settle(ctx)
	md := s.metadata(a.ID(), domain.Actor{Type: domain.ActorAccount, ID: a.ID()}, rm)
	fail := func(err error) (LoginResult, error) {
		at.Failed()
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor, Stage: stage,
			Method: domain.MethodPasskey, At: now}, md)
		if withTicket && c.Ticket.Tries >= s.cfg.TicketMaxTries {
			s.tickets.Consume(ctx, c.Ticket.ID)
		}
		return LoginResult{}, fmt.Errorf("%w (%s)", domain.ErrPasskeyInvalid, webauthnReason(err))
	}
	if perr != nil {
		return fail(perr)
	}
	use, err := s.checkAssertion(cfg, a, p, c)
	if err != nil {
		return fail(err)
	}
	_, err = s.recordPasskeyUse(ctx, a.ID(), use, domain.LoginFailed{Stage: stage}, md)
	if errors.Is(err, ErrPasskeyCloneSuspected) {
		at.Failed()
		if withTicket && c.Ticket.Tries >= s.cfg.TicketMaxTries {
			s.tickets.Consume(ctx, c.Ticket.ID)
		}
		return LoginResult{}, err
	}
	if errors.Is(err, domain.ErrPasskeyInvalid) {
		return fail(err)
	}
	if err != nil {
		return LoginResult{}, err
	}
	if withTicket && !s.tickets.Consume(ctx, c.Ticket.ID) {
		return LoginResult{}, ErrTicketInvalid
	}
	res, err := s.startSession(ctx, a.ID(), clientID, domain.MethodPasskey, amr, false, rm)
	if err == nil {
		at.Succeeded()
	}
	return res, err
}

// accountIDFromHandle returns the account id a user handle names ("" for a handle that
// cannot be an account id: ids are UUID strings).
func accountIDFromHandle(handle []byte) string {
	id := string(handle)
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return ""
	}
	return id
}

// checkAssertion finds the passkey p names among a's and verifies p with it. With a user
// handle it must be a's; a ceremony with a ticket or a session only accepts a's passkeys
// anyway (the allowCredentials it offered).
func (s *Service) checkAssertion(cfg *webauthn.Config, a *domain.Account, p webauthn.Assertion, c ephemeral.Ceremony) (domain.PasskeyUse, error) {
	if len(p.UserHandle) > 0 && string(p.UserHandle) != a.ID() {
		return domain.PasskeyUse{}, webauthnErr("the user handle names another account")
	}
	if len(p.UserHandle) == 0 && c.AccountID == "" {
		return domain.PasskeyUse{}, webauthnErr("a usernameless sign-in needs a user handle")
	}
	var pk *domain.PasskeyCredential
	for _, c := range a.Passkeys() {
		if bytes.Equal(c.CredentialID, p.CredentialID) {
			pk = &c
			break
		}
	}
	if pk == nil {
		return domain.PasskeyUse{}, webauthnErr("the credential is not registered")
	}
	r, err := webauthn.VerifyAssertion(cfg.RelyingParty(), p, webauthn.Credential{PublicKey: pk.PublicKey, BackupEligible: pk.BackupEligible}, c.Challenge, c.UserVerification == webauthn.UVRequired)
	if err != nil {
		return domain.PasskeyUse{}, err
	}
	return domain.PasskeyUse{PasskeyID: pk.ID, SignCount: r.SignCount, BackupState: r.BackupState}, nil
}

// recordPasskeyUse appends PasskeyUsed, or PasskeyCloneSuspected with a LoginFailed built
// from failure (then it answers ErrPasskeyCloneSuspected), deciding on the current state.
func (s *Service) recordPasskeyUse(ctx context.Context, accountID string, use domain.PasskeyUse, failure domain.LoginFailed, md domain.Metadata) (uint64, error) {
	var cloned bool
	res, _, err := s.updateAccount(ctx, accountID, md, func(a *domain.Account) ([]domain.Event, error) {
		var events []domain.Event
		var err error
		events, cloned, err = a.DecidePasskeyUse(use, failure, s.now())
		return events, err
	})
	if err != nil {
		return 0, err
	}
	if cloned {
		return res.LastPosition, ErrPasskeyCloneSuspected
	}
	return res.LastPosition, nil
}

// BeginPasskeyReauth starts a re-authentication (step-up) of the caller's session with one
// of its account's passkeys (allowCredentials; user verification "preferred"). An account
// without a passkey gets ErrConflict. Restricted sessions may re-authenticate. It writes
// nothing.
func (s *Service) BeginPasskeyReauth(ctx context.Context, caller domain.Session) (PasskeyCeremony, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return PasskeyCeremony{}, err
	}
	cur, err := s.authorize(caller, domain.CapEnroll)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	a, err := s.repo.Load(ctx, cur.AccountID)
	if err != nil {
		return PasskeyCeremony{}, err
	}
	allow := a.Passkeys()
	if len(allow) == 0 {
		return PasskeyCeremony{}, fmt.Errorf("the account has no passkey: %w", domain.ErrConflict)
	}
	return s.newCeremony(ctx, ephemeral.Ceremony{Kind: ephemeral.CeremonyReauth, AccountID: cur.AccountID, SessionID: cur.ID, UserVerification: webauthn.UVPreferred},
		func(challenge []byte) (json.RawMessage, error) {
			return webauthn.RequestOptions(cfg.RelyingParty(), descriptors(allow), challenge, webauthn.UVPreferred)
		})
}

// FinishPasskeyReauth completes a re-authentication begun by the caller's session
// (ErrCeremonyInvalid otherwise, or for an unknown, expired or used ceremony): the
// assertion is verified as at sign-in, PasskeyUsed appended, and the session's
// authenticated_at renewed (ReauthSucceeded, amr passkey, so aal2) like Reauth. A refused
// assertion is ErrPasskeyInvalid, a sign count that did not increase
// ErrPasskeyCloneSuspected (PasskeyCloneSuspected recorded); failures are recorded
// (LoginFailed, stage reauth) and throttled per account like Reauth.
func (s *Service) FinishPasskeyReauth(ctx context.Context, caller domain.Session, ceremonyID string, credential json.RawMessage, rm RequestMeta) (uint64, error) {
	cfg, err := s.passkeyConfig()
	if err != nil {
		return 0, err
	}
	cur, err := s.authorize(caller, domain.CapEnroll)
	if err != nil {
		return 0, err
	}
	c, err := s.takeCeremony(ctx, ceremonyID, ephemeral.CeremonyReauth, &cur)
	if err != nil {
		return 0, err
	}
	a, md, err := s.callerAccount(ctx, cur, rm)
	if err != nil {
		return 0, err
	}
	now := s.now()
	at, err := s.reserveReauth(ctx, a, domain.MethodPasskey, cur.ID, md)
	if err != nil {
		return 0, err
	}
	defer at.Settle(ctx)
	fail := func(err error) (uint64, error) {
		at.Failed()
		s.recordFailure(ctx, a.ID(), "", domain.LoginFailed{Reason: reasons.LoginFailedInvalidSecondFactor, Stage: domain.StageReauth,
			Method: domain.MethodPasskey, SessionID: cur.ID, At: now}, md)
		return 0, fmt.Errorf("%w (%s)", domain.ErrPasskeyInvalid, webauthnReason(err))
	}
	p, err := webauthn.ParseAssertion(credential)
	if err != nil {
		return fail(err)
	}
	use, err := s.checkAssertion(cfg, a, p, c)
	if err != nil {
		return fail(err)
	}
	_, err = s.recordPasskeyUse(ctx, a.ID(), use, domain.LoginFailed{Stage: domain.StageReauth, SessionID: cur.ID}, md)
	if errors.Is(err, ErrPasskeyCloneSuspected) {
		at.Failed()
		return 0, err
	}
	if errors.Is(err, domain.ErrPasskeyInvalid) {
		return fail(err)
	}
	if err != nil {
		return 0, err
	}
	res, _, err := s.updateSession(ctx, cur.ID, func(*domain.SessionRecord) domain.Metadata { return md }, func(r *domain.SessionRecord) ([]domain.Event, error) {
		return r.DecideReauth(domain.MethodPasskey, domain.AMRPasskey, s.now())
	})
	return res.LastPosition, err
}

// webauthnErr is a verification failure found here rather than in package passkey (whose
// failures it resembles: it wraps webauthn.ErrWebAuthn too).
func webauthnErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", webauthn.ErrWebAuthn, fmt.Sprintf(format, args...))
}

// webauthnReason is the user-safe sentence of a verification error.
func webauthnReason(err error) string {
	msg := err.Error()
	for _, prefix := range []string{webauthn.ErrWebAuthn.Error() + ": ", domain.ErrPasskeyInvalid.Error() + ": "} {
		if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
			msg = msg[len(prefix):]
		}
	}
	return msg
}
