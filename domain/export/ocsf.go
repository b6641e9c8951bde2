package export

import (
	"encoding/json"
	"slices"

	"github.com/vigil-auth/vigil/domain"
)

// OCSF (Open Cybersecurity Schema Framework) 1.x mapping, for SIEMs that ingest OCSF.
//
// Sign-in events become Authentication records (class 3002) and credential changes become
// Account Change records (class 3001), both in category 3 (Identity & Access Management).
// Every other event type (profile edits, session touches, email reservations, clients,
// service tokens, organisations) has no OCSF class that fits without inventing meaning: OCSF
// returns false for them and the OCSF feeds skip them (the CloudEvents feeds carry
// everything).
const (
	// OCSFVersion is the OCSF schema version the records follow.
	OCSFVersion = "1.3.0"
	// OCSFCategoryIAM is category_uid 3, Identity & Access Management.
	OCSFCategoryIAM = 3
	// OCSFClassAccountChange is class_uid 3001.
	OCSFClassAccountChange = 3001
	// OCSFClassAuthentication is class_uid 3002.
	OCSFClassAuthentication = 3002
)

// OCSF status_id and severity_id values used.
const (
	ocsfStatusSuccess = 1
	ocsfStatusFailure = 2
	ocsfSeverityInfo  = 1
	ocsfSeverityLow   = 2
	ocsfSeverityMed   = 3
)

// OCSF Authentication activity_id values.
const (
	ocsfAuthLogon  = 1
	ocsfAuthLogoff = 2
)

// OCSF Account Change activity_id values.
const (
	ocsfAcctCreate         = 1
	ocsfAcctPasswordChange = 3
	ocsfAcctAttachPolicy   = 7
	ocsfAcctDetachPolicy   = 8
	ocsfAcctMFAEnable      = 10
	ocsfAcctMFADisable     = 11
	ocsfAcctOther          = 99
)

// OCSFRecord is one OCSF event record: the base event attributes, the class's own and
// `unmapped` for Vigil particulars that have no OCSF attribute.
type OCSFRecord struct {
	ActivityID   int            `json:"activity_id"`
	ActivityName string         `json:"activity_name"`
	CategoryUID  int            `json:"category_uid"`
	ClassUID     int            `json:"class_uid"`
	TypeUID      int            `json:"type_uid"`
	SeverityID   int            `json:"severity_id"`
	StatusID     int            `json:"status_id"`
	StatusDetail string         `json:"status_detail,omitempty"`
	Time         int64          `json:"time"` // milliseconds since the Unix epoch
	Message      string         `json:"message,omitempty"`
	Metadata     OCSFMetadata   `json:"metadata"`
	User         *OCSFUser      `json:"user,omitempty"`
	Actor        *OCSFActor     `json:"actor,omitempty"`
	SrcEndpoint  *OCSFEndpoint  `json:"src_endpoint,omitempty"`
	HTTPRequest  *OCSFHTTP      `json:"http_request,omitempty"`
	IsMFA        *bool          `json:"is_mfa,omitempty"`
	AuthProtocol string         `json:"auth_protocol,omitempty"`
	Session      *OCSFSession   `json:"session,omitempty"`
	Unmapped     map[string]any `json:"unmapped,omitempty"`
}

// OCSFMetadata is the record's metadata object: uid is the Vigil event id, sequence its
// global position, correlation_uid the request's correlation id.
type OCSFMetadata struct {
	Version        string      `json:"version"`
	Product        OCSFProduct `json:"product"`
	UID            string      `json:"uid"`
	Sequence       uint64      `json:"sequence"`
	CorrelationUID string      `json:"correlation_uid,omitempty"`
	LoggedTime     int64       `json:"logged_time"`
}

// OCSFProduct names Vigil as the reporting product.
type OCSFProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

// OCSFUser is the account the record is about (uid: account id; name: the email attempted
// at a failed sign-in of an unknown account).
type OCSFUser struct {
	UID  string `json:"uid,omitempty"`
	Name string `json:"name,omitempty"`
}

// OCSFActor is who acted when it was not the user itself (an admin, a delegate, a service).
type OCSFActor struct {
	User OCSFUser `json:"user"`
}

// OCSFEndpoint is the client's network endpoint.
type OCSFEndpoint struct {
	IP string `json:"ip"`
}

// OCSFHTTP carries the client's user agent.
type OCSFHTTP struct {
	UserAgent string `json:"user_agent"`
}

// OCSFSession names the Vigil session of an authentication.
type OCSFSession struct {
	UID string `json:"uid"`
}

// OCSF returns the OCSF record of e and true, or false for an event type that has no OCSF
// mapping (see the package comment). The mapping:
//
//	LoginSucceeded, ReauthSucceeded      3002 Logon (1), success; is_mfa from amr
//	LoginFailed                          3002 Logon (1), failure; status_detail = reason
//	SessionSignedOut, SessionExpired     3002 Logoff (2), success; reason in unmapped
//	AccountRegistered                    3001 Create (1)
//	PasswordChanged                      3001 Password Change (3)
//	TOTPDeviceConfirmed, PasskeyRegistered   3001 MFA Factor Enable (10)
//	TOTPDeviceRemoved, PasskeyRemoved, TwoFactorDisabled   3001 MFA Factor Disable (11)
//	RoleGranted / RoleRevoked            3001 Attach Policy (7) / Detach Policy (8)
//	EmailChanged, BackupCodesGenerated, BackupCodeUsed, PasskeyCloneSuspected   3001 Other (99)
func OCSF(e domain.Envelope) (OCSFRecord, bool) {
	var d map[string]json.RawMessage
	// Only what Redact lets out is mapped: a secret or undeclared member never reaches a record.
	_ = json.Unmarshal(Redact(e.Type, e.SchemaVersion, e.Data), &d) // a bad object just maps fewer fields
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(d[k], &s)
		return s
	}
	r := OCSFRecord{
		CategoryUID: OCSFCategoryIAM,
		SeverityID:  ocsfSeverityInfo,
		StatusID:    ocsfStatusSuccess,
		Time:        e.RecordedAt.UnixMilli(),
		Metadata: OCSFMetadata{
			Version: OCSFVersion, Product: OCSFProduct{Name: "Vigil", VendorName: "Vigil"},
			UID: e.ID, Sequence: e.Position, CorrelationUID: e.Metadata.CorrelationID,
			LoggedTime: e.RecordedAt.UnixMilli(),
		},
		Unmapped: map[string]any{"vigil_type": e.Type, "vigil_stream": e.StreamID},
	}
	account := e.Metadata.SubjectAccountID
	switch e.Type {
	case domain.EventLoginSucceeded, domain.EventReauthSucceeded:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAuthentication, ocsfAuthLogon, "Logon"
		var amr []string
		_ = json.Unmarshal(d["amr"], &amr)
		mfa := len(amr) > 1 || slices.Contains(amr, domain.AMRPasskey)
		r.IsMFA = &mfa
		if m := str("method"); m != "" {
			r.AuthProtocol = "Other"
			r.Unmapped["method"] = m
		}
		if len(amr) > 0 {
			r.Unmapped["amr"] = amr
		}
		if sid := str("session_id"); sid != "" {
			r.Session = &OCSFSession{UID: sid}
		} else if len(e.StreamID) > len(domain.StreamPrefixSession) && e.StreamID[:len(domain.StreamPrefixSession)] == domain.StreamPrefixSession {
			r.Session = &OCSFSession{UID: e.StreamID[len(domain.StreamPrefixSession):]}
		}
		if e.Type == domain.EventReauthSucceeded {
			r.Message = "re-authentication (step-up)"
		}
	case domain.EventLoginFailed:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAuthentication, ocsfAuthLogon, "Logon"
		r.StatusID, r.SeverityID = ocsfStatusFailure, ocsfSeverityLow
		r.StatusDetail = str("reason")
		if m := str("method"); m != "" {
			r.Unmapped["method"] = m
		}
		if st := str("stage"); st != "" {
			r.Unmapped["stage"] = st
		}
	case domain.EventSessionSignedOut, domain.EventSessionExpired:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAuthentication, ocsfAuthLogoff, "Logoff"
		r.Unmapped["reason"] = str("reason")
		if len(e.StreamID) > len(domain.StreamPrefixSession) && e.StreamID[:len(domain.StreamPrefixSession)] == domain.StreamPrefixSession {
			r.Session = &OCSFSession{UID: e.StreamID[len(domain.StreamPrefixSession):]}
		}
	case domain.EventAccountRegistered:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctCreate, "Create"
	case domain.EventPasswordChanged:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctPasswordChange, "Password Change"
	case domain.EventTOTPDeviceConfirmed, domain.EventPasskeyRegistered:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctMFAEnable, "MFA Factor Enable"
	case domain.EventTOTPDeviceRemoved, domain.EventPasskeyRemoved, domain.EventTwoFactorDisabled:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctMFADisable, "MFA Factor Disable"
		r.SeverityID = ocsfSeverityLow
	case domain.EventRoleGranted:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctAttachPolicy, "Attach Policy"
		r.Unmapped["role"] = str("role")
		r.SeverityID = ocsfSeverityLow
	case domain.EventRoleRevoked:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctDetachPolicy, "Detach Policy"
		r.Unmapped["role"] = str("role")
	case domain.EventEmailChanged, domain.EventBackupCodesGenerated, domain.EventBackupCodeUsed, domain.EventPasskeyCloneSuspected:
		r.ClassUID, r.ActivityID, r.ActivityName = OCSFClassAccountChange, ocsfAcctOther, "Other"
		r.Message = e.Type
		if e.Type == domain.EventPasskeyCloneSuspected {
			r.SeverityID = ocsfSeverityMed
		}
	default:
		return OCSFRecord{}, false
	}
	r.TypeUID = r.ClassUID*100 + r.ActivityID
	if account != "" || e.Type == domain.EventLoginFailed {
		r.User = &OCSFUser{UID: account}
		if account == "" {
			r.User.Name = str("attempted_email")
		}
	}
	if a := e.Metadata.Actor; a.ID != "" && a.ID != account && a.Type != domain.ActorAccount {
		r.Actor = &OCSFActor{User: OCSFUser{UID: a.ID, Name: string(a.Type)}}
	}
	if e.Metadata.IP != "" {
		r.SrcEndpoint = &OCSFEndpoint{IP: e.Metadata.IP}
	}
	if e.Metadata.UserAgent != "" {
		r.HTTPRequest = &OCSFHTTP{UserAgent: e.Metadata.UserAgent}
	}
	return r, true
}

// MarshalOCSF returns the JSON of e's OCSF record, or nil and false when e has no mapping.
func MarshalOCSF(e domain.Envelope) ([]byte, bool, error) {
	r, ok := OCSF(e)
	if !ok {
		return nil, false, nil
	}
	b, err := json.Marshal(r)
	return b, true, err
}
