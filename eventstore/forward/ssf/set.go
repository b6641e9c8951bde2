package ssf

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// Delivery methods (SSF 1.0).
const (
	MethodPush = "urn:ietf:rfc:8935"
	MethodPoll = "urn:ietf:rfc:8936"
)

// Stream statuses.
const (
	StatusEnabled  = "enabled"
	StatusPaused   = "paused"
	StatusDisabled = "disabled"
)

// Changes recorded by domain.SSFStreamChanged.
const (
	ChangeCreated      = "created"
	ChangeUpdated      = "updated"
	ChangeStatus       = "status"
	ChangeVerification = "verification"
	ChangeDeleted      = "deleted"
)

// Event type URIs.
const (
	caep = "https://schemas.openid.net/secevent/caep/event-type/"
	risc = "https://schemas.openid.net/secevent/risc/event-type/"

	EventSessionRevoked       = caep + "session-revoked"
	EventCredentialChange     = caep + "credential-change"
	EventIdentifierChanged    = risc + "identifier-changed"
	EventAccountPurged        = risc + "account-purged"
	EventCredentialCompromise = risc + "credential-compromise"
	EventVerification         = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// EventsSupported lists the event types the transmitter sends (besides verification, which
// every stream gets when it asks for it), sorted.
var EventsSupported = []string{EventSessionRevoked, EventCredentialChange, EventAccountPurged, EventCredentialCompromise, EventIdentifierChanged}

// Mapping is the Vigil event type behind each SET event type, for documentation.
var Mapping = map[string][]string{
	EventSessionRevoked:       {domain.EventSessionSignedOut, domain.EventSessionExpired},
	EventCredentialChange:     {domain.EventPasswordChanged, domain.EventPasswordResetCompleted, domain.EventTOTPDeviceConfirmed, domain.EventTOTPDeviceRemoved, domain.EventPasskeyRegistered, domain.EventPasskeyRemoved},
	EventIdentifierChanged:    {domain.EventEmailChanged},
	EventAccountPurged:        {domain.EventAccountErased},
	EventCredentialCompromise: {domain.EventSuspiciousActivityReported},
}

// Delivered returns the events a stream that requested requested gets: those supported, in
// the order of EventsSupported.
func Delivered(requested []string) []string {
	out := []string{}
	for _, e := range EventsSupported {
		for _, r := range requested {
			if r == e {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// subject is a SET's sub_id.
type subject struct {
	Format  string   `json:"format"`
	Iss     string   `json:"iss,omitempty"`
	Sub     string   `json:"sub,omitempty"`
	ID      string   `json:"id,omitempty"`
	User    *subject `json:"user,omitempty"`
	Session *subject `json:"session,omitempty"`
}

// claims is a SET's payload (RFC 8417, SSF 1.0).
type claims struct {
	Iss    string                    `json:"iss"`
	Aud    string                    `json:"aud"`
	Iat    int64                     `json:"iat"`
	Jti    string                    `json:"jti"`
	Txn    string                    `json:"txn,omitempty"`
	SubID  *subject                  `json:"sub_id"`
	Events map[string]map[string]any `json:"events"`
}

// mapped is one Vigil event as a SET event: its type URI, subject and event members.
type mapped struct {
	uri     string
	sub     *subject
	members map[string]any
}

// passkeyKind finds whether a removed passkey was a platform (backup-eligible) one, reading
// the account's stream; nil means a roaming authenticator is assumed.
type passkeyKind func(ctx context.Context, accountID, passkeyID string) (platform bool, err error)

// mapEvent maps a Vigil event to the SET event it becomes; ok=false for events that are
// not transmitted.
func mapEvent(ctx context.Context, iss string, ev domain.Envelope, kind passkeyKind) (mapped, bool, error) {
	if _, ok := typesMapped[ev.Type]; !ok {
		return mapped{}, false, nil
	}
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return mapped{}, false, fmt.Errorf("ssf: decode %s at %d: %w", ev.Type, ev.Position, err)
	}
	account := ev.Metadata.SubjectAccountID
	if account == "" {
		account = strings.TrimPrefix(ev.StreamID, domain.StreamPrefixAccount)
	}
	user := &subject{Format: "iss_sub", Iss: iss, Sub: account}
	m := map[string]any{"event_timestamp": ev.RecordedAt.Unix()}
	credential := func(ctype, change string) (mapped, bool, error) {
		m["credential_type"], m["change_type"] = ctype, change
		m["initiating_entity"] = initiator(ev)
		return mapped{uri: EventCredentialChange, sub: user, members: m}, true, nil
	}
	switch e := e.(type) {
	case domain.SessionSignedOut, domain.SessionExpired:
		reason := ""
		entity := "policy"
		if so, ok := e.(domain.SessionSignedOut); ok {
			reason, entity = so.Reason, signOutEntity(so.Reason)
		} else {
			reason = e.(domain.SessionExpired).Reason
			entity = "system"
		}
		m["initiating_entity"] = entity
		if reason != "" {
			m["reason_admin"] = map[string]string{"en": reason}
		}
		sess := strings.TrimPrefix(ev.StreamID, domain.StreamPrefixSession)
		return mapped{uri: EventSessionRevoked, members: m,
			sub: &subject{Format: "complex", User: user, Session: &subject{Format: "opaque", ID: sess}}}, true, nil
	case domain.PasswordChanged, domain.PasswordResetCompleted:
		return credential("password", "update")
	case domain.TOTPDeviceConfirmed:
		return credential("app", "create")
	case domain.TOTPDeviceRemoved:
		return credential("app", "delete")
	case domain.PasskeyRegistered:
		return credential(fido2(e.BackupEligible), "create")
	case domain.PasskeyRemoved:
		platform := false
		if kind != nil {
			if platform, err = kind(ctx, account, e.PasskeyID); err != nil {
				return mapped{}, false, err
			}
		}
		return credential(fido2(platform), "delete")
	case domain.EmailChanged:
		// The new address is personal data (sealed in the log, erasable): a SET leaves Vigil
		// for good, so it names the change and the account, not the value.
		return mapped{uri: EventIdentifierChanged, sub: user, members: m}, true, nil
	case domain.AccountErased:
		return mapped{uri: EventAccountPurged, sub: user, members: m}, true, nil
	case domain.SuspiciousActivityReported:
		m["credential_type"] = "password"
		m["reason_admin"] = map[string]string{"en": "the account holder reported activity that was not theirs (" + e.Source + ")"}
		return mapped{uri: EventCredentialCompromise, sub: user, members: m}, true, nil
	}
	return mapped{}, false, nil
}

// typesMapped are the Vigil event types that become SETs.
var typesMapped = func() map[string]bool {
	out := map[string]bool{}
	for _, ts := range Mapping {
		for _, t := range ts {
			out[t] = true
		}
	}
	return out
}()

// fido2 is the credential_type of a passkey: backup-eligible (synced) passkeys live on the
// platform's account (iCloud Keychain, Google Password Manager), others on a roaming key.
func fido2(backupEligible bool) string {
	if backupEligible {
		return "fido2-platform"
	}
	return "fido2-roaming"
}

// signOutEntity is CAEP's initiating_entity of a sign-out reason.
func signOutEntity(reason string) string {
	switch reason {
	case "signed_out_by_admin", "account_erased":
		return "admin"
	case "delegation_ended":
		return "policy"
	}
	return "user" // logout, signed_out_by_user, password_changed, password_reset, reported_not_me
}

// initiator is CAEP's initiating_entity of a credential change.
func initiator(ev domain.Envelope) string {
	switch ev.Metadata.Actor.Type {
	case domain.ActorAdmin:
		return "admin"
	case domain.ActorSystem:
		return "system"
	}
	return "user"
}

// encodeSET builds and signs one SET.
func encodeSET(k *Keys, iss, aud, jti, txn string, now time.Time, m mapped) (string, error) {
	c := claims{Iss: iss, Aud: aud, Iat: now.Unix(), Jti: jti, Txn: txn, SubID: m.sub, Events: map[string]map[string]any{m.uri: m.members}}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return k.Sign(body)
}
