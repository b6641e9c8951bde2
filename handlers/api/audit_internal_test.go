package api

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/handlers/web"
)

// logOnly hides every method of a store but those of EventLog, as a backend without
// ReadSubject (KurrentDB) has.
type logOnly struct{ EventLog }

// TestAccountEventsWithoutSubjectIndex checks that the ReadAll scan of a backend without
// ReadSubject answers the same events as the SQLite subject index, page by page, and that a
// page ending at the scan bound resumes where it stopped.
func TestAccountEventsWithoutSubjectIndex(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	store := eventstore.Instrument(raw, nil)
	// 300 events: subjects a, b and none, in a pattern; a's are sparse at the end.
	for i := range 300 {
		subject := []string{"acc-a", "acc-b", ""}[i%3]
		if i > 200 && subject == "acc-a" && i%2 == 0 {
			subject = "acc-b"
		}
		ev, err := domain.NewEventData("TestEvent", 1, map[string]any{"i": i, "password_hash": "$argon2id$x"},
			domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: subject})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, fmt.Sprintf("system-test-%d", i%7), eventstore.Any, []domain.EventData{ev}); err != nil {
			t.Fatal(err)
		}
	}
	indexed := &API{Events: store, Subjects: subjectReaderOf(Config{Log: store, Subjects: raw}), scanBatch: eventsScanBatch, scanMax: eventsScanMax}
	if indexed.Subjects == nil {
		t.Fatal("the SQLite store given as Subjects was not used")
	}
	scanned := &API{Events: logOnly{store}, Subjects: subjectReaderOf(Config{Log: logOnly{store}}), scanBatch: 7, scanMax: 40}
	if scanned.Subjects != nil {
		t.Fatal("logOnly has ReadSubject")
	}

	walk := func(s *API, account string, limit int) (positions []uint64, pages int) {
		var after uint64
		for pages = 1; ; pages++ {
			evs, next, err := s.AccountEvents(ctx, account, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > limit {
				t.Fatalf("page of %d events, limit %d", len(evs), limit)
			}
			for _, ev := range evs {
				if ev.Metadata.SubjectAccountID != account {
					t.Fatalf("event of subject %q", ev.Metadata.SubjectAccountID)
				}
				positions = append(positions, ev.Position)
			}
			if next == "" {
				return positions, pages
			}
			if after, err = DecodeEventsCursor(account, next); err != nil {
				t.Fatal(err)
			}
			if pages > 1000 {
				t.Fatal("endless paging")
			}
		}
	}
	for _, account := range []string{"acc-a", "acc-b", "acc-none"} {
		for _, limit := range []int{1, 3, 50, 500} {
			want, _ := walk(indexed, account, limit)
			got, pages := walk(scanned, account, limit)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s limit %d: scan %v\nindex %v", account, limit, got, want)
			}
			if account == "acc-a" && limit == 500 && pages < 300/40 {
				t.Errorf("%s: %d pages; the scan bound of 40 events was not applied", account, pages)
			}
		}
	}
	if _, err := DecodeEventsCursor("acc-b", encodeEventsCursor("acc-a", 5)); err == nil {
		t.Error("a cursor of another account was accepted")
	}
}

func TestRedactEvent(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{domain.EventSessionAccessed, `{"at":"x"}`, `{"at":"x"}`},
		{domain.EventPasswordChanged, `{"password_hash":"$argon2id$...","at":"x"}`, `{"at":"x","password_hash":"[redacted]"}`},
		{domain.EventBackupCodesGenerated, `{"code_hashes":["a","b"],"set_id":"s"}`, `{"code_hashes":["[redacted]","[redacted]"],"set_id":"s"}`},
		{domain.EventTOTPDeviceAdded, `{"secret":{"key_id":"k","ciphertext":"c"},"device_id":"d"}`, `{"device_id":"d","secret":"[redacted]"}`},
		{domain.EventSessionStarted, `{"token_hash":"ff","session_id":"s"}`, `{"session_id":"s","token_hash":"[redacted]"}`},
		{domain.EventPasskeyRenamed, `{"name":"password_hash"}`, `{"name":"password_hash"}`},
		// Deny-by-default: undeclared members, unknown types, data that is not an object.
		{domain.EventSessionAccessed, `{"a":1}`, `{"a":"[redacted]"}`},
		{"NotAnEvent", `{"at":"x"}`, `{"at":"[redacted]"}`},
		{domain.EventSessionAccessed, `"not an object"`, `"[redacted]"`},
	} {
		ev := RedactEvent(domain.Envelope{Type: tc.typ, SchemaVersion: 1, Data: json.RawMessage(tc.in), Metadata: domain.Metadata{IP: "192.0.2.1"}})
		if got := string(ev.Data); got != tc.want || ev.Metadata.IP != "192.0.2.1" || ev.Type != tc.typ {
			t.Errorf("redactEvent(%s %s) = %s, want %s", tc.typ, tc.in, got, tc.want)
		}
	}
}

// fakeReads is a read model that never holds the session.
type fakeReads struct{ ReadModels }

func (fakeReads) SessionOwner(context.Context, string) (string, bool, error) { return "", false, nil }

// recordingWaiter notes the positions waited for.
type recordingWaiter struct{ got []uint64 }

func (w *recordingWaiter) WaitFor(_ context.Context, p uint64) error {
	w.got = append(w.got, p)
	return nil
}

// TestAwaitOwnSession checks that /me/sessions waits for the position of the caller's
// SessionStarted when the read model does not hold the session yet.
func TestAwaitOwnSession(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var evs []domain.EventData
	for _, typ := range []string{domain.EventLoginSucceeded, domain.EventSessionStarted} {
		ev, err := domain.NewEventData(typ, 1, map[string]any{}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	other, _ := domain.NewEventData("TestEvent", 1, map[string]any{}, domain.Metadata{})
	if _, err := store.Append(ctx, "system-x", eventstore.Any, []domain.EventData{other}); err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, domain.SessionStream("s1"), eventstore.NoStream, evs)
	if err != nil {
		t.Fatal(err)
	}
	w := &recordingWaiter{}
	s := &API{Core: &web.Core{Positions: w, MinWait: web.DefaultMinPositionWait}, Reads: fakeReads{}, Events: store}
	s.AwaitSession(ctx, "s1")
	s.AwaitSession(ctx, "unknown")
	if len(w.got) != 1 || w.got[0] != res.LastPosition {
		t.Errorf("waited for %v, want [%d]", w.got, res.LastPosition)
	}
}
