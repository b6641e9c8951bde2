package domain

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Event is a domain event: one Go struct per event type, declared with its aggregate's other
// events. EventType returns its past-tense PascalCase name, which is also the envelope's
// Type and the public name in API.md.
type Event interface {
	EventType() string
}

// Decoder turns an event's JSON data of one schema version into its Go struct.
type Decoder func(data json.RawMessage) (Event, error)

// Upcaster rewrites the JSON data of one schema version into the next one (v -> v+1). Old
// events are never rewritten in the log; they are upcast when read.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

// EventRegistry maps an event type name to its schema versions: a decoder per version that
// has a Go struct, and upcasters that lift older versions to one that has. Building one is
// not safe for concurrent use; a built registry is read-only and safe for concurrent use.
type EventRegistry struct {
	types map[string]*registeredType
}

type registeredType struct {
	current   int
	decoders  map[int]Decoder
	upcasters map[int]Upcaster
	fields    map[int]EventFields // the declared data members of each stored schema version
}

// NewEventRegistry returns an empty registry. Vigil's own events are in the package's
// registry (see DecodeEvent); this is for tests and tools.
func NewEventRegistry() *EventRegistry {
	return &EventRegistry{types: map[string]*registeredType{}}
}

func (r *EventRegistry) entry(eventType string) *registeredType {
	t := r.types[eventType]
	if t == nil {
		t = &registeredType{decoders: map[int]Decoder{}, upcasters: map[int]Upcaster{}, fields: map[int]EventFields{}}
		r.types[eventType] = t
	}
	return t
}

// Register adds the decoder of one schema version (>= 1) of eventType, with the class of
// every member of that version's JSON data (public, secret or personal; see Fields for the
// rule on nested values). A member that fields does not name is secret: redacted wherever
// events leave the service. The highest registered version is the one new events are
// written with. Registering a version twice, or with nil fields, panics: registration is
// static program structure. TestEveryEventFieldIsDeclared checks fields against the Go
// struct the decoder returns.
func (r *EventRegistry) Register(eventType string, schemaVersion int, dec Decoder, fields Fields) {
	if schemaVersion < 1 || dec == nil {
		panic(fmt.Sprintf("domain: bad registration of %s v%d", eventType, schemaVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.decoders[schemaVersion]; dup {
		panic(fmt.Sprintf("domain: %s v%d registered twice", eventType, schemaVersion))
	}
	t.declare(eventType, schemaVersion, fields)
	t.decoders[schemaVersion] = dec
	if schemaVersion > t.current {
		t.current = schemaVersion
	}
}

// RegisterUpcaster adds the hook that lifts eventType's data from fromVersion to
// fromVersion+1. Decode chains upcasters until it reaches a version with a decoder.
//
// fields declares the members of fromVersion's data as stored (events are redacted in the
// shape they were written in, not upcast), as for Register. A version that has a decoder
// too declares its fields there and passes nil here; otherwise nil fields panic.
func (r *EventRegistry) RegisterUpcaster(eventType string, fromVersion int, up Upcaster, fields Fields) {
	if fromVersion < 1 || up == nil {
		panic(fmt.Sprintf("domain: bad upcaster for %s v%d", eventType, fromVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.upcasters[fromVersion]; dup {
		panic(fmt.Sprintf("domain: upcaster %s v%d registered twice", eventType, fromVersion))
	}
	if _, declared := t.fields[fromVersion]; !declared || fields != nil {
		t.declare(eventType, fromVersion, fields)
	}
	t.upcasters[fromVersion] = up
}

// declare records the fields of one version; declaring a version's fields twice panics.
func (t *registeredType) declare(eventType string, schemaVersion int, fields Fields) {
	if _, dup := t.fields[schemaVersion]; dup {
		panic(registerHelp(eventType, schemaVersion, "has its Fields declared twice (once per version, with its decoder or else its upcaster)"))
	}
	t.fields[schemaVersion] = newEventFields(eventType, schemaVersion, fields)
}

// Fields returns the declared members of eventType's data as stored at schemaVersion, and
// false for a type or version that is not registered (whose data is then wholly secret).
func (r *EventRegistry) Fields(eventType string, schemaVersion int) (EventFields, bool) {
	t := r.types[eventType]
	if t == nil {
		return EventFields{}, false
	}
	f, ok := t.fields[schemaVersion]
	return f, ok
}

// Versions returns the schema versions of eventType that have a declaration (a decoder or
// an upcaster), ascending; nil for an unknown type.
func (r *EventRegistry) Versions(eventType string) []int {
	t := r.types[eventType]
	if t == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(t.fields))
}

// Decode returns the Go struct of an event's data. An unknown type, or a version with
// neither a decoder nor an upcaster chain to one, gives an error wrapping ErrUnknownEvent;
// malformed JSON gives a decoding error.
func (r *EventRegistry) Decode(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	t := r.types[eventType]
	if t == nil {
		return nil, fmt.Errorf("decode %q: %w", eventType, ErrUnknownEvent)
	}
	v := schemaVersion
	for {
		if dec := t.decoders[v]; dec != nil {
			e, err := dec(data)
			if err != nil {
				return nil, fmt.Errorf("decode %s v%d: %w", eventType, v, err)
			}
			return e, nil
		}
		up := t.upcasters[v]
		if up == nil || v >= t.current {
			return nil, fmt.Errorf("decode %s v%d: %w", eventType, schemaVersion, ErrUnknownEvent)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", eventType, v, err)
		}
		v++
	}
}

// CurrentVersion returns the schema version new events of eventType are written with.
func (r *EventRegistry) CurrentVersion(eventType string) (int, bool) {
	t := r.types[eventType]
	if t == nil || t.current == 0 {
		return 0, false
	}
	return t.current, true
}

// Types returns every registered event type name, sorted.
func (r *EventRegistry) Types() []string {
	out := make([]string, 0, len(r.types))
	for name, t := range r.types {
		if t.current > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// decoderOf is the decoder of an event struct: plain JSON, unknown fields ignored (a field
// added later is a compatible change; a changed meaning is a new schema version).
func decoderOf[E Event]() Decoder {
	return func(data json.RawMessage) (Event, error) {
		var e E
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// registry is Vigil's event registry, filled once by registerEvents.
var registry = registerEvents(NewEventRegistry())

// registerEvents is the one place where every event type is registered: type name ->
// schema version -> decoder and the class of every member of its data (public, secret,
// personal: DESIGN.md "Events"), plus the upcasters of older versions (none yet: every event
// is at version 1). A new schema version of an event adds a decoder (or an upcaster from the
// previous version) here, with its Fields. A member left out of Fields is secret, and
// TestEveryEventFieldIsDeclared fails until it is declared.
func registerEvents(r *EventRegistry) *EventRegistry {
	// account-<id>
	r.Register(EventAccountRegistered, 1, decoderOf[AccountRegistered](), Fields{
		"account_id": FieldPublic, "email": FieldPersonal, "first_name": FieldPersonal,
		"last_name": FieldPersonal, "password_hash": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventEmailChanged, 1, decoderOf[EmailChanged](), Fields{
		"old_email": FieldPersonal, "new_email": FieldPersonal, "at": FieldPublic,
	})
	r.Register(EventNameChanged, 1, decoderOf[NameChanged](), Fields{
		"first_name": FieldPersonal, "last_name": FieldPersonal, "at": FieldPublic,
	})
	r.Register(EventProfileUpdated, 1, decoderOf[ProfileUpdated](), Fields{
		"profile": FieldPersonal, "at": FieldPublic,
	})
	r.Register(EventPasswordChanged, 1, decoderOf[PasswordChanged](), Fields{
		"password_hash": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventPasswordRehashed, 1, decoderOf[PasswordRehashed](), Fields{
		"password_hash": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventTOTPDeviceAdded, 1, decoderOf[TOTPDeviceAdded](), Fields{
		"device_id": FieldPublic, "name": FieldPersonal, "secret": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventTOTPDeviceConfirmed, 1, decoderOf[TOTPDeviceConfirmed](), Fields{
		"device_id": FieldPublic, "step": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventTOTPDeviceRemoved, 1, decoderOf[TOTPDeviceRemoved](), Fields{
		"device_id": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventTOTPCodeAccepted, 1, decoderOf[TOTPCodeAccepted](), Fields{
		"device_id": FieldPublic, "step": FieldPublic, "purpose": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventBackupCodesGenerated, 1, decoderOf[BackupCodesGenerated](), Fields{
		"set_id": FieldPublic, "code_hashes": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventBackupCodeUsed, 1, decoderOf[BackupCodeUsed](), Fields{
		"set_id": FieldPublic, "index": FieldPublic, "purpose": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventPasskeyRegistered, 1, decoderOf[PasskeyRegistered](), Fields{
		"passkey_id": FieldPublic, "name": FieldPersonal, "credential_id": FieldPublic,
		"public_key": FieldPublic, "sign_count": FieldPublic, "aaguid": FieldPublic,
		"transports": FieldPublic, "backup_eligible": FieldPublic, "backup_state": FieldPublic,
		"at": FieldPublic,
	})
	r.Register(EventPasskeyRenamed, 1, decoderOf[PasskeyRenamed](), Fields{
		"passkey_id": FieldPublic, "name": FieldPersonal, "at": FieldPublic,
	})
	r.Register(EventPasskeyRemoved, 1, decoderOf[PasskeyRemoved](), Fields{
		"passkey_id": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventPasskeyCloneSuspected, 1, decoderOf[PasskeyCloneSuspected](), Fields{
		"passkey_id": FieldPublic, "stored_sign_count": FieldPublic, "received_sign_count": FieldPublic,
		"at": FieldPublic,
	})
	r.Register(EventPasskeyUsed, 1, decoderOf[PasskeyUsed](), Fields{
		"passkey_id": FieldPublic, "sign_count": FieldPublic, "backup_state": FieldPublic,
		"at": FieldPublic,
	})
	r.Register(EventTwoFactorDisabled, 1, decoderOf[TwoFactorDisabled](), Fields{
		"reason": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventRoleGranted, 1, decoderOf[RoleGranted](), Fields{"role": FieldPublic, "at": FieldPublic})
	r.Register(EventRoleRevoked, 1, decoderOf[RoleRevoked](), Fields{"role": FieldPublic, "at": FieldPublic})
	// account-<id> for known accounts, system-signin for unknown emails
	r.Register(EventLoginFailed, 1, decoderOf[LoginFailed](), Fields{
		"reason": FieldPublic, "stage": FieldPublic, "method": FieldPublic,
		"attempted_email": FieldPersonal, "session_id": FieldPublic, "retry_after_ms": FieldPublic,
		"at": FieldPublic,
	})
	// session-<id>
	r.Register(EventLoginSucceeded, 1, decoderOf[LoginSucceeded](), Fields{
		"account_id": FieldPublic, "session_id": FieldPublic, "method": FieldPublic, "amr": FieldPublic,
		"aal": FieldPublic, "client_id": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventSessionStarted, 1, decoderOf[SessionStarted](), Fields{
		"session_id": FieldPublic, "account_id": FieldPublic, "actor_account_id": FieldPublic,
		"delegation_id": FieldPublic, "token_hash": FieldSecret, "client_id": FieldPublic,
		"amr": FieldPublic, "aal": FieldPublic, "restricted": FieldPublic, "started_at": FieldPublic,
		"expires_at": FieldPublic, "idle_timeout_seconds": FieldPublic,
	})
	r.Register(EventSessionAccessed, 1, decoderOf[SessionAccessed](), Fields{"at": FieldPublic})
	r.Register(EventReauthSucceeded, 1, decoderOf[ReauthSucceeded](), Fields{
		"method": FieldPublic, "amr": FieldPublic, "aal": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventSessionSignedOut, 1, decoderOf[SessionSignedOut](), Fields{
		"reason": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventSessionExpired, 1, decoderOf[SessionExpired](), Fields{
		"reason": FieldPublic, "at": FieldPublic,
	})
	// system-email-<hash>
	r.Register(EventEmailReserved, 1, decoderOf[EmailReserved](), Fields{
		"account_id": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventEmailReleased, 1, decoderOf[EmailReleased](), Fields{
		"account_id": FieldPublic, "at": FieldPublic,
	})
	// system-admin-bootstrap-<hash>
	r.Register(EventAdminBootstrapClaimed, 1, decoderOf[AdminBootstrapClaimed](), Fields{
		"account_id": FieldPublic, "at": FieldPublic,
	})
	r.Register(EventAdminBootstrapGranted, 1, decoderOf[AdminBootstrapGranted](), Fields{
		"account_id": FieldPublic, "at": FieldPublic,
	})
	// client-<id>
	r.Register(EventClientRegistered, 1, decoderOf[ClientRegistered](), Fields{
		"client_id": FieldPublic, "name": FieldPublic, "at": FieldPublic,
	})
	// org-<id>, delegation-<id>
	registerOrgEvents(r)

	// system-servicetoken-<id>
	registerServiceTokenEvents(r)

	// system-webhook-<id>
	r.Register(EventWebhookRegistered, 1, decoderOf[WebhookRegistered](), Fields{
		"webhook_id": FieldPublic, "url": FieldPublic, "secret": FieldSecret, "at": FieldPublic,
	})
	r.Register(EventWebhookRemoved, 1, decoderOf[WebhookRemoved](), Fields{
		"webhook_id": FieldPublic, "at": FieldPublic,
	})
	return r
}

// DecodeEvent returns the Go struct of a stored event, upcasting older schema versions. It
// is safe for concurrent use. Errors wrap ErrUnknownEvent for a type or version Vigil does
// not know.
func DecodeEvent(env Envelope) (Event, error) {
	return registry.Decode(env.Type, env.SchemaVersion, env.Data)
}

// EventTypes returns the name of every event type Vigil writes, sorted.
func EventTypes() []string { return registry.Types() }

// EventDataFields returns the declared class of every member of eventType's data as stored
// at schemaVersion (see Fields), and false for a type or version Vigil does not know: such
// data must be treated as wholly secret. It is safe for concurrent use. Everything that shows
// event data outside the service (audit API, compliance stream, forwarders, portal) redacts
// through it (domain/export.Redact).
func EventDataFields(eventType string, schemaVersion int) (EventFields, bool) {
	return registry.Fields(eventType, schemaVersion)
}

// EventSchemaVersion returns the schema version new events of eventType are written with;
// false for an unknown type.
func EventSchemaVersion(eventType string) (int, bool) { return registry.CurrentVersion(eventType) }

// encodeEvent turns a decided event into EventData with its current schema version.
func encodeEvent(e Event, md Metadata) (EventData, error) {
	v, ok := registry.CurrentVersion(e.EventType())
	if !ok {
		return EventData{}, fmt.Errorf("encode %q: %w", e.EventType(), ErrUnknownEvent)
	}
	return NewEventData(e.EventType(), v, e, md)
}

func encodeEvents(events []Event, md Metadata) ([]EventData, error) {
	out := make([]EventData, 0, len(events))
	for _, e := range events {
		d, err := encodeEvent(e, md)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
