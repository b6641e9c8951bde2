package domain

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/vigil-auth/vigil/domain/eventtype"
)

// decoderOf is the decoder of an event struct: plain JSON, unknown fields ignored (a field
// added later is a compatible change; a changed meaning is a new schema version). The flat
// objects the log nearly always holds are read without encoding/json's reflection
// (eventtype.FlatDecoder: a rebuild decodes a million events); anything else, and any data
// the fast path is unsure of, goes to json.Unmarshal from a fresh zero value.
func decoderOf[E Event]() eventtype.Decoder {
	flat := eventtype.NewFlatDecoder(reflect.TypeFor[E]())
	return func(data json.RawMessage) (eventtype.Event, error) {
		var e E
		if flat.Decode(data, &e) {
			return e, nil
		}
		e = *new(E)
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// fields, public, personal and secret keep the registrations below short: each event type
// names every member of its data with its class (eventtype.Fields).
type fields = eventtype.Fields

const (
	public   = eventtype.FieldPublic
	personal = eventtype.FieldPersonal
	secret   = eventtype.FieldSecret
)

// registry is Vigil's event registry, filled once by registerEvents.
var registry = registerEvents(eventtype.NewRegistry())

// registerEvents is the one place where every event type is registered: type name ->
// schema version -> decoder and the class of every member of its data (public, secret,
// personal: DESIGN.md "Events"; see package eventtype), plus the upcasters of older versions (none yet: every event
// is at version 1). A new schema version of an event adds a decoder (or an upcaster from the
// previous version) here, with its Fields. A member left out of Fields is secret, and
// TestEveryEventFieldIsDeclared fails until it is declared.
func registerEvents(r *eventtype.Registry) *eventtype.Registry {
	// account-<id>
	r.Register(EventAccountRegistered, 1, decoderOf[AccountRegistered](), fields{
		"account_id": public, "email": personal, "first_name": personal,
		"last_name": personal, "password_hash": secret, "at": public,
	})
	r.Register(EventEmailChanged, 1, decoderOf[EmailChanged](), fields{
		"old_email": personal, "new_email": personal, "at": public,
	})
	r.Register(EventNameChanged, 1, decoderOf[NameChanged](), fields{
		"first_name": personal, "last_name": personal, "at": public,
	})
	r.Register(EventProfileUpdated, 1, decoderOf[ProfileUpdated](), fields{
		"profile": personal, "at": public,
	})
	r.Register(EventPasswordChanged, 1, decoderOf[PasswordChanged](), fields{
		"password_hash": secret, "at": public,
	})
	r.Register(eventPasswordRehashed, 1, decoderOf[PasswordRehashed](), fields{
		"password_hash": secret, "at": public,
	})
	r.Register(EventTOTPDeviceAdded, 1, decoderOf[TOTPDeviceAdded](), fields{
		"device_id": public, "name": personal, "secret": secret, "at": public,
	})
	r.Register(EventTOTPDeviceConfirmed, 1, decoderOf[TOTPDeviceConfirmed](), fields{
		"device_id": public, "step": public, "at": public,
	})
	r.Register(EventTOTPDeviceRemoved, 1, decoderOf[TOTPDeviceRemoved](), fields{
		"device_id": public, "at": public,
	})
	r.Register(EventTOTPCodeAccepted, 1, decoderOf[TOTPCodeAccepted](), fields{
		"device_id": public, "step": public, "purpose": public, "at": public,
	})
	r.Register(EventBackupCodesGenerated, 1, decoderOf[BackupCodesGenerated](), fields{
		"set_id": public, "code_hashes": secret, "at": public,
	})
	r.Register(EventBackupCodeUsed, 1, decoderOf[BackupCodeUsed](), fields{
		"set_id": public, "index": public, "purpose": public, "at": public,
	})
	r.Register(EventPasskeyRegistered, 1, decoderOf[PasskeyRegistered](), fields{
		"passkey_id": public, "name": personal, "credential_id": public,
		"public_key": public, "sign_count": public, "aaguid": public,
		"transports": public, "backup_eligible": public, "backup_state": public,
		"at": public,
	})
	r.Register(EventPasskeyRenamed, 1, decoderOf[PasskeyRenamed](), fields{
		"passkey_id": public, "name": personal, "at": public,
	})
	r.Register(EventPasskeyRemoved, 1, decoderOf[PasskeyRemoved](), fields{
		"passkey_id": public, "at": public,
	})
	r.Register(EventPasskeyCloneSuspected, 1, decoderOf[PasskeyCloneSuspected](), fields{
		"passkey_id": public, "stored_sign_count": public, "received_sign_count": public,
		"at": public,
	})
	r.Register(EventPasskeyUsed, 1, decoderOf[PasskeyUsed](), fields{
		"passkey_id": public, "sign_count": public, "backup_state": public,
		"at": public,
	})
	r.Register(EventTwoFactorDisabled, 1, decoderOf[TwoFactorDisabled](), fields{
		"reason": public, "at": public,
	})
	r.Register(EventRoleGranted, 1, decoderOf[RoleGranted](), fields{"role": public, "at": public})
	r.Register(EventRoleRevoked, 1, decoderOf[RoleRevoked](), fields{"role": public, "at": public})
	r.Register(EventAccountErased, 1, decoderOf[AccountErased](), fields{"at": public})
	r.Register(EventEmailVerificationRequested, 1, decoderOf[EmailVerificationRequested](), fields{
		"request_id": public, "email": personal, "token_hash": secret, "at": public,
	})
	r.Register(EventEmailVerified, 1, decoderOf[EmailVerified](), fields{
		"request_id": public, "email": personal, "at": public,
	})
	r.Register(EventPasswordResetRequested, 1, decoderOf[PasswordResetRequested](), fields{
		"request_id": public, "token_hash": secret, "at": public,
	})
	r.Register(EventPasswordResetCompleted, 1, decoderOf[PasswordResetCompleted](), fields{
		"request_id": public, "password_hash": secret, "at": public,
	})
	r.Register(EventSignInRiskDetected, 1, decoderOf[SignInRiskDetected](), fields{
		"session_id": public, "login_event_id": public, "signals": public,
		"device": personal, "country": personal, "previous_country": personal,
		"speed_kmh": public, "at": public,
	})
	r.Register(EventSuspiciousActivityReported, 1, decoderOf[SuspiciousActivityReported](), fields{
		"event_id": public, "source": public, "at": public,
	})
	// account-<id> for known accounts, system-signin for unknown emails
	r.Register(EventLoginFailed, 1, decoderOf[LoginFailed](), fields{
		"reason": public, "stage": public, "method": public,
		"attempted_email": personal, "session_id": public, "retry_after_ms": public,
		"at": public,
	})
	// session-<id>
	r.Register(EventLoginSucceeded, 1, decoderOf[LoginSucceeded](), fields{
		"account_id": public, "session_id": public, "method": public, "amr": public,
		"aal": public, "client_id": public, "at": public,
	})
	r.Register(EventSessionStarted, 1, decoderOf[SessionStarted](), fields{
		"session_id": public, "account_id": public, "actor_account_id": public,
		"delegation_id": public, "token_hash": secret, "client_id": public,
		"amr": public, "aal": public, "restricted": public, "started_at": public,
		"expires_at": public, "idle_timeout_seconds": public,
	})
	r.Register(EventSessionAccessed, 1, decoderOf[SessionAccessed](), fields{"at": public})
	r.Register(EventReauthSucceeded, 1, decoderOf[ReauthSucceeded](), fields{
		"method": public, "amr": public, "aal": public, "at": public,
	})
	r.Register(EventSessionSignedOut, 1, decoderOf[SessionSignedOut](), fields{
		"reason": public, "at": public,
	})
	r.Register(EventSessionExpired, 1, decoderOf[SessionExpired](), fields{
		"reason": public, "at": public,
	})
	// system-email-<hash>
	r.Register(EventEmailReserved, 1, decoderOf[EmailReserved](), fields{
		"account_id": public, "at": public,
	})
	r.Register(eventEmailReleased, 1, decoderOf[EmailReleased](), fields{
		"account_id": public, "at": public,
	})
	// system-admin-bootstrap-<hash>
	r.Register(EventAdminBootstrapClaimed, 1, decoderOf[AdminBootstrapClaimed](), fields{
		"account_id": public, "at": public,
	})
	r.Register(EventAdminBootstrapGranted, 1, decoderOf[AdminBootstrapGranted](), fields{
		"account_id": public, "at": public,
	})
	// client-<id>
	r.Register(EventClientRegistered, 1, decoderOf[ClientRegistered](), fields{
		"client_id": public, "name": public, "at": public,
	})
	// org-<id>, delegation-<id>
	registerOrgEvents(r)

	// system-servicetoken-<id>
	registerServiceTokenEvents(r)

	// system-webhook-<id>
	r.Register(EventWebhookRegistered, 1, decoderOf[WebhookRegistered](), fields{
		"webhook_id": public, "url": public, "secret": secret, "at": public,
	})
	r.Register(EventWebhookRemoved, 1, decoderOf[WebhookRemoved](), fields{
		"webhook_id": public, "at": public,
	})
	// system-ssf-stream-<id>
	r.Register(EventSSFStreamChanged, 1, decoderOf[SSFStreamChanged](), fields{
		"stream_id": public, "change": public, "aud": public, "delivery_method": public, "endpoint_url": public,
		"events_requested": public, "description": public, "status": public, "reason": public, "state": public, "at": public,
	})
	return r
}

// DecodeEvent returns the Go struct of a stored event, upcasting older schema versions. It
// is safe for concurrent use. Errors wrap ErrUnknownEvent for a type or version Vigil does
// not know.
//
// A personal member of an erased account reads as the JSON string "[erased]" whatever its
// type was (API.md "Personal data and erasure"): a string field then holds "[erased]", and a
// member of another type (an object, a number) decodes as its zero value, so that replays
// and rebuilds of an erased account's stream go on.
func DecodeEvent(env Envelope) (Event, error) {
	e, err := registry.Decode(env.Type, env.SchemaVersion, env.Data)
	if err != nil {
		data, ok := withoutErased(env.Data)
		if !ok {
			return nil, err
		}
		if e, err = registry.Decode(env.Type, env.SchemaVersion, data); err != nil {
			return nil, err
		}
	}
	ev, ok := e.(Event)
	if !ok { // every decoder is a decoderOf an Event
		return nil, fmt.Errorf("%s v%d decodes to %T, not an event: %w", env.Type, env.SchemaVersion, e, ErrUnknownEvent)
	}
	return ev, nil
}

// withoutErased returns data with every top-level member whose value is the string
// "[erased]" set to null, and whether there was one.
func withoutErased(data json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil, false
	}
	found := false
	for k, v := range m {
		if string(v) == `"`+eventtype.Erased+`"` {
			m[k], found = json.RawMessage("null"), true
		}
	}
	if !found {
		return nil, false
	}
	out, err := json.Marshal(m)
	return out, err == nil
}

// checkNext refuses env unless it is the event after version in the stream of kind id.
func checkNext(kind, id string, version uint64, env Envelope) error {
	if env.Version != version+1 {
		return fmt.Errorf("%s %s: event version %d after %d: stream gap", kind, id, env.Version, version)
	}
	return nil
}

// decodeNext decodes env, which must continue the stream of the aggregate kind id after
// version (else a stream gap): the first step of every aggregate's replay.
func decodeNext(kind, id string, version uint64, env Envelope) (Event, error) {
	if err := checkNext(kind, id, version, env); err != nil {
		return nil, err
	}
	e, err := DecodeEvent(env)
	if err != nil {
		return nil, fmt.Errorf("%s %s v%d: %w", kind, id, env.Version, err)
	}
	return e, nil
}

// Catalog is the read-only view of the event registry: the name of every event type Vigil
// writes (Types, sorted), the schema version new events of a type are written with
// (CurrentVersion; false for an unknown type), and the declared class of every member of a
// type's data as stored at a schema version (Fields; false for a type or version Vigil does
// not know: such data must be treated as wholly secret). It is safe for concurrent use.
// Everything that shows event data outside the service (audit API, compliance stream,
// forwarders, portal) redacts through Fields (domain/export.Redact).
func Catalog() eventtype.Catalog { return registry }

// EncodeEvent turns a decided event into EventData with its current schema version.
func EncodeEvent(e Event, md Metadata) (EventData, error) {
	v, ok := registry.CurrentVersion(e.eventType())
	if !ok {
		return EventData{}, fmt.Errorf("encode %q: %w", e.eventType(), ErrUnknownEvent)
	}
	return NewEventData(e.eventType(), v, e, md)
}
