package domain

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/eventtype"
	"github.com/vigil-auth/vigil/domain/reasons"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sampleEvents holds one populated value of every event type.
func sampleEvents() []Event {
	sealed := credential.SealedSecret{KeyID: "0a1b2c3d", Nonce: []byte("123456789012"), Ciphertext: []byte("ciphertext")}
	return []Event{
		AccountRegistered{AccountID: "a1", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", PasswordHash: "$argon2id$...", At: t0},
		EmailChanged{OldEmail: "ann@example.com", NewEmail: "ann@example.org", At: t0},
		NameChanged{FirstName: "Anne", LastName: "Lee", At: t0},
		ProfileUpdated{Profile: Profile{Title: "Dr", Country: "CH", Locale: "de-CH"}, At: t0},
		PasswordChanged{PasswordHash: "$argon2id$x", At: t0},
		PasswordRehashed{PasswordHash: "$argon2id$y", At: t0},
		TOTPDeviceAdded{DeviceID: "d1", Name: "Phone", Secret: sealed, At: t0},
		TOTPDeviceConfirmed{DeviceID: "d1", Step: 42, At: t0},
		TOTPDeviceRemoved{DeviceID: "d1", At: t0},
		TOTPCodeAccepted{DeviceID: "d1", Step: 43, Purpose: "login", At: t0},
		BackupCodesGenerated{SetID: "s1", CodeHashes: []string{"h1", "h2"}, At: t0},
		BackupCodeUsed{SetID: "s1", Index: 1, Purpose: "login", At: t0},
		PasskeyRegistered{PasskeyID: "p1", Name: "Key", CredentialID: []byte{1, 2}, PublicKey: []byte{3}, SignCount: 7,
			AAGUID: []byte{9}, Transports: []string{"usb"}, BackupEligible: true, BackupState: true, At: t0},
		PasskeyRenamed{PasskeyID: "p1", Name: "Yubi", At: t0},
		PasskeyRemoved{PasskeyID: "p1", At: t0},
		PasskeyCloneSuspected{PasskeyID: "p1", StoredSignCount: 9, ReceivedSignCount: 3, At: t0},
		PasskeyUsed{PasskeyID: "p1", SignCount: 10, BackupState: true, At: t0},
		TwoFactorDisabled{Reason: twoFactorDisabledByUser, At: t0},
		RoleGranted{Role: RoleAdmin, At: t0},
		RoleRevoked{Role: RoleAdmin, At: t0},
		AccountErased{At: t0},
		EmailVerificationRequested{RequestID: "r1", Email: "ann@example.com", TokenHash: strings.Repeat("cd", 32), At: t0},
		EmailVerified{RequestID: "r1", Email: "ann@example.com", At: t0},
		PasswordResetRequested{RequestID: "r2", TokenHash: strings.Repeat("ef", 32), At: t0},
		PasswordResetCompleted{RequestID: "r2", PasswordHash: "$argon2id$z", At: t0},
		SignInRiskDetected{SessionID: "s1", LoginEventID: "e1", Signals: []string{SignalNewCountry, SignalImpossibleTravel},
			Device: "Firefox on Linux", Country: "BR", PreviousCountry: "GB", SpeedKMH: 9400, At: t0},
		SuspiciousActivityReported{EventID: "e1", Source: ReportFromMail, At: t0},
		LoginFailed{Reason: reasons.LoginFailedUnknownAccount, Stage: StagePassword, Method: MethodPassword, AttemptedEmail: "x@y.z", At: t0},
		LoginSucceeded{AccountID: "a1", SessionID: "s1", Method: MethodTOTP, AMR: []string{"pwd", "otp"}, AAL: AAL2, ClientID: "portal", At: t0},
		SessionStarted{SessionID: "s1", AccountID: "a1", TokenHash: strings.Repeat("ab", 32), AMR: []string{"pwd"}, AAL: AAL1,
			StartedAt: t0, ExpiresAt: t0.Add(24 * time.Hour), IdleTimeoutSeconds: 7200},
		SessionAccessed{At: t0},
		ReauthSucceeded{Method: MethodPassword, AMR: []string{"pwd"}, AAL: AAL1, At: t0},
		SessionSignedOut{Reason: reasons.SignOutLogout, At: t0},
		SessionExpired{Reason: reasons.ExpiredIdle, At: t0},
		EmailReserved{AccountID: "a1", At: t0},
		EmailReleased{AccountID: "a1", At: t0},
		ClientRegistered{ClientID: "c1", Name: "App", At: t0},
		OrgCreated{OrgID: "o1", Name: "Acme", OwnerAccountID: "a1", At: t0},
		MemberAdded{OrgID: "o1", AccountID: "a2", Role: OrgRoleMember, At: t0},
		MemberRemoved{OrgID: "o1", AccountID: "a2", At: t0},
		MemberRoleChanged{OrgID: "o1", AccountID: "a2", OldRole: OrgRoleMember, Role: OrgRoleAdmin, At: t0},
		TwoFactorRequirementChanged{OrgID: "o1", Required: true, ChangedBy: "a1", At: t0},
		ManagedOrgAdded{OrgID: "o1", ManagedOrgID: "o2", At: t0},
		DelegationGranted{DelegationID: "g1", OwnerAccountID: "a1", DelegateAccountID: "a2", ExpiresAt: t0.Add(time.Hour), At: t0},
		DelegationRevoked{DelegationID: "g1", At: t0},
		DelegationExpired{DelegationID: "g1", At: t0},

		ServiceTokenCreated{TokenID: "t1", Name: "SIEM", Scopes: []string{"events:read"}, TokenHash: strings.Repeat("cd", 32), At: t0},
		ServiceTokenRevoked{TokenID: "t1", At: t0},
		ServiceTokenUseDenied{TokenID: "t1", Reason: DeniedRevoked, Suppressed: 2, At: t0},

		WebhookRegistered{WebhookID: "w1", URL: "https://siem.example.com/in", At: t0},
		WebhookRemoved{WebhookID: "w1", At: t0},
		SSFStreamChanged{StreamID: "s1", Change: "created", Audience: "s1", DeliveryMethod: "urn:ietf:rfc:8935",
			EndpointURL: "https://rp.example.com/ssf", EventsRequested: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"},
			Status: "enabled", At: t0},

		AdminBootstrapClaimed{AccountID: "a1", At: t0},
		AdminBootstrapGranted{AccountID: "a1", At: t0},
	}
}

func TestEveryEventRoundTripsThroughTheRegistry(t *testing.T) {
	samples := sampleEvents()
	seen := map[string]bool{}
	for _, e := range samples {
		t.Run(e.eventType(), func(t *testing.T) {
			d, err := EncodeEvent(e, Metadata{Actor: Actor{Type: ActorSystem}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Type != e.eventType() || d.SchemaVersion != 1 || d.ID == "" {
				t.Fatalf("event data %+v", d)
			}
			got, err := DecodeEvent(Envelope{Type: d.Type, SchemaVersion: d.SchemaVersion, Data: d.Data})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
			}
		})
		seen[e.eventType()] = true
	}
	for _, name := range Catalog().Types() {
		if !seen[name] {
			t.Errorf("registered event %s has no sample", name)
		}
	}
	if len(seen) != len(Catalog().Types()) {
		t.Errorf("%d samples, %d registered types", len(seen), len(Catalog().Types()))
	}
}

func TestAPIEventNamesAreRegistered(t *testing.T) {
	// API.md's "Event types" for the account, sign-in and session groups, and clients.
	for _, name := range strings.Fields(`AccountRegistered EmailChanged NameChanged ProfileUpdated PasswordChanged
		TOTPDeviceAdded TOTPDeviceConfirmed TOTPDeviceRemoved BackupCodesGenerated BackupCodeUsed PasskeyRegistered
		PasskeyRenamed PasskeyRemoved PasskeyCloneSuspected TwoFactorDisabled RoleGranted RoleRevoked LoginSucceeded
		LoginFailed ReauthSucceeded SessionStarted SessionAccessed SessionSignedOut SessionExpired ClientRegistered`) {
		if _, ok := Catalog().CurrentVersion(name); !ok {
			t.Errorf("%s is not registered", name)
		}
	}
}

func TestPersonalAndSecretFieldsAreNamed(t *testing.T) {
	// No secret in clear: the JSON of credential events has only hashes and sealed data.
	d, _ := EncodeEvent(TOTPDeviceAdded{DeviceID: "d", Name: "n", Secret: credential.SealedSecret{KeyID: "k", Ciphertext: []byte{1}}}, Metadata{})
	var m map[string]any
	_ = json.Unmarshal(d.Data, &m)
	sec, ok := m["secret"].(map[string]any)
	if !ok || sec["key_id"] != "k" || sec["ciphertext"] == nil {
		t.Fatalf("TOTP secret is not a sealed secret with a key id: %s", d.Data)
	}
}

func TestRegistryUpcastsOlderVersionsAndRefusesUnknownOnes(t *testing.T) {
	type renamedV2 struct {
		NewName string `json:"new_name"`
	}
	r := eventtype.NewRegistry()
	r.Register("Renamed", 2, func(data json.RawMessage) (eventtype.Event, error) {
		var e struct {
			NameChanged
		}
		var v renamedV2
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		e.FirstName = v.NewName
		return e.NameChanged, nil
	}, eventtype.Fields{"new_name": eventtype.FieldPersonal})
	r.RegisterUpcaster("Renamed", 1, func(data json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(renamedV2{NewName: v1.Name})
	}, eventtype.Fields{"name": eventtype.FieldPersonal})
	if v, _ := r.CurrentVersion("Renamed"); v != 2 {
		t.Fatalf("current version %d", v)
	}
	// Each version's fields are declared in the shape it was stored in.
	if f1, ok := r.Fields("Renamed", 1); !ok || f1.Class("name") != eventtype.FieldPersonal || f1.Declared("new_name") {
		t.Fatalf("v1 fields %v %v", f1.Keys(), ok)
	}
	if f2, ok := r.Fields("Renamed", 2); !ok || f2.Class("new_name") != eventtype.FieldPersonal || f2.Class("name") != eventtype.FieldSecret {
		t.Fatalf("v2 fields %v %v", f2.Keys(), ok)
	}
	if _, ok := r.Fields("Renamed", 3); ok {
		t.Fatal("v3 has fields")
	}
	if got := r.Versions("Renamed"); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("versions %v", got)
	}
	for _, tc := range []struct {
		version int
		data    string
	}{{1, `{"name":"Ann"}`}, {2, `{"new_name":"Ann"}`}} {
		e, err := r.Decode("Renamed", tc.version, json.RawMessage(tc.data))
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		if e.(NameChanged).FirstName != "Ann" {
			t.Fatalf("v%d decoded %+v", tc.version, e)
		}
	}
	if _, err := r.Decode("Renamed", 3, json.RawMessage(`{}`)); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("v3: %v", err)
	}
	if _, err := r.Decode("Nope", 1, json.RawMessage(`{}`)); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := DecodeEvent(Envelope{Type: EventNameChanged, SchemaVersion: 1, Data: json.RawMessage(`{`)}); err == nil {
		t.Fatal("malformed JSON decoded")
	}
}

// TestDecodeErasedMembers: after an erasure every personal member reads "[erased]", whatever
// its type: strings keep it, other types decode as zero, so replays of the stream go on.
func TestDecodeErasedMembers(t *testing.T) {
	for _, tc := range []struct {
		typ, data string
		check     func(Event) bool
	}{
		{EventProfileUpdated, `{"profile":"[erased]","at":"2026-03-01T12:00:00Z"}`,
			func(e Event) bool {
				p, ok := e.(ProfileUpdated)
				return ok && p.Profile == (Profile{}) && !p.At.IsZero()
			}},
		{EventEmailChanged, `{"old_email":"[erased]","new_email":"[erased]","at":"2026-03-01T12:00:00Z"}`,
			func(e Event) bool {
				c, ok := e.(EmailChanged)
				return ok && c.NewEmail == eventtype.Erased && c.OldEmail == eventtype.Erased
			}},
	} {
		e, err := DecodeEvent(Envelope{Type: tc.typ, SchemaVersion: 1, Data: json.RawMessage(tc.data)})
		if err != nil || !tc.check(e) {
			t.Errorf("%s %s: %#v, %v", tc.typ, tc.data, e, err)
		}
	}
	// Data that is broken for another reason stays an error.
	if _, err := DecodeEvent(Envelope{Type: EventProfileUpdated, SchemaVersion: 1, Data: json.RawMessage(`{"profile":42}`)}); err == nil {
		t.Error("a profile of 42 decoded")
	}
}
