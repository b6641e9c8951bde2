package export_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/eventtype"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/domain/internal/eventsample"
)

// undeclaredMember is added to every sample: a member nobody declared, as a new field that
// someone forgot to declare would look.
const undeclaredMember = "zz_undeclared_member"

// TestRedactionOfEveryEventType fills every field of every registered event type (its current
// schema version) by reflection, adds a member that is not declared, and checks the three
// shapes in which event data leaves the service (the CloudEvent of the stream and the
// forwarders, the OCSF record, the raw envelope of the audit API and the portal timeline):
// public and personal members as stored, secret and undeclared ones redacted, and no string
// of a secret or undeclared member anywhere in the output.
func TestRedactionOfEveryEventType(t *testing.T) {
	types := domain.Catalog().Types()
	if len(types) < 40 {
		t.Fatalf("only %d event types registered", len(types))
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			v, _ := domain.Catalog().CurrentVersion(typ)
			fields, ok := domain.Catalog().Fields(typ, v)
			if !ok {
				t.Fatalf("%s v%d has no declared fields", typ, v)
			}
			zero, err := domain.DecodeEvent(domain.Envelope{Type: typ, SchemaVersion: v, Data: json.RawMessage(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			f := &eventsample.Filler{Prefix: "m" + typ}
			sample, err := f.Of(zero)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(sample)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(raw, &data); err != nil {
				t.Fatal(err)
			}
			data[undeclaredMember], _ = json.Marshal(map[string]any{"token": "leak-" + typ + "-undeclared", "list": []string{"leak-" + typ + "-2"}})
			raw, _ = json.Marshal(data)

			var secrets []string
			for k, val := range data {
				if fields.Class(k) == eventtype.FieldSecret {
					secrets = append(secrets, eventsample.Strings(val)...)
				}
			}
			md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAdmin, ID: "adm"}, SubjectAccountID: "acc1", IP: "192.0.2.7", UserAgent: "curl/8"}
			e := domain.Envelope{ID: "0192f1c4-7b1e-7c3a-9d2e-1a2b3c4d5e6f", StreamID: "account-acc1", Version: 2, Position: 9,
				Type: typ, SchemaVersion: v, RecordedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Data: raw, Metadata: md}

			ce, err := export.MarshalCloudEvent(e, "")
			if err != nil {
				t.Fatal(err)
			}
			var ceDoc struct {
				Data struct {
					Data map[string]json.RawMessage `json:"data"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ce, &ceDoc); err != nil {
				t.Fatal(err)
			}
			audit, err := json.Marshal(export.RedactEnvelope(e))
			if err != nil {
				t.Fatal(err)
			}
			var auditDoc struct {
				Data map[string]json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(audit, &auditDoc); err != nil {
				t.Fatal(err)
			}
			ocsf, _, err := export.MarshalOCSF(e)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]map[string]json.RawMessage{"CloudEvent": ceDoc.Data.Data, "audit envelope": auditDoc.Data} {
				checkMembers(t, name, typ, fields, data, got)
			}
			for name, out := range map[string][]byte{"CloudEvent": ce, "OCSF": ocsf, "audit envelope": audit} {
				for _, s := range secrets {
					if bytes.Contains(out, []byte(s)) {
						t.Errorf("%s of %s leaks secret or undeclared value %q: %s", name, typ, s, out)
					}
				}
			}
		})
	}
}

// checkMembers compares the redacted data got with the stored data in: the same members,
// public and personal ones equal, secret and undeclared ones redacted whole.
func checkMembers(t *testing.T, shape, typ string, fields eventtype.Declaration, in, got map[string]json.RawMessage) {
	t.Helper()
	if len(got) != len(in) {
		t.Errorf("%s of %s: %d members, stored %d: %v", shape, typ, len(got), len(in), got)
	}
	for k, stored := range in {
		out, ok := got[k]
		if !ok {
			t.Errorf("%s of %s: member %q missing", shape, typ, k)
			continue
		}
		switch c := fields.Class(k); c {
		case eventtype.FieldPublic, eventtype.FieldPersonal:
			if !jsonEqual(stored, out) {
				t.Errorf("%s of %s: %s member %q = %s, stored %s", shape, typ, c, k, out, stored)
			}
		default:
			if !isRedacted(out) {
				t.Errorf("%s of %s: secret member %q not redacted: %s", shape, typ, k, out)
			}
		}
	}
}

func isRedacted(v json.RawMessage) bool {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s == export.Redacted
	}
	var arr []string
	if json.Unmarshal(v, &arr) != nil {
		return false
	}
	for _, e := range arr {
		if e != export.Redacted {
			return false
		}
	}
	return true
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// TestUndeclaredMemberIsRedacted: a member added to an event's JSON that its registration
// does not declare (a new field someone forgot, or data written by a newer version) never
// leaves the service in clear, on any shape.
func TestUndeclaredMemberIsRedacted(t *testing.T) {
	e := envelope(domain.EventLoginSucceeded, "session-s1",
		`{"account_id":"acc1","session_id":"s1","amr":["pwd"],"session_token":"tok-CLEAR","backup":{"codes":["code-CLEAR"]}}`,
		domain.Metadata{SubjectAccountID: "acc1"})
	ce, _ := export.MarshalCloudEvent(e, "")
	ocsf, _, _ := export.MarshalOCSF(e)
	audit, _ := json.Marshal(export.RedactEnvelope(e))
	for name, out := range map[string][]byte{"CloudEvent": ce, "OCSF": ocsf, "audit": audit} {
		if strings.Contains(string(out), "CLEAR") {
			t.Errorf("%s leaks an undeclared member: %s", name, out)
		}
		if name != "OCSF" && (!strings.Contains(string(out), `"session_token":"[redacted]"`) || !strings.Contains(string(out), `"account_id":"acc1"`)) {
			t.Errorf("%s: %s", name, out)
		}
	}
	// An event type nobody registered (written by a newer Vigil, or a test tool): all of it.
	e = envelope("AdminBootstrapped", "system-x", `{"email":"root@example.com","secret":"CLEAR"}`, domain.Metadata{})
	ce, _ = export.MarshalCloudEvent(e, "")
	if strings.Contains(string(ce), "CLEAR") || strings.Contains(string(ce), "root@example.com") {
		t.Errorf("unknown type leaks: %s", ce)
	}
}
