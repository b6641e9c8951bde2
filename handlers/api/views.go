package api

import (
	"encoding/json"

	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// activityItemJSON is API.md's /me/activity item, with the network's organisation and the
// one-line description besides.
type activityItemJSON struct {
	ID       string  `json:"id"`
	Position uint64  `json:"position"`
	Time     APITime `json:"time"`
	Type     string  `json:"type"`
	Outcome  string  `json:"outcome"`
	// IP is null when the event came from no request (an expiry, the system).
	IP            *string                `json:"ip"`
	Location      *geoip.Location        `json:"location"`
	ASN           *uint                  `json:"asn"`
	ASOrg         *string                `json:"as_org"`
	AccessType    string                 `json:"access_type"`
	AccessDetails string                 `json:"access_details"`
	Client        *projections.ClientRef `json:"client"`
	ActorAccount  *string                `json:"actor_account_id"`
	Details       json.RawMessage        `json:"details"`
	Description   string                 `json:"description"`
}

func activityView(r projections.ActivityRow) activityItemJSON {
	out := activityItemJSON{
		ID: r.ID, Position: r.Position, Time: APITime(r.Time), Type: r.Type, Outcome: r.Outcome,
		IP: web.OptString(r.IP), Location: r.Location, ASOrg: web.OptString(r.ASOrg),
		AccessType: r.AccessType, AccessDetails: r.AccessDetails, Client: r.Client,
		ActorAccount: r.ActorAccountID, Details: r.Details, Description: r.Description,
	}
	if r.ASN != 0 {
		asn := r.ASN
		out.ASN = &asn
	}
	if len(out.Details) == 0 {
		out.Details = json.RawMessage(`{}`)
	}
	return out
}

// auditActivityItemJSON is the /audit/activity item: the /me/activity item and its account
// (null for a failed sign-in of an unknown email).
type auditActivityItemJSON struct {
	activityItemJSON
	AccountID *string `json:"account_id"`
}

// sessionItemJSON is API.md's /me/sessions item.
type sessionItemJSON struct {
	ID             string                 `json:"id"`
	Current        bool                   `json:"current"`
	OS             string                 `json:"os"`
	Browser        string                 `json:"browser"`
	Device         string                 `json:"device"`
	IP             *string                `json:"ip"`
	Location       *geoip.Location        `json:"location"`
	StartedAt      APITime                `json:"started_at"`
	LastAccessedAt APITime                `json:"last_accessed_at"`
	ExpiresAt      APITime                `json:"expires_at"`
	Client         *projections.ClientRef `json:"client"`
}

// auditSessionItemJSON is the /audit/sessions item: the /me/sessions item and its account.
type AuditSessionItemJSON struct {
	sessionItemJSON
	AccountID string `json:"account_id"`
}

// liveSessions turns rows of the sessions read model into items for the caller: current
// marks the caller's session; the last access is the later of the recorded one and the one
// this instance's session index knows (the table records at most one a minute); and a
// session that whoami already refuses (past its lifetime or idle timeout, which the sweeper
// turns into SessionExpired within its interval) is left out, so a page may hold fewer
// items than the limit.
func (s *API) LiveSessions(rows []projections.SessionRow, callerSession string) []AuditSessionItemJSON {
	now := s.Now()
	out := make([]AuditSessionItemJSON, 0, len(rows))
	for _, r := range rows {
		last, idleEnd := r.LastAccessedAt, r.IdleExpiresAt
		if sess, ok := s.svc.Sessions().Get(r.ID); ok {
			if sess.LastAccessedAt.After(last) {
				last = sess.LastAccessedAt
			}
			if sess.IdleTimeout > 0 {
				idleEnd = sess.IdleExpiresAt()
			}
		}
		if !now.Before(r.ExpiresAt) || (!idleEnd.IsZero() && !now.Before(idleEnd)) {
			continue
		}
		out = append(out, AuditSessionItemJSON{
			sessionItemJSON: sessionItemJSON{
				ID: r.ID, Current: r.ID == callerSession, OS: r.OS, Browser: r.Browser, Device: r.Device,
				IP: web.OptString(r.IP), Location: r.Location, StartedAt: APITime(r.StartedAt),
				LastAccessedAt: APITime(last), ExpiresAt: APITime(r.ExpiresAt), Client: r.Client,
			},
			AccountID: r.AccountID,
		})
	}
	return out
}

// defineReadSchemas adds the component schemas of the read side.
func (s *API) defineReadSchemas() {
	s.Doc.Define("Location", web.Schema{
		"type":        []string{"object", "null"},
		"description": "Where the address was, from the GeoIP database at the time the event was processed; null when unknown (no database, a private or unknown address).",
		"properties": map[string]web.Schema{
			"city":         {"type": "string", "description": "\"\" when unknown."},
			"region":       {"type": "string", "description": "\"\" when unknown."},
			"country":      web.StringSchema(),
			"country_code": {"type": "string", "description": "ISO 3166-1 alpha-2."},
			"latitude":     {"type": "number"},
			"longitude":    {"type": "number"},
		},
		"required": []string{"city", "region", "country", "country_code", "latitude", "longitude"},
	})
	s.Doc.Define("ClientRef", web.Schema{
		"type":        []string{"object", "null"},
		"description": "The application signed in through (portal is Vigil's own); null when none was named.",
		"properties":  map[string]web.Schema{"id": web.StringSchema(), "name": web.StringSchema()},
		"required":    []string{"id", "name"},
	})
	sessionProps := map[string]web.Schema{
		"id":               web.StringSchema(),
		"current":          {"type": "boolean", "description": "true for the session making the request."},
		"os":               {"type": "string", "description": "From the sign-in's User-Agent; \"\" when unknown."},
		"browser":          {"type": "string", "description": "From the sign-in's User-Agent; \"\" when unknown."},
		"device":           {"type": "string", "description": "A device model or Desktop, Mobile, Tablet; \"\" for API clients."},
		"ip":               {"type": []string{"string", "null"}, "description": "The sign-in's client IP address."},
		"location":         web.Ref("Location"),
		"started_at":       web.DateTime(),
		"last_accessed_at": web.DateTime(),
		"expires_at":       {"type": "string", "format": "date-time", "description": "The absolute end (the idle timeout may end it sooner)."},
		"client":           web.Ref("ClientRef"),
	}
	sessionRequired := []string{"id", "current", "os", "browser", "device", "ip", "location", "started_at", "last_accessed_at", "expires_at", "client"}
	s.Doc.Define("SessionItem", web.Object(sessionProps, sessionRequired...))
	auditSession := map[string]web.Schema{"account_id": web.StringSchema()}
	for k, v := range sessionProps {
		auditSession[k] = v
	}
	s.Doc.Define("AuditSessionItem", web.Object(auditSession, append([]string{"account_id"}, sessionRequired...)...))

	activityProps := map[string]web.Schema{
		"id":             {"type": "string", "description": "The event's id."},
		"position":       {"type": "integer", "description": "The event's global position."},
		"time":           web.DateTime(),
		"type":           {"type": "string", "description": "The event type (API.md \"Event types\")."},
		"outcome":        {"type": "string", "enum": []string{"success", "failure"}},
		"ip":             {"type": []string{"string", "null"}, "description": "The client IP address; null when the event came from no request."},
		"location":       web.Ref("Location"),
		"asn":            {"type": []string{"integer", "null"}, "description": "The autonomous system number of the address; null when unknown."},
		"as_org":         {"type": []string{"string", "null"}, "description": "The autonomous system's organisation; null when unknown."},
		"access_type":    {"type": "string", "enum": []string{"browser", "api"}},
		"access_details": {"type": "string", "description": "Browser, operating system and device from the User-Agent, e.g. \"Chrome 126 on macOS (desktop)\"."},
		"client":         web.Ref("ClientRef"),
		"actor_account_id": {"type": []string{"string", "null"},
			"description": "The account that acted when it was not the subject (an admin, a delegate); null otherwise."},
		"details":     {"type": "object", "description": "The event's particulars (reason, amr, device names, ...); never secrets."},
		"description": {"type": "string", "description": "One line for people, in English."},
	}
	activityRequired := []string{"id", "position", "time", "type", "outcome", "ip", "location", "asn", "access_type",
		"access_details", "client", "actor_account_id", "details"}
	s.Doc.Define("ActivityItem", web.Object(activityProps, activityRequired...))
	auditActivity := map[string]web.Schema{"account_id": {"type": []string{"string", "null"},
		"description": "The subject account; null for a failed sign-in of an unknown email."}}
	for k, v := range activityProps {
		auditActivity[k] = v
	}
	s.Doc.Define("AuditActivityItem", web.Object(auditActivity, append([]string{"account_id"}, activityRequired...)...))

	s.Doc.Define("AuditEvent", web.Object(map[string]web.Schema{
		"id":             web.StringSchema(),
		"stream":         web.StringSchema(),
		"version":        {"type": "integer", "description": "1-based within the stream."},
		"position":       {"type": "integer", "description": "Global position: strictly increasing, not necessarily contiguous."},
		"type":           web.StringSchema(),
		"schema_version": web.IntegerSchema(),
		"time":           {"type": "string", "format": "date-time", "description": "When the store recorded the event."},
		"data":           {"description": "The event's data as stored, with every member its type does not declare public or personal (credential material such as password_hash, token_hash, code_hashes, secret, and anything undeclared) replaced by \"[redacted]\"."},
		"metadata": web.Object(map[string]web.Schema{
			"actor":              web.Object(map[string]web.Schema{"type": web.StringSchema(), "id": web.StringSchema()}, "type"),
			"subject_account_id": web.StringSchema(),
			"ip":                 web.StringSchema(),
			"user_agent":         web.StringSchema(),
			"client_id":          web.StringSchema(),
			"correlation_id":     web.StringSchema(),
			"causation_id":       web.StringSchema(),
		}, "actor"),
	}, "id", "stream", "version", "position", "type", "schema_version", "time", "data", "metadata"))
}
