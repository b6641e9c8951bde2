package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// Passkeys (WebAuthn): API.md "Accounts and login" (passkey sign-in, usernameless or as
// the second factor of a login ticket, and passkey re-authentication; POST /reauth takes
// the answer, see accounts.go) and "The account's own pages" (registering, renaming and
// removing the caller's passkeys). Every ceremony is two requests: the options route
// answers {ceremony_id, public_key}, public_key being the options for
// navigator.credentials.create / get in their JSON form; the browser's PublicKeyCredential
// (its toJSON()) comes back as `credential` with the ceremony_id. Ceremonies are single-use
// and expire (5 minutes). Registering (options and answer) and re-authenticating are
// enrollment routes: a restricted session may use them.

// Error answers of the passkey routes.
const (
	ceremonyText               = "invalid_request: the ceremony_id is unknown, expired, already used, or was begun for something else or by another session; start the ceremony again"
	passkeysOffText            = "not_found: passkeys are not configured on this server"
	ceremoniesFullText         = "too_many_attempts: too many passkey ceremonies are in progress; the Retry-After header says how many seconds to wait"
	passkeyRefusedSignedInText = "invalid_credentials: the passkey's answer was refused (unknown credential, wrong origin, relying party or challenge, no user presence, bad signature, or a sign count that did not increase: a possible clone)"
	credentialMalformedText    = "invalid_request: credential is not a JSON object"
)

// credentialSchema describes the `credential` member: the browser's PublicKeyCredential
// from call (navigator.credentials.create or .get) in its JSON form.
func credentialSchema(call string) web.Schema {
	return web.Schema{"type": "object", "description": "The PublicKeyCredential that " + call +
		" resolved to, in its JSON form (PublicKeyCredential.toJSON(): id, rawId, type, response, ...; binary members base64url)."}
}

// ceremonySchema is the answer of an options route; kind says which options public_key
// holds.
func ceremonySchema(kind, parse string) web.Schema {
	return web.Object(map[string]web.Schema{
		"ceremony_id": {"type": "string", "description": "Names the ceremony in the answer; single-use, valid 5 minutes."},
		"public_key": {"type": "object", "description": "WebAuthn " + kind + " in their JSON form (binary members base64url), for " +
			parse + "; the `publicKey` member of the call."},
	}, "ceremony_id", "public_key")
}

// passkeyRoutes: the passkey ceremonies and the caller's passkeys.
func (s *API) passkeyRoutes() []web.Route {
	loginAnswer := web.Response{Description: "authenticated, with an aal2 session (see the schema).", Schema: web.Ref("LoginResult"),
		Headers: map[string]string{"Set-Cookie": "vigil_session (HttpOnly, Secure, SameSite=Lax, Path=/)."}}
	requestOptions := ceremonySchema("PublicKeyCredentialRequestOptions", "PublicKeyCredential.parseRequestOptionsFromJSON and navigator.credentials.get")
	creationOptions := ceremonySchema("PublicKeyCredentialCreationOptions", "PublicKeyCredential.parseCreationOptionsFromJSON and navigator.credentials.create")
	noPasskey := web.ProblemLine{Status: http.StatusConflict, Text: "conflict: the account has no passkey"}
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/login/passkey/options", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "startPasskeyLogin", Summary: "Start a passkey sign-in",
				Description: "Without login_ticket (or without a body): a usernameless sign-in with any discoverable credential " +
					"(empty allowCredentials, user verification required), the passkey being the whole sign-in. With the login_ticket " +
					"of a second_factor_required answer: the passkey as the second factor (allowCredentials lists the account's " +
					"passkeys); this counts one of the ticket's tries. Writes nothing.",
				Request: &web.RequestBody{Optional: true, Schema: web.Object(map[string]web.Schema{
					"login_ticket": {"type": "string", "description": "From POST /api/v1/login (second_factor_required); absent for a usernameless sign-in."},
				})},
				Responses: map[int]web.Response{http.StatusOK: {Description: "The request options.", Schema: requestOptions}},
			},
			Errors: []web.ProblemLine{
				{Status: http.StatusUnauthorized, Text: "invalid_credentials: the login ticket is unknown, expired, used or burnt by 5 wrong tries"},
				{Status: http.StatusConflict, Text: "conflict: the login ticket's account has no passkey"},
				{Status: http.StatusTooManyRequests, Text: ceremoniesFullText},
				{Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.passkeyLoginOptions),
		},
		{
			Method: http.MethodPost, Path: "/login/passkey", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "loginPasskey", Summary: "Complete a passkey sign-in",
				Description: "The answer to the options of POST /api/v1/login/passkey/options. Usernameless: amr [passkey]; with a " +
					"login ticket: amr [pwd, passkey] (the ticket is used up); both aal2. The ceremony is used up whatever the outcome.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"ceremony_id": web.StringSchema(),
					"credential":  credentialSchema("navigator.credentials.get"),
					"client_id":   {"type": "string", "description": "The application signing in; the X-Vigil-Client header is used when absent. With a login ticket, the ticket's client counts."},
				}, "ceremony_id", "credential")),
				Responses: map[int]web.Response{http.StatusOK: loginAnswer},
			},
			Errors: []web.ProblemLine{
				{Status: http.StatusUnauthorized, Text: "invalid_credentials: the passkey's answer was refused (unknown credential, wrong origin, relying party or challenge, no user presence or verification, bad signature, or a sign count that did not increase: a possible clone), or the login ticket expired"},
				{Status: http.StatusBadRequest, Text: ceremonyText}, {Status: http.StatusBadRequest, Text: credentialMalformedText},
				{Status: http.StatusBadRequest, Text: web.UnknownClient},
				{Status: http.StatusTooManyRequests, Text: web.ThrottledText},
				{Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.passkeyLogin),
		},
		{
			Method: http.MethodPost, Path: "/reauth/passkey/options", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "startPasskeyReauth", Summary: "Start a passkey re-authentication (step-up)",
				Description: "allowCredentials lists the account's passkeys; answer with POST /api/v1/reauth {ceremony_id, credential}, " +
					"from this session. Writes nothing.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The request options.", Schema: requestOptions}},
			},
			Errors:  []web.ProblemLine{noPasskey, {Status: http.StatusTooManyRequests, Text: ceremoniesFullText}, {Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.reauthPasskeyOptions),
		},
		{
			Method: http.MethodPost, Path: "/me/passkeys/options", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "startPasskeyRegistration", Summary: "Start registering a passkey",
				Description: "Needs a recent authentication. The options ask for a discoverable credential and exclude the account's " +
					"passkeys; answer with POST /api/v1/me/passkeys from this session. Writes nothing.",
				Request:   web.JsonBody(web.Object(map[string]web.Schema{"name": {"type": "string", "minLength": 1, "maxLength": 64}}, "name")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The creation options.", Schema: creationOptions}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusConflict, Text: "conflict: the account holds the most passkeys it may (20)"},
				{Status: http.StatusTooManyRequests, Text: ceremoniesFullText}, {Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.passkeyRegistrationOptions),
		},
		{
			Method: http.MethodPost, Path: "/me/passkeys", Access: web.AccessSignedIn, Cap: domain.CapEnroll,
			Op: web.Operation{
				ID: "registerPasskey", Summary: "Register a passkey",
				Description: "The answer to the options of POST /api/v1/me/passkeys/options; needs a recent authentication. The session " +
					"becomes aal2 (and loses an enrollment restriction). When this turns 2FA on, the answer holds ten backup codes, " +
					"shown once. sign_out_other_sessions ends every other session of the account.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"ceremony_id":             web.StringSchema(),
					"credential":              credentialSchema("navigator.credentials.create"),
					"sign_out_other_sessions": web.BoolSchema(),
				}, "ceremony_id", "credential")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The new passkey.", Schema: web.Ref("RegisteredPasskey")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusBadRequest, Text: ceremonyText}, {Status: http.StatusBadRequest, Text: credentialMalformedText},
				{Status: http.StatusBadRequest, Text: "invalid_request: the credential was refused (origin, relying party, challenge, user presence, key algorithm or attestation); `errors` says why"},
				{Status: http.StatusConflict, Text: "conflict: the passkey is registered already, or the account holds 20"},
				{Status: http.StatusNotFound, Text: passkeysOffText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.registerPasskey),
		},
		{
			Method: http.MethodPatch, Path: "/me/passkeys/:id", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "renamePasskey", Summary: "Rename a passkey",
				Request:   web.JsonBody(web.Object(map[string]web.Schema{"name": {"type": "string", "minLength": 1, "maxLength": 64}}, "name")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The passkey.", Schema: web.Ref("Passkey")}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: the caller has no passkey with this id"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.renamePasskey),
		},
		{
			Method: http.MethodDelete, Path: "/me/passkeys/:id", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "removePasskey", Summary: "Remove a passkey",
				Description: "Needs a recent authentication. Removing the last second factor turns 2FA off and drops the backup codes.",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Removed.")},
			},
			Errors: []web.ProblemLine{{Status: http.StatusForbidden, Text: web.ReauthText},
				{Status: http.StatusNotFound, Text: "not_found: the caller has no passkey with this id"},
				{Status: http.StatusConflict, Text: "conflict: an organisation requires 2FA and this is the last second factor"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.removePasskey),
		},
	}
}

// definePasskeySchemas adds the component schemas of the passkey routes.
func (s *API) definePasskeySchemas() {
	props := map[string]web.Schema{
		"id":           web.StringSchema(),
		"name":         web.StringSchema(),
		"created_at":   web.DateTime(),
		"last_used_at": web.NullableDateTime(),
		"backed_up":    {"type": "boolean", "description": "The authenticator says the credential is backed up (synced)."},
	}
	fields := []string{"id", "name", "created_at", "last_used_at", "backed_up"}
	s.Doc.Define("Passkey", web.Object(props, fields...))
	reg := map[string]web.Schema{"backup_codes": {"type": "array", "items": web.StringSchema(), "minItems": 10, "maxItems": 10,
		"description": "Ten backup codes, shown once: only when this passkey turned 2FA on."}}
	for k, v := range props {
		reg[k] = v
	}
	s.Doc.Define("RegisteredPasskey", web.Object(reg, fields...))
}

// ceremonyJSON is the answer of the options routes.
type ceremonyJSON struct {
	CeremonyID string          `json:"ceremony_id"`
	PublicKey  json.RawMessage `json:"public_key"`
}

func ceremonyView(pc command.PasskeyCeremony) ceremonyJSON {
	return ceremonyJSON{CeremonyID: pc.ID, PublicKey: pc.PublicKey}
}

// registeredPasskeyJSON is API.md's answer of POST /me/passkeys: the passkey, with
// backup_codes when it turned 2FA on.
type registeredPasskeyJSON struct {
	passkeyJSON
	BackupCodes []string `json:"backup_codes,omitempty"`
}

func passkeyView(p domain.PasskeyInfo) passkeyJSON {
	return passkeyJSON{ID: p.ID, Name: p.Name, CreatedAt: APITime(p.CreatedAt), LastUsedAt: APITime(p.LastUsedAt), BackedUp: p.BackedUp}
}

// credentialObject checks the `credential` member: present and a JSON object (what it
// holds is the domain's to verify).
func credentialObject(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return &domain.ValidationError{Field: "credential", Reason: "is required"}
	}
	if raw[0] != '{' {
		return &domain.ValidationError{Field: "credential", Reason: "must be the PublicKeyCredential JSON object"}
	}
	return nil
}

// noPasskeyConflict gives the conflict of an account without a passkey its detail.
func noPasskeyConflict(err error) error {
	if errors.Is(err, domain.ErrConflict) {
		return web.Public(web.ErrConflict, "The account has no passkey; use another method.", err)
	}
	return err
}

type passkeyLoginOptionsRequest struct {
	web.OptionalBody
	LoginTicket string `json:"login_ticket"`
}

func (s *API) passkeyLoginOptions(r *web.Call[passkeyLoginOptionsRequest]) (web.Reply, error) {
	pc, err := s.svc.BeginPasskeyLogin(r.Ctx, r.In.LoginTicket)
	return ceremonyReply(pc, noPasskeyConflict(err))
}

// ceremonyReply answers the options of a passkey ceremony (or err); the ceremony writes
// nothing to the log.
func ceremonyReply(pc command.PasskeyCeremony, err error) (web.Reply, error) {
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, ceremonyView(pc), 0), nil
}

// checkPasskeyAnswer asks of the answer to a ceremony's options its id and the browser's
// credential object. (The requests that carry one repeat the two fields rather than embed
// a struct: a decoding error names an embedded field by its path.)
func checkPasskeyAnswer(ceremonyID string, credential json.RawMessage) error {
	return errors.Join(web.Required("ceremony_id", ceremonyID), credentialObject(credential))
}

type passkeyLoginRequest struct {
	CeremonyID string          `json:"ceremony_id"`
	Credential json.RawMessage `json:"credential"`
	ClientID   string          `json:"client_id"`
}

// Check asks for the ceremony's answer.
func (r passkeyLoginRequest) Check() error { return checkPasskeyAnswer(r.CeremonyID, r.Credential) }

func (s *API) passkeyLogin(r *web.Call[passkeyLoginRequest]) (web.Reply, error) {
	res, err := s.svc.FinishPasskeyLogin(r.Ctx, r.In.CeremonyID, r.In.Credential, web.SignInClient(r.C, r.In.ClientID), r.Meta)
	return s.loginReply(r.C, res, err)
}

func (s *API) reauthPasskeyOptions(r *web.Call[web.NoBody]) (web.Reply, error) {
	pc, err := s.svc.BeginPasskeyReauth(r.Ctx, r.Caller)
	return ceremonyReply(pc, noPasskeyConflict(err))
}

type passkeyNameRequest struct {
	Name string `json:"name"`
}

func (s *API) passkeyRegistrationOptions(r *web.Call[passkeyNameRequest]) (web.Reply, error) {
	pc, err := s.svc.BeginPasskeyRegistration(r.Ctx, r.Caller, r.In.Name)
	if errors.Is(err, domain.ErrConflict) {
		err = web.Public(web.ErrConflict, "The account holds the most passkeys it may; remove one first.", err)
	}
	return ceremonyReply(pc, err)
}

type registerPasskeyRequest struct {
	CeremonyID           string          `json:"ceremony_id"`
	Credential           json.RawMessage `json:"credential"`
	SignOutOtherSessions bool            `json:"sign_out_other_sessions"`
}

// Check asks for the ceremony's answer.
func (r registerPasskeyRequest) Check() error { return checkPasskeyAnswer(r.CeremonyID, r.Credential) }

func (s *API) registerPasskey(r *web.Call[registerPasskeyRequest]) (web.Reply, error) {
	res, err := s.svc.FinishPasskeyRegistration(r.Ctx, r.Caller, r.In.CeremonyID, r.In.Credential, r.In.SignOutOtherSessions, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, registeredPasskeyJSON{passkeyJSON: passkeyView(res.Passkey), BackupCodes: res.BackupCodes}, res.Position), nil
}

func (s *API) renamePasskey(r *web.Call[passkeyNameRequest]) (web.Reply, error) {
	pos, err := s.svc.RenamePasskey(r.Ctx, r.Caller, r.ID, r.In.Name, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	a, err := s.svc.Account(r.Ctx, r.Caller.AccountID)
	if err != nil {
		return web.Reply{}, err
	}
	for _, p := range a.Security().Passkeys {
		if p.ID == r.ID {
			return web.JSON(http.StatusOK, passkeyView(p), pos), nil
		}
	}
	// Removed between the rename and the read.
	return web.Reply{}, web.Public(web.ErrNotFound, "The passkey was removed.", nil)
}

func (s *API) removePasskey(r *web.Call[web.NoBody]) (web.Reply, error) {
	return s.removeOwned(r, s.svc.RemovePasskey)
}
