package projections

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// A page decoded ahead gives every event the time eventTime reads from its data, also where
// the decoded struct alone cannot tell (a session's start beside an "at" member its type
// does not have, in any casing or spelled with escapes).
func TestDecodedTimeIsEventTime(t *testing.T) {
	recorded := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range []struct{ typ, data string }{
		{domain.EventLoginSucceeded, `{"account_id":"a","session_id":"s","method":"password","amr":["pwd"],"aal":"aal1","at":"2026-08-25T02:03:25.223334764+02:00"}`},
		{domain.EventLoginSucceeded, `{"account_id":"a","at":"0001-01-01T00:00:00Z"}`},
		{domain.EventSessionAccessed, `{"at":"2026-08-25T02:03:25Z"}`},
		{domain.EventSessionStarted, `{"session_id":"s","account_id":"a","token_hash":"h","amr":["pwd"],"aal":"aal1","restricted":false,"started_at":"2026-08-25T02:03:25.223334764Z","expires_at":"2026-08-26T02:03:25Z","idle_timeout_seconds":7200}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25-05:00","at":"2026-07-01T00:00:00Z"}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25Z","At":"2026-07-01T00:00:00Z"}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25Z","\u0061t":"2026-07-01T00:00:00Z"}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25Z","at":"yesterday"}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25Z","note":"at"}`},
		{domain.EventSessionStarted, `{"session_id":"s"}`},
		{domain.EventSessionStarted, `{"session_id":"s","started_at":"2026-08-25T02:03:25Z","STARTED_AT":"2026-06-01T00:00:00Z"}`},
	} {
		ev := domain.Envelope{Type: tc.typ, SchemaVersion: 1, Position: uint64(i + 1), Data: json.RawMessage(tc.data), RecordedAt: recorded}
		got := decodePage([]domain.Envelope{ev}).evs[0]
		if got.err != nil {
			t.Fatalf("%s %s: %v", tc.typ, tc.data, got.err)
		}
		if want := eventTime(ev); !got.at.Equal(want) || got.at.Location() != want.Location() {
			t.Errorf("%s %s: decoded time %v, eventTime %v", tc.typ, tc.data, got.at, want)
		}
	}
	// ... and reads it from the decoded struct, not the data again, for the events a log is
	// mostly made of.
	for _, tc := range []struct{ typ, data string }{
		{domain.EventSessionStarted, `{"session_id":"s","account_id":"a","token_hash":"h","amr":["pwd"],"aal":"aal1","restricted":false,"started_at":"2026-08-25T02:03:25Z","idle_timeout_seconds":7200}`},
		{domain.EventLoginSucceeded, `{"account_id":"a","at":"2026-08-25T02:03:25Z"}`},
		{domain.EventSessionAccessed, `{"at":"2026-08-25T02:03:25Z"}`},
	} {
		ev := domain.Envelope{Type: tc.typ, SchemaVersion: 1, Data: json.RawMessage(tc.data), RecordedAt: recorded}
		e, err := domain.DecodeEvent(ev)
		if _, ok := decodedTime(ev, e, err); !ok {
			t.Errorf("%s %s: time read from the data again", tc.typ, tc.data)
		}
	}
}
