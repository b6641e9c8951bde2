package passkey

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Package passkey verifies WebAuthn (passkey) ceremonies: it writes the options a browser
// needs to create or use a credential and checks the browser's answers (Web Authentication
// Level 3, §7.1 "Registering a New Credential"
// and §7.2 "Verifying an Authentication Assertion").
//
// It is written here on go-webauthn's COSE (key parsing, signature verification) and CBOR
// packages rather than on its protocol package because that package imports net/http (its
// *http.Request parsing helpers and the related-origins fetch), and domain must not depend
// on HTTP. It knows nothing of accounts or ceremonies in progress: package domain keeps
// those and calls it. What this package does not do:
//   - Attestation: the options ask for attestation "none" and nothing relies on the
//     authenticator's make or model. "none" and "packed" self-attestation (no x5c) are
//     verified; the statement of any other format is ignored, so the recorded AAGUID is
//     the authenticator's unverified claim. The trust in a new key comes from the session
//     that registers it (a recent authentication), not from attestation.
//   - Extensions, token binding, cross-origin iframes (crossOrigin true is refused), related
//     origins (every accepted origin is configured).

// ChallengeSize is the size in bytes of a ceremony's random challenge.
const ChallengeSize = 32

// Limits of what a browser's answer may hold.
const (
	maxCredentialJSON     = 64 << 10
	maxCredentialIDLength = 1023
	maxUserHandleLength   = 64
	maxTransports         = 8
)

// COSE algorithms offered for new credentials, in order of preference.
var passkeyAlgorithms = []int64{
	int64(webauthncose.AlgES256),
	int64(webauthncose.AlgEdDSA),
	int64(webauthncose.AlgRS256),
}

// knownTransports are the AuthenticatorTransport values kept from a registration.
var knownTransports = []string{"usb", "nfc", "ble", "smart-card", "hybrid", "internal"}

// Authenticator data flags.
const (
	flagUserPresent   = 1 << 0
	flagUserVerified  = 1 << 2
	flagBackupElig    = 1 << 3
	flagBackupState   = 1 << 4
	flagAttestedData  = 1 << 6
	flagHasExtensions = 1 << 7
)

// WebAuthn user verification requirements used in the options.
const (
	UVRequired  = "required"
	UVPreferred = "preferred"
)

// ErrWebAuthn is the root of every verification failure of this package; messages are
// short English sentences without secrets.
var ErrWebAuthn = errors.New("webauthn")

func webauthnErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrWebAuthn, fmt.Sprintf(format, args...))
}

// RelyingParty is what the checks need of the relying party's configuration (package
// Config.RelyingParty, validated by Config.Fill).
type RelyingParty struct {
	// ID is the relying party id (a host name).
	ID string
	// Name is the name authenticators show.
	Name string
	// Origins are the accepted origins of clientDataJSON, normalised (lower case, no
	// default port).
	Origins []string
	// Timeout is the ceremony timeout the options give the browser.
	Timeout time.Duration
}

// User is the account a new credential is created for.
type User struct {
	// Handle is the user handle (the account id's bytes).
	Handle []byte
	// Name and DisplayName are what authenticators show (email, full name).
	Name, DisplayName string
}

// Descriptor names a registered credential in the options: to exclude it from a
// registration or allow it in an assertion.
type Descriptor struct {
	ID         []byte
	Transports []string
}

// --- options (what navigator.credentials.create / get expect as "publicKey", in the JSON
// form of PublicKeyCredential.parseCreationOptionsFromJSON: binary fields base64url) ---

type credentialDescriptorJSON struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports,omitempty"`
}

type creationOptionsJSON struct {
	RP struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rp"`
	User struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	} `json:"user"`
	Challenge        string `json:"challenge"`
	PubKeyCredParams []struct {
		Type string `json:"type"`
		Alg  int64  `json:"alg"`
	} `json:"pubKeyCredParams"`
	Timeout                int64                      `json:"timeout"`
	ExcludeCredentials     []credentialDescriptorJSON `json:"excludeCredentials"`
	AuthenticatorSelection struct {
		ResidentKey        string `json:"residentKey"`
		RequireResidentKey bool   `json:"requireResidentKey"`
		UserVerification   string `json:"userVerification"`
	} `json:"authenticatorSelection"`
	Attestation string          `json:"attestation"`
	Extensions  map[string]bool `json:"extensions"`
}

type requestOptionsJSON struct {
	Challenge        string                     `json:"challenge"`
	Timeout          int64                      `json:"timeout"`
	RPID             string                     `json:"rpId"`
	AllowCredentials []credentialDescriptorJSON `json:"allowCredentials"`
	UserVerification string                     `json:"userVerification"`
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// decodeB64URL decodes base64url with or without padding.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func descriptors(creds []Descriptor) []credentialDescriptorJSON {
	out := make([]credentialDescriptorJSON, 0, len(creds))
	for _, c := range creds {
		out = append(out, credentialDescriptorJSON{Type: "public-key", ID: b64url(c.ID), Transports: c.Transports})
	}
	return out
}

// CreationOptions returns the "publicKey" creation options of a registration: the RP, the
// user, discoverable credentials and user verification preferred, attestation "none", the
// credentials of exclude excluded.
func CreationOptions(rp RelyingParty, u User, exclude []Descriptor, challenge []byte) (json.RawMessage, error) {
	var o creationOptionsJSON
	o.RP.ID, o.RP.Name = rp.ID, rp.Name
	o.User.ID, o.User.Name, o.User.DisplayName = b64url(u.Handle), u.Name, u.DisplayName
	o.Challenge = b64url(challenge)
	for _, alg := range passkeyAlgorithms {
		o.PubKeyCredParams = append(o.PubKeyCredParams, struct {
			Type string `json:"type"`
			Alg  int64  `json:"alg"`
		}{"public-key", alg})
	}
	o.Timeout = rp.Timeout.Milliseconds()
	o.ExcludeCredentials = descriptors(exclude)
	o.AuthenticatorSelection.ResidentKey = "preferred"
	o.AuthenticatorSelection.UserVerification = UVPreferred
	o.Attestation = "none"
	o.Extensions = map[string]bool{"credProps": true}
	return json.Marshal(o)
}

// RequestOptions returns the "publicKey" request options of an assertion with user
// verification uv (UVRequired or UVPreferred); allow nil means any discoverable credential
// (an empty allowCredentials).
func RequestOptions(rp RelyingParty, allow []Descriptor, challenge []byte, uv string) (json.RawMessage, error) {
	return json.Marshal(requestOptionsJSON{Challenge: b64url(challenge), Timeout: rp.Timeout.Milliseconds(),
		RPID: rp.ID, AllowCredentials: descriptors(allow), UserVerification: uv})
}

// --- the browser's answer ---

// credentialJSON is a PublicKeyCredential as JSON (PublicKeyCredential.toJSON(), binary
// fields base64url): attestation fields for a registration, assertion fields for a sign-in.
type credentialJSON struct {
	ID       string `json:"id"`
	RawID    string `json:"rawId"`
	Type     string `json:"type"`
	Response struct {
		ClientDataJSON    string   `json:"clientDataJSON"`
		AttestationObject string   `json:"attestationObject"`
		Transports        []string `json:"transports"`
		AuthenticatorData string   `json:"authenticatorData"`
		Signature         string   `json:"signature"`
		UserHandle        string   `json:"userHandle"`
	} `json:"response"`
}

// parseCredential decodes the common part of an answer and returns the raw credential id.
func parseCredential(raw json.RawMessage) (credentialJSON, []byte, error) {
	var c credentialJSON
	if len(raw) == 0 {
		return c, nil, webauthnErr("the credential is missing")
	}
	if len(raw) > maxCredentialJSON {
		return c, nil, webauthnErr("the credential is too large")
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, nil, webauthnErr("the credential is not PublicKeyCredential JSON")
	}
	if c.Type != "public-key" {
		return c, nil, webauthnErr("the credential type is not public-key")
	}
	id, err := decodeB64URL(c.RawID)
	if c.RawID == "" {
		id, err = decodeB64URL(c.ID)
	}
	if err != nil || len(id) == 0 || len(id) > maxCredentialIDLength {
		return c, nil, webauthnErr("the credential id is malformed")
	}
	if c.ID != "" && strings.TrimRight(c.ID, "=") != b64url(id) {
		return c, nil, webauthnErr("the credential id and raw id differ")
	}
	return c, id, nil
}

type collectedClientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
	TopOrigin   string `json:"topOrigin"`
}

// checkClientData verifies clientDataJSON (§7.1 steps 5-10, §7.2 steps 10-15) and returns
// its SHA-256.
func checkClientData(rp RelyingParty, encoded, wantType string, challenge []byte) ([32]byte, error) {
	raw, err := decodeB64URL(encoded)
	if err != nil || len(raw) == 0 {
		return [32]byte{}, webauthnErr("clientDataJSON is malformed")
	}
	var cd collectedClientData
	if err := json.Unmarshal(raw, &cd); err != nil {
		return [32]byte{}, webauthnErr("clientDataJSON is malformed")
	}
	if cd.Type != wantType {
		return [32]byte{}, webauthnErr("clientDataJSON type is %q, not %q", cd.Type, wantType)
	}
	got, err := decodeB64URL(cd.Challenge)
	if err != nil || subtle.ConstantTimeCompare(got, challenge) != 1 {
		return [32]byte{}, webauthnErr("the challenge does not match")
	}
	if !slices.Contains(rp.Origins, canonicalOrigin(cd.Origin)) {
		return [32]byte{}, webauthnErr("origin %q is not accepted", truncate(cd.Origin, 100))
	}
	if cd.CrossOrigin || cd.TopOrigin != "" {
		return [32]byte{}, webauthnErr("cross-origin ceremonies are not accepted")
	}
	return sha256.Sum256(raw), nil
}

// canonicalOrigin lower-cases an http(s) origin and drops its default port, as the
// configured origins are; anything else is returned as is (and will not match).
func canonicalOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return o
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// authenticatorData is the parsed authData (§6.1).
type authenticatorData struct {
	raw          []byte
	rpIDHash     []byte
	flags        byte
	signCount    uint32
	aaguid       []byte
	credentialID []byte
	publicKey    []byte // COSE_Key as the authenticator encoded it
}

func parseAuthenticatorData(raw []byte) (authenticatorData, error) {
	const fixed = 37
	if len(raw) < fixed {
		return authenticatorData{}, webauthnErr("authenticator data is too short")
	}
	d := authenticatorData{raw: raw, rpIDHash: raw[:32], flags: raw[32], signCount: binary.BigEndian.Uint32(raw[33:37])}
	rest := raw[fixed:]
	if d.flags&flagAttestedData != 0 {
		if len(rest) < 18 {
			return d, webauthnErr("attested credential data is too short")
		}
		d.aaguid = rest[:16]
		n := int(binary.BigEndian.Uint16(rest[16:18]))
		rest = rest[18:]
		if n == 0 || n > maxCredentialIDLength || len(rest) < n {
			return d, webauthnErr("the attested credential id is malformed")
		}
		d.credentialID, rest = rest[:n], rest[n:]
		var key any
		used, err := webauthncbor.UnmarshalFirst(rest, &key)
		if err != nil {
			return d, webauthnErr("the credential public key is malformed")
		}
		d.publicKey, rest = rest[:used], rest[used:]
	}
	if d.flags&flagHasExtensions != 0 {
		var ext map[string]any
		used, err := webauthncbor.UnmarshalFirst(rest, &ext)
		if err != nil {
			return d, webauthnErr("authenticator extensions are malformed")
		}
		rest = rest[used:]
	}
	if len(rest) != 0 {
		return d, webauthnErr("authenticator data has trailing bytes")
	}
	return d, nil
}

// checkAuthenticatorData verifies the RP id hash, user presence, user verification when
// required, and the backup flags' consistency (§7.1 steps 13-17, §7.2 steps 15-19).
func checkAuthenticatorData(rp RelyingParty, d authenticatorData, requireUV bool) error {
	want := sha256.Sum256([]byte(rp.ID))
	if subtle.ConstantTimeCompare(d.rpIDHash, want[:]) != 1 {
		return webauthnErr("the relying party id hash does not match")
	}
	if d.flags&flagUserPresent == 0 {
		return webauthnErr("the user was not present")
	}
	if requireUV && d.flags&flagUserVerified == 0 {
		return webauthnErr("the user was not verified")
	}
	if d.flags&flagBackupElig == 0 && d.flags&flagBackupState != 0 {
		return webauthnErr("backup state without backup eligibility")
	}
	return nil
}

type attestationObject struct {
	Fmt      string         `cbor:"fmt"`
	AttStmt  map[string]any `cbor:"attStmt"`
	AuthData []byte         `cbor:"authData"`
}

// Registration is a verified new credential.
type Registration struct {
	CredentialID   []byte
	PublicKey      []byte // COSE_Key
	SignCount      uint32
	AAGUID         []byte
	Transports     []string
	BackupEligible bool
	BackupState    bool
}

// VerifyRegistration verifies a registration answer against the ceremony's challenge and
// returns the new credential (§7.1). requireUV refuses an answer without user
// verification. Every refusal wraps ErrWebAuthn.
func VerifyRegistration(rp RelyingParty, raw json.RawMessage, challenge []byte, requireUV bool) (Registration, error) {
	c, id, err := parseCredential(raw)
	if err != nil {
		return Registration{}, err
	}
	clientHash, err := checkClientData(rp, c.Response.ClientDataJSON, "webauthn.create", challenge)
	if err != nil {
		return Registration{}, err
	}
	attRaw, err := decodeB64URL(c.Response.AttestationObject)
	if err != nil || len(attRaw) == 0 {
		return Registration{}, webauthnErr("the attestation object is malformed")
	}
	var att attestationObject
	if err := webauthncbor.Unmarshal(attRaw, &att); err != nil || att.Fmt == "" {
		return Registration{}, webauthnErr("the attestation object is malformed")
	}
	d, err := parseAuthenticatorData(att.AuthData)
	if err != nil {
		return Registration{}, err
	}
	if err := checkAuthenticatorData(rp, d, requireUV); err != nil {
		return Registration{}, err
	}
	if d.flags&flagAttestedData == 0 {
		return Registration{}, webauthnErr("the answer holds no credential")
	}
	if !bytes.Equal(d.credentialID, id) {
		return Registration{}, webauthnErr("the credential id differs from the attested one")
	}
	key, err := webauthncose.ParsePublicKey(d.publicKey)
	if err != nil {
		return Registration{}, webauthnErr("the credential public key is not supported")
	}
	alg := coseAlgorithm(key)
	if !slices.Contains(passkeyAlgorithms, alg) {
		return Registration{}, webauthnErr("the credential algorithm %d was not offered", alg)
	}
	if err := verifyAttestationStatement(att, key, alg, clientHash); err != nil {
		return Registration{}, err
	}
	var transports []string
	for _, t := range c.Response.Transports {
		if slices.Contains(knownTransports, t) && !slices.Contains(transports, t) && len(transports) < maxTransports {
			transports = append(transports, t)
		}
	}
	return Registration{CredentialID: slices.Clone(id), PublicKey: slices.Clone(d.publicKey), SignCount: d.signCount,
		AAGUID: slices.Clone(d.aaguid), Transports: transports,
		BackupEligible: d.flags&flagBackupElig != 0, BackupState: d.flags&flagBackupState != 0}, nil
}

// coseAlgorithm returns the COSE algorithm a parsed key names.
func coseAlgorithm(key any) int64 {
	switch k := key.(type) {
	case webauthncose.EC2PublicKeyData:
		return k.Algorithm
	case webauthncose.OKPPublicKeyData:
		return k.Algorithm
	case webauthncose.RSAPublicKeyData:
		return k.Algorithm
	}
	return 0
}

// verifyAttestationStatement checks "none" (an empty statement) and "packed" self
// attestation (the credential key signs authData and the client data hash); other formats
// are not relied on and not verified (see the file comment).
func verifyAttestationStatement(att attestationObject, key any, alg int64, clientHash [32]byte) error {
	switch att.Fmt {
	case "none":
		if len(att.AttStmt) != 0 {
			return webauthnErr("a none attestation with a statement")
		}
	case "packed":
		if _, ok := att.AttStmt["x5c"]; ok {
			return nil // full attestation: not relied on
		}
		sig, ok := att.AttStmt["sig"].([]byte)
		if !ok || cborInt(att.AttStmt["alg"]) != alg {
			return webauthnErr("the packed self attestation is malformed")
		}
		signed := append(slices.Clone(att.AuthData), clientHash[:]...)
		if ok, err := webauthncose.VerifySignature(key, signed, sig); err != nil || !ok {
			return webauthnErr("the packed self attestation signature is invalid")
		}
	}
	return nil
}

// cborInt returns a CBOR integer decoded into any (int64 or uint64), or 0.
func cborInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		if x <= 1<<62 {
			return int64(x)
		}
	}
	return 0
}

// Assertion is an assertion answer decoded but not verified yet: the credential id and
// user handle say whose key must verify it.
type Assertion struct {
	CredentialID []byte
	UserHandle   []byte // empty when the authenticator gave none
	clientData   string
	authData     []byte
	signature    []byte
}

// ParseAssertion decodes an assertion answer (PublicKeyCredential JSON). Every refusal
// wraps ErrWebAuthn.
func ParseAssertion(raw json.RawMessage) (Assertion, error) {
	c, id, err := parseCredential(raw)
	if err != nil {
		return Assertion{}, err
	}
	p := Assertion{CredentialID: id, clientData: c.Response.ClientDataJSON}
	if p.authData, err = decodeB64URL(c.Response.AuthenticatorData); err != nil || len(p.authData) == 0 {
		return p, webauthnErr("the authenticator data is malformed")
	}
	if p.signature, err = decodeB64URL(c.Response.Signature); err != nil || len(p.signature) == 0 {
		return p, webauthnErr("the signature is malformed")
	}
	if p.UserHandle, err = decodeB64URL(c.Response.UserHandle); err != nil || len(p.UserHandle) > maxUserHandleLength {
		return p, webauthnErr("the user handle is malformed")
	}
	return p, nil
}

// AssertionResult is what a verified assertion tells.
type AssertionResult struct {
	SignCount    uint32
	BackupState  bool
	UserVerified bool
}

// Credential is what an assertion is verified against: the stored public key of the
// credential the assertion names, and whether it was backup eligible at registration.
type Credential struct {
	PublicKey      []byte // COSE_Key
	BackupEligible bool
}

// VerifyAssertion verifies p against the stored credential cred and the ceremony's
// challenge (§7.2 steps 10-21 but the sign count, which the caller judges against the
// state it appends to). Every refusal wraps ErrWebAuthn.
func VerifyAssertion(rp RelyingParty, p Assertion, cred Credential, challenge []byte, requireUV bool) (AssertionResult, error) {
	clientHash, err := checkClientData(rp, p.clientData, "webauthn.get", challenge)
	if err != nil {
		return AssertionResult{}, err
	}
	d, err := parseAuthenticatorData(p.authData)
	if err != nil {
		return AssertionResult{}, err
	}
	if err := checkAuthenticatorData(rp, d, requireUV); err != nil {
		return AssertionResult{}, err
	}
	if d.flags&flagAttestedData != 0 {
		return AssertionResult{}, webauthnErr("an assertion with attested credential data")
	}
	if (d.flags&flagBackupElig != 0) != cred.BackupEligible {
		return AssertionResult{}, webauthnErr("the backup eligibility changed")
	}
	key, err := webauthncose.ParsePublicKey(cred.PublicKey)
	if err != nil {
		return AssertionResult{}, webauthnErr("the stored public key cannot be used")
	}
	signed := append(slices.Clone(p.authData), clientHash[:]...)
	if ok, err := webauthncose.VerifySignature(key, signed, p.signature); err != nil || !ok {
		return AssertionResult{}, webauthnErr("the signature is invalid")
	}
	return AssertionResult{SignCount: d.signCount, BackupState: d.flags&flagBackupState != 0,
		UserVerified: d.flags&flagUserVerified != 0}, nil
}

// truncate returns at most the first n bytes of s, cut at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
