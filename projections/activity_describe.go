package projections

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/reasons"
)

// How the activity log puts an event into words: the one-line description and the details
// object of its row. Describers may read and write the projection's helper tables (device
// names, organisation names) through the activityEvent; the row itself is written by
// Activity.record (activity.go).

// activityKinds lists the event types the activity log shows, each with how to describe it.
// Adding a type is one line here, e.g.
//
//	domain.EventPasskeyRenamed: {describe: fixed("Passkey renamed", "credential_id")},
//
// (fixed copies the named fields of the event's data into details); organisation and
// delegation events are described in activity_org.go. Types not listed are not shown.
var activityKinds = map[string]activityKind{
	domain.EventAccountRegistered:     {describe: fixed("Account created")},
	domain.EventEmailChanged:          {describe: fixed("Email address changed")},
	domain.EventNameChanged:           {describe: fixed("Name changed")},
	domain.EventProfileUpdated:        {describe: fixed("Profile updated")},
	domain.EventPasswordChanged:       {describe: fixed("Password changed")},
	domain.EventTOTPDeviceAdded:       {describe: describeTOTP},
	domain.EventTOTPDeviceConfirmed:   {describe: describeTOTP},
	domain.EventTOTPDeviceRemoved:     {describe: describeTOTP},
	domain.EventTOTPCodeAccepted:      {describe: describeTOTP},
	domain.EventBackupCodesGenerated:  {describe: describeBackupCodes},
	domain.EventBackupCodeUsed:        {describe: describeBackupCodes},
	domain.EventPasskeyRegistered:     {describe: describePasskey},
	domain.EventPasskeyRenamed:        {describe: describePasskey},
	domain.EventPasskeyRemoved:        {describe: describePasskey},
	domain.EventPasskeyUsed:           {describe: describePasskey},
	domain.EventPasskeyCloneSuspected: {failure: true, describe: describePasskey},
	domain.EventTwoFactorDisabled:     {describe: describeTwoFactorDisabled},
	domain.EventRoleGranted:           {describe: describeRole},
	domain.EventRoleRevoked:           {describe: describeRole},
	domain.EventLoginSucceeded:        {describe: describeLoginSucceeded},
	domain.EventLoginFailed:           {failure: true, describe: describeLoginFailed},
	domain.EventReauthSucceeded:       {describe: describeReauth},
	domain.EventSessionSignedOut:      {describe: describeSessionEnd},
	domain.EventSessionExpired:        {describe: describeSessionEnd},
	domain.EventSignInRiskDetected:    {describe: describeSignInRisk}, // activity_risk.go
	// recovery (domain/command/recovery.go); nothing secret (token or password hashes) is copied
	domain.EventEmailVerified:              {describe: fixed("Email address verified")},
	domain.EventPasswordResetRequested:     {describe: fixed("Password reset link requested")},
	domain.EventPasswordResetCompleted:     {describe: fixed("Password reset with a mailed link")},
	domain.EventSuspiciousActivityReported: {describe: fixed("Reported as \"this wasn't me\"", "event_id", "source")},
	// organisations and delegations (activity_org.go)
	domain.EventOrgCreated:                  {describe: describeOrg},
	domain.EventMemberAdded:                 {describe: describeOrg},
	domain.EventMemberRemoved:               {describe: describeOrg},
	domain.EventMemberRoleChanged:           {describe: describeOrg},
	domain.EventTwoFactorRequirementChanged: {describe: describeOrg},
	domain.EventManagedOrgAdded:             {describe: describeOrg},
	domain.EventDelegationGranted:           {describe: describeDelegation},
	domain.EventDelegationRevoked:           {describe: describeDelegation},
	domain.EventDelegationExpired:           {describe: describeDelegation},
}

// ActivityTypes returns the event types the activity log shows, sorted.
func ActivityTypes() []string {
	out := make([]string, 0, len(activityKinds))
	for t := range activityKinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// activityKind says how one event type appears in the activity log.
type activityKind struct {
	// failure marks the type's outcome "failure" (else "success").
	failure bool
	// describe returns the one-line sentence and the details object (non-secret
	// particulars only: never hashes, secrets, key material or codes). It may read and
	// write the projection's helper tables through in.tx.
	describe func(in *activityEvent) (string, details, error)
}

// details is the details object of an activity row; encoding/json writes its keys sorted,
// so rows are byte-for-byte reproducible.
type details map[string]any

// fixed describes an event with a fixed sentence, copying the named top-level fields of its
// data (when present) into details. Name only non-secret, non-personal fields.
func fixed(sentence string, fields ...string) func(*activityEvent) (string, details, error) {
	return func(in *activityEvent) (string, details, error) {
		if len(fields) == 0 {
			return sentence, nil, nil
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(in.env.Data, &raw); err != nil {
			return "", nil, err
		}
		d := details{}
		for _, f := range fields {
			if v, ok := raw[f]; ok {
				d[f] = v
			}
		}
		return sentence, d, nil
	}
}

// named quotes a device name for a sentence: ` "Phone"`, or "" without a name.
func named(name string) string {
	if name == "" {
		return ""
	}
	return ` "` + name + `"`
}

var purposeSuffix = map[string]string{"login": " to sign in", "reauth": " to confirm your identity"}

func describeTOTP(in *activityEvent) (string, details, error) {
	if e, ok := in.event.(domain.TOTPDeviceAdded); ok {
		if err := in.setDeviceName(e.DeviceID, e.Name); err != nil {
			return "", nil, err
		}
		return "Authenticator app" + named(e.Name) + " added (not yet confirmed)",
			details{"device_id": e.DeviceID, "device_name": e.Name}, nil
	}
	// The other events name a device added before: by the name it was given then.
	var id, what, purpose string
	forget := false
	switch e := in.event.(type) {
	case domain.TOTPDeviceConfirmed:
		id, what = e.DeviceID, " confirmed"
	case domain.TOTPDeviceRemoved:
		id, what, forget = e.DeviceID, " removed", true
	case domain.TOTPCodeAccepted:
		id, what, purpose = e.DeviceID, " code used"+purposeSuffix[e.Purpose], e.Purpose
	default:
		return "", nil, unexpected(in)
	}
	name, err := in.deviceName(id)
	if err != nil {
		return "", nil, err
	}
	if forget {
		if err := in.forgetDevice(id); err != nil {
			return "", nil, err
		}
	}
	d := details{"device_id": id, "device_name": name}
	if purpose != "" {
		d["purpose"] = purpose
	}
	return "Authenticator app" + named(name) + what, d, nil
}

func describeBackupCodes(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.BackupCodesGenerated:
		n := len(e.CodeHashes)
		return "New backup codes generated (" + strconv.Itoa(n) + ")", details{"count": n}, nil
	case domain.BackupCodeUsed:
		d := details{}
		if e.Purpose != "" {
			d["purpose"] = e.Purpose
		}
		return "Backup code used" + purposeSuffix[e.Purpose], d, nil
	}
	return "", nil, unexpected(in)
}

func describePasskey(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.PasskeyRegistered:
		if err := in.setDeviceName(e.PasskeyID, e.Name); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(e.Name) + " added",
			details{"passkey_id": e.PasskeyID, "name": e.Name, "backup_eligible": e.BackupEligible, "backed_up": e.BackupState}, nil
	case domain.PasskeyRenamed:
		old, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		if err := in.setDeviceName(e.PasskeyID, e.Name); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(old) + " renamed to" + named(e.Name),
			details{"passkey_id": e.PasskeyID, "name": e.Name, "old_name": old}, nil
	case domain.PasskeyRemoved:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		if err := in.forgetDevice(e.PasskeyID); err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " removed", details{"passkey_id": e.PasskeyID, "name": name}, nil
	case domain.PasskeyUsed:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " used", details{"passkey_id": e.PasskeyID, "name": name, "backed_up": e.BackupState}, nil
	case domain.PasskeyCloneSuspected:
		name, err := in.deviceName(e.PasskeyID)
		if err != nil {
			return "", nil, err
		}
		return "Passkey" + named(name) + " refused: it may have been cloned",
			details{"passkey_id": e.PasskeyID, "name": name, "stored_sign_count": e.StoredSignCount,
				"received_sign_count": e.ReceivedSignCount}, nil
	}
	return "", nil, unexpected(in)
}

func describeTwoFactorDisabled(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.TwoFactorDisabled)
	if !ok {
		return "", nil, unexpected(in)
	}
	if err := txExec(in.ctx, in.tx, `DELETE FROM activity_devices WHERE account_id = ?`, in.account); err != nil {
		return "", nil, err
	}
	desc := "Two-factor authentication turned off"
	if e.Reason == domain.TwoFactorDisabledLastFactorGone {
		desc += ": the last second factor was removed"
	}
	return desc, details{"reason": e.Reason}, nil
}

func describeRole(in *activityEvent) (string, details, error) {
	switch e := in.event.(type) {
	case domain.RoleGranted:
		return "Role" + named(e.Role) + " granted", details{"role": e.Role}, nil
	case domain.RoleRevoked:
		return "Role" + named(e.Role) + " revoked", details{"role": e.Role}, nil
	}
	return "", nil, unexpected(in)
}

// Human names of sign-in methods and amr values.
var (
	methodNames = map[string]string{domain.MethodPassword: "password", domain.MethodTOTP: "authenticator app",
		domain.MethodBackupCode: "backup code", domain.MethodPasskey: "passkey"}
	amrNames = map[string]string{domain.AMRPassword: "password", domain.AMROTP: "authenticator app",
		domain.AMRBackupCode: "backup code", domain.AMRPasskey: "passkey"}
)

func humanName(names map[string]string, v string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return strings.ReplaceAll(v, "_", " ")
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func amrPhrase(amr []string, method string) string {
	var words []string
	for _, a := range amr {
		words = append(words, humanName(amrNames, a))
	}
	if len(words) == 0 && method != "" {
		words = append(words, humanName(methodNames, method))
	}
	return joinAnd(words)
}

func describeLoginSucceeded(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.LoginSucceeded)
	if !ok {
		return "", nil, unexpected(in)
	}
	desc := "Signed in"
	if e.Method == domain.MethodDelegation {
		desc = "Delegate started acting for the account"
	} else if p := amrPhrase(e.AMR, e.Method); p != "" {
		desc += " with " + p
	}
	return desc, details{"session_id": e.SessionID, "method": e.Method, "amr": nonNil(e.AMR), "aal": e.AAL}, nil
}

func describeReauth(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.ReauthSucceeded)
	if !ok {
		return "", nil, unexpected(in)
	}
	desc := "Identity confirmed"
	if e.Method != "" {
		desc += " with " + humanName(methodNames, e.Method)
	}
	return desc, details{"session_id": streamID(in.env.StreamID, domain.StreamPrefixSession), "method": e.Method,
		"amr": nonNil(e.AMR), "aal": e.AAL}, nil
}

func describeLoginFailed(in *activityEvent) (string, details, error) {
	e, ok := in.event.(domain.LoginFailed)
	if !ok {
		return "", nil, unexpected(in)
	}
	d := details{"reason": e.Reason, "stage": e.Stage}
	if e.Method != "" {
		d["method"] = e.Method
	}
	if e.SessionID != "" {
		d["session_id"] = e.SessionID
	}
	if e.RetryAfterMS > 0 {
		d["retry_after_ms"] = e.RetryAfterMS
	}
	what := "Sign-in"
	if e.Stage == domain.StageReauth {
		what = "Identity confirmation"
	}
	var why string
	switch e.Reason {
	case reasons.LoginFailedThrottled:
		return what + " blocked: too many failed attempts", d, nil
	case reasons.LoginFailedInvalidCredentials:
		why = "wrong password"
		if e.Method == domain.MethodPasskey {
			why = "passkey not accepted"
		}
	case reasons.LoginFailedUnknownAccount:
		why = "unknown email address"
		if e.Method == domain.MethodPasskey {
			why = "unknown passkey"
		}
	case reasons.LoginFailedInvalidSecondFactor:
		switch e.Method {
		case domain.MethodTOTP:
			why = "wrong authenticator app code"
		case domain.MethodBackupCode:
			why = "wrong backup code"
		case domain.MethodPasskey:
			why = "passkey not accepted"
		default:
			why = "wrong second factor"
		}
	case reasons.LoginFailedPasskeyCloneSuspected:
		why = "the passkey may have been cloned"
	default:
		why = strings.ReplaceAll(e.Reason, "_", " ")
	}
	return what + " failed: " + why, d, nil
}

func describeSessionEnd(in *activityEvent) (string, details, error) {
	sid := streamID(in.env.StreamID, domain.StreamPrefixSession)
	switch e := in.event.(type) {
	case domain.SessionSignedOut:
		d := details{"session_id": sid, "reason": e.Reason, "signed_out_by": string(in.env.Metadata.Actor.Type)}
		switch e.Reason {
		case reasons.SignOutLogout:
			return "Signed out", d, nil
		case reasons.SignOutByUser:
			return "Session signed out from another session", d, nil
		case reasons.SignOutByAdmin:
			return "Session signed out by an administrator", d, nil
		case reasons.SignOutPasswordChanged:
			return "Session signed out after a password change", d, nil
		case reasons.SignOutDelegationEnded:
			return "Delegated session ended with its delegation", d, nil
		case reasons.SignOutPasswordReset:
			return "Session signed out by a password reset", d, nil
		case reasons.SignOutReportedNotMe:
			return "Session signed out: reported as \"this wasn't me\"", d, nil
		}
		return "Session signed out (" + strings.ReplaceAll(e.Reason, "_", " ") + ")", d, nil
	case domain.SessionExpired:
		d := details{"session_id": sid, "reason": e.Reason}
		switch e.Reason {
		case reasons.ExpiredIdle:
			return "Session expired after inactivity", d, nil
		case reasons.ExpiredLifetime:
			return "Session expired (maximum lifetime reached)", d, nil
		}
		return "Session expired", d, nil
	}
	return "", nil, unexpected(in)
}

func unexpected(in *activityEvent) error {
	return fmt.Errorf("cannot describe %s data %T", in.env.Type, in.event)
}
