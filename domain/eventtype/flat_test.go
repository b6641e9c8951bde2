package eventtype_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/eventtype"
)

// flatProbe has a field of every kind FlatDecoder reads, with the tag forms events use.
type flatProbe struct {
	ID      string    `json:"id"`
	Client  string    `json:"client_id,omitempty"`
	Untaged string    // matched by its Go name
	Skipped string    `json:"-"`
	On      bool      `json:"on"`
	N       int64     `json:"n"`
	M       int       `json:"m,omitzero"`
	K       int32     `json:"k"`
	AMR     []string  `json:"amr"`
	At      time.Time `json:"at"`
	hidden  string    //nolint:unused // json ignores unexported fields; so must Decode
}

var flatProbeDecoder = eventtype.NewFlatDecoder(reflect.TypeFor[flatProbe]())

// checkFlat decodes data both ways and fails when FlatDecoder reports true for data that
// json.Unmarshal refuses or reads differently; it returns what Decode reported.
func checkFlat(t *testing.T, data string) bool {
	t.Helper()
	var fast flatProbe
	ok := flatProbeDecoder.Decode([]byte(data), &fast)
	if !ok {
		return false
	}
	var want flatProbe
	if err := json.Unmarshal([]byte(data), &want); err != nil {
		t.Fatalf("Decode accepted %q, json.Unmarshal refuses it: %v", data, err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("Decode(%q) = %#v, json.Unmarshal gives %#v", data, fast, want)
	}
	return true
}

func TestFlatDecoderIsJSONUnmarshal(t *testing.T) {
	if !flatProbeDecoder.Eligible() {
		t.Fatal("flatProbe should be eligible")
	}
	fast := []string{
		`{}`,
		` { } `,
		`{"id":"a"}`,
		`{"id":"","client_id":"c","Untaged":"u","on":true,"n":-12,"m":0,"k":2147483647,"amr":["pwd","otp"],"at":"2026-08-25T02:03:25.223334764Z"}`,
		"{ \"id\" :\t\"x\" ,\n\"on\"\r: false , \"amr\" : [ ] }",
		`{"amr":[]}`,
		`{"amr":[ "a" , "b" ]}`,
		`{"id":"São Paulo — 東京"}`,
		`{"n":-0}`,
		`{"at":"2026-08-25T04:03:25+02:00"}`,
	}
	for _, d := range fast {
		if !checkFlat(t, d) {
			t.Errorf("Decode(%q) reported false; the fast path should read it", d)
		}
	}
	// Each is either refused by json.Unmarshal or read by it in a way the fast path does not
	// copy (escapes, other casings, nulls, unknown members, duplicates): Decode must leave it.
	slow := []string{
		``, `[]`, `null`, `{`, `{"id":"a"`, `{"id":"a",}`, `{"id":"a"}x`, `{"id":"a"}{}`,
		`{"id":"a\"b"}`, `{"id":"a\u00e9"}`, `{"id":"\n"}`, "{\"id\":\"a\x01\"}", "{\"id\":\"\xff\"}",
		`{"ID":"a"}`, `{"untaged":"u"}`, `{"Skipped":"s"}`, `{"hidden":"h"}`, `{"other":1}`,
		`{"id":"a","id":"b"}`, `{"amr":["a"],"amr":["b"]}`,
		`{"id":null}`, `{"amr":null}`, `{"at":null}`, `{"on":null}`,
		`{"on":1}`, `{"on":"true"}`, `{"on":tru}`, `{"on":truex}`,
		`{"n":1.0}`, `{"n":1e3}`, `{"n":01}`, `{"n":-}`, `{"n":"1"}`, `{"n":9223372036854775808}`,
		`{"k":2147483648}`, `{"n":1x}`,
		`{"amr":["a",]}`, `{"amr":[1]}`, `{"amr":[["a"]]}`, `{"amr":"a"}`,
		`{"at":"yesterday"}`, `{"at":"[erased]"}`, `{"at":1}`,
		`{"id":{"a":1}}`, `{"id" "a"}`, `{id:"a"}`,
	}
	for _, d := range slow {
		if checkFlat(t, d) {
			t.Errorf("Decode(%q) reported true; it should leave this to json.Unmarshal", d)
		}
	}
}

func TestFlatDecoderRefusesWhatItCannotRead(t *testing.T) {
	type withBytes struct {
		Secret []byte `json:"secret"`
	}
	type withString struct {
		N int64 `json:"n,string"`
	}
	type inner struct{ A string }
	type embedded struct {
		inner
		B string `json:"b"`
	}
	type named string
	type withNamed struct {
		R named `json:"r"`
	}
	// Two fields under one name (encoding/json drops both), made at run time: go vet refuses
	// the literal struct.
	dup := reflect.StructOf([]reflect.StructField{
		{Name: "A", Type: reflect.TypeFor[string](), Tag: `json:"a"`},
		{Name: "B", Type: reflect.TypeFor[string](), Tag: `json:"a"`},
	})
	for _, typ := range []reflect.Type{
		reflect.TypeFor[withBytes](), reflect.TypeFor[withString](), reflect.TypeFor[embedded](),
		reflect.TypeFor[withNamed](), dup, reflect.TypeFor[map[string]string](),
	} {
		if eventtype.NewFlatDecoder(typ).Eligible() {
			t.Errorf("%v: eligible; Decode cannot read it as json.Unmarshal does", typ)
		}
	}
	// A pointer of another type, or a nil one, is refused, not written through.
	var other struct{ ID string }
	if flatProbeDecoder.Decode([]byte(`{"id":"a"}`), &other) || flatProbeDecoder.Decode([]byte(`{}`), (*flatProbe)(nil)) {
		t.Error("Decode wrote through a pointer that is not a *flatProbe")
	}
}

func FuzzFlatDecoder(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","on":true,"n":3,"amr":["pwd"],"at":"2026-08-25T02:03:25.223334764Z"}`,
		`{"Untaged":"u","k":-1,"m":7,"client_id":"c"}`, `{"amr":[]}`, `{"id":"\u00e9"}`, `{}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		checkFlat(t, data)
	})
}
