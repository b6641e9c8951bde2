package domain

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain/eventtype"
	"github.com/vigil-auth/vigil/domain/internal/eventsample"
)

// TestEveryEventFieldIsDeclared is what makes redaction deny-by-default safe to live with:
// for every registered event type and every schema version with a Go struct, it fills every
// field of the struct, marshals it and checks that each JSON member the struct can produce
// is declared public, secret or personal in the registration, and that nothing declared is
// missing from the struct (a typo would leave the real member undeclared).
func TestEveryEventFieldIsDeclared(t *testing.T) {
	for _, name := range registry.Types() {
		for _, v := range registry.Versions(name) {
			fields, ok := registry.Fields(name, v)
			if !ok {
				t.Errorf("%s v%d: no Fields", name, v)
				continue
			}
			dec, ok := registry.Decoder(name, v)
			if !ok {
				continue // an upcaster-only version: its Fields describe stored data that has no struct
			}
			zero, err := dec(json.RawMessage(`{}`))
			if err != nil {
				t.Errorf("%s v%d: decoding {}: %v", name, v, err)
				continue
			}
			f := &eventsample.Filler{}
			sample, err := f.Of(zero)
			if err != nil {
				t.Errorf("%s v%d: %v", name, v, err)
				continue
			}
			data, err := json.Marshal(sample)
			if err != nil {
				t.Errorf("%s v%d: marshal sample: %v", name, v, err)
				continue
			}
			members, err := eventsample.Members(data)
			if err != nil {
				t.Errorf("%s v%d: %v", name, v, err)
				continue
			}
			produced := map[string]bool{}
			for _, k := range members {
				produced[k] = true
				if !fields.Declared(k) {
					t.Errorf("%s v%d: JSON member %q (struct %T) is not declared, so it is redacted as secret everywhere. %s",
						name, v, k, zero, declareHint(name, v, k))
				}
			}
			for _, k := range fields.Keys() {
				if !produced[k] {
					t.Errorf("%s v%d: Fields declares %q but struct %T has no such JSON member (typo? renamed field?); it produces %v",
						name, v, k, zero, members)
				}
			}
		}
	}
}

func declareHint(eventType string, v int, key string) string {
	return fmt.Sprintf(`Declare it in the fields of r.Register(Event%s, %d, ...) (domain/registry.go, or the aggregate's register function): `+
		`"%s": public (shown to auditors and streams), personal (email, names, profile, typed identifiers, device and passkey names) `+
		`or secret (credential material; never leaves the service).`, eventType, v, key)
}

func TestFieldsDefaultToSecret(t *testing.T) {
	f, ok := Catalog().Fields(EventAccountRegistered, 1)
	if !ok {
		t.Fatal("AccountRegistered v1 has no fields")
	}
	for k, want := range map[string]eventtype.FieldClass{"account_id": eventtype.FieldPublic, "email": eventtype.FieldPersonal, "password_hash": eventtype.FieldSecret,
		"no_such_member": eventtype.FieldSecret} {
		if got := f.Class(k); got != want {
			t.Errorf("Class(%q) = %v, want %v", k, got, want)
		}
	}
	if f.Declared("no_such_member") || !f.Declared("password_hash") {
		t.Error("Declared")
	}
	if _, ok := Catalog().Fields(EventAccountRegistered, 99); ok {
		t.Error("unknown version has fields")
	}
	if _, ok := Catalog().Fields("NoSuchEvent", 1); ok {
		t.Error("unknown type has fields")
	}
	var zero eventtype.Declaration
	if zero.Class("at") != eventtype.FieldSecret {
		t.Error("zero eventtype.Declaration is not all secret")
	}
}

func TestRegisterWithoutFieldsPanicsWithHowToDeclare(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  func(r *eventtype.Registry)
	}{
		{"nil fields", func(r *eventtype.Registry) { r.Register("Thing", 1, decoderOf[NameChanged](), nil) }},
		{"nil upcaster fields", func(r *eventtype.Registry) {
			r.RegisterUpcaster("Thing", 1, func(d json.RawMessage) (json.RawMessage, error) { return d, nil }, nil)
		}},
		{"declared twice", func(r *eventtype.Registry) {
			r.Register("Thing", 1, decoderOf[NameChanged](), eventtype.Fields{"at": eventtype.FieldPublic})
			r.RegisterUpcaster("Thing", 1, func(d json.RawMessage) (json.RawMessage, error) { return d, nil }, eventtype.Fields{"at": eventtype.FieldPublic})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "Thing v1") || !strings.Contains(msg, "FieldPublic") {
					t.Errorf("panic %q does not say how to declare", msg)
				}
			}()
			tc.reg(eventtype.NewRegistry())
		})
	}
	// A version with a decoder declares there; its upcaster may pass nil.
	r := eventtype.NewRegistry()
	r.Register("Thing", 1, decoderOf[NameChanged](), eventtype.Fields{"at": eventtype.FieldPublic})
	r.RegisterUpcaster("Thing", 1, func(d json.RawMessage) (json.RawMessage, error) { return d, nil }, nil)
}
