package sealed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
)

// memKeys is an in-memory KeyStore for the fuzz target.
type memKeys map[string][]byte

func (m memKeys) Key(_ context.Context, id string, create bool) ([]byte, error) {
	if k, ok := m[id]; ok {
		return bytes.Clone(k), nil
	}
	return nil, ErrKeyNotFound
}
func (m memKeys) Destroy(context.Context, ...string) error { return nil }
func (m memKeys) Close() error                             { return nil }

// FuzzOpenSealed feeds arbitrary strings to the parser and the opener: they never panic, a
// parsed value is well formed, and anything that is not a value this package sealed for that
// event and member is an error (tampering or an unknown key), never an opened value.
func FuzzOpenSealed(f *testing.F) {
	key := bytes.Repeat([]byte{1}, KeySize)
	aead, _ := newAEAD(key)
	good := sealValue(aead, "account-a", "ev-1", kindData, "email", []byte(`"a@example.com"`))
	for _, s := range []string{good, Prefix, Prefix + "account-a:", Prefix + "x:AAAA", Prefix + ":abc", Prefix + "a:b:c",
		strings.Replace(good, "account-a", "account-b", 1), good[:len(good)-1], Prefix + "account-a:" + strings.Repeat("A", 40)} {
		f.Add(s)
	}
	s, _ := New(nopStore{}, Config{Keys: memKeys{"account-a": key}, Personal: func(string, int) []string { return nil },
		Owner: func(domain.EventData, string) (string, bool) { return "", false }})
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseSealed(in)
		if err == nil {
			if !ValidKeyID(v.keyID) || (len(v.payload) != 0 && len(v.payload) < nonceSize+tagSize) {
				t.Fatalf("parsed %q into %+v", in, v)
			}
		}
		if !strings.HasPrefix(in, Prefix) {
			return
		}
		e := &domain.Envelope{ID: "ev-1"}
		plain, err := s.openString(context.Background(), e, kindData, "email", in)
		switch {
		case err != nil:
			if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("open %q: unexpected error %v", in, err)
			}
		case plain == nil: // erased on arrival
			if v.keyID == "" || len(v.payload) != 0 {
				t.Fatalf("open %q: erased, but it parses as %+v", in, v)
			}
		case string(plain) != `"a@example.com"`:
			t.Fatalf("open %q gave %q", in, plain)
		}
	})
}

func TestSealRoundTripAndFormat(t *testing.T) {
	key := bytes.Repeat([]byte{2}, KeySize)
	aead, _ := newAEAD(key)
	s := sealValue(aead, "identifier-0123", "ev", kindMetadata, "ip", []byte(`"192.0.2.1"`))
	if !strings.HasPrefix(s, Prefix+"identifier-0123:") || strings.ContainsAny(s, `"\=+/`) {
		t.Fatalf("sealed form %q", s)
	}
	v, err := parseSealed(s)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := openValue(aead, v, "ev", kindMetadata, "ip"); err != nil || string(p) != `"192.0.2.1"` {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := openValue(aead, v, "ev", kindData, "ip"); err == nil {
		t.Fatal("a metadata value opened as a data member")
	}
}

// FuzzObjectMembers checks the hand-written member scanner against encoding/json on every
// valid JSON input, and that it never panics on the rest.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{`{}`, ` { "a" : 1 , "b":[1,{"c":"}"}] ,"\u0041":"x\"y"} `, `{"a":null,"a":true}`, `[1]`, `{"a":}`, `"s"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := objectMembers([]byte(in))
		if !json.Valid([]byte(in)) {
			return
		}
		dec := json.NewDecoder(strings.NewReader(in))
		tok, _ := dec.Token()
		if tok != json.Delim('{') {
			if ok {
				t.Fatalf("%q: scanned as an object", in)
			}
			return
		}
		var want []member
		for dec.More() {
			k, _ := dec.Token()
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			want = append(want, member{k.(string), v})
		}
		if !ok || len(got) != len(want) {
			t.Fatalf("%q: scanned %v (%v), want %v", in, got, ok, want)
		}
		for i := range got {
			if got[i].name != want[i].name || !bytes.Equal(got[i].value, want[i].value) {
				t.Fatalf("%q: member %d = %q %s, want %q %s", in, i, got[i].name, got[i].value, want[i].name, want[i].value)
			}
		}
	})
}
