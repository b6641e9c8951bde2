package eventtype

import (
	"fmt"
	"maps"
	"slices"
)

// FieldClass says who may see one field of an event's data (DESIGN.md "Events"). Every field
// of every event type is declared once, with its schema version's registration (Register,
// RegisterUpcaster); a field that is not declared is FieldSecret.
type FieldClass uint8

// Field classes. The zero value is FieldSecret, so that anything not declared is withheld.
const (
	// FieldSecret never leaves the service: the audit API, the compliance stream, the
	// forwarders and the portal show "[redacted]" in its place. Credential material (password
	// hashes, token and backup code hashes, sealed secrets) is secret.
	FieldSecret FieldClass = iota
	// FieldPublic is shown to auditors and compliance streams as stored.
	FieldPublic
	// FieldPersonal is personal data (API.md "Personal data and erasure"): emails, names,
	// profile values, a typed sign-in identifier, the names people give devices and passkeys.
	// For now it is shown in clear like a public field; it is what gets sealed under the
	// account's data key and shown as "[erased]" after an erasure. (The IP address and the
	// user agent are personal too, but they travel in the envelope's Metadata, not in data.)
	FieldPersonal
)

// Erased is what a personal value reads as once its account's data key is destroyed (see
// FieldPersonal).
const Erased = "[erased]"

// String returns "secret", "public" or "personal".
func (c FieldClass) String() string {
	switch c {
	case FieldPublic:
		return "public"
	case FieldPersonal:
		return "personal"
	default:
		return "secret"
	}
}

// Fields declares the class of each top-level member of one schema version of an event's
// JSON data, keyed by JSON name: the argument of Register and RegisterUpcaster.
//
// The rule for nested values: a member's class covers its whole value. An object or an array
// under a public member is shown whole; under a secret member it is redacted whole (an array
// becomes an array of "[redacted]" of the same length, so that counts stay visible; anything
// else becomes the string "[redacted]"). There are no dotted paths: an event that needs a
// nested object with members of different classes splits them into separate top-level
// members (a new schema version if the event already exists).
type Fields map[string]FieldClass

// Declaration is the read-only declaration of one schema version of one event type (see
// Fields). The zero value declares nothing, so every member is secret. It is safe for
// concurrent use.
type Declaration struct {
	m map[string]FieldClass
}

// Class returns the declared class of the top-level member key; FieldSecret when key is not
// declared.
func (f Declaration) Class(key string) FieldClass {
	c, ok := f.m[key]
	if !ok {
		return FieldSecret
	}
	return c
}

// Declared reports whether key is declared (with any class, secret included).
func (f Declaration) Declared(key string) bool {
	_, ok := f.m[key]
	return ok
}

// Keys returns the declared member names, sorted.
func (f Declaration) Keys() []string { return slices.Sorted(maps.Keys(f.m)) }

// Count returns how many members are declared with class c.
func (f Declaration) Count(c FieldClass) int {
	n := 0
	for _, v := range f.m {
		if v == c {
			n++
		}
	}
	return n
}

func newDeclaration(eventType string, schemaVersion int, fs Fields) Declaration {
	if fs == nil {
		panic(registerHelp(eventType, schemaVersion, "registered without its Fields"))
	}
	m := make(map[string]FieldClass, len(fs))
	for k, c := range fs {
		if k == "" || c > FieldPersonal {
			panic(registerHelp(eventType, schemaVersion, "has a bad field declaration"))
		}
		m[k] = c
	}
	return Declaration{m: m}
}

// registerHelp is the message of a registration mistake: what is wrong and how to declare.
func registerHelp(eventType string, schemaVersion int, what string) string {
	return fmt.Sprintf(`eventtype: %s v%d %s: declare every JSON member of its data in the Fields of its registration, `+
		`e.g. r.Register("%s", %d, decoder, Fields{"account_id": FieldPublic, "email": FieldPersonal, `+
		`"token_hash": FieldSecret, "at": FieldPublic}) (Vigil's events: domain/registry.go) `+
		`(public: shown to auditors and streams; personal: API.md "Personal data and erasure"; secret: never leaves the service)`,
		eventType, schemaVersion, what, eventType, schemaVersion)
}
