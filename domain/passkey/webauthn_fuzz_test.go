package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Fuzz targets of the WebAuthn answers (the browser's PublicKeyCredential JSON, which any
// client may send to /login/passkey, /reauth and /me/passkeys). .ci/fuzz runs each for a
// few seconds; `go test` runs the seeds, among them a real registration and assertion of
// a virtual authenticator.

// fuzzPasskeys is a relying party, a credential of a virtual authenticator, its answers
// to a registration and an assertion, and the passkey the registration gives.
type fuzzPasskeys struct {
	cfg       RelyingParty
	challenge []byte
	attest    []byte
	assert    []byte
	key       Credential
}

func newFuzzPasskeys(f *testing.F) fuzzPasskeys {
	f.Helper()
	cfg := RelyingParty{ID: "vigil.example", Name: "Vigil", Origins: []string{"https://vigil.example"}, Timeout: 5 * time.Minute}
	rp := virtualwebauthn.RelyingParty{Name: "Vigil", ID: cfg.ID, Origin: cfg.Origins[0]}
	var cred virtualwebauthn.Credential
	for { // COSE parsers refuse coordinates written without leading zero bytes (1 key in 64)
		if cred = virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2); len(cred.Key.AttestationData()) == 77 {
			break
		}
	}
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte("acc-1")})
	challenge := bytes.Repeat([]byte{7}, ChallengeSize)
	p := fuzzPasskeys{cfg: cfg, challenge: challenge}
	p.attest = []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, virtualwebauthn.AttestationOptions{
		Challenge: challenge, RelyingPartyID: cfg.ID, RelyingPartyName: "Vigil", UserID: "acc-1", UserName: "a@example.com"}))
	reg, err := VerifyRegistration(cfg, p.attest, challenge, false)
	if err != nil {
		f.Fatalf("the virtual authenticator's registration: %v", err)
	}
	p.key = Credential{PublicKey: reg.PublicKey, BackupEligible: reg.BackupEligible}
	cred.Counter = 5
	p.assert = []byte(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, virtualwebauthn.AssertionOptions{
		Challenge: challenge, RelyingPartyID: cfg.ID}))
	return p
}

// edit returns raw with the JSON object edited by fn (for seeds).
func edit(f *testing.F, raw []byte, fn func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		f.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return out
}

func addCredentialSeeds(f *testing.F, valid []byte) {
	f.Add(valid)
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"type":"public-key"}`, `{"type":"public-key","id":"AA","rawId":"AA"}`,
		`{"type":"public-key","rawId":"===","response":{}}`, `{"type":"public-key","rawId":"AAAA","id":"AAAB"}`,
		`{"type":"public-key","id":"AA","response":{"clientDataJSON":"e30","attestationObject":"oA","authenticatorData":"AA","signature":"AA","userHandle":"AA"}}`} {
		f.Add([]byte(s))
	}
	f.Add(edit(f, valid, func(m map[string]any) { m["response"].(map[string]any)["clientDataJSON"] = "e30" }))
	f.Add(edit(f, valid, func(m map[string]any) { m["response"].(map[string]any)["transports"] = []string{"usb", "usb", "x"} }))
	f.Add(edit(f, valid, func(m map[string]any) { m["rawId"] = "" }))
	f.Add(edit(f, valid, func(m map[string]any) {
		m["response"].(map[string]any)["userHandle"] = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
	}))
	f.Add(bytes.Replace(valid, []byte(`"public-key"`), []byte(`"public-key","extra":[1,2,3]`), 1))
}

// FuzzVerifyRegistration: any answer is refused with a WebAuthn error or gives a credential
// within bounds (id 1..1023 bytes, a COSE key of an offered algorithm, known transports,
// no more than eight); the real answer is accepted.
func FuzzVerifyRegistration(f *testing.F) {
	p := newFuzzPasskeys(f)
	addCredentialSeeds(f, p.attest)
	f.Fuzz(func(t *testing.T, raw []byte) {
		reg, err := VerifyRegistration(p.cfg, raw, p.challenge, false)
		if err != nil {
			if !errors.Is(err, ErrWebAuthn) {
				t.Fatalf("VerifyRegistration(%q): %v is not a WebAuthn error", raw, err)
			}
			return
		}
		if len(reg.CredentialID) == 0 || len(reg.CredentialID) > maxCredentialIDLength || len(reg.Transports) > maxTransports {
			t.Fatalf("VerifyRegistration(%q): %d-byte id, %d transports", raw, len(reg.CredentialID), len(reg.Transports))
		}
		for i, tr := range reg.Transports {
			if !slices.Contains(knownTransports, tr) || slices.Contains(reg.Transports[:i], tr) {
				t.Fatalf("VerifyRegistration(%q): transports %q", raw, reg.Transports)
			}
		}
		key, err := webauthncose.ParsePublicKey(reg.PublicKey)
		if err != nil || !slices.Contains(passkeyAlgorithms, coseAlgorithm(key)) {
			t.Fatalf("VerifyRegistration(%q): a key that does not parse or was not offered: %v", raw, err)
		}
		if reg.BackupState && !reg.BackupEligible {
			t.Fatalf("VerifyRegistration(%q): backed up without being eligible", raw)
		}
	})
}

// FuzzVerifyAssertion: any answer is refused with a WebAuthn error, or parses within bounds
// (id 1..1023 bytes, user handle at most 64, data and signature present) and is then
// verified or refused with a WebAuthn error; the real answer verifies with the registered
// key.
func FuzzVerifyAssertion(f *testing.F) {
	p := newFuzzPasskeys(f)
	addCredentialSeeds(f, p.assert)
	f.Fuzz(func(t *testing.T, raw []byte) {
		pa, err := ParseAssertion(raw)
		if err != nil {
			if !errors.Is(err, ErrWebAuthn) {
				t.Fatalf("ParseAssertion(%q): %v is not a WebAuthn error", raw, err)
			}
			return
		}
		if len(pa.CredentialID) == 0 || len(pa.CredentialID) > maxCredentialIDLength || len(pa.UserHandle) > maxUserHandleLength ||
			len(pa.authData) == 0 || len(pa.signature) == 0 {
			t.Fatalf("ParseAssertion(%q): out of bounds: %d, %d, %d, %d", raw, len(pa.CredentialID), len(pa.UserHandle), len(pa.authData), len(pa.signature))
		}
		res, err := VerifyAssertion(p.cfg, pa, p.key, p.challenge, false)
		if err != nil {
			if !errors.Is(err, ErrWebAuthn) {
				t.Fatalf("VerifyAssertion(%q): %v is not a WebAuthn error", raw, err)
			}
			return
		}
		if res.BackupState && !p.key.BackupEligible {
			t.Fatalf("VerifyAssertion(%q): backed up without being eligible", raw)
		}
	})
}

// FuzzParseAuthenticatorData: authenticator data parses to slices of its own bytes, with
// a credential id of 1..1023 bytes when attested data is flagged, or is refused.
func FuzzParseAuthenticatorData(f *testing.F) {
	p := newFuzzPasskeys(f)
	if pa, err := ParseAssertion(p.assert); err == nil {
		f.Add(pa.authData)
	}
	f.Add(bytes.Repeat([]byte{0}, 37))
	f.Add(append(bytes.Repeat([]byte{0}, 32), 0x41, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9, 0xa0))
	f.Add(append(bytes.Repeat([]byte{0}, 32), 0xc1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff))
	f.Add(append(bytes.Repeat([]byte{0}, 32), 0x81, 0, 0, 0, 1, 0xbf))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := parseAuthenticatorData(raw)
		if err != nil {
			if !errors.Is(err, ErrWebAuthn) {
				t.Fatalf("parseAuthenticatorData(%x): %v", raw, err)
			}
			return
		}
		if len(d.rpIDHash) != 32 || d.flags != raw[32] {
			t.Fatalf("parseAuthenticatorData(%x): header %x %x", raw, d.rpIDHash, d.flags)
		}
		if d.flags&flagAttestedData != 0 && (len(d.credentialID) == 0 || len(d.credentialID) > maxCredentialIDLength ||
			len(d.aaguid) != 16 || len(d.publicKey) == 0 || !bytes.Contains(raw, d.publicKey)) {
			t.Fatalf("parseAuthenticatorData(%x): attested data %x %x %x", raw, d.aaguid, d.credentialID, d.publicKey)
		}
	})
}
