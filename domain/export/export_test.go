package export_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/export"
)

func envelope(typ, stream, data string, md domain.Metadata) domain.Envelope {
	return domain.Envelope{
		ID: "0192f1c4-7b1e-7c3a-9d2e-1a2b3c4d5e6f", StreamID: stream, Version: 3, Position: 5_000_000_000,
		Type: typ, SchemaVersion: 1, RecordedAt: time.Date(2026, 3, 2, 9, 0, 1, 500_000_000, time.FixedZone("x", 3600)),
		Data: json.RawMessage(data), Metadata: md,
	}
}

// The CloudEvents 1.0 context attributes (spec §3.1) Vigil writes; every other top-level
// member is an extension.
var contextAttrs = map[string]bool{"specversion": true, "id": true, "source": true, "type": true,
	"time": true, "subject": true, "datacontenttype": true, "data": true}

// Extension names: lower-case ASCII letters and digits only, at most 20 characters (spec
// §3.1.1 "SHOULD NOT exceed 20").
var extName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

func TestCloudEventShape(t *testing.T) {
	md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: "acc1"}, SubjectAccountID: "acc1", IP: "192.0.2.7", UserAgent: "curl/8"}
	e := envelope(domain.EventPasswordChanged, "account-acc1", `{"password_hash":"$argon2id$v=19$secret","at":"2026-03-02T09:00:01Z"}`, md)
	e.Hash = strings.Repeat("ab", 32)
	raw, err := export.MarshalCloudEvent(e, "https://vigil.example")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// Required attributes (spec §3.1.1: id, source, specversion, type), non-empty strings.
	for _, k := range []string{"id", "source", "specversion", "type", "subject", "datacontenttype", "time"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("attribute %s missing or empty: %s", k, raw)
		}
	}
	if m["specversion"] != "1.0" || m["type"] != "vigil.PasswordChanged" || m["id"] != e.ID ||
		m["source"] != "https://vigil.example" || m["subject"] != "account-acc1" || m["datacontenttype"] != "application/json" {
		t.Errorf("attributes: %s", raw)
	}
	// time is RFC 3339, in UTC.
	if ts, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil || !ts.Equal(e.RecordedAt) || !strings.HasSuffix(m["time"].(string), "Z") {
		t.Errorf("time %v: %v", m["time"], err)
	}
	// Extensions follow the naming rule; vigilposition is a string (positions exceed the
	// 32-bit CloudEvents Integer).
	for k := range m {
		if !contextAttrs[k] && !extName.MatchString(k) {
			t.Errorf("extension attribute %q breaks the CloudEvents naming rule", k)
		}
	}
	if m["vigilposition"] != "5000000000" || m["vigilaccount"] != "acc1" || m["vigilhash"] != e.Hash {
		t.Errorf("extensions: %s", raw)
	}
	if strings.Contains(string(raw), "argon2id") {
		t.Errorf("credential material exported: %s", raw)
	}
	data := m["data"].(map[string]any)
	inner := data["data"].(map[string]any)
	if inner["password_hash"] != export.Redacted || data["stream"] != "account-acc1" || data["stream_version"] != 3.0 {
		t.Errorf("data: %v", data)
	}
	if meta := data["metadata"].(map[string]any); meta["ip"] != "192.0.2.7" {
		t.Errorf("metadata: %v", meta)
	}
	// Without a subject account there is no vigilaccount; an empty source gets the default.
	ce := export.CloudEvent(envelope(domain.EventLoginFailed, domain.SigninStream, `{"reason":"unknown_account"}`, domain.Metadata{}), "")
	if ce.Source != export.DefaultSource || ce.VigilAccount != "" {
		t.Errorf("%+v", ce)
	}
	raw2, _ := json.Marshal(ce)
	if strings.Contains(string(raw2), "vigilaccount") {
		t.Errorf("empty vigilaccount written: %s", raw2)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		in   string
		want string
	}{
		{domain.EventSessionAccessed, `{"at":"x"}`, `{"at":"x"}`},
		{domain.EventServiceTokenCreated, `{"token_hash":"abc","name":"n"}`, `{"name":"n","token_hash":"[redacted]"}`},
		{domain.EventBackupCodesGenerated, `{"code_hashes":["a","b"],"set_id":"s"}`, `{"code_hashes":["[redacted]","[redacted]"],"set_id":"s"}`},
		{domain.EventTOTPDeviceAdded, `{"secret":{"key_id":"k","ciphertext":"c"},"name":"Phone"}`, `{"name":"Phone","secret":"[redacted]"}`},
		// Personal data is shown, for now.
		{domain.EventAccountRegistered, `{"email":"ann@example.com","password_hash":"$argon2id$"}`, `{"email":"ann@example.com","password_hash":"[redacted]"}`},
		// Deny-by-default: a member nobody declared is redacted, whatever its name.
		{domain.EventSessionAccessed, `{"at":"x","api_key":"k1","nested":{"a":1}}`, `{"api_key":"[redacted]","at":"x","nested":"[redacted]"}`},
		// A type the registry does not know: every member.
		{"SomethingNew", `{"at":"x","list":[1,2]}`, `{"at":"[redacted]","list":["[redacted]","[redacted]"]}`},
		// Data that is not an object cannot be classified.
		{domain.EventSessionAccessed, `"token_hash"`, `"[redacted]"`},
		{domain.EventSessionAccessed, `[1]`, `"[redacted]"`},
		{domain.EventSessionAccessed, `{"at":`, `"[redacted]"`},
		{domain.EventSessionAccessed, `null`, `null`},
		{domain.EventSessionAccessed, ``, ``},
	} {
		if got := string(export.Redact(tc.typ, 1, json.RawMessage(tc.in))); got != tc.want {
			t.Errorf("Redact(%s, %s) = %s, want %s", tc.typ, tc.in, got, tc.want)
		}
	}
	// A schema version the registry does not know: every member.
	if got := string(export.Redact(domain.EventSessionAccessed, 7, json.RawMessage(`{"at":"x"}`))); got != `{"at":"[redacted]"}` {
		t.Errorf("unknown version: %s", got)
	}
}

func TestOCSFMapping(t *testing.T) {
	md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: "acc1"}, SubjectAccountID: "acc1", IP: "192.0.2.7", UserAgent: "Firefox"}
	admin := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAdmin, ID: "adm"}, SubjectAccountID: "acc1"}
	for _, tc := range []struct {
		typ, stream, data string
		md                domain.Metadata
		class, activity   int
		status            int
	}{
		{domain.EventLoginSucceeded, "session-s1", `{"account_id":"acc1","session_id":"s1","amr":["pwd","otp"]}`, md, 3002, 1, 1},
		{domain.EventLoginFailed, "account-acc1", `{"reason":"invalid_credentials"}`, md, 3002, 1, 2},
		{domain.EventLoginFailed, domain.SigninStream, `{"reason":"unknown_account","attempted_email":"x@example.com"}`, domain.Metadata{IP: "192.0.2.9"}, 3002, 1, 2},
		{domain.EventReauthSucceeded, "session-s1", `{"amr":["pwd"]}`, md, 3002, 1, 1},
		{domain.EventSessionSignedOut, "session-s1", `{"reason":"logout"}`, md, 3002, 2, 1},
		{domain.EventSessionExpired, "session-s1", `{"reason":"idle"}`, md, 3002, 2, 1},
		{domain.EventAccountRegistered, "account-acc1", `{"password_hash":"h"}`, md, 3001, 1, 1},
		{domain.EventPasswordChanged, "account-acc1", `{}`, md, 3001, 3, 1},
		{domain.EventTOTPDeviceConfirmed, "account-acc1", `{}`, md, 3001, 10, 1},
		{domain.EventPasskeyRegistered, "account-acc1", `{}`, md, 3001, 10, 1},
		{domain.EventTOTPDeviceRemoved, "account-acc1", `{}`, md, 3001, 11, 1},
		{domain.EventTwoFactorDisabled, "account-acc1", `{}`, md, 3001, 11, 1},
		{domain.EventRoleGranted, "account-acc1", `{"role":"admin"}`, admin, 3001, 7, 1},
		{domain.EventRoleRevoked, "account-acc1", `{"role":"admin"}`, admin, 3001, 8, 1},
		{domain.EventBackupCodesGenerated, "account-acc1", `{"code_hashes":["a"]}`, md, 3001, 99, 1},
	} {
		e := envelope(tc.typ, tc.stream, tc.data, tc.md)
		r, ok := export.OCSF(e)
		if !ok {
			t.Errorf("%s: no OCSF record", tc.typ)
			continue
		}
		if r.ClassUID != tc.class || r.ActivityID != tc.activity || r.StatusID != tc.status || r.CategoryUID != 3 ||
			r.TypeUID != tc.class*100+tc.activity || r.SeverityID < 1 || r.ActivityName == "" {
			t.Errorf("%s: %+v", tc.typ, r)
		}
		if r.Time != e.RecordedAt.UnixMilli() || r.Metadata.UID != e.ID || r.Metadata.Sequence != e.Position || r.Metadata.Version == "" || r.Metadata.Product.Name != "Vigil" {
			t.Errorf("%s metadata: %+v", tc.typ, r.Metadata)
		}
		if r.User == nil {
			t.Errorf("%s: no user", tc.typ)
		}
		raw, err := json.Marshal(r)
		if err != nil || strings.Contains(string(raw), `"h"`) || strings.Contains(string(raw), `["a"]`) {
			t.Errorf("%s: %s %v", tc.typ, raw, err)
		}
	}
	// Specific fields.
	r, _ := export.OCSF(envelope(domain.EventLoginSucceeded, "session-s1", `{"session_id":"s1","amr":["pwd","otp"]}`, md))
	if r.IsMFA == nil || !*r.IsMFA || r.Session == nil || r.Session.UID != "s1" || r.SrcEndpoint.IP != "192.0.2.7" || r.HTTPRequest.UserAgent != "Firefox" {
		t.Errorf("login: %+v", r)
	}
	r, _ = export.OCSF(envelope(domain.EventLoginFailed, domain.SigninStream, `{"reason":"unknown_account","attempted_email":"x@example.com"}`, domain.Metadata{}))
	if r.StatusDetail != "unknown_account" || r.User.Name != "x@example.com" {
		t.Errorf("failed login: %+v", r)
	}
	r, _ = export.OCSF(envelope(domain.EventRoleGranted, "account-acc1", `{"role":"admin"}`, admin))
	if r.Actor == nil || r.Actor.User.UID != "adm" || r.User.UID != "acc1" {
		t.Errorf("role: %+v", r)
	}
	// Unmapped types are skipped.
	for _, typ := range []string{domain.EventSessionAccessed, domain.EventProfileUpdated, domain.EventClientRegistered, domain.EventSessionStarted} {
		if _, ok := export.OCSF(envelope(typ, "x-1", `{}`, md)); ok {
			t.Errorf("%s mapped", typ)
		}
		if b, ok, err := export.MarshalOCSF(envelope(typ, "x-1", `{}`, md)); ok || b != nil || err != nil {
			t.Errorf("MarshalOCSF(%s) = %s %v %v", typ, b, ok, err)
		}
	}
}
