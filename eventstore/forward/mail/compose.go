package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/eventtype"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

// Kinds of mail (the X-Vigil-Mail header, the metric label, the catalogs' keys).
const (
	KindVerifyEmail            = "verify_email"
	KindPasswordReset          = "password_reset"
	KindSignInRisk             = "sign_in_risk"
	KindPasswordChanged        = "password_changed"
	KindPasswordResetCompleted = "password_reset_completed"
	KindEmailChanged           = "email_changed"
	KindTwoFactorDisabled      = "two_factor_disabled"
	KindTOTPAdded              = "totp_added"
	KindTOTPRemoved            = "totp_removed"
	KindPasskeyAdded           = "passkey_added"
	KindPasskeyRemoved         = "passkey_removed"
	KindBackupCodesGenerated   = "backup_codes_generated"
	KindDelegationGranted      = "delegation_granted"
	KindSignedOutByAdmin       = "signed_out_by_admin"
)

// Kinds lists every kind of mail.
var Kinds = []string{KindVerifyEmail, KindPasswordReset, KindSignInRisk, KindPasswordChanged,
	KindPasswordResetCompleted, KindEmailChanged, KindTwoFactorDisabled, KindTOTPAdded, KindTOTPRemoved,
	KindPasskeyAdded, KindPasskeyRemoved, KindBackupCodesGenerated, KindDelegationGranted, KindSignedOutByAdmin}

// Link paths of the portal pages the mail points to (API.md).
const (
	PathVerifyEmail   = "verify-email"
	PathResetPassword = "reset-password"
	PathNotMe         = "not-me"
)

// securityKinds maps the event types that warn the account holder to their kind. Each such
// mail names time, place, device and IP and carries the "this wasn't me" link.
var securityKinds = map[string]string{
	domain.EventSignInRiskDetected:     KindSignInRisk,
	domain.EventPasswordChanged:        KindPasswordChanged,
	domain.EventPasswordResetCompleted: KindPasswordResetCompleted,
	domain.EventEmailChanged:           KindEmailChanged,
	domain.EventTwoFactorDisabled:      KindTwoFactorDisabled,
	domain.EventTOTPDeviceConfirmed:    KindTOTPAdded,
	domain.EventTOTPDeviceRemoved:      KindTOTPRemoved,
	domain.EventPasskeyRegistered:      KindPasskeyAdded,
	domain.EventPasskeyRemoved:         KindPasskeyRemoved,
	domain.EventBackupCodesGenerated:   KindBackupCodesGenerated,
	domain.EventDelegationGranted:      KindDelegationGranted,
	domain.EventSessionSignedOut:       KindSignedOutByAdmin,
}

// Triggers reports whether an event of this type may trigger a mail.
func Triggers(eventType string) bool {
	_, ok := securityKinds[eventType]
	return ok || eventType == domain.EventEmailVerificationRequested || eventType == domain.EventPasswordResetRequested
}

// skip is why an event that could trigger a mail gets none (a metric label).
type skip string

const (
	skipNone          skip = ""
	skipErased        skip = "erased"
	skipNoAccount     skip = "no_account"
	skipStale         skip = "stale_request"
	skipTokenMismatch skip = "token_mismatch"
	skipUndecodable   skip = "undecodable"
	skipEnrolment     skip = "enrolment"
)

// composer turns a logged event into its message.
type composer struct {
	log        StreamReader
	recipients Recipients
	keyring    *credential.Keyring
	public     *url.URL
	geo        *geoip.Resolver
	r          *renderer
}

// compose returns the message ev triggers: nil and a reason when it triggers none, an error
// when the log could not be read (the outbox tries again).
func (c *composer) compose(ctx context.Context, ev domain.Envelope) (*Message, skip, error) {
	if !Triggers(ev.Type) {
		return nil, skipNone, nil
	}
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return nil, skipUndecodable, nil
	}
	accountID, _ := strings.CutPrefix(ev.StreamID, domain.StreamPrefixAccount)
	if !strings.HasPrefix(ev.StreamID, domain.StreamPrefixAccount) {
		accountID = ""
	}
	md := ev.Metadata
	ct := content{Values: map[string]any{}}
	var to string // the address, when not the account's current one
	notMeRef := ev.ID
	switch e := e.(type) {
	case domain.EmailVerificationRequested:
		ct.Kind, to = KindVerifyEmail, e.Email
		ct.Values["Email"] = e.Email
		tok := c.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkVerifyEmail, AccountID: accountID, Ref: e.RequestID, IssuedAt: e.At})
		if credential.HashLinkToken(tok) != e.TokenHash {
			return nil, skipTokenMismatch, nil
		}
		ct.Action = c.link(PathVerifyEmail, tok)
	case domain.PasswordResetRequested:
		ct.Kind = KindPasswordReset
		tok := c.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkResetPassword, AccountID: accountID, Ref: e.RequestID, IssuedAt: e.At})
		if credential.HashLinkToken(tok) != e.TokenHash {
			return nil, skipTokenMismatch, nil
		}
		ct.Action = c.link(PathResetPassword, tok)
		ct.Details = c.details(ev.RecordedAt, md)
		old, err := c.disputedEmailChange(ctx, ev)
		if err != nil {
			return nil, skipNone, err
		}
		if old != "" {
			to = old
		}
	case domain.SignInRiskDetected:
		ct.Kind = KindSignInRisk
		if e.LoginEventID != "" {
			notMeRef = e.LoginEventID
		}
		// The lines are localised once the recipient's locale is known (below).
		ct.Values["signals"] = e
	case domain.PasswordChanged:
		ct.Kind = KindPasswordChanged
	case domain.PasswordResetCompleted:
		ct.Kind = KindPasswordResetCompleted
	case domain.EmailChanged:
		ct.Kind, to = KindEmailChanged, e.OldEmail
		ct.Values["OldEmail"], ct.Values["NewEmail"] = e.OldEmail, e.NewEmail
	case domain.TwoFactorDisabled:
		ct.Kind = KindTwoFactorDisabled
	case domain.TOTPDeviceConfirmed:
		ct.Kind = KindTOTPAdded
	case domain.TOTPDeviceRemoved:
		ct.Kind = KindTOTPRemoved
	case domain.PasskeyRegistered:
		ct.Kind = KindPasskeyAdded
		ct.Values["Name"] = e.Name
	case domain.PasskeyRemoved:
		ct.Kind = KindPasskeyRemoved
	case domain.BackupCodesGenerated:
		ct.Kind = KindBackupCodesGenerated
		// The first second factor issues the first codes in the same decision: its own mail
		// says enough.
		if first, err := c.enrolment(ctx, ev, e.At); err != nil {
			return nil, skipNone, err
		} else if first {
			return nil, skipEnrolment, nil
		}
	case domain.DelegationGranted:
		ct.Kind, accountID = KindDelegationGranted, e.OwnerAccountID
		del, err := c.recipients.Recipient(ctx, e.DelegateAccountID)
		switch {
		case err == nil && !del.Erased:
			ct.Values["Delegate"] = del.Email
			if n := displayName(del); n != "" {
				ct.Values["Delegate"] = n + " <" + del.Email + ">"
			}
		case err == nil || errors.Is(err, ErrNoAccount):
			ct.Values["Delegate"] = e.DelegateAccountID
		default:
			return nil, skipNone, err
		}
		ct.Values["until"] = e.ExpiresAt
	case domain.SessionSignedOut:
		if e.Reason != reasons.SignOutByAdmin {
			return nil, skipNone, nil
		}
		ct.Kind = KindSignedOutByAdmin
		// The mail describes the session that was signed out (its device and address), not
		// the administrator's.
		sid, _ := strings.CutPrefix(ev.StreamID, domain.StreamPrefixSession)
		start, err := c.sessionStart(ctx, sid)
		if err != nil {
			return nil, skipNone, err
		}
		if start == nil {
			return nil, skipNoAccount, nil
		}
		accountID, md = start.account, start.md
	default:
		return nil, skipNone, nil
	}
	if accountID == "" {
		accountID = ev.Metadata.SubjectAccountID
	}
	if accountID == "" {
		return nil, skipNoAccount, nil
	}
	rec, err := c.recipients.Recipient(ctx, accountID)
	if errors.Is(err, ErrNoAccount) {
		return nil, skipNoAccount, nil
	}
	if err != nil {
		return nil, skipNone, err
	}
	if rec.Erased {
		return nil, skipErased, nil
	}
	if ct.Kind == KindVerifyEmail && !strings.EqualFold(strings.TrimSpace(to), strings.TrimSpace(rec.Email)) {
		// The email changed again since: this request can no longer verify anything.
		return nil, skipStale, nil
	}
	if to == "" {
		to = rec.Email
	}
	if to == "" || to == sealed.Erased {
		return nil, skipErased, nil
	}
	ct.Locale, ct.Name = rec.Locale, rec.FirstName
	if _, ok := securityKinds[ev.Type]; ok {
		ct.Details = c.details(ev.RecordedAt, md)
		ct.NotMe = c.link(PathNotMe, c.keyring.LinkToken(credential.LinkClaims{Purpose: credential.LinkNotMe,
			AccountID: accountID, Ref: notMeRef, IssuedAt: ev.RecordedAt}))
	}
	if risk, ok := ct.Values["signals"].(domain.SignInRiskDetected); ok {
		delete(ct.Values, "signals")
		ct.Lines = c.signalLines(rec.Locale, risk, ct.Details)
	}
	if until, ok := ct.Values["until"].(time.Time); ok {
		delete(ct.Values, "until")
		ct.Values["Until"] = c.r.when(c.r.catalogs[c.r.lang(rec.Locale)], until)
	}
	subject, text, html, err := c.r.render(ct)
	if err != nil {
		return nil, skipNone, err
	}
	return &Message{EventID: ev.ID, Kind: ct.Kind, AccountID: accountID, To: netmail.Address{Name: displayName(rec), Address: to},
		Subject: subject, Text: text, HTML: html, Date: ev.RecordedAt}, skipNone, nil
}

// signalLines says in the recipient's language what stood out about a sign-in.
func (c *composer) signalLines(locale string, e domain.SignInRiskDetected, d *details) []string {
	// The device in the recipient's language when the user agent says it; else as the
	// detector recorded it.
	device := e.Device
	if d != nil && (d.Browser != "" || d.OS != "") || device == "" && d != nil {
		device = c.r.device(c.r.catalogs[c.r.lang(locale)], d)
	}
	lang := c.r.lang(locale)
	vals := map[string]any{"Device": device, "Country": countryName(lang, e.Country),
		"PreviousCountry": countryName(lang, e.PreviousCountry), "SpeedKMH": e.SpeedKMH}
	var out []string
	for _, s := range e.Signals {
		if l := c.r.line(locale, s, vals); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// details describes where and how an event was caused.
func (c *composer) details(at time.Time, md domain.Metadata) *details {
	d := &details{At: at}
	if ip := md.IP; ip != "" && ip != sealed.Erased {
		d.IP = ip
		if l := c.geo.LookupString(ip).Location; l != nil {
			d.City, d.Country, d.CountryCode = l.City, l.Country, l.CountryCode
		}
	}
	if ua := md.UserAgent; ua != "" && ua != sealed.Erased {
		a := projections.ParseUserAgent(ua)
		d.Browser, d.OS, d.Fallback = a.Browser, a.OS, a.Details
	}
	return d
}

// enrolment reports whether a BackupCodesGenerated came with the account's first second
// factor: the event before it in the stream is a TOTPDeviceConfirmed or PasskeyRegistered of
// the same decision (the same At).
func (c *composer) enrolment(ctx context.Context, ev domain.Envelope, at time.Time) (bool, error) {
	if ev.Version < 2 {
		return false, nil
	}
	evs, err := c.log.ReadStream(ctx, ev.StreamID, ev.Version-1, 1)
	if err != nil {
		return false, fmt.Errorf("mail: read %s: %w", ev.StreamID, err)
	}
	if len(evs) != 1 || (evs[0].Type != domain.EventTOTPDeviceConfirmed && evs[0].Type != domain.EventPasskeyRegistered) {
		return false, nil
	}
	var prev struct {
		At time.Time `json:"at"`
	}
	return json.Unmarshal(evs[0].Data, &prev) == nil && prev.At.Equal(at), nil
}

// disputedEmailChange returns, when the reset request ev answers a "this wasn't me" about an
// email change of the account (the SuspiciousActivityReported just before it names that
// change), the address the account had before the change: the report disputes the new
// address, which may be an attacker's, so the reset link goes where the change's notice
// went. It returns "" for any other request.
func (c *composer) disputedEmailChange(ctx context.Context, ev domain.Envelope) (string, error) {
	if ev.Version < 3 {
		return "", nil
	}
	prev, err := c.log.ReadStream(ctx, ev.StreamID, ev.Version-1, 1)
	if err != nil {
		return "", fmt.Errorf("mail: read %s: %w", ev.StreamID, err)
	}
	if len(prev) != 1 || prev[0].Type != domain.EventSuspiciousActivityReported {
		return "", nil
	}
	e, err := domain.DecodeEvent(prev[0])
	report, ok := e.(domain.SuspiciousActivityReported)
	if err != nil || !ok {
		return "", nil
	}
	for from := uint64(1); from < prev[0].Version; {
		evs, err := c.log.ReadStream(ctx, ev.StreamID, from, 500)
		if err != nil {
			return "", fmt.Errorf("mail: read %s: %w", ev.StreamID, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, x := range evs {
			if x.ID != report.EventID {
				continue
			}
			if d, err := domain.DecodeEvent(x); err == nil {
				if changed, ok := d.(domain.EmailChanged); ok && changed.OldEmail != eventtype.Erased {
					return changed.OldEmail, nil
				}
			}
			return "", nil
		}
		from = evs[len(evs)-1].Version + 1
	}
	return "", nil
}

func (c *composer) link(path, token string) string {
	u := c.public.JoinPath(path)
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}

// sessionStart is what the start of a session says: its account and the request's metadata.
type sessionStartInfo struct {
	account string
	md      domain.Metadata
}

func (c *composer) sessionStart(ctx context.Context, sessionID string) (*sessionStartInfo, error) {
	if sessionID == "" {
		return nil, nil
	}
	evs, err := c.log.ReadStream(ctx, domain.SessionStream(sessionID), 1, 4)
	if err != nil {
		return nil, fmt.Errorf("mail: read session %s: %w", sessionID, err)
	}
	for _, env := range evs {
		if env.Type != domain.EventSessionStarted {
			continue
		}
		var s struct {
			AccountID string `json:"account_id"`
		}
		if json.Unmarshal(env.Data, &s) != nil || s.AccountID == "" {
			return nil, nil
		}
		return &sessionStartInfo{account: s.AccountID, md: env.Metadata}, nil
	}
	return nil, nil
}

func displayName(r Recipient) string {
	n := strings.TrimSpace(r.FirstName + " " + r.LastName)
	if n == sealed.Erased {
		return ""
	}
	return n
}

// countryName is the name, in lang, of an ISO 3166-1 code the risk detector recorded; the
// code itself when unknown.
func countryName(lang, code string) string {
	if code == "" || code == sealed.Erased {
		return "?"
	}
	r, err := language.ParseRegion(code)
	if err != nil {
		return code
	}
	tag, err := language.Parse(lang)
	if err != nil {
		tag = language.English
	}
	if n := display.Regions(tag).Name(r); n != "" {
		return n
	}
	return code
}
