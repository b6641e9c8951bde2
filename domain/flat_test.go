package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/eventtype"
)

// filled returns a value of t with every field set to something other than its zero value.
func filled(t *testing.T, typ reflect.Type) reflect.Value {
	t.Helper()
	v := reflect.New(typ).Elem()
	at := time.Date(2026, 8, 25, 2, 3, 25, 223334764, time.UTC)
	for i := range typ.NumField() {
		f := v.Field(i)
		if !typ.Field(i).IsExported() {
			continue
		}
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(at.Add(time.Duration(i) * time.Hour)))
		case f.Kind() == reflect.String:
			f.SetString(typ.Field(i).Name + " São Paulo")
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(int64(i + 40))
		case f.Type() == reflect.TypeFor[[]string]():
			f.Set(reflect.ValueOf([]string{"pwd", "otp"}))
		}
	}
	return v
}

// Every registered event whose fields the fast path reads is decoded by it, as json.Unmarshal
// decodes it, from the data json.Marshal writes (what the log holds); and the events a log
// is mostly made of are among them.
func TestEventsDecodeOnTheFlatPath(t *testing.T) {
	eligible := map[string]bool{}
	for _, name := range registry.Types() {
		v, _ := registry.CurrentVersion(name)
		zero, err := registry.Decode(name, v, json.RawMessage(`{}`))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		typ := reflect.TypeOf(zero)
		flat := eventtype.NewFlatDecoder(typ)
		if !flat.Eligible() {
			t.Logf("%s (%v): json.Unmarshal only", name, typ)
			continue
		}
		eligible[name] = true
		data, err := json.Marshal(filled(t, typ).Interface())
		if err != nil {
			t.Fatal(err)
		}
		fast := reflect.New(typ)
		if !flat.Decode(data, fast.Interface()) {
			t.Errorf("%s: the fast path did not read %s", name, data)
			continue
		}
		want := reflect.New(typ)
		if err := json.Unmarshal(data, want.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast.Elem().Interface(), want.Elem().Interface()) {
			t.Errorf("%s: fast path %#v, json.Unmarshal %#v", name, fast.Elem().Interface(), want.Elem().Interface())
		}
		got, err := registry.Decode(name, v, data)
		if err != nil || !reflect.DeepEqual(got, want.Elem().Interface()) {
			t.Errorf("%s: registry decodes %#v, %v; want %#v", name, got, err, want.Elem().Interface())
		}
	}
	for _, hot := range []string{EventSessionAccessed, EventSessionStarted, EventLoginSucceeded,
		EventSessionSignedOut, EventSessionExpired, EventLoginFailed, EventTOTPCodeAccepted} {
		if !eligible[hot] {
			t.Errorf("%s is decoded by json.Unmarshal only: a rebuild decodes hundreds of thousands of them", hot)
		}
	}
}

// Data the fast path leaves (an erased member, an older casing) still decodes as before.
func TestEventsOffTheFlatPathDecodeAsBefore(t *testing.T) {
	for _, tc := range []struct {
		data string
		want SessionSignedOut
	}{
		{`{"reason":"user","at":"[erased]"}`, SessionSignedOut{Reason: "user"}},
		{`{"Reason":"user","at":"2026-08-25T02:03:25Z"}`, SessionSignedOut{Reason: "user", At: time.Date(2026, 8, 25, 2, 3, 25, 0, time.UTC)}},
		{`{"reason":"us\u0065r","extra":[1,{"a":null}]}`, SessionSignedOut{Reason: "user"}},
	} {
		got, err := DecodeEvent(Envelope{Type: EventSessionSignedOut, SchemaVersion: 1, Data: json.RawMessage(tc.data)})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeEvent(%s) = %#v, %v; want %#v", tc.data, got, err, tc.want)
		}
	}
}
