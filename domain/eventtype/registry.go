// Package eventtype holds the machinery of an event registry: per event type and schema
// version, the decoder of its JSON data into a Go struct, the upcasters that lift older
// versions, and the class of every member of the data (public, personal or secret) that
// decides what may leave the service. Package domain fills its registry with Vigil's events;
// this package knows none of them.
//
// It depends on the standard library only, never on package domain: domain imports it.
package eventtype

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Event is what a Decoder returns: the Go struct of one event type (a domain.Event, whose
// type name is the one it is registered under). This package never looks inside it.
type Event = any

// ErrUnknown: an event's type or schema version has no decoder or upcaster.
// (domain.ErrUnknownEvent is this error.)
var ErrUnknown = errors.New("unknown event type or schema version")

// Decoder turns an event's JSON data of one schema version into its Go struct.
type Decoder func(data json.RawMessage) (Event, error)

// Upcaster rewrites the JSON data of one schema version into the next one (v -> v+1). Old
// events are never rewritten in the log; they are upcast when read.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

// Registry maps an event type name to its schema versions: a decoder per version that
// has a Go struct, and upcasters that lift older versions to one that has. Building one is
// not safe for concurrent use; a built registry is read-only and safe for concurrent use.
type Registry struct {
	types map[string]*registeredType
}

type registeredType struct {
	current   int
	decoders  map[int]Decoder
	upcasters map[int]Upcaster
	fields    map[int]Declaration // the declared data members of each stored schema version
}

// NewRegistry returns an empty registry. Vigil's own events are in package domain's
// registry (see domain.DecodeEvent).
func NewRegistry() *Registry {
	return &Registry{types: map[string]*registeredType{}}
}

func (r *Registry) entry(eventType string) *registeredType {
	t := r.types[eventType]
	if t == nil {
		t = &registeredType{decoders: map[int]Decoder{}, upcasters: map[int]Upcaster{}, fields: map[int]Declaration{}}
		r.types[eventType] = t
	}
	return t
}

// Catalog is what a Registry tells once every type is registered: the types, their
// current schema versions and the declared classes of their fields.
type Catalog interface {
	Types() []string
	CurrentVersion(eventType string) (int, bool)
	Fields(eventType string, schemaVersion int) (Declaration, bool)
}

// Register adds the decoder of one schema version (>= 1) of eventType, with the class of
// every member of that version's JSON data (public, secret or personal; see Fields for the
// rule on nested values). A member that fields does not name is secret: redacted wherever
// events leave the service. The highest registered version is the one new events are
// written with. Registering a version twice, or with nil fields, panics: registration is
// static program structure. domain's TestEveryEventFieldIsDeclared checks fields against
// the Go struct the decoder returns.
func (r *Registry) Register(eventType string, schemaVersion int, dec Decoder, fields Fields) {
	if schemaVersion < 1 || dec == nil {
		panic(fmt.Sprintf("eventtype: bad registration of %s v%d", eventType, schemaVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.decoders[schemaVersion]; dup {
		panic(fmt.Sprintf("eventtype: %s v%d registered twice", eventType, schemaVersion))
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
func (r *Registry) RegisterUpcaster(eventType string, fromVersion int, up Upcaster, fields Fields) {
	if fromVersion < 1 || up == nil {
		panic(fmt.Sprintf("eventtype: bad upcaster for %s v%d", eventType, fromVersion))
	}
	t := r.entry(eventType)
	if _, dup := t.upcasters[fromVersion]; dup {
		panic(fmt.Sprintf("eventtype: upcaster %s v%d registered twice", eventType, fromVersion))
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
	t.fields[schemaVersion] = newDeclaration(eventType, schemaVersion, fields)
}

// Fields returns the declared members of eventType's data as stored at schemaVersion, and
// false for a type or version that is not registered (whose data is then wholly secret).
func (r *Registry) Fields(eventType string, schemaVersion int) (Declaration, bool) {
	t := r.types[eventType]
	if t == nil {
		return Declaration{}, false
	}
	f, ok := t.fields[schemaVersion]
	return f, ok
}

// Versions returns the schema versions of eventType that have a declaration (a decoder or
// an upcaster), ascending; nil for an unknown type.
func (r *Registry) Versions(eventType string) []int {
	t := r.types[eventType]
	if t == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(t.fields))
}

// Decode returns the Go struct of an event's data. An unknown type, or a version with
// neither a decoder nor an upcaster chain to one, gives an error wrapping ErrUnknown;
// malformed JSON gives a decoding error.
func (r *Registry) Decode(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	t := r.types[eventType]
	if t == nil {
		return nil, fmt.Errorf("decode %q: %w", eventType, ErrUnknown)
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
			return nil, fmt.Errorf("decode %s v%d: %w", eventType, schemaVersion, ErrUnknown)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", eventType, v, err)
		}
		v++
	}
}

// CurrentVersion returns the schema version new events of eventType are written with.
func (r *Registry) CurrentVersion(eventType string) (int, bool) {
	t := r.types[eventType]
	if t == nil || t.current == 0 {
		return 0, false
	}
	return t.current, true
}

// Types returns every registered event type name, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.types))
	for name, t := range r.types {
		if t.current > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Decoder returns the decoder registered for eventType's schemaVersion, and false for a
// version that has none (an upcaster-only version, or an unknown type or version): for
// tests that check the declared fields against the decoded struct.
func (r *Registry) Decoder(eventType string, schemaVersion int) (Decoder, bool) {
	t := r.types[eventType]
	if t == nil || t.decoders[schemaVersion] == nil {
		return nil, false
	}
	return t.decoders[schemaVersion], true
}
