package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// envelopes numbers events 1..n on stream as the store would.
func envelopes(t *testing.T, stream string, events ...Event) []Envelope {
	t.Helper()
	out := make([]Envelope, 0, len(events))
	for i, e := range events {
		d, err := EncodeEvent(e, Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Envelope{ID: d.ID, StreamID: stream, Version: uint64(i + 1), Position: uint64(i + 1),
			Type: d.Type, SchemaVersion: d.SchemaVersion, Data: d.Data})
	}
	return out
}

func rebuild(t *testing.T, events ...Event) *Account {
	t.Helper()
	a, err := rebuildAccount("a1", envelopes(t, AccountStream("a1"), events...))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// continueWith applies decided events to a copy of a, as appending and reloading would.
func continueWith(t *testing.T, a *Account, events ...Event) *Account {
	t.Helper()
	data, _ := marshalAccountSnapshot(a)
	b, ok := unmarshalAccountSnapshot(a.ID(), a.Version(), data)
	if !ok {
		t.Fatal("snapshot round trip failed")
	}
	envs := envelopes(t, AccountStream(a.ID()), events...)
	for i := range envs {
		envs[i].Version += a.Version()
	}
	if err := b.replay(envs); err != nil {
		t.Fatal(err)
	}
	return b
}

var registered = AccountRegistered{AccountID: "a1", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", PasswordHash: "h0", At: t0}

func sealedFor(t *testing.T, kr *credential.Keyring, deviceID string, secret []byte) credential.SealedSecret {
	t.Helper()
	s, err := kr.SealTOTPSecret("a1", deviceID, secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKeyring(t *testing.T) *credential.Keyring {
	t.Helper()
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: []byte(strings.Repeat("K", 32))})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestAccountApplyPerEvent(t *testing.T) {
	t1 := t0.Add(time.Hour)
	sealed := credential.SealedSecret{KeyID: "k", Nonce: []byte("n"), Ciphertext: []byte("c")}
	added := TOTPDeviceAdded{DeviceID: "d1", Name: "Phone", Secret: sealed, At: t0}
	confirmed := TOTPDeviceConfirmed{DeviceID: "d1", Step: 100, At: t0}
	codes := BackupCodesGenerated{SetID: "s1", CodeHashes: []string{"h1", "h2", "h3"}, At: t0}
	pk := PasskeyRegistered{PasskeyID: "p1", Name: "Key", CredentialID: []byte{1}, PublicKey: []byte{2}, SignCount: 1, At: t0}
	for _, tc := range []struct {
		name   string
		events []Event
		check  func(a *Account) bool
	}{
		{"AccountRegistered", nil, func(a *Account) bool {
			return a.Email() == "ann@example.com" && a.FirstName() == "Ann" && a.LastName() == "Lee" &&
				a.s.PasswordHash == "h0" && a.Security().PasswordChangedAt.Equal(t0) && !a.TwoFactorEnabled()
		}},
		{"EmailChanged", []Event{EmailChanged{OldEmail: "ann@example.com", NewEmail: "ann@example.org", At: t1}},
			func(a *Account) bool { return a.Email() == "ann@example.org" }},
		{"NameChanged", []Event{NameChanged{FirstName: "Anne", LastName: "Li", At: t1}},
			func(a *Account) bool { return a.FirstName() == "Anne" && a.LastName() == "Li" }},
		{"ProfileUpdated", []Event{ProfileUpdated{Profile: Profile{City: "Bern", Country: "CH"}, At: t1}},
			func(a *Account) bool { return a.Profile() == Profile{City: "Bern", Country: "CH"} }},
		{"PasswordChanged", []Event{PasswordChanged{PasswordHash: "h1", At: t1}},
			func(a *Account) bool { return a.s.PasswordHash == "h1" && a.Security().PasswordChangedAt.Equal(t1) }},
		{"PasswordRehashed", []Event{PasswordRehashed{PasswordHash: "h2", At: t1}},
			func(a *Account) bool { return a.s.PasswordHash == "h2" && a.Security().PasswordChangedAt.Equal(t0) }},
		{"TOTPDeviceAdded", []Event{added}, func(a *Account) bool {
			d := a.Security().TOTPDevices
			return len(d) == 1 && d[0].Name == "Phone" && !d[0].Confirmed && !a.TwoFactorEnabled()
		}},
		{"TOTPDeviceConfirmed", []Event{added, confirmed}, func(a *Account) bool {
			return a.TwoFactorEnabled() && a.device("d1").LastStep == 100 && slices.Equal(a.SecondFactorMethods(), []string{"totp"})
		}},
		{"TOTPCodeAccepted", []Event{added, confirmed, TOTPCodeAccepted{DeviceID: "d1", Step: 101, At: t1}}, func(a *Account) bool {
			return a.device("d1").LastStep == 101 && a.Security().TOTPDevices[0].LastUsedAt.Equal(t1)
		}},
		{"TOTPDeviceRemoved", []Event{added, confirmed, TOTPDeviceRemoved{DeviceID: "d1", At: t1}},
			func(a *Account) bool { return len(a.Security().TOTPDevices) == 0 && !a.TwoFactorEnabled() }},
		{"BackupCodesGenerated", []Event{added, confirmed, codes}, func(a *Account) bool {
			return a.backupCodesRemaining() == 3 && a.Security().BackupCodes.GeneratedAt.Equal(t0) &&
				slices.Equal(a.SecondFactorMethods(), []string{"totp", "backup_code"})
		}},
		{"BackupCodeUsed", []Event{codes, BackupCodeUsed{SetID: "s1", Index: 1, At: t1}},
			func(a *Account) bool { return a.backupCodesRemaining() == 2 && a.s.Backup.Used[1] }},
		{"BackupCodeUsed of an old set", []Event{codes, BackupCodeUsed{SetID: "old", Index: 1, At: t1}},
			func(a *Account) bool { return a.backupCodesRemaining() == 3 }},
		{"PasskeyRegistered", []Event{pk}, func(a *Account) bool {
			return a.TwoFactorEnabled() && len(a.Passkeys()) == 1 && a.Passkeys()[0].SignCount == 1 &&
				slices.Equal(a.SecondFactorMethods(), []string{"passkey"})
		}},
		{"PasskeyRenamed", []Event{pk, PasskeyRenamed{PasskeyID: "p1", Name: "Yubi", At: t1}},
			func(a *Account) bool { return a.Passkeys()[0].Name == "Yubi" }},
		{"PasskeyUsed", []Event{pk, PasskeyUsed{PasskeyID: "p1", SignCount: 5, BackupState: true, At: t1}}, func(a *Account) bool {
			p := a.Passkeys()[0]
			return p.SignCount == 5 && p.BackedUp && p.LastUsedAt.Equal(t1)
		}},
		{"PasskeyCloneSuspected", []Event{pk, PasskeyCloneSuspected{PasskeyID: "p1", StoredSignCount: 5, ReceivedSignCount: 2, At: t1}},
			func(a *Account) bool { return a.Passkeys()[0].CloneSuspectedAt.Equal(t1) }},
		{"PasskeyRemoved", []Event{pk, PasskeyRemoved{PasskeyID: "p1", At: t1}},
			func(a *Account) bool { return len(a.Passkeys()) == 0 && !a.TwoFactorEnabled() }},
		{"TwoFactorDisabled", []Event{added, confirmed, codes, pk, TwoFactorDisabled{Reason: twoFactorDisabledByUser, At: t1}},
			func(a *Account) bool {
				st := a.Security()
				return !st.TwoFactorEnabled && len(st.TOTPDevices) == 0 && len(st.Passkeys) == 0 && st.BackupCodes.Remaining == 0
			}},
		{"RoleGranted", []Event{RoleGranted{Role: RoleAuditor, At: t1}, RoleGranted{Role: RoleAdmin, At: t1}},
			func(a *Account) bool {
				return slices.Equal(a.roles(), []string{"admin", "auditor"}) && a.HasRole(RoleAdmin)
			}},
		{"RoleRevoked", []Event{RoleGranted{Role: RoleAdmin, At: t1}, RoleRevoked{Role: RoleAdmin, At: t1}},
			func(a *Account) bool { return len(a.roles()) == 0 }},
		{"AccountErased", []Event{RoleGranted{Role: RoleAdmin, At: t1}, AccountErased{At: t1}},
			func(a *Account) bool {
				return a.Erased() && a.Email() == "" && a.FirstName() == "" && len(a.roles()) == 0 && a.ID() != "" && a.Version() == 3
			}},
		{"LoginFailed", []Event{LoginFailed{Reason: reasons.LoginFailedInvalidCredentials, At: t1}},
			func(a *Account) bool { return a.Version() == 2 && a.Email() == "ann@example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := rebuild(t, append([]Event{registered}, tc.events...)...)
			if a.Version() != uint64(1+len(tc.events)) {
				t.Fatalf("version %d", a.Version())
			}
			if !tc.check(a) {
				st, _ := json.Marshal(a.s)
				t.Fatalf("state after %s: %s", tc.name, st)
			}
		})
	}
}

func TestRebuildAccountRefusesBadStreams(t *testing.T) {
	if _, err := rebuildAccount("a1", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty: %v", err)
	}
	envs := envelopes(t, "account-a1", NameChanged{FirstName: "A", LastName: "B"})
	if _, err := rebuildAccount("a1", envs); err == nil {
		t.Fatal("stream without AccountRegistered accepted")
	}
	envs = envelopes(t, "account-a1", registered, NameChanged{FirstName: "A", LastName: "B"})
	envs[1].Version = 3
	if _, err := rebuildAccount("a1", envs); err == nil {
		t.Fatal("gap accepted")
	}
	envs = envelopes(t, "account-a1", registered, SessionAccessed{At: t0})
	if _, err := rebuildAccount("a1", envs); err == nil {
		t.Fatal("session event on an account stream accepted")
	}
}

func TestAccountSnapshotRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	a := rebuild(t, registered, TOTPDeviceAdded{DeviceID: "d1", Name: "P", Secret: sealedFor(t, kr, "d1", []byte("s")), At: t0},
		TOTPDeviceConfirmed{DeviceID: "d1", Step: 5, At: t0}, BackupCodesGenerated{SetID: "s", CodeHashes: []string{"x"}, At: t0},
		RoleGranted{Role: RoleAdmin, At: t0})
	data, err := marshalAccountSnapshot(a)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := unmarshalAccountSnapshot("a1", a.Version(), data)
	if !ok {
		t.Fatal("snapshot refused")
	}
	ja, _ := json.Marshal(a.s)
	jb, _ := json.Marshal(b.s)
	if string(ja) != string(jb) {
		t.Fatalf("snapshot differs:\n%s\n%s", ja, jb)
	}
	for name, tc := range map[string]struct {
		id      string
		version uint64
		data    []byte
	}{
		"unknown schema": {"a1", a.Version(), []byte(strings.Replace(string(data), fmt.Sprintf(`"schema":%d`, accountSnapshotSchema), `"schema":99`, 1))},
		"other account":  {"a2", a.Version(), data},
		"other version":  {"a1", a.Version() + 1, data},
		"garbage":        {"a1", a.Version(), []byte("{")},
	} {
		if _, ok := unmarshalAccountSnapshot(tc.id, tc.version, tc.data); ok {
			t.Errorf("%s: snapshot accepted", name)
		}
	}
}

func TestAccountDecisions(t *testing.T) {
	kr := testKeyring(t)
	secret := []byte("12345678901234567890")
	now := t0.Add(10 * time.Minute)
	step := credential.TOTPStep(now)
	code := func(s int64) string { c, _ := credential.TOTPCode(secret, s); return c }
	pending := TOTPDeviceAdded{DeviceID: "d1", Name: "Phone", Secret: sealedFor(t, kr, "d1", secret), At: t0}
	confirmed := TOTPDeviceConfirmed{DeviceID: "d1", Step: step - 10, At: t0}
	set, plain, err := NewBackupCodeSet(cryptoRand(), t0)
	if err != nil {
		t.Fatal(err)
	}
	fresh := rebuild(t, registered)
	withPending := rebuild(t, registered, pending)
	with2FA := rebuild(t, registered, pending, confirmed, set)

	t.Run("change name", func(t *testing.T) {
		ev, err := fresh.DecideChangeName(" Anne ", "Lee", now)
		if err != nil || len(ev) != 1 || ev[0].(NameChanged) != (NameChanged{FirstName: "Anne", LastName: "Lee", At: now}) {
			t.Fatalf("%v %v", ev, err)
		}
		if ev, err := fresh.DecideChangeName("Ann", "Lee", now); err != nil || ev != nil {
			t.Fatalf("unchanged: %v %v", ev, err)
		}
		var ve *ValidationError
		if _, err := fresh.DecideChangeName("Ann", "", now); !errors.As(err, &ve) || ve.Field != "last_name" {
			t.Fatalf("empty last name: %v", err)
		}
	})
	t.Run("change email", func(t *testing.T) {
		if ev := fresh.DecideChangeEmail("ann@example.com", now); ev != nil {
			t.Fatalf("same email: %v", ev)
		}
		ev := fresh.DecideChangeEmail("new@example.com", now)
		if len(ev) != 1 || ev[0].(EmailChanged).OldEmail != "ann@example.com" {
			t.Fatalf("%v", ev)
		}
	})
	t.Run("update profile", func(t *testing.T) {
		ev, err := fresh.DecideUpdateProfile(ProfilePatch{Country: ptr("de")}, now)
		if err != nil || len(ev) != 1 || ev[0].(ProfileUpdated).Profile.Country != "DE" {
			t.Fatalf("%v %v", ev, err)
		}
		if ev, err := fresh.DecideUpdateProfile(ProfilePatch{Title: ptr("")}, now); err != nil || ev != nil {
			t.Fatalf("unchanged: %v %v", ev, err)
		}
		if _, err := fresh.DecideUpdateProfile(ProfilePatch{Country: ptr("ZZ")}, now); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("bad country: %v", err)
		}
	})
	t.Run("add totp device", func(t *testing.T) {
		if _, err := fresh.DecideAddTOTPDevice("d2", "", credential.SealedSecret{}, now); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("empty name: %v", err)
		}
		if _, err := fresh.DecideAddTOTPDevice("d2", strings.Repeat("x", 65), credential.SealedSecret{}, now); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("long name: %v", err)
		}
		ev, err := fresh.DecideAddTOTPDevice("d2", " Phone ", credential.SealedSecret{KeyID: "k"}, now)
		if err != nil || ev[0].(TOTPDeviceAdded).Name != "Phone" {
			t.Fatalf("%v %v", ev, err)
		}
		full := fresh
		for i := 0; i < maxTOTPDevices; i++ {
			full = continueWith(t, full, TOTPDeviceAdded{DeviceID: NewID(), Name: "x", At: now})
		}
		if _, err := full.DecideAddTOTPDevice("d3", "x", credential.SealedSecret{}, now); !errors.Is(err, ErrConflict) {
			t.Fatalf("device limit: %v", err)
		}
	})
	t.Run("confirm totp device", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			at   time.Time
			ok   bool
		}{
			{"current step", now, true},
			{"one step early", now.Add(-credential.TOTPPeriod), true},
			{"one step late", now.Add(credential.TOTPPeriod), true},
			{"two steps off", now.Add(-2 * credential.TOTPPeriod), false},
			{"two steps ahead", now.Add(2 * credential.TOTPPeriod), false},
		} {
			c, _ := credential.TOTPCode(secret, credential.TOTPStep(tc.at))
			dev, s, err := withPending.matchTOTP(kr, c, now, "d1")
			if tc.ok != (err == nil) {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if tc.ok && (dev != "d1" || s != credential.TOTPStep(tc.at)) {
				t.Fatalf("%s: device %s step %d", tc.name, dev, s)
			}
		}
		if _, _, err := withPending.matchTOTP(kr, code(step), now, ""); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("a pending device answered a sign-in code: %v", err)
		}
		ev, issued, err := withPending.decideConfirmTOTPDevice("d1", step, set, now)
		if err != nil || !issued || len(ev) != 2 || ev[1].(BackupCodesGenerated).SetID != set.SetID {
			t.Fatalf("first factor: %v %v %v", ev, issued, err)
		}
		after := continueWith(t, withPending, ev...)
		if !after.TwoFactorEnabled() || after.backupCodesRemaining() != credential.BackupCodeCount {
			t.Fatal("2FA not on after confirmation")
		}
		// the confirmation's step is used
		if _, _, err := after.matchTOTP(kr, code(step), now, ""); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("confirmation code replayed: %v", err)
		}
		// a second device does not issue new codes
		second := continueWith(t, after, TOTPDeviceAdded{DeviceID: "d2", Name: "Tablet", Secret: sealedFor(t, kr, "d2", secret), At: now})
		ev, issued, err = second.decideConfirmTOTPDevice("d2", step, set, now)
		if err != nil || issued || len(ev) != 1 {
			t.Fatalf("second device: %v %v %v", ev, issued, err)
		}
		if _, _, err := after.decideConfirmTOTPDevice("d1", step+1, set, now); !errors.Is(err, ErrConflict) {
			t.Fatalf("confirming twice: %v", err)
		}
		if _, _, err := after.decideConfirmTOTPDevice("nope", step, set, now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown device: %v", err)
		}
	})
	t.Run("accept totp step once", func(t *testing.T) {
		dev, s, err := with2FA.matchTOTP(kr, code(step), now, "")
		if err != nil {
			t.Fatal(err)
		}
		ev, err := with2FA.decideAcceptTOTP(dev, s, "login", now)
		if err != nil || ev[0].(TOTPCodeAccepted).Step != step {
			t.Fatalf("%v %v", ev, err)
		}
		after := continueWith(t, with2FA, ev...)
		for _, at := range []time.Time{now, now.Add(-credential.TOTPPeriod)} { // same step, and an older one
			if _, _, err := after.matchTOTP(kr, code(credential.TOTPStep(at)), now, ""); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("step %d accepted after %d: %v", credential.TOTPStep(at), step, err)
			}
		}
		if _, err := after.decideAcceptTOTP(dev, step, "login", now); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("decide replay: %v", err)
		}
		if _, _, err := after.matchTOTP(kr, code(step+1), now.Add(credential.TOTPPeriod), ""); err != nil {
			t.Fatalf("next step refused: %v", err)
		}
		if _, _, err := with2FA.matchTOTP(kr, "12345", now, ""); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("short code: %v", err)
		}
	})
	t.Run("backup codes", func(t *testing.T) {
		ev, err := with2FA.decideUseBackupCode(strings.ToLower(plain[3]), "login", now)
		if err != nil || ev[0].(BackupCodeUsed).Index != 3 {
			t.Fatalf("%v %v", ev, err)
		}
		after := continueWith(t, with2FA, ev...)
		if after.backupCodesRemaining() != credential.BackupCodeCount-1 {
			t.Fatalf("remaining %d", after.backupCodesRemaining())
		}
		if _, err := after.decideUseBackupCode(plain[3], "login", now); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("code used twice: %v", err)
		}
		if _, err := after.decideUseBackupCode("AAAA-BBBB-CCCC", "login", now); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("wrong code: %v", err)
		}
		newSet, newPlain, _ := NewBackupCodeSet(cryptoRand(), now)
		ev, err = after.DecideRegenerateBackupCodes(newSet, now)
		if err != nil {
			t.Fatal(err)
		}
		regen := continueWith(t, after, ev...)
		if regen.backupCodesRemaining() != credential.BackupCodeCount {
			t.Fatalf("remaining after regeneration %d", regen.backupCodesRemaining())
		}
		if _, err := regen.decideUseBackupCode(plain[0], "login", now); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("old code works after regeneration: %v", err)
		}
		if _, err := regen.decideUseBackupCode(newPlain[0], "login", now); err != nil {
			t.Fatalf("new code: %v", err)
		}
		if _, err := fresh.DecideRegenerateBackupCodes(newSet, now); !errors.Is(err, ErrConflict) {
			t.Fatalf("regenerate without 2FA: %v", err)
		}
	})
	t.Run("remove totp device", func(t *testing.T) {
		ev, err := with2FA.DecideRemoveTOTPDevice("d1", nil, now)
		if err != nil || len(ev) != 2 || ev[1].(TwoFactorDisabled).Reason != TwoFactorDisabledLastFactorGone {
			t.Fatalf("last factor: %v %v", ev, err)
		}
		off := continueWith(t, with2FA, ev...)
		if off.TwoFactorEnabled() || off.backupCodesRemaining() != 0 {
			t.Fatal("2FA still on")
		}
		if _, err := with2FA.DecideRemoveTOTPDevice("d1", []string{"org1"}, now); !errors.Is(err, ErrTwoFactorRequired) {
			t.Fatalf("policy: %v", err)
		}
		ev, err = withPending.DecideRemoveTOTPDevice("d1", []string{"org1"}, now)
		if err != nil || len(ev) != 1 {
			t.Fatalf("pending device: %v %v", ev, err)
		}
		if _, err := with2FA.DecideRemoveTOTPDevice("nope", nil, now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
	t.Run("disable two factor", func(t *testing.T) {
		if _, err := with2FA.DecideDisableTwoFactor([]string{"org1"}, now); !errors.Is(err, ErrTwoFactorRequired) {
			t.Fatalf("policy: %v", err)
		}
		ev, err := with2FA.DecideDisableTwoFactor(nil, now)
		if err != nil || len(ev) != 1 {
			t.Fatalf("%v %v", ev, err)
		}
		if ev, err := fresh.DecideDisableTwoFactor(nil, now); err != nil || ev != nil {
			t.Fatalf("nothing to disable: %v %v", ev, err)
		}
	})
	t.Run("roles", func(t *testing.T) {
		if _, err := fresh.DecideGrantRole("root", now); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("bad role: %v", err)
		}
		ev, err := fresh.DecideGrantRole(RoleAuditor, now)
		if err != nil || len(ev) != 1 {
			t.Fatalf("%v %v", ev, err)
		}
		admin := continueWith(t, fresh, ev...)
		if ev, _ := admin.DecideGrantRole(RoleAuditor, now); ev != nil {
			t.Fatal("granted twice")
		}
		if ev, _ := fresh.DecideRevokeRole(RoleAuditor, now); ev != nil {
			t.Fatal("revoked a role not held")
		}
		if ev, _ := admin.DecideRevokeRole(RoleAuditor, now); len(ev) != 1 {
			t.Fatal("revoke")
		}
	})
}
