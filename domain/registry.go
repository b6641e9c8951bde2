package domain

import (
	"encoding/json"
	"fmt"
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
}

// NewEventRegistry returns an empty registry. Vigil's own events are in the package's
// registry (see DecodeEvent); this is for tests and tools.
func NewEventRegistry() *EventRegistry {
	return &EventRegistry{types: map[string]*registeredType{}}
}

func (r *EventRegistry) entry(eventType string) *registeredType {
	t := r.types[eventType]
	if t == nil {
		t = &registeredType{decoders: map[int]Decoder{}, upcasters: map[int]Upcaster{}}
		r.types[eventType] = t
	}
	return t
}

// Register adds the decoder of one schema version (>= 1) of eventType. The highest
// registered version is the one new events are written with. Registering a version twice
// panics: registration is static program structure.
func (r *EventRegistry) Register(eventType string, schemaVersion int, dec Decoder) {
	if schemaVersion < 1 || dec == nil {
		panic(fmt.Sprintf("domain: bad registration of %s v%d", eventType, schemaVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.decoders[schemaVersion]; dup {
		panic(fmt.Sprintf("domain: %s v%d registered twice", eventType, schemaVersion))
	}
	t.decoders[schemaVersion] = dec
	if schemaVersion > t.current {
		t.current = schemaVersion
	}
}

// RegisterUpcaster adds the hook that lifts eventType's data from fromVersion to
// fromVersion+1. Decode chains upcasters until it reaches a version with a decoder.
func (r *EventRegistry) RegisterUpcaster(eventType string, fromVersion int, up Upcaster) {
	if fromVersion < 1 || up == nil {
		panic(fmt.Sprintf("domain: bad upcaster for %s v%d", eventType, fromVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.upcasters[fromVersion]; dup {
		panic(fmt.Sprintf("domain: upcaster %s v%d registered twice", eventType, fromVersion))
	}
	t.upcasters[fromVersion] = up
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
// schema version -> decoder, plus the upcasters of older versions (none yet: every event is
// at version 1). A new schema version of an event adds a decoder (or an upcaster from the
// previous version) here.
func registerEvents(r *EventRegistry) *EventRegistry {
	// account-<id>
	r.Register(EventAccountRegistered, 1, decoderOf[AccountRegistered]())
	r.Register(EventEmailChanged, 1, decoderOf[EmailChanged]())
	r.Register(EventNameChanged, 1, decoderOf[NameChanged]())
	r.Register(EventProfileUpdated, 1, decoderOf[ProfileUpdated]())
	r.Register(EventPasswordChanged, 1, decoderOf[PasswordChanged]())
	r.Register(EventPasswordRehashed, 1, decoderOf[PasswordRehashed]())
	r.Register(EventTOTPDeviceAdded, 1, decoderOf[TOTPDeviceAdded]())
	r.Register(EventTOTPDeviceConfirmed, 1, decoderOf[TOTPDeviceConfirmed]())
	r.Register(EventTOTPDeviceRemoved, 1, decoderOf[TOTPDeviceRemoved]())
	r.Register(EventTOTPCodeAccepted, 1, decoderOf[TOTPCodeAccepted]())
	r.Register(EventBackupCodesGenerated, 1, decoderOf[BackupCodesGenerated]())
	r.Register(EventBackupCodeUsed, 1, decoderOf[BackupCodeUsed]())
	r.Register(EventPasskeyRegistered, 1, decoderOf[PasskeyRegistered]())
	r.Register(EventPasskeyRenamed, 1, decoderOf[PasskeyRenamed]())
	r.Register(EventPasskeyRemoved, 1, decoderOf[PasskeyRemoved]())
	r.Register(EventPasskeyCloneSuspected, 1, decoderOf[PasskeyCloneSuspected]())
	r.Register(EventPasskeyUsed, 1, decoderOf[PasskeyUsed]())
	r.Register(EventTwoFactorDisabled, 1, decoderOf[TwoFactorDisabled]())
	r.Register(EventRoleGranted, 1, decoderOf[RoleGranted]())
	r.Register(EventRoleRevoked, 1, decoderOf[RoleRevoked]())
	// account-<id> for known accounts, system-signin for unknown emails
	r.Register(EventLoginFailed, 1, decoderOf[LoginFailed]())
	// session-<id>
	r.Register(EventLoginSucceeded, 1, decoderOf[LoginSucceeded]())
	r.Register(EventSessionStarted, 1, decoderOf[SessionStarted]())
	r.Register(EventSessionAccessed, 1, decoderOf[SessionAccessed]())
	r.Register(EventReauthSucceeded, 1, decoderOf[ReauthSucceeded]())
	r.Register(EventSessionSignedOut, 1, decoderOf[SessionSignedOut]())
	r.Register(EventSessionExpired, 1, decoderOf[SessionExpired]())
	// system-email-<hash>
	r.Register(EventEmailReserved, 1, decoderOf[EmailReserved]())
	r.Register(EventEmailReleased, 1, decoderOf[EmailReleased]())
	// system-admin-bootstrap-<hash>
	r.Register(EventAdminBootstrapClaimed, 1, decoderOf[AdminBootstrapClaimed]())
	r.Register(EventAdminBootstrapGranted, 1, decoderOf[AdminBootstrapGranted]())
	// client-<id>
	r.Register(EventClientRegistered, 1, decoderOf[ClientRegistered]())
	// org-<id>, delegation-<id>
	registerOrgEvents(r)

	// system-servicetoken-<id>
	registerServiceTokenEvents(r)

	// system-webhook-<id>
	r.Register(EventWebhookRegistered, 1, decoderOf[WebhookRegistered]())
	r.Register(EventWebhookRemoved, 1, decoderOf[WebhookRemoved]())
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
