package apidoc

// eventMeanings says what each event type means, for the API reference's "Event types"
// table (the list itself comes from the domain's registry: a type missing here is listed as
// not described yet).
var EventMeanings = map[string]string{
	// account
	"AccountRegistered":     "An account was created (its email, names and password hash).",
	"EmailChanged":          "The account's sign-in email changed.",
	"NameChanged":           "The first and last name changed.",
	"ProfileUpdated":        "The profile changed; holds the whole profile after the change.",
	"PasswordChanged":       "The password changed (by the account holder).",
	"PasswordRehashed":      "The same password was re-hashed at sign-in with the current Argon2 cost; `password_changed_at` does not change.",
	"TOTPDeviceAdded":       "An authenticator app was added, pending until confirmed with a code.",
	"TOTPDeviceConfirmed":   "An authenticator app proved a valid code and now counts as a second factor.",
	"TOTPDeviceRemoved":     "An authenticator app no longer counts; its secret is forgotten.",
	"TOTPCodeAccepted":      "A TOTP code was accepted (sign-in or re-authentication); each code works once.",
	"BackupCodesGenerated":  "A new set of ten backup codes replaced every earlier one.",
	"BackupCodeUsed":        "A backup code was used and stops working.",
	"PasskeyRegistered":     "A passkey (WebAuthn credential) was registered and counts as a second factor.",
	"PasskeyRenamed":        "A passkey was given a new name.",
	"PasskeyRemoved":        "A passkey no longer counts as a factor.",
	"PasskeyCloneSuspected": "A passkey's signature counter did not increase, so the authenticator may have been cloned; the sign-in was refused.",
	"PasskeyUsed":           "A passkey signed a sign-in or re-authentication.",
	"TwoFactorDisabled":     "2FA was turned off: every TOTP device, passkey and backup code was dropped.",
	"RoleGranted":           "The account was given a role (`admin` or `auditor`).",
	"RoleRevoked":           "A role was taken away; the account's sessions lose it at once.",
	// sign-in
	"LoginSucceeded":  "A sign-in completed; `data.amr` lists the methods used.",
	"LoginFailed":     "A sign-in failed; `data.reason` says why.",
	"ReauthSucceeded": "A re-authentication (step-up) renewed the session's `authenticated_at`.",
	// session
	"SessionStarted":     "A session started (a sign-in, or a delegate's acting session).",
	"SignInRiskDetected": "A sign-in stood out against the account's history; `data.signals` lists `new_device`, `new_country`, `impossible_travel`.",
	"SessionAccessed":    "A session was used (written at most once a minute per session).",
	"SessionSignedOut":   "A session ended before its time; `data.reason` says why.",
	"SessionExpired":     "A session passed its absolute lifetime or its idle timeout.",
	// organisation
	"OrgCreated":                  "An organisation was created; its creator is its first owner.",
	"MemberAdded":                 "An account became a member of an organisation with a role.",
	"MemberRemoved":               "A membership ended.",
	"MemberRoleChanged":           "A member was given another role.",
	"TwoFactorRequirementChanged": "An organisation's 2FA requirement was turned on or off.",
	"ManagedOrgAdded":             "An organisation now manages another; its 2FA requirement applies to the managed one's members.",
	// delegation
	"DelegationGranted": "An account let another act for it until a time.",
	"DelegationRevoked": "A delegation was ended before its time (by its owner or its delegate).",
	"DelegationExpired": "A delegation passed its end time.",
	// system and administration
	"EmailReserved":         "An email was claimed for an account (internal bookkeeping that keeps emails unique; holds only a hash of the email).",
	"EmailReleased":         "An email was freed after its account changed away from it.",
	"ClientRegistered":      "An application whose users sign in here was registered.",
	"ServiceTokenCreated":   "A service token was created with its scopes.",
	"ServiceTokenRevoked":   "A service token was revoked.",
	"ServiceTokenUseDenied": "A known service token was refused (revoked, or without the route's scope); recorded at most once per token and reason per interval.",
	"WebhookRegistered":     "A webhook endpoint was registered: every later event is delivered to it.",
	"WebhookRemoved":        "A webhook endpoint was removed; its parked deliveries are dropped.",
}
