package projections_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/projections"
)

const password = "umbrella-cactus-violin-47"

// TestSecurityReducer drives one account through every account event type with the real
// service and store, and after each step checks the projection's state, that it equals the
// point-in-time fold of the log (SecurityAt now) and the service's own Security, and then
// that SecurityAt at each earlier step shows that step's state.
func TestSecurityReducer(t *testing.T) {
	clock := newTestClock()
	e := newClockEnv(t, clock)
	svc := newService(t, e, clock)
	r, _ := e.start(projections.Security{})
	ctx := context.Background()
	rm := command.RequestMeta{IP: ipLondon, UserAgent: uaChromeMac}

	before := clock.Now()
	reg, err := svc.Register(ctx, command.Registration{Email: "ann@example.com", Password: password, FirstName: "Ann", LastName: "Lee"}, rm)
	if err != nil {
		t.Fatal(err)
	}
	id := reg.AccountID
	acct := domain.AccountStream(id)
	var (
		sess     domain.Session
		deviceID string
		secret   string
		codes    []string
	)
	login := func(t *testing.T) {
		t.Helper()
		res, err := svc.Login(ctx, "ann@example.com", password, "", rm)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == command.StatusSecondFactorRequired {
			clock.Advance(30 * time.Second)
			res, err = svc.SecondFactor(ctx, res.SecondFactor.Ticket, domain.MethodTOTP, totpCode(t, secret, clock.Now()), rm)
			if err != nil {
				t.Fatal(err)
			}
		}
		sess = res.Authenticated.Session
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	md := domain.Metadata{Actor: self(id), SubjectAccountID: id}

	cases := []struct {
		name  string
		step  func(t *testing.T)
		check func(t *testing.T, st domain.SecurityState)
	}{
		{"AccountRegistered", func(t *testing.T) {}, func(t *testing.T, st domain.SecurityState) {
			if st.AccountID != id || st.PasswordChangedAt.IsZero() || st.TwoFactorEnabled || len(st.TOTPDevices) != 0 || st.BackupCodes.Remaining != 0 {
				t.Fatalf("new account: %+v", st)
			}
		}},
		{"TOTPDeviceAdded (pending)", func(t *testing.T) {
			login(t)
			enr, err := svc.AddTOTPDevice(ctx, sess, "Phone", rm)
			must(t, err)
			deviceID, secret = enr.DeviceID, enr.Secret
		}, func(t *testing.T, st domain.SecurityState) {
			if st.TwoFactorEnabled || len(st.TOTPDevices) != 1 || st.TOTPDevices[0].Confirmed || st.TOTPDevices[0].Name != "Phone" {
				t.Fatalf("pending device: %+v", st)
			}
		}},
		{"TOTPDeviceConfirmed, BackupCodesGenerated", func(t *testing.T) {
			res, err := svc.ConfirmTOTPDevice(ctx, sess, deviceID, totpCode(t, secret, clock.Now()), rm)
			must(t, err)
			codes = res.BackupCodes
		}, func(t *testing.T, st domain.SecurityState) {
			if !st.TwoFactorEnabled || !st.TOTPDevices[0].Confirmed || st.BackupCodes.Remaining != 10 || st.BackupCodes.GeneratedAt.IsZero() {
				t.Fatalf("confirmed: %+v", st)
			}
		}},
		{"BackupCodeUsed", func(t *testing.T) {
			res, err := svc.Login(ctx, "ann@example.com", password, "", rm)
			must(t, err)
			_, err = svc.SecondFactor(ctx, res.SecondFactor.Ticket, domain.MethodBackupCode, codes[0], rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.BackupCodes.Remaining != 9 {
				t.Fatalf("after a backup code: %+v", st.BackupCodes)
			}
		}},
		{"TOTPCodeAccepted", func(t *testing.T) { login(t) }, func(t *testing.T, st domain.SecurityState) {
			if d := st.TOTPDevices[0]; !d.LastUsedAt.After(d.ConfirmedAt) {
				t.Fatalf("device not used: %+v", d)
			}
		}},
		{"LoginFailed", func(t *testing.T) {
			if _, err := svc.Login(ctx, "ann@example.com", "wrong-password-123", "", rm); !errors.Is(err, domain.ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
		}, nil},
		{"PasswordChanged", func(t *testing.T) {
			_, err := svc.ChangePassword(ctx, sess, password, password+"-new", false, rm)
			must(t, err)
			_, err = svc.ChangePassword(ctx, sess, password+"-new", password, false, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.PasswordChangedAt.Before(clock.Now().Add(-time.Second)) {
				t.Fatalf("password changed at %s", st.PasswordChangedAt)
			}
		}},
		{"PasswordRehashed does not change password_changed_at", func(t *testing.T) {
			hash, err := svc.Hasher().Hash(password)
			must(t, err)
			e.emit(acct, md, domain.PasswordRehashed{PasswordHash: hash, At: clock.Now()})
		}, nil},
		{"BackupCodesGenerated again", func(t *testing.T) {
			_, err := svc.RegenerateBackupCodes(ctx, sess, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.BackupCodes.Remaining != 10 {
				t.Fatalf("regenerated: %+v", st.BackupCodes)
			}
		}},
		{"PasskeyRegistered", func(t *testing.T) {
			e.emit(acct, md, domain.PasskeyRegistered{PasskeyID: "pk1", Name: "YubiKey", CredentialID: []byte("cred"), PublicKey: []byte("key"),
				SignCount: 1, BackupEligible: true, At: clock.Now()})
		}, func(t *testing.T, st domain.SecurityState) {
			if len(st.Passkeys) != 1 || st.Passkeys[0].Name != "YubiKey" || st.Passkeys[0].BackedUp || !st.Passkeys[0].LastUsedAt.IsZero() {
				t.Fatalf("passkey: %+v", st.Passkeys)
			}
		}},
		{"PasskeyRenamed", func(t *testing.T) {
			_, err := svc.RenamePasskey(ctx, sess, "pk1", "Blue key", rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.Passkeys[0].Name != "Blue key" {
				t.Fatalf("passkey: %+v", st.Passkeys)
			}
		}},
		{"PasskeyUsed", func(t *testing.T) {
			e.emit(acct, md, domain.PasskeyUsed{PasskeyID: "pk1", SignCount: 2, BackupState: true, At: clock.Now()})
		}, func(t *testing.T, st domain.SecurityState) {
			if !st.Passkeys[0].BackedUp || st.Passkeys[0].LastUsedAt.IsZero() {
				t.Fatalf("passkey: %+v", st.Passkeys)
			}
		}},
		{"PasskeyCloneSuspected", func(t *testing.T) {
			e.emit(acct, md, domain.PasskeyCloneSuspected{PasskeyID: "pk1", StoredSignCount: 2, ReceivedSignCount: 1, At: clock.Now()})
		}, func(t *testing.T, st domain.SecurityState) {
			if st.Passkeys[0].CloneSuspectedAt.IsZero() {
				t.Fatalf("passkey: %+v", st.Passkeys)
			}
		}},
		{"PasskeyRemoved", func(t *testing.T) {
			_, err := svc.RemovePasskey(ctx, sess, "pk1", rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if len(st.Passkeys) != 0 || !st.TwoFactorEnabled {
				t.Fatalf("after removing the passkey: %+v", st)
			}
		}},
		{"RoleGranted", func(t *testing.T) {
			_, err := svc.GrantRole(ctx, id, domain.RoleAuditor, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if !slices.Equal(st.Roles, []string{domain.RoleAuditor}) {
				t.Fatalf("roles %v", st.Roles)
			}
		}},
		{"RoleRevoked", func(t *testing.T) {
			_, err := svc.RevokeRole(ctx, id, domain.RoleAuditor, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if len(st.Roles) != 0 {
				t.Fatalf("roles %v", st.Roles)
			}
		}},
		{"EmailChanged, NameChanged, ProfileUpdated", func(t *testing.T) {
			_, err := svc.ChangeName(ctx, sess, "Anne", "Lee", rm)
			must(t, err)
			city := "Leeds"
			_, err = svc.UpdateProfile(ctx, sess, domain.ProfilePatch{City: &city}, rm)
			must(t, err)
			_, err = svc.ChangeEmail(ctx, sess, "anne@example.com", rm)
			must(t, err)
			_, err = svc.ChangeEmail(ctx, sess, "ann@example.com", rm)
			must(t, err)
		}, nil},
		{"TOTPDeviceRemoved, TwoFactorDisabled (last factor)", func(t *testing.T) {
			login(t)
			_, err := svc.RemoveTOTPDevice(ctx, sess, deviceID, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.TwoFactorEnabled || len(st.TOTPDevices) != 0 || st.BackupCodes.Remaining != 0 || !st.BackupCodes.GeneratedAt.IsZero() {
				t.Fatalf("after removing the last factor: %+v", st)
			}
		}},
		{"TwoFactorDisabled by the user", func(t *testing.T) {
			login(t)
			enr, err := svc.AddTOTPDevice(ctx, sess, "Tablet", rm)
			must(t, err)
			secret = enr.Secret
			_, err = svc.ConfirmTOTPDevice(ctx, sess, enr.DeviceID, totpCode(t, secret, clock.Now()), rm)
			must(t, err)
			_, err = svc.DisableTwoFactor(ctx, sess, password, rm)
			must(t, err)
		}, func(t *testing.T, st domain.SecurityState) {
			if st.TwoFactorEnabled || len(st.TOTPDevices) != 0 {
				t.Fatalf("after disabling: %+v", st)
			}
		}},
	}

	type stamp struct {
		at    time.Time
		state string
	}
	var stamps []stamp
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.step(t)
			head, err := e.store.Head(ctx)
			must(t, err)
			e.waitFor(r, head)
			got, ok, err := e.db.Security(ctx, id)
			if err != nil || !ok {
				t.Fatalf("Security: %v %v", ok, err)
			}
			if c.check != nil {
				c.check(t, got)
			}
			now := clock.Now()
			at, err := projections.SecurityAt(ctx, e.store, id, now)
			must(t, err)
			want, err := svc.Security(ctx, id)
			must(t, err)
			// The service's Roles is [] or nil depending on whether it started from a snapshot:
			// compare the states, not that.
			if g, a, w := secJSON(t, got), secJSON(t, at), secJSON(t, want); g != a || g != w {
				t.Fatalf("projection %s\nSecurityAt %s\nservice    %s", g, a, w)
			}
			stamps = append(stamps, stamp{now, secJSON(t, got)})
		})
	}

	// Every account event type went through the fold.
	evs, err := e.store.ReadStream(ctx, acct, 1, 0)
	must(t, err)
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Type] = true
	}
	for _, typ := range []string{"AccountRegistered", "EmailChanged", "NameChanged", "ProfileUpdated", "PasswordChanged",
		"PasswordRehashed", "TOTPDeviceAdded", "TOTPDeviceConfirmed", "TOTPDeviceRemoved", "TOTPCodeAccepted", "BackupCodesGenerated",
		"BackupCodeUsed", "PasskeyRegistered", "PasskeyRenamed", "PasskeyRemoved", "PasskeyCloneSuspected", "PasskeyUsed",
		"TwoFactorDisabled", "RoleGranted", "RoleRevoked", "LoginFailed"} {
		if !seen[typ] {
			t.Errorf("the account stream has no %s", typ)
		}
	}

	// The past, rebuilt from the log: each step's state at its time.
	for i, s := range stamps {
		st, err := projections.SecurityAt(ctx, e.store, id, s.at)
		must(t, err)
		if got := secJSON(t, st); got != s.state {
			t.Errorf("SecurityAt after step %d (%s) = %s\nwant %s", i, cases[i].name, got, s.state)
		}
	}
	// Before the TOTP device was added: no device; between adding and confirming: pending.
	st, err := projections.SecurityAt(ctx, e.store, id, stamps[0].at)
	if err != nil || len(st.TOTPDevices) != 0 {
		t.Errorf("before the device: %+v %v", st, err)
	}
	if st, err := projections.SecurityAt(ctx, e.store, id, stamps[1].at); err != nil || len(st.TOTPDevices) != 1 || st.TOTPDevices[0].Confirmed {
		t.Errorf("while pending: %+v %v", st, err)
	}
	if _, err := projections.SecurityAt(ctx, e.store, id, before); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("before registration: %v", err)
	}
	if _, err := projections.SecurityAt(ctx, e.store, "no-such-account", clock.Now()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
	if _, ok, err := e.db.Security(ctx, "no-such-account"); ok || err != nil {
		t.Errorf("Security of an unknown account: %v %v", ok, err)
	}
}

func TestFoldSecurityStripsSecretsAndIgnoresRedelivery(t *testing.T) {
	reg, _ := domain.NewEventData(domain.EventAccountRegistered, 1, domain.AccountRegistered{AccountID: "a1", Email: "ann@example.com",
		FirstName: "Ann", LastName: "Lee", PasswordHash: "$argon2id$secret", At: testStart}, domain.Metadata{})
	add, _ := domain.NewEventData(domain.EventTOTPDeviceAdded, 1, domain.TOTPDeviceAdded{DeviceID: "d1", Name: "Phone",
		Secret: credential.SealedSecret{KeyID: "k", Nonce: []byte("n"), Ciphertext: []byte("ciphertext-secret")}, At: testStart}, domain.Metadata{})
	env := func(d domain.EventData, v uint64) domain.Envelope {
		return domain.Envelope{ID: d.ID, StreamID: "account-a1", Version: v, Position: v, Type: d.Type, SchemaVersion: 1,
			RecordedAt: testStart, Data: d.Data, Metadata: d.Metadata}
	}
	s1, _, err := domain.FoldSecurity(nil, env(reg, 1))
	if err != nil {
		t.Fatal(err)
	}
	s2, st, err := domain.FoldSecurity(s1, env(add, 2))
	if err != nil || len(st.TOTPDevices) != 1 {
		t.Fatalf("fold: %+v %v", st, err)
	}
	for _, bad := range []string{"argon2id", "ann@", "Ann", "ciphertext-secret", "Y2lwaGVydGV4dC1zZWNyZXQ"} {
		if strings.Contains(string(s1), bad) || strings.Contains(string(s2), bad) {
			t.Errorf("fold state holds %q: %s", bad, s2)
		}
	}
	// Redelivered: unchanged. A gap or another stream: an error.
	if again, _, err := domain.FoldSecurity(s2, env(add, 2)); err != nil || string(again) != string(s2) {
		t.Errorf("redelivery changed the state: %v", err)
	}
	if _, _, err := domain.FoldSecurity(s2, env(add, 4)); err == nil {
		t.Error("a gap was folded")
	}
	other := env(add, 3)
	other.StreamID = "session-x"
	if _, _, err := domain.FoldSecurity(s2, other); err == nil {
		t.Error("a session event was folded")
	}
}

// secJSON is the JSON of a security state with nil and empty lists alike.
func secJSON(t *testing.T, st domain.SecurityState) string {
	t.Helper()
	if st.Roles == nil {
		st.Roles = []string{}
	}
	if st.TwoFactorRequiredBy == nil {
		st.TwoFactorRequiredBy = []string{}
	}
	if st.TOTPDevices == nil {
		st.TOTPDevices = []domain.TOTPDeviceInfo{}
	}
	if st.Passkeys == nil {
		st.Passkeys = []domain.PasskeyInfo{}
	}
	return mustJSON(t, st)
}
