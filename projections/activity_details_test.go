package projections

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestMarshalDetailsIsJSONMarshal: for every kind of value the details hold, and for the ones
// it leaves to encoding/json (escaped characters, non-ASCII, other types), marshalDetails
// writes exactly what json.Marshal writes.
func TestMarshalDetailsIsJSONMarshal(t *testing.T) {
	for _, d := range []details{
		nil,
		{},
		{"device_id": "d-1", "device_name": "Phone"},
		{"session_id": "s", "method": "password", "amr": []string{"pwd", "otp"}, "aal": 2},
		{"amr": []string(nil), "count": int64(-3), "n": uint32(7), "m": uint64(1 << 40), "backed_up": true, "x": false},
		{"amr": []string{}},
		{"name": `a "quoted" name`},
		{"name": `back\slash`},
		{"name": "<b>&amp;</b>"},
		{"name": "Zürich 東京 🔐"},
		{"name": "tab\there\nline"},
		{"name": "\u2028\u2029"},
		{"name": "bad \xff utf8"},
		{"raw": json.RawMessage(`{ "a" : 1 }`)},
		{"f": 1.5},
		{"nested": map[string]any{"k": "v"}},
		{"amr": []string{"ok", "not <ok>"}},
		{"ünicode key": "v", "a": "b"},
		{"z": "1", "a": "2", "m": "3"},
	} {
		want, werr := json.Marshal(d)
		got, gerr := marshalDetails(d)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("marshalDetails(%#v) = %s, %v; json.Marshal = %s, %v", d, got, gerr, want, werr)
		}
	}
}

// FuzzMarshalDetails compares marshalDetails with json.Marshal on details built from fuzzed
// strings, integers and booleans.
func FuzzMarshalDetails(f *testing.F) {
	f.Add("device_id", "d-1", "Phone", int64(3), true)
	f.Add("a<", "\x00", "é", int64(-1), false)
	f.Fuzz(func(t *testing.T, k, s1, s2 string, n int64, b bool) {
		d := details{k: s1, "s2": s2, "n": n, "b": b, "list": []string{s1, s2}}
		want, werr := json.Marshal(d)
		got, gerr := marshalDetails(d)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Errorf("marshalDetails(%#v) = %s, %v; json.Marshal = %s, %v", d, got, gerr, want, werr)
		}
	})
}
