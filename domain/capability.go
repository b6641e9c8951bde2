package domain

import "fmt"

// Capability is what a command or route needs of the caller's session. Every self-service
// command names one when it authorizes its caller, and every route of the HTTP layer names
// one too; Session.Allows is the one rule that says which sessions hold which capability.
//
// The zero value is CapControl: whatever forgets to name a capability is allowed only to
// the account holder's own, unrestricted session, never to a delegate. That is the point of
// the type: a new command or route cannot open the account to an acting session by
// omission.
type Capability uint8

// The capabilities, from the least to the most demanding. The table in Session.Allows says
// which kind of session holds each.
const (
	// CapControl covers everything that could take the account over or outlive a
	// delegation: the email, password, second factors, passkeys and backup codes, reading a
	// pending authenticator's secret, other sessions, delegations, organisations (members,
	// roles, policies, managed organisations) and acting for someone. Held only by the
	// account holder's own unrestricted session. It is the zero value.
	CapControl Capability = iota
	// CapRead reads the account's own pages (profile, sessions, activity, delegations,
	// organisations). Held by unrestricted sessions, a delegate's acting session included.
	CapRead
	// CapReadSecurity reads the account's security state (GET /me/security). Held by every
	// session: a restricted one needs it to enroll, a delegate may read it.
	CapReadSecurity
	// CapProfile changes the names and profile fields (not the email). Held by unrestricted
	// sessions, a delegate's acting session included.
	CapProfile
	// CapSession uses the caller's own session itself: whoami, its CSRF token, signing it
	// out. Held by every session.
	CapSession
	// CapEnroll enrolls a second factor (adds and confirms an authenticator app, registers a
	// passkey, reads the pending authenticator's QR code) and re-authenticates. Held by the
	// account holder's own session, restricted or not; never by a delegate.
	CapEnroll
	// CapTeam is the security team's and the administrators' routes (audit, admin, the
	// compliance stream read with a session). Held by the account holder's own unrestricted
	// session that proved a second factor (aal2); the role itself is checked apart.
	CapTeam
)

var capabilityNames = [...]string{
	CapControl:      "control",
	CapRead:         "read",
	CapReadSecurity: "read-security",
	CapProfile:      "profile",
	CapSession:      "session",
	CapEnroll:       "enroll",
	CapTeam:         "team",
}

// String names the capability.
func (c Capability) String() string {
	if int(c) < len(capabilityNames) {
		return capabilityNames[c]
	}
	return fmt.Sprintf("Capability(%d)", uint8(c))
}

// Allows reports whether the session holds capability c: nil, or the error that says why
// not. This is the one place that decides it:
//
//	                 holder   holder, restricted   delegate (acting)
//	CapControl         yes    enrollment_required  delegate_not_allowed
//	CapRead            yes    enrollment_required  yes
//	CapReadSecurity    yes    yes                  yes
//	CapProfile         yes    enrollment_required  yes
//	CapSession         yes    yes                  yes
//	CapEnroll          yes    yes                  delegate_not_allowed
//	CapTeam          aal2 ¹   enrollment_required  delegate_not_allowed
//
// ¹ an aal1 session gets ErrMFARequired. A delegate's acting session that is also restricted
// (its owner's organisation requires 2FA) is refused what either column refuses. The
// errors are ErrDelegateNotAllowed, ErrEnrollmentRequired and ErrMFARequired. Recent
// authentication (the step-up window) is a separate check (command.Service.RequireRecentAuth).
func (s Session) Allows(c Capability) error {
	acting := s.ActorAccountID != ""
	switch c {
	case CapReadSecurity, CapSession:
		return nil
	case CapRead, CapProfile:
		if s.Restricted {
			return ErrEnrollmentRequired
		}
		return nil
	case CapEnroll:
		if acting {
			return ErrDelegateNotAllowed
		}
		return nil
	case CapTeam:
		if acting {
			return ErrDelegateNotAllowed
		}
		if s.Restricted {
			return ErrEnrollmentRequired
		}
		if s.AAL != AAL2 {
			return ErrMFARequired
		}
		return nil
	default: // CapControl and anything unknown
		if acting {
			return ErrDelegateNotAllowed
		}
		if s.Restricted {
			return ErrEnrollmentRequired
		}
		return nil
	}
}
