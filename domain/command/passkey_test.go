package command_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fxamacker/cbor/v2"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/eventstore/testkit"
)

const (
	testRPID   = "vigil.example"
	testOrigin = "https://vigil.example"
)

var testRP = virtualwebauthn.RelyingParty{Name: "Vigil", ID: testRPID, Origin: testOrigin}

func withPasskeys(c *command.Config) {
	c.Passkeys = passkey.Config{RPID: testRPID, Origins: []string{testOrigin}}
}

// device is a virtual authenticator holding one credential whose counter the test moves.
type device struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

// newDevice returns an EC2 (P-256) credential on a fresh authenticator whose user handle
// is accountID. virtualwebauthn writes the key's coordinates without leading zero bytes,
// which COSE parsers refuse (1 key in 64), so such keys are drawn again.
func newDevice(t *testing.T, accountID string) *device {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		if data := cred.Key.AttestationData(); len(data) == 77 { // map header + kty, alg, crv + two 32-byte coordinates
			auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(accountID)})
			return &device{auth: auth, cred: cred}
		}
	}
}

// attest answers creation options as the browser would.
func (d *device) attest(t *testing.T, rp virtualwebauthn.RelyingParty, pc command.PasskeyCeremony) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(string(pc.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(virtualwebauthn.CreateAttestationResponse(rp, d.auth, d.cred, *opts))
}

// assert answers request options with the credential's counter moved to count.
func (d *device) assert(t *testing.T, rp virtualwebauthn.RelyingParty, pc command.PasskeyCeremony, count uint32) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(pc.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	d.cred.Counter = count
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, d.auth, d.cred, *opts))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newPasskeyHarness returns a harness with passkeys on, ann@example.com registered (id) and
// a fresh virtual authenticator for her.
func newPasskeyHarness(t *testing.T) (h *harness, id string, d *device) {
	t.Helper()
	h = newHarness(t, withPasskeys)
	id = h.register("ann@example.com")
	return h, id, newDevice(t, id)
}

// enrollPasskey registers d for the session's account and returns the result.
func (h *harness) enrollPasskey(sess domain.Session, d *device, name string) command.PasskeyRegistration {
	h.t.Helper()
	pc, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, name)
	if err != nil {
		h.t.Fatal(err)
	}
	reg, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, d.attest(h.t, testRP, pc), false, command.RequestMeta{})
	if err != nil {
		h.t.Fatal(err)
	}
	return reg
}

// session returns the caller's current state (after a reauth changed it).
func (h *harness) session(id string) domain.Session {
	h.t.Helper()
	s, err := h.svc.SessionByID(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func TestPasskeyRegistration(t *testing.T) {
	h := newHarness(t, withPasskeys)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	other := h.login("ann@example.com").Session
	d := newDevice(t, id)

	pc, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "  Laptop  ")
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		RP   struct{ ID, Name string }
		User struct {
			ID          string
			Name        string
			DisplayName string
		}
		Challenge              string
		PubKeyCredParams       []struct{ Alg int }
		Timeout                int
		ExcludeCredentials     []struct{ ID string }
		AuthenticatorSelection struct{ ResidentKey, UserVerification string }
		Attestation            string
	}
	if err := json.Unmarshal(pc.PublicKey, &opts); err != nil {
		t.Fatal(err)
	}
	ch, _ := base64.RawURLEncoding.DecodeString(opts.Challenge)
	if opts.RP.ID != testRPID || opts.RP.Name != "Vigil" || opts.User.ID != b64([]byte(id)) || opts.User.Name != "ann@example.com" ||
		opts.User.DisplayName != "Ann Lee" || len(ch) != 32 || opts.Timeout != 300000 || len(opts.ExcludeCredentials) != 0 ||
		opts.AuthenticatorSelection.ResidentKey != "preferred" || opts.AuthenticatorSelection.UserVerification != "preferred" ||
		opts.Attestation != "none" || len(opts.PubKeyCredParams) == 0 || opts.PubKeyCredParams[0].Alg != -7 {
		t.Fatalf("creation options %s", pc.PublicKey)
	}
	if !pc.ExpiresAt.Equal(start.Add(5 * time.Minute)) {
		t.Fatalf("expires at %s", pc.ExpiresAt)
	}

	// the browser reports the transports; unknown ones are dropped
	var answer map[string]any
	if err := json.Unmarshal(d.attest(t, testRP, pc), &answer); err != nil {
		t.Fatal(err)
	}
	answer["response"].(map[string]any)["transports"] = []string{"internal", "hybrid", "carrier-pigeon"}
	raw, _ := json.Marshal(answer)
	reg, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, raw, true, command.RequestMeta{IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.BackupCodes) != credential.BackupCodeCount || reg.Passkey.Name != "Laptop" || reg.Passkey.ID == "" ||
		!reg.Passkey.CreatedAt.Equal(start) || reg.SignedOut != 1 || reg.Position == 0 {
		t.Fatalf("registration %+v", reg)
	}
	if _, err := h.svc.SessionByID(other.ID); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("other session still active: %v", err)
	}
	types := h.types(domain.AccountStream(id))
	if !slices.Equal(types[len(types)-2:], []string{"PasskeyRegistered", "BackupCodesGenerated"}) {
		t.Fatalf("account stream %v", types)
	}
	evs := h.events(domain.AccountStream(id))
	pr := h.decode(evs[len(evs)-2]).(domain.PasskeyRegistered)
	if pr.PasskeyID != reg.Passkey.ID || !slices.Equal(pr.CredentialID, d.cred.ID) || len(pr.PublicKey) == 0 ||
		!slices.Equal(pr.AAGUID, d.auth.Aaguid[:]) || !slices.Equal(pr.Transports, []string{"internal", "hybrid"}) ||
		pr.SignCount != 0 || pr.BackupEligible || pr.BackupState || evs[len(evs)-2].Metadata.IP != "192.0.2.7" {
		t.Fatalf("PasskeyRegistered %+v", pr)
	}
	// the session showed a second factor: aal2
	if cur := h.session(sess.ID); cur.AAL != domain.AAL2 || !slices.Contains(cur.AMR, "passkey") {
		t.Fatalf("session after registration %+v", cur)
	}
	st, err := h.svc.Security(h.ctx, id)
	if err != nil || !st.TwoFactorEnabled || len(st.Passkeys) != 1 || st.Passkeys[0].Name != "Laptop" ||
		!st.Passkeys[0].LastUsedAt.IsZero() || st.BackupCodes.Remaining != 10 {
		t.Fatalf("security %+v %v", st, err)
	}

	// a second passkey: the first is excluded, no new backup codes
	d2 := newDevice(t, id)
	pc2, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Phone")
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(pc2.PublicKey))
	if err != nil || !slices.Equal(ao.ExcludeCredentials, []string{b64(d.cred.ID)}) {
		t.Fatalf("exclude %v %v", ao, err)
	}
	reg2, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc2.ID, d2.attest(t, testRP, pc2), false, command.RequestMeta{})
	if err != nil || reg2.BackupCodes != nil {
		t.Fatalf("second passkey %+v %v", reg2, err)
	}
	// the same credential again
	pc3, _ := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Again")
	if _, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc3.ID, d.attest(t, testRP, pc3), false, command.RequestMeta{}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("duplicate credential: %v", err)
	}
	// names are validated at the start
	if _, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, strings.Repeat("x", 65)); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("long name: %v", err)
	}
	if _, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, " "); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestPasskeyRegistrationNeedsRecentAuth(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	sess := h.login("ann@example.com").Session
	h.clock.Advance(5*time.Minute + time.Second)
	if _, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Laptop"); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("begin without step-up: %v", err)
	}
	if _, err := h.svc.Reauth(h.ctx, sess, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	pc, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Laptop")
	if err != nil {
		t.Fatal(err)
	}
	// the window closes before the answer arrives
	h.clock.Advance(4*time.Minute + 59*time.Second)
	att := d.attest(t, testRP, pc)
	h.clock.Advance(2 * time.Second)
	if _, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, att, false, command.RequestMeta{}); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("finish without step-up: %v", err)
	}
	if got := h.types(domain.AccountStream(id)); slices.Contains(got, "PasskeyRegistered") {
		t.Fatalf("registered anyway: %v", got)
	}
}

func TestPasskeyRegistrationRefusesBadAnswers(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	sess := h.login("ann@example.com").Session
	for name, answer := range map[string]func(pc command.PasskeyCeremony) json.RawMessage{
		"wrong origin": func(pc command.PasskeyCeremony) json.RawMessage {
			return d.attest(t, virtualwebauthn.RelyingParty{ID: testRPID, Origin: "https://evil.example"}, pc)
		},
		"wrong rp id": func(pc command.PasskeyCeremony) json.RawMessage {
			return d.attest(t, virtualwebauthn.RelyingParty{ID: "evil.example", Origin: testOrigin}, pc)
		},
		"wrong challenge": func(pc command.PasskeyCeremony) json.RawMessage {
			opts, _ := virtualwebauthn.ParseAttestationOptions(string(pc.PublicKey))
			opts.Challenge[0] ^= 1
			return json.RawMessage(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *opts))
		},
		"user not present": func(pc command.PasskeyCeremony) json.RawMessage {
			absent := *d
			absent.auth.Options.UserNotPresent = true
			return absent.attest(t, testRP, pc)
		},
		"not json":     func(command.PasskeyCeremony) json.RawMessage { return json.RawMessage(`{"type":`) },
		"empty answer": func(command.PasskeyCeremony) json.RawMessage { return nil },
	} {
		pc, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Laptop")
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, answer(pc), false, command.RequestMeta{})
		t.Logf("%s: %v", name, err)
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || ve.Field != "credential" {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got := h.types(domain.AccountStream(id)); len(got) != 2 {
		t.Fatalf("account stream %v", got)
	}
}

// reformat rewrites the attestation object of a registration answer.
func reformat(t *testing.T, answer json.RawMessage, edit func(obj map[string]any)) json.RawMessage {
	t.Helper()
	var msg map[string]any
	if err := json.Unmarshal(answer, &msg); err != nil {
		t.Fatal(err)
	}
	resp := msg["response"].(map[string]any)
	raw, err := base64.RawURLEncoding.DecodeString(resp["attestationObject"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := cbor.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	edit(obj)
	em, _ := cbor.CTAP2EncOptions().EncMode()
	if raw, err = em.Marshal(obj); err != nil {
		t.Fatal(err)
	}
	resp["attestationObject"] = b64(raw)
	out, _ := json.Marshal(msg)
	return out
}

func TestPasskeyAttestationFormats(t *testing.T) {
	h := newHarness(t, withPasskeys)
	id := h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	finish := func(edit func(obj map[string]any)) error {
		pc, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Key")
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, reformat(t, newDevice(t, id).attest(t, testRP, pc), edit), false, command.RequestMeta{})
		return err
	}
	// packed self attestation with a broken signature
	if err := finish(func(obj map[string]any) {
		obj["attStmt"].(map[any]any)["sig"].([]byte)[10] ^= 1
	}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("tampered self attestation: %v", err)
	}
	// packed self attestation naming another algorithm than the key's
	if err := finish(func(obj map[string]any) { obj["attStmt"].(map[any]any)["alg"] = -257 }); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("algorithm mismatch: %v", err)
	}
	// "none" must come without a statement
	if err := finish(func(obj map[string]any) { obj["fmt"] = "none" }); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("none with a statement: %v", err)
	}
	// what browsers send for attestation "none"
	if err := finish(func(obj map[string]any) { obj["fmt"], obj["attStmt"] = "none", map[string]any{} }); err != nil {
		t.Fatalf("none: %v", err)
	}
	// a format not relied on: its statement is not checked
	if err := finish(func(obj map[string]any) { obj["fmt"] = "tpm" }); err != nil {
		t.Fatalf("tpm: %v", err)
	}
	if st, _ := h.svc.Security(h.ctx, id); len(st.Passkeys) != 2 {
		t.Fatalf("passkeys %+v", st.Passkeys)
	}
}

func TestPasskeyUsernamelessLogin(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Laptop")

	pc, err := h.svc.BeginPasskeyLogin(h.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		RPID             string
		AllowCredentials []any
		UserVerification string
		Challenge        string
	}
	if err := json.Unmarshal(pc.PublicKey, &opts); err != nil || opts.RPID != testRPID || opts.AllowCredentials == nil ||
		len(opts.AllowCredentials) != 0 || opts.UserVerification != "required" || !strings.Contains(string(pc.PublicKey), `"allowCredentials":[]`) {
		t.Fatalf("request options %s %v", pc.PublicKey, err)
	}
	h.clock.Advance(time.Minute)
	res, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 1), domain.PortalClientID, command.RequestMeta{IP: "192.0.2.1"})
	if err != nil || res.Status != command.StatusAuthenticated {
		t.Fatalf("%+v %v", res, err)
	}
	s := res.Authenticated.Session
	if s.AccountID != id || s.AAL != domain.AAL2 || !slices.Equal(s.AMR, []string{"passkey"}) || s.ClientID != "portal" || s.Restricted {
		t.Fatalf("session %+v", s)
	}
	if _, err := h.svc.Whoami(h.ctx, res.Authenticated.Token); err != nil {
		t.Fatal(err)
	}
	evs := h.events(domain.SessionStream(s.ID))
	if ls := h.decode(evs[0]).(domain.LoginSucceeded); ls.Method != "passkey" || ls.AAL != "aal2" {
		t.Fatalf("LoginSucceeded %+v", ls)
	}
	acc := h.events(domain.AccountStream(id))
	used := h.decode(acc[len(acc)-1]).(domain.PasskeyUsed)
	if used.SignCount != 1 || used.BackupState {
		t.Fatalf("PasskeyUsed %+v", used)
	}
	st, _ := h.svc.Security(h.ctx, id)
	if !st.Passkeys[0].LastUsedAt.Equal(start.Add(time.Minute)) {
		t.Fatalf("last used %s", st.Passkeys[0].LastUsedAt)
	}

	// usernameless needs user verification: a passkey alone must be two factors
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	unverified := *d
	unverified.auth.Options.UserNotVerified = true
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, unverified.assert(t, testRP, pc, 2), "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("without user verification: %v", err)
	}
	// no user handle: nobody to sign in
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	anonymous := *d
	anonymous.auth.Options.UserHandle = nil
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, anonymous.assert(t, testRP, pc, 3), "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("without user handle: %v", err)
	}
	// an unknown client
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 4), "nope", command.RequestMeta{}); !errors.Is(err, command.ErrUnknownClient) {
		t.Fatalf("unknown client: %v", err)
	}
}

func TestPasskeySecondFactor(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	first := h.login("ann@example.com").Session
	h.enrollPasskey(first, d, "Key")
	// a ticket path needs the account's passkeys
	tk := h.ticket("ann@example.com")
	if !slices.Contains(tk.Methods, "passkey") || !slices.Contains(tk.Methods, "backup_code") {
		t.Fatalf("methods %v", tk.Methods)
	}
	pc, err := h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAssertionOptions(string(pc.PublicKey))
	if err != nil || !slices.Equal(ao.AllowCredentials, []string{b64(d.cred.ID)}) || ao.RelyingPartyID != testRPID {
		t.Fatalf("allow %+v %v", ao, err)
	}
	if !strings.Contains(string(pc.PublicKey), `"userVerification":"preferred"`) {
		t.Fatalf("options %s", pc.PublicKey)
	}
	// with a password already checked, user verification is not needed
	d.auth.Options.UserNotVerified = true
	res, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 1), "ignored-with-a-ticket", command.RequestMeta{})
	if err != nil || res.Status != command.StatusAuthenticated {
		t.Fatalf("%+v %v", res, err)
	}
	if s := res.Authenticated.Session; !slices.Equal(s.AMR, []string{"pwd", "passkey"}) || s.AAL != domain.AAL2 || s.AccountID != id {
		t.Fatalf("session %+v", s)
	}
	// the ticket is used up
	if _, err := h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("used ticket: %v", err)
	}
	if _, err := h.svc.SecondFactor(h.ctx, tk.Ticket, "backup_code", "x", command.RequestMeta{}); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("used ticket: %v", err)
	}
	// an unknown ticket
	if _, err := h.svc.BeginPasskeyLogin(h.ctx, "nope"); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("unknown ticket: %v", err)
	}
	// a passkey of another account does not pass for this one
	bobID := h.register("bob@example.com")
	bob := newDevice(t, bobID)
	h.enrollPasskey(h.login("bob@example.com").Session, bob, "Bob's key")
	tk = h.ticket("ann@example.com")
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket)
	opts, _ := virtualwebauthn.ParseAssertionOptions(string(pc.PublicKey))
	bob.cred.Counter = 1
	raw := virtualwebauthn.CreateAssertionResponse(testRP, bob.auth, bob.cred, *opts)
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, json.RawMessage(raw), "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("another account's passkey: %v", err)
	}
	acc := h.events(domain.AccountStream(id))
	if lf, ok := h.decode(acc[len(acc)-1]).(domain.LoginFailed); !ok || lf.Reason != reasons.LoginFailedInvalidSecondFactor ||
		lf.Stage != domain.StageSecondFactor || lf.Method != "passkey" {
		t.Fatalf("failure record %v", h.types(domain.AccountStream(id)))
	}
}

func TestPasskeyTicketTries(t *testing.T) {
	h := newHarness(t, withPasskeys, noThrottle)
	id := h.register("ann@example.com")
	d := newDevice(t, id)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Key")
	tk := h.ticket("ann@example.com")
	evil := virtualwebauthn.RelyingParty{ID: testRPID, Origin: "https://evil.example"}
	for i := range 5 {
		pc, err := h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket)
		if err != nil {
			t.Fatalf("try %d: %v", i+1, err)
		}
		if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, evil, pc, uint32(i+1)), "", command.RequestMeta{}); !errors.Is(err, domain.ErrPasskeyInvalid) {
			t.Fatalf("try %d: %v", i+1, err)
		}
	}
	if _, err := h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket); !errors.Is(err, command.ErrTicketInvalid) {
		t.Fatalf("burnt ticket: %v", err)
	}
}

func TestPasskeyCloneSuspected(t *testing.T) {
	h := newHarness(t, withPasskeys, noThrottle)
	id := h.register("ann@example.com")
	d := newDevice(t, id)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Key")
	login := func(count uint32) error {
		pc, err := h.svc.BeginPasskeyLogin(h.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, count), "", command.RequestMeta{IP: "192.0.2.3"})
		return err
	}
	if err := login(5); err != nil {
		t.Fatal(err)
	}
	for _, count := range []uint32{5, 3} { // replayed, regressed
		err := login(count)
		if !errors.Is(err, command.ErrPasskeyCloneSuspected) || !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("count %d: %v", count, err)
		}
		evs := h.events(domain.AccountStream(id))
		cs, ok := h.decode(evs[len(evs)-2]).(domain.PasskeyCloneSuspected)
		lf, ok2 := h.decode(evs[len(evs)-1]).(domain.LoginFailed)
		if !ok || !ok2 || cs.StoredSignCount != 5 || cs.ReceivedSignCount != count ||
			lf.Reason != reasons.LoginFailedPasskeyCloneSuspected || lf.Stage != domain.StagePasskey || lf.Method != "passkey" {
			t.Fatalf("count %d: %v", count, h.types(domain.AccountStream(id)))
		}
	}
	st, _ := h.svc.Security(h.ctx, id)
	if st.Passkeys[0].CloneSuspectedAt.IsZero() {
		t.Fatal("clone suspicion not in the state")
	}
	// the genuine authenticator, counting on, still works
	if err := login(6); err != nil {
		t.Fatal(err)
	}
	// two answers with one count racing: exactly one wins
	pcs := make([]command.PasskeyCeremony, 2)
	answers := make([]json.RawMessage, 2)
	for i := range pcs {
		pcs[i], _ = h.svc.BeginPasskeyLogin(h.ctx, "")
		answers[i] = d.assert(t, testRP, pcs[i], 7)
	}
	errs := race(2, func(i int) error {
		_, err := h.svc.FinishPasskeyLogin(h.ctx, pcs[i].ID, answers[i], "", command.RequestMeta{})
		return err
	})
	if ok, cloned := count(errs, command.ErrPasskeyCloneSuspected); ok != 1 || cloned != 1 {
		t.Fatalf("race: %v", errs)
	}
}

func TestPasskeyWithoutCounter(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Synced")
	for range 3 { // authenticators without a counter always say 0
		pc, _ := h.svc.BeginPasskeyLogin(h.ctx, "")
		if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 0), "", command.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.types(domain.AccountStream(id)); slices.Contains(got, "PasskeyCloneSuspected") {
		t.Fatalf("clone suspected: %v", got)
	}
}

func TestPasskeyLoginRefusesBadAssertions(t *testing.T) {
	h := newHarness(t, withPasskeys, noThrottle)
	id := h.register("ann@example.com")
	d := newDevice(t, id)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Key")
	stranger := newDevice(t, id) // never registered, same user handle
	n := uint32(0)
	cases := map[string]func(pc command.PasskeyCeremony) json.RawMessage{
		"wrong origin": func(pc command.PasskeyCeremony) json.RawMessage {
			return d.assert(t, virtualwebauthn.RelyingParty{ID: testRPID, Origin: "https://vigil.example.evil.example"}, pc, n)
		},
		"wrong rp id": func(pc command.PasskeyCeremony) json.RawMessage {
			return d.assert(t, virtualwebauthn.RelyingParty{ID: "example", Origin: testOrigin}, pc, n)
		},
		"wrong challenge": func(pc command.PasskeyCeremony) json.RawMessage {
			opts, _ := virtualwebauthn.ParseAssertionOptions(string(pc.PublicKey))
			opts.Challenge = append(opts.Challenge, 0)
			d.cred.Counter = n
			return json.RawMessage(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *opts))
		},
		"unknown credential": func(pc command.PasskeyCeremony) json.RawMessage {
			return stranger.assert(t, testRP, pc, n)
		},
		"another key's signature": func(pc command.PasskeyCeremony) json.RawMessage {
			forged := *stranger
			forged.cred.ID = d.cred.ID
			return forged.assert(t, testRP, pc, n)
		},
		"user not present": func(pc command.PasskeyCeremony) json.RawMessage {
			absent := *d
			absent.auth.Options.UserNotPresent = true
			return absent.assert(t, testRP, pc, n)
		},
		"garbage": func(command.PasskeyCeremony) json.RawMessage { return json.RawMessage(`[1,2,3]`) },
	}
	for name, answer := range cases {
		n++
		pc, err := h.svc.BeginPasskeyLogin(h.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.svc.FinishPasskeyLogin(h.ctx, pc.ID, answer(pc), "", command.RequestMeta{IP: "192.0.2.4"})
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, domain.ErrInvalidCredentials) || !errors.Is(err, domain.ErrPasskeyInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var failures int
	for _, env := range h.events(domain.AccountStream(id)) {
		if lf, ok := h.decode(env).(domain.LoginFailed); ok {
			if lf.Reason != reasons.LoginFailedInvalidSecondFactor || lf.Method != "passkey" || env.Metadata.IP != "192.0.2.4" {
				t.Fatalf("LoginFailed %+v", lf)
			}
			failures++
		}
	}
	if failures != len(cases)-1 { // garbage names no account
		t.Fatalf("%d failures recorded on the account", failures)
	}
	sys := h.events(domain.SigninStream)
	if len(sys) != 1 || h.decode(sys[0]).(domain.LoginFailed).Reason != reasons.LoginFailedInvalidCredentials {
		t.Fatalf("system-signin %v", h.types(domain.SigninStream))
	}
	// a user handle naming no account
	ghost := newDevice(t, "0195a0b0-0000-7000-8000-000000000000")
	pc, _ := h.svc.BeginPasskeyLogin(h.ctx, "")
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, ghost.assert(t, testRP, pc, 1), "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("unknown user handle: %v", err)
	}
	sys = h.events(domain.SigninStream)
	if lf := h.decode(sys[len(sys)-1]).(domain.LoginFailed); lf.Reason != reasons.LoginFailedUnknownAccount || lf.Stage != domain.StagePasskey {
		t.Fatalf("unknown account record %+v", lf)
	}
	// the genuine answer still works: nothing was spent
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 100), "", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
}

func TestPasskeyLoginThrottled(t *testing.T) {
	h, _, d := newPasskeyHarness(t)
	h.enrollPasskey(h.login("ann@example.com").Session, d, "Key")
	evil := virtualwebauthn.RelyingParty{ID: testRPID, Origin: "https://evil.example"}
	var err error
	for i := range 7 {
		pc, _ := h.svc.BeginPasskeyLogin(h.ctx, "")
		_, err = h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, evil, pc, uint32(i+1)), "", command.RequestMeta{IP: "192.0.2.5"})
	}
	var te *throttle.Error
	if !errors.As(err, &te) {
		t.Fatalf("after 7 failures: %v", err)
	}
	// throttling is shared with the password sign-in of the account
	if _, err := h.svc.Login(h.ctx, "ann@example.com", goodPassword, "", command.RequestMeta{}); !errors.As(err, &te) {
		t.Fatalf("password sign-in while throttled: %v", err)
	}
}

func TestPasskeyRenameAndRemove(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	sess := h.login("ann@example.com").Session
	reg := h.enrollPasskey(sess, d, "Key")
	sess = h.session(sess.ID)

	pos, err := h.svc.RenamePasskey(h.ctx, sess, reg.Passkey.ID, " YubiKey 5 ", command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatalf("rename %d %v", pos, err)
	}
	if pos, err := h.svc.RenamePasskey(h.ctx, sess, reg.Passkey.ID, "YubiKey 5", command.RequestMeta{}); err != nil || pos != 0 {
		t.Fatalf("same name %d %v", pos, err)
	}
	if _, err := h.svc.RenamePasskey(h.ctx, sess, "nope", "X", command.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown passkey: %v", err)
	}
	if _, err := h.svc.RenamePasskey(h.ctx, sess, reg.Passkey.ID, "a\x00b", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("bad name: %v", err)
	}
	st, _ := h.svc.Security(h.ctx, id)
	if st.Passkeys[0].Name != "YubiKey 5" {
		t.Fatalf("name %q", st.Passkeys[0].Name)
	}

	// removal needs a recent authentication, and is refused while an org requires 2FA
	h.clock.Advance(6 * time.Minute)
	if _, err := h.svc.RemovePasskey(h.ctx, sess, reg.Passkey.ID, command.RequestMeta{}); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("remove without step-up: %v", err)
	}
	pc, err := h.svc.BeginPasskeyReauth(h.ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, testRP, pc, 1), command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	strict := newHarnessSharing(t, h, func(c *command.Config) { c.TwoFactorPolicy = requiredPolicy{orgs: []string{"org-1"}} })
	if _, err := strict.RemovePasskey(h.ctx, sess, reg.Passkey.ID, command.RequestMeta{}); !errors.Is(err, domain.ErrTwoFactorRequired) {
		t.Fatalf("remove the last factor under a policy: %v", err)
	}
	if _, err := h.svc.RemovePasskey(h.ctx, sess, "nope", command.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown passkey: %v", err)
	}
	if _, err := h.svc.RemovePasskey(h.ctx, sess, reg.Passkey.ID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	types := h.types(domain.AccountStream(id))
	if !slices.Equal(types[len(types)-2:], []string{"PasskeyRemoved", "TwoFactorDisabled"}) {
		t.Fatalf("account stream %v", types)
	}
	st, _ = h.svc.Security(h.ctx, id)
	if st.TwoFactorEnabled || len(st.Passkeys) != 0 || st.BackupCodes.Remaining != 0 {
		t.Fatalf("security %+v", st)
	}
	// with a TOTP device left, removing a passkey keeps 2FA on
	h.enrollTOTP(sess, "Phone")
	reg = h.enrollPasskey(sess, newDevice(t, id), "Key 2")
	if reg.BackupCodes != nil {
		t.Fatal("backup codes again while 2FA was on")
	}
	if _, err := h.svc.RemovePasskey(h.ctx, sess, reg.Passkey.ID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.svc.Security(h.ctx, id); !st.TwoFactorEnabled || st.BackupCodes.Remaining != 10 {
		t.Fatalf("security %+v", st)
	}
}

// newHarnessSharing returns a second service over h's store and session index with opts.
func newHarnessSharing(t *testing.T, h *harness, opts ...func(*command.Config)) *command.Service {
	t.Helper()
	cfg := h.cfg
	cfg.Sessions = h.svc.Sessions()
	cfg.Passkeys = passkey.Config{}
	withPasskeys(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := command.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestPasskeyReauth(t *testing.T) {
	h, id, d := newPasskeyHarness(t)
	sess := h.login("ann@example.com").Session
	h.enrollPasskey(sess, d, "Key")
	h.clock.Advance(10 * time.Minute) // past the step-up window, within the idle timeout
	sess = h.session(sess.ID)
	if err := h.svc.RequireRecentAuth(sess, 0); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatal(err)
	}
	pc, err := h.svc.BeginPasskeyReauth(h.ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	ao, _ := virtualwebauthn.ParseAssertionOptions(string(pc.PublicKey))
	if !slices.Equal(ao.AllowCredentials, []string{b64(d.cred.ID)}) {
		t.Fatalf("allow %v", ao.AllowCredentials)
	}
	// another session (signed in with the passkey) cannot answer it
	lpc, _ := h.svc.BeginPasskeyLogin(h.ctx, "")
	other, err := h.svc.FinishPasskeyLogin(h.ctx, lpc.ID, d.assert(t, testRP, lpc, 1), "", command.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, other.Authenticated.Session, pc.ID, d.assert(t, testRP, pc, 2), command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("another session's ceremony: %v", err)
	}
	pc, _ = h.svc.BeginPasskeyReauth(h.ctx, sess)
	// a wrong answer is recorded like a wrong password at re-authentication
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, virtualwebauthn.RelyingParty{ID: testRPID, Origin: "https://evil.example"}, pc, 2), command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("wrong origin: %v", err)
	}
	evs := h.events(domain.AccountStream(id))
	if lf := h.decode(evs[len(evs)-1]).(domain.LoginFailed); lf.Stage != domain.StageReauth || lf.SessionID != sess.ID || lf.Method != "passkey" {
		t.Fatalf("failure %+v", lf)
	}
	pc, _ = h.svc.BeginPasskeyReauth(h.ctx, sess)
	pos, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, testRP, pc, 3), command.RequestMeta{})
	if err != nil || pos == 0 {
		t.Fatalf("%d %v", pos, err)
	}
	cur := h.session(sess.ID)
	if !cur.AuthenticatedAt.Equal(h.clock.Now()) || h.svc.RequireRecentAuth(cur, 0) != nil || !slices.Contains(cur.AMR, "passkey") {
		t.Fatalf("session %+v", cur)
	}
	sevs := h.events(domain.SessionStream(sess.ID))
	if rs := h.decode(sevs[len(sevs)-1]).(domain.ReauthSucceeded); rs.Method != "passkey" {
		t.Fatalf("ReauthSucceeded %+v", rs)
	}
	// replaying the count at re-authentication is a clone suspicion too
	pc, _ = h.svc.BeginPasskeyReauth(h.ctx, sess)
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, testRP, pc, 3), command.RequestMeta{}); !errors.Is(err, command.ErrPasskeyCloneSuspected) {
		t.Fatalf("replayed count: %v", err)
	}
	// an account without a passkey has nothing to offer
	bob := h.register("bob@example.com")
	_ = bob
	if _, err := h.svc.BeginPasskeyReauth(h.ctx, h.login("bob@example.com").Session); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("no passkey: %v", err)
	}
}

func TestPasskeyCeremoniesSingleUseAndExpire(t *testing.T) {
	h, _, d := newPasskeyHarness(t)
	sess := h.login("ann@example.com").Session

	// single use, whatever the outcome
	pc, _ := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Key")
	att := d.attest(t, testRP, pc)
	if _, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, att, false, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, att, false, command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("second use: %v", err)
	}
	sess = h.session(sess.ID)
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	good := d.assert(t, testRP, pc, 1)
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, json.RawMessage(`{}`), "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Fatalf("bad answer: %v", err)
	}
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, good, "", command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("after a failure: %v", err)
	}
	// expiry after five minutes (injected clock)
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	good = d.assert(t, testRP, pc, 2)
	h.clock.Advance(5 * time.Minute)
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, good, "", command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("expired: %v", err)
	}
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, "")
	h.clock.Advance(5*time.Minute - time.Second)
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, pc.ID, d.assert(t, testRP, pc, 3), "", command.RequestMeta{}); err != nil {
		t.Fatalf("just in time: %v", err)
	}
	// a ceremony answers only what it was begun for
	tk := h.ticket("ann@example.com")
	pc, _ = h.svc.BeginPasskeyLogin(h.ctx, tk.Ticket)
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, testRP, pc, 4), command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("login ceremony used for reauth: %v", err)
	}
	pc, _ = h.svc.BeginPasskeyReauth(h.ctx, sess)
	if _, err := h.svc.FinishPasskeyReauth(h.ctx, sess, pc.ID, d.assert(t, testRP, pc, 5), command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	pc, _ = h.svc.BeginPasskeyReauth(h.ctx, sess)
	if _, err := h.svc.FinishPasskeyRegistration(h.ctx, sess, pc.ID, d.attest(t, testRP, pc), false, command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("reauth ceremony used for registration: %v", err)
	}
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, "never-issued", good, "", command.RequestMeta{}); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("unknown ceremony: %v", err)
	}
}

func TestPasskeysDisabled(t *testing.T) {
	h := newHarness(t)
	h.register("ann@example.com")
	sess := h.login("ann@example.com").Session
	if _, err := h.svc.BeginPasskeyRegistration(h.ctx, sess, "Key"); !errors.Is(err, command.ErrPasskeysDisabled) {
		t.Fatal(err)
	}
	if _, err := h.svc.BeginPasskeyLogin(h.ctx, ""); !errors.Is(err, command.ErrPasskeysDisabled) {
		t.Fatal(err)
	}
	if _, err := h.svc.FinishPasskeyLogin(h.ctx, "x", nil, "", command.RequestMeta{}); !errors.Is(err, command.ErrPasskeysDisabled) {
		t.Fatal(err)
	}
}

func TestPasskeyConfig(t *testing.T) {
	store, kr := testkit.SQLite(t), testkit.Keyring(t, "s")
	hasher, err := credential.NewArgon2Hasher(credential.Argon2Config{MemoryKiB: 8192, Iterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	build := func(pc passkey.Config) error {
		_, err := command.NewService(command.Config{Store: store, Keyring: kr, Hasher: hasher, Passkeys: pc})
		return err
	}
	pc, err := passkey.ConfigFromPublicURL("https://Vigil.Example:8443/portal/")
	if err != nil || pc.RPID != "vigil.example" || !slices.Equal(pc.Origins, []string{"https://Vigil.Example:8443"}) {
		t.Fatalf("%+v %v", pc, err)
	}
	if err := build(pc); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"vigil.example", "http://127.0.0.1:8080", "http://vigil.example"} {
		if _, err := passkey.ConfigFromPublicURL(bad); err == nil {
			t.Fatalf("public URL %q accepted", bad)
		}
	}
	if pc, err := passkey.ConfigFromPublicURL("http://localhost:8080"); err != nil || pc.RPID != "localhost" {
		t.Fatalf("localhost: %+v %v", pc, err)
	}
	for _, ok := range []passkey.Config{
		{},
		{RPID: "vigil.example"},
		{RPID: "localhost", Origins: []string{"http://localhost:8080"}},
		{RPID: "example.com", Origins: []string{"https://login.example.com", "https://example.com:443"}, RPDisplayName: "Acme"},
	} {
		if err := build(ok); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []passkey.Config{
		{Origins: []string{testOrigin}},
		{RPID: "https://vigil.example"},
		{RPID: "vigil.example:443"},
		{RPID: "Vigil.Example"},
		{RPID: "192.0.2.1"},
		{RPID: "vigil.example", Origins: []string{"https://evil.example"}},
		{RPID: "vigil.example", Origins: []string{"https://notvigil.example"}},
		{RPID: "vigil.example", Origins: []string{"http://vigil.example"}},
		{RPID: "vigil.example", Origins: []string{"https://vigil.example/path"}},
		{RPID: "vigil.example", CeremonyTTL: time.Hour},
		{RPID: "vigil.example", RPDisplayName: strings.Repeat("x", 101)},
	} {
		if err := build(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestMemoryCeremonyStore(t *testing.T) {
	ctx := t.Context()
	m := ephemeral.NewMemoryCeremonyStoreWithLimit(2)
	c := func(id string, exp time.Time) ephemeral.Ceremony {
		return ephemeral.Ceremony{ID: id, Kind: ephemeral.CeremonyLogin, Challenge: []byte{1}, ExpiresAt: exp}
	}
	if err := m.Put(ctx, c("a", start.Add(time.Minute)), start); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, c("b", start.Add(2*time.Minute)), start); err != nil {
		t.Fatal(err)
	}
	var te *throttle.Error
	if err := m.Put(ctx, c("c", start.Add(time.Minute)), start); !errors.As(err, &te) || te.RetryAfter != time.Minute {
		t.Fatalf("full store: %v", err)
	}
	// once one expires there is room again
	if err := m.Put(ctx, c("c", start.Add(3*time.Minute)), start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Take(ctx, "a", start.Add(time.Minute)); !errors.Is(err, command.ErrCeremonyInvalid) {
		t.Fatalf("expired: %v", err)
	}
	got, err := m.Take(ctx, "b", start.Add(time.Minute))
	if err != nil || got.ID != "b" {
		t.Fatalf("%+v %v", got, err)
	}
	errs := race(20, func(int) error { _, err := m.Take(ctx, "c", start); return err })
	if ok, invalid := count(errs, command.ErrCeremonyInvalid); ok != 1 || invalid != 19 {
		t.Fatalf("concurrent takes: %d won", ok)
	}
	m.Prune(ctx, start.Add(time.Hour))
	if m.Len() != 0 {
		t.Fatalf("%d left", m.Len())
	}
}
