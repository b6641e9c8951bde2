package domain

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain/ephemeral"
	webauthn "github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Passkeys (WebAuthn credentials): configuration, errors and the decisions of the Account
// aggregate about them. The ceremonies are in service_passkey.go, their verification in
// package passkey (imported as webauthn: domain's own passkey is the aggregate's record),
// the server-side ceremony state in package ephemeral.

// Errors of the passkey commands, in addition to those of errors.go.
var (
	// ErrPasskeysDisabled: Config.Passkeys names no relying party, so no passkey command
	// can run.
	ErrPasskeysDisabled = errors.New("passkeys are not configured")
	// ErrCeremonyInvalid: the ceremony id is unknown, expired, already used (every ceremony
	// is single-use, whatever its outcome), kept by another instance, or was begun for
	// another purpose or another session. The user must start the ceremony again. It is the
	// error of the ceremony store (ephemeral.ErrCeremonyInvalid).
	ErrCeremonyInvalid = ephemeral.ErrCeremonyInvalid
	// ErrPasskeyInvalid: a passkey assertion did not check out (unknown credential, wrong
	// origin, relying party or challenge, no user presence, bad signature, malformed). It
	// wraps ErrInvalidCredentials, so errors.Is(err, ErrInvalidCredentials) also holds: an
	// unknown credential gets the same answer as a wrong password.
	ErrPasskeyInvalid = fmt.Errorf("%w: passkey assertion refused", ErrInvalidCredentials)
	// ErrPasskeyCloneSuspected: the assertion was valid but its signature counter did not
	// increase, so the authenticator may have been cloned; the sign-in or re-authentication
	// was refused and PasskeyCloneSuspected recorded. It wraps ErrInvalidCredentials.
	ErrPasskeyCloneSuspected = fmt.Errorf("%w: passkey sign count did not increase", ErrInvalidCredentials)
)

// maxPasskeys bounds how many passkeys an account may hold.
const maxPasskeys = 20

// LoginFailedPasskeyCloneSuspected is the LoginFailed reason of a passkey assertion refused
// because its sign count did not increase (beside PasskeyCloneSuspected).
const LoginFailedPasskeyCloneSuspected = "passkey_clone_suspected"

// StagePasskey is the LoginFailed stage of a usernameless passkey sign-in, where the passkey
// is the whole sign-in (with a login ticket the stage is StageSecondFactor).
const StagePasskey = "passkey"

// PasskeyConfig configures WebAuthn. The zero value (no RPID) disables passkeys: every
// passkey command returns ErrPasskeysDisabled. PasskeyConfigFromPublicURL derives it from
// the public URL.
type PasskeyConfig struct {
	// RPID is the relying party id: the host of the public URL (a domain name, lower case,
	// without scheme or port; "localhost" for development). Passkeys are bound to it:
	// changing it makes every registered passkey unusable.
	RPID string
	// RPDisplayName is the name authenticators show; default "Vigil".
	RPDisplayName string
	// Origins are the exact origins (scheme://host[:port]) the browser may report in
	// clientDataJSON; default ["https://" + RPID]. Each host must be RPID or a subdomain of
	// it; the scheme must be https, or http for localhost.
	Origins []string
	// CeremonyTTL is how long a ceremony may take from its options to its answer, and the
	// timeout the options give the browser; default 5m, at most 10m.
	CeremonyTTL time.Duration
	// Ceremonies keeps the ceremonies in progress; default a new ephemeral.MemoryCeremonyStore
	// (per instance, see ephemeral.CeremonyStore).
	Ceremonies ephemeral.CeremonyStore
}

// PasskeyConfigFromPublicURL returns the configuration for a service reached at publicURL
// (Vigil's --public-url): RPID its host, the one origin its scheme://host[:port]. It
// returns an error when that cannot be a relying party (no absolute URL, an IP address as
// host, http other than on localhost): the caller may then run without passkeys.
func PasskeyConfigFromPublicURL(publicURL string) (PasskeyConfig, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return PasskeyConfig{}, fmt.Errorf("passkeys: public URL %q is not an absolute URL", publicURL)
	}
	c := PasskeyConfig{RPID: strings.ToLower(u.Hostname()), Origins: []string{u.Scheme + "://" + u.Host}}
	check := c
	check.Ceremonies = ephemeral.NewMemoryCeremonyStoreWithLimit(1) // fill's default store is not kept
	if err := check.fill(); err != nil {
		return PasskeyConfig{}, err
	}
	return c, nil
}

// enabled reports whether passkeys are configured.
func (c *PasskeyConfig) enabled() bool { return c.RPID != "" }

// fill validates the configuration and fills its defaults; origins are normalised (lower
// case, no default port). A zero configuration stays disabled.
func (c *PasskeyConfig) fill() error {
	if c.RPID == "" {
		if len(c.Origins) > 0 {
			return errors.New("passkeys: Origins given without RPID")
		}
		return nil
	}
	if err := validateRPID(c.RPID); err != nil {
		return err
	}
	if c.RPDisplayName == "" {
		c.RPDisplayName = "Vigil"
	}
	if n, err := validate.Text("rp_display_name", c.RPDisplayName, 100, true); err != nil || n != c.RPDisplayName {
		return fmt.Errorf("passkeys: RPDisplayName %q must be 1..100 characters of plain text", c.RPDisplayName)
	}
	if len(c.Origins) == 0 {
		c.Origins = []string{"https://" + c.RPID}
	}
	origins := make([]string, 0, len(c.Origins))
	for _, o := range c.Origins {
		n, err := normalizeOrigin(o, c.RPID)
		if err != nil {
			return err
		}
		if !slices.Contains(origins, n) {
			origins = append(origins, n)
		}
	}
	c.Origins = origins
	if c.CeremonyTTL == 0 {
		c.CeremonyTTL = 5 * time.Minute
	}
	if c.CeremonyTTL < 10*time.Second || c.CeremonyTTL > 10*time.Minute {
		return fmt.Errorf("passkeys: CeremonyTTL %s must be between 10s and 10m", c.CeremonyTTL)
	}
	if c.Ceremonies == nil {
		c.Ceremonies = ephemeral.NewMemoryCeremonyStore()
	}
	return nil
}

// validateRPID accepts a lower-case DNS name (not an IP address).
func validateRPID(id string) error {
	bad := fmt.Errorf("passkeys: RPID %q must be a lower-case domain name without scheme or port", id)
	if len(id) > 253 || isIPAddress(id) || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") {
		return bad
	}
	for _, label := range strings.Split(id, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return bad
			}
		}
	}
	return nil
}

func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// normalizeOrigin checks an origin against rpID and returns it as browsers serialise it.
func normalizeOrigin(origin, rpID string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("passkeys: origin %q must be scheme://host[:port]", origin)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", fmt.Errorf("passkeys: origin %q is not on the relying party %q or a subdomain", origin, rpID)
	}
	local := host == "localhost" || strings.HasSuffix(host, ".localhost")
	switch {
	case scheme == "https":
		if port == "443" {
			port = ""
		}
	case scheme == "http" && local:
		if port == "80" {
			port = ""
		}
	default:
		return "", fmt.Errorf("passkeys: origin %q must use https (http only for localhost)", origin)
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// relyingParty is what the WebAuthn checks need of the (filled) configuration.
func (c *PasskeyConfig) relyingParty() webauthn.RelyingParty {
	return webauthn.RelyingParty{ID: c.RPID, Name: c.RPDisplayName, Origins: c.Origins, Timeout: c.CeremonyTTL}
}

// webauthnUser is the user of a's new credentials: handle the account id's bytes, name
// the email, display name the full name (the email when there is none).
func webauthnUser(a *Account) webauthn.User {
	u := webauthn.User{Handle: []byte(a.ID()), Name: a.Email(), DisplayName: strings.TrimSpace(a.FirstName() + " " + a.LastName())}
	if u.DisplayName == "" {
		u.DisplayName = a.Email()
	}
	return u
}

// descriptors names creds in WebAuthn options.
func descriptors(creds []PasskeyCredential) []webauthn.Descriptor {
	out := make([]webauthn.Descriptor, 0, len(creds))
	for _, c := range creds {
		out = append(out, webauthn.Descriptor{ID: c.CredentialID, Transports: c.Transports})
	}
	return out
}

func (a *Account) passkeyByCredential(credentialID []byte) *passkey {
	for i := range a.s.Passkeys {
		if bytes.Equal(a.s.Passkeys[i].CredentialID, credentialID) {
			return &a.s.Passkeys[i]
		}
	}
	return nil
}

// decideRegisterPasskey adds a verified credential named name (1..64 characters). A
// credential the account holds already is ErrConflict, so is a 21st passkey. When this
// turns 2FA on, the backup code set is appended too and codesIssued is true.
func (a *Account) decideRegisterPasskey(passkeyID, name string, c webauthn.Registration, set BackupCodesGenerated, now time.Time) (events []Event, codesIssued bool, err error) {
	n, err := validateDeviceName(name)
	if err != nil {
		return nil, false, err
	}
	if a.passkeyByCredential(c.CredentialID) != nil {
		return nil, false, fmt.Errorf("this passkey is registered already: %w", ErrConflict)
	}
	if len(a.s.Passkeys) >= maxPasskeys {
		return nil, false, fmt.Errorf("%w: at most %d passkeys", ErrConflict, maxPasskeys)
	}
	events = []Event{PasskeyRegistered{PasskeyID: passkeyID, Name: n, CredentialID: slices.Clone(c.CredentialID),
		PublicKey: slices.Clone(c.PublicKey), SignCount: c.SignCount, AAGUID: slices.Clone(c.AAGUID),
		Transports: slices.Clone(c.Transports), BackupEligible: c.BackupEligible, BackupState: c.BackupState, At: now}}
	if !a.TwoFactorEnabled() {
		set.At = now
		events = append(events, set)
		codesIssued = true
	}
	return events, codesIssued, nil
}

// decideRenamePasskey renames a passkey (ErrNotFound for an unknown one); the same name
// writes nothing.
func (a *Account) decideRenamePasskey(passkeyID, name string, now time.Time) ([]Event, error) {
	p := a.passkey(passkeyID)
	if p == nil {
		return nil, fmt.Errorf("passkey %s: %w", passkeyID, ErrNotFound)
	}
	n, err := validateDeviceName(name)
	if err != nil {
		return nil, err
	}
	if n == p.Name {
		return nil, nil
	}
	return []Event{PasskeyRenamed{PasskeyID: passkeyID, Name: n, At: now}}, nil
}

// decideRemovePasskey removes a passkey. The rule is the one of decideRemoveTOTPDevice:
// removing the last second factor (no other passkey, no confirmed TOTP device) turns 2FA
// off (TwoFactorDisabled, reason last_factor_removed, drops the backup codes), which is
// refused with ErrTwoFactorRequired while requiredBy (the organisations whose policy
// requires 2FA) is not empty.
func (a *Account) decideRemovePasskey(passkeyID string, requiredBy []string, now time.Time) ([]Event, error) {
	if a.passkey(passkeyID) == nil {
		return nil, fmt.Errorf("passkey %s: %w", passkeyID, ErrNotFound)
	}
	events := []Event{PasskeyRemoved{PasskeyID: passkeyID, At: now}}
	if len(a.s.Passkeys) == 1 && a.confirmedTOTPCount() == 0 {
		if len(requiredBy) > 0 {
			return nil, fmt.Errorf("removing the last second factor: %w", ErrTwoFactorRequired)
		}
		events = append(events, TwoFactorDisabled{Reason: TwoFactorDisabledLastFactorGone, At: now})
	}
	return events, nil
}

// passkeyUse is a verified assertion of a stored passkey: the input of decidePasskeyUse.
type passkeyUse struct {
	PasskeyID   string
	SignCount   uint32
	BackupState bool
}

// decidePasskeyUse records a verified assertion. When the stored or the received sign
// count is non-zero and the received one does not exceed the stored one, the authenticator
// may be cloned: the events are PasskeyCloneSuspected and a LoginFailed (reason
// passkey_clone_suspected, with failure's stage, method and session) and cloned is true, so
// the caller appends them and refuses. Otherwise the event is PasskeyUsed. A passkey
// removed meanwhile is ErrPasskeyInvalid.
func (a *Account) decidePasskeyUse(u passkeyUse, failure LoginFailed, now time.Time) (events []Event, cloned bool, err error) {
	p := a.passkey(u.PasskeyID)
	if p == nil {
		return nil, false, fmt.Errorf("passkey %s removed: %w", u.PasskeyID, ErrPasskeyInvalid)
	}
	if (p.SignCount != 0 || u.SignCount != 0) && u.SignCount <= p.SignCount {
		failure.Reason, failure.Method, failure.At = LoginFailedPasskeyCloneSuspected, MethodPasskey, now
		return []Event{PasskeyCloneSuspected{PasskeyID: p.ID, StoredSignCount: p.SignCount, ReceivedSignCount: u.SignCount, At: now},
			failure}, true, nil
	}
	return []Event{PasskeyUsed{PasskeyID: p.ID, SignCount: u.SignCount, BackupState: u.BackupState, At: now}}, false, nil
}
