package domain

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
)

// TestSecurityFoldEqualsFoldSecurity: folding an account's events one after another with one
// decoded SecurityFold (a rebuild's way) gives, at every event, the state and the encoded
// fold that FoldSecurity gives from the previous encoded fold (the live projection's way);
// redelivery changes neither, and an event of another account is refused.
func TestSecurityFoldEqualsFoldSecurity(t *testing.T) {
	t1 := t0.Add(time.Hour)
	sealed := credential.SealedSecret{KeyID: "k", Nonce: []byte("n"), Ciphertext: []byte("c")}
	envs := envelopes(t, "account-a1",
		registered,
		TOTPDeviceAdded{DeviceID: "d1", Name: "Phone", Secret: sealed, At: t0},
		TOTPDeviceConfirmed{DeviceID: "d1", Step: 100, At: t0},
		BackupCodesGenerated{SetID: "s1", CodeHashes: []string{"h1", "h2", "h3"}, At: t0},
		BackupCodeUsed{SetID: "s1", Index: 1, At: t1},
		PasskeyRegistered{PasskeyID: "p1", Name: "Key", CredentialID: []byte{1}, PublicKey: []byte{2}, SignCount: 1, At: t0},
		PasswordChanged{PasswordHash: "h9", At: t1},
		RoleGranted{Role: "auditor", At: t1},
		TOTPDeviceRemoved{DeviceID: "d1", At: t1},
		PasskeyRemoved{PasskeyID: "p1", At: t1},
		EmailChanged{OldEmail: "ann@example.com", NewEmail: "ann@example.org", At: t1},
	)
	f, err := NewSecurityFold("a1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var enc []byte
	for _, ev := range envs {
		want, wantState, err := FoldSecurity(enc, ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
		got, err := f.Fold(ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
		if !reflect.DeepEqual(got, wantState) {
			t.Fatalf("after %s: state %+v, FoldSecurity %+v", ev.Type, got, wantState)
		}
		gotEnc, err := f.Encode()
		if err != nil || !bytes.Equal(gotEnc, want) {
			t.Fatalf("after %s: fold %s (%v), FoldSecurity %s", ev.Type, gotEnc, err, want)
		}
		enc = want
	}
	again, err := f.Fold(envs[3])
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := f.Encode(); !bytes.Equal(last, enc) || !reflect.DeepEqual(again, mustState(t, enc)) {
		t.Errorf("redelivery changed the fold: %s", last)
	}
	other := envs[1]
	other.StreamID = "account-b2"
	if _, err := f.Fold(other); err == nil {
		t.Error("an event of another account was folded")
	}
	if _, err := NewSecurityFold("b2", enc); err == nil {
		t.Error("a fold of account a1 was taken for account b2")
	}
}

// mustState is the security state of an encoded fold.
func mustState(t *testing.T, enc []byte) SecurityState {
	t.Helper()
	f, err := NewSecurityFold("a1", enc)
	if err != nil {
		t.Fatal(err)
	}
	return f.a.Security()
}

// FoldDecoded with each event already decoded (a rebuild's page) folds as Fold does, leaves
// the decoded events as they were (other projections read the same values), and still
// refuses a gap.
func TestSecurityFoldDecodedEqualsFold(t *testing.T) {
	t1 := t0.Add(time.Hour)
	envs := envelopes(t, "account-a1",
		registered,
		BackupCodesGenerated{SetID: "s1", CodeHashes: []string{"h1", "h2", "h3"}, At: t0},
		BackupCodeUsed{SetID: "s1", Index: 1, At: t1},
		PasskeyRegistered{PasskeyID: "p1", Name: "Key", CredentialID: []byte{1}, PublicKey: []byte{2}, Transports: []string{"usb"}, SignCount: 1, At: t0},
		PasswordChanged{PasswordHash: "h9", At: t1},
		PasskeyRemoved{PasskeyID: "p1", At: t1},
	)
	plain, _ := NewSecurityFold("a1", nil)
	decoded, _ := NewSecurityFold("a1", nil)
	for _, ev := range envs {
		e, err := DecodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		kept, _ := DecodeEvent(ev)
		want, err := plain.Fold(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decoded.FoldDecoded(ev, e)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: %+v, %v; Fold gives %+v", ev.Type, got, err, want)
		}
		if !reflect.DeepEqual(e, kept) {
			t.Fatalf("%s: the fold changed the decoded event: %+v, was %+v", ev.Type, e, kept)
		}
	}
	a, _ := plain.Encode()
	b, _ := decoded.Encode()
	if !bytes.Equal(a, b) {
		t.Errorf("encoded folds differ:\n%s\n%s", a, b)
	}
	gap := envs[1]
	gap.Version = envs[len(envs)-1].Version + 2
	e, _ := DecodeEvent(gap)
	if _, err := decoded.FoldDecoded(gap, e); err == nil {
		t.Error("a gap was folded")
	}
}
