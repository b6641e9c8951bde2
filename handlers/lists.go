package handlers

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

// Paging, filters and item shapes of the read side's lists (API.md "Conventions": `limit`
// and `cursor`, `{"items":[...],"next_cursor":"..."}` without next_cursor on the last page).

// Page sizes (API.md): the default and the most a page holds.
const (
	DefaultPageLimit = projections.DefaultLimit
	MaxPageLimit     = projections.MaxLimit
)

// listJSON is a page of a list; NextCursor is absent on the last page.
type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func page[T any](items []T, next string) listJSON[T] {
	if items == nil {
		items = []T{}
	}
	return listJSON[T]{Items: items, NextCursor: next}
}

// listSchema is the schema of a page of items.
func listSchema(items schema) schema {
	return object(map[string]schema{
		"items":       arrayOf(items),
		"next_cursor": {"type": "string", "description": "Pass as cursor for the next page; absent on the last page."},
	}, "items")
}

// maxCursor bounds the cursors accepted (Vigil's are a few dozen characters).
const maxCursor = 512

// pageParams returns the request's limit (API.md: absent = DefaultPageLimit, above
// MaxPageLimit = MaxPageLimit; zero, negative or not a number is invalid) and cursor.
func pageParams(c *gin.Context) (limit int, cursor string, err error) {
	limit = DefaultPageLimit
	if raw, ok := c.GetQuery("limit"); ok {
		n, perr := strconv.ParseInt(raw, 10, 64)
		switch {
		case perr == nil && n > 0:
			limit = int(min(n, MaxPageLimit))
		case errors.Is(perr, strconv.ErrRange) && raw != "" && strings.Trim(raw, "0123456789") == "":
			limit = MaxPageLimit // a positive number too large for int64
		default:
			return 0, "", Public(ErrInvalidRequest, "limit must be a positive integer (at most 500 are answered).", perr)
		}
	}
	cursor = c.Query("cursor")
	if len(cursor) > maxCursor {
		return 0, "", projections.ErrBadCursor
	}
	return limit, cursor, nil
}

// timeParam parses the optional RFC 3339 query parameter name (zero when absent or empty).
func timeParam(c *gin.Context, name string) (time.Time, error) {
	raw := c.Query(name)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, Public(ErrInvalidRequest, name+" must be an RFC 3339 time, e.g. 2026-03-02T09:00:00Z.", err)
	}
	return t.UTC(), nil
}

// contractEventTypes are the event type names API.md lists ("Event types"): some belong to
// features still to come, so the domain does not know them yet, but filtering on them is
// not an error.
var contractEventTypes = []string{
	"AccountRegistered", "EmailChanged", "NameChanged", "ProfileUpdated", "PasswordChanged",
	"TOTPDeviceAdded", "TOTPDeviceConfirmed", "TOTPDeviceRemoved", "BackupCodesGenerated",
	"BackupCodeUsed", "PasskeyRegistered", "PasskeyRenamed", "PasskeyRemoved",
	"PasskeyCloneSuspected", "TwoFactorDisabled", "RoleGranted", "RoleRevoked",
	"LoginSucceeded", "LoginFailed", "ReauthSucceeded",
	"SessionStarted", "SessionAccessed", "SessionSignedOut", "SessionExpired",
	"OrgCreated", "MemberAdded", "MemberRemoved", "MemberRoleChanged",
	"TwoFactorRequirementChanged", "ManagedOrgAdded",
	"DelegationGranted", "DelegationRevoked", "DelegationExpired",
	"ClientRegistered", "ServiceTokenCreated", "ServiceTokenRevoked",
}

// knownEventTypes is every event type name a `type` filter accepts: the domain's, the
// activity log's and API.md's.
var knownEventTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, list := range [][]string{domain.EventTypes(), projections.ActivityTypes(), contractEventTypes} {
		for _, t := range list {
			m[t] = true
		}
	}
	return m
}()

// maxTypes bounds the names of one type filter.
const maxTypes = 64

// typesParam parses the comma-separated event type names of the query parameter `type`
// (empty elements are skipped, duplicates dropped); an unknown name is invalid.
func typesParam(c *gin.Context) ([]string, error) {
	raw := c.Query("type")
	if raw == "" {
		return nil, nil
	}
	var out []string
	for _, t := range strings.Split(raw, ",") {
		t = strings.TrimSpace(t)
		if t == "" || slices.Contains(out, t) {
			continue
		}
		if !knownEventTypes[t] {
			if len(t) > 64 || !utf8.ValidString(t) {
				t = "(a name)"
			}
			return nil, Public(ErrInvalidRequest, "type: "+strconv.Quote(t)+" is not an event type (API.md \"Event types\"; names are case-sensitive).", nil)
		}
		out = append(out, t)
		if len(out) > maxTypes {
			return nil, Public(ErrInvalidRequest, "type: at most 64 event types.", nil)
		}
	}
	return out, nil
}

// activityFilter reads the filters /me/activity and /audit/activity share: type, from, to,
// limit and cursor.
func activityFilter(c *gin.Context) (projections.ActivityFilter, error) {
	var f projections.ActivityFilter
	var err error
	if f.Limit, f.Cursor, err = pageParams(c); err != nil {
		return f, err
	}
	if f.Types, err = typesParam(c); err != nil {
		return f, err
	}
	if f.From, err = timeParam(c, "from"); err != nil {
		return f, err
	}
	if f.To, err = timeParam(c, "to"); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		return f, Public(ErrInvalidRequest, "from must not be after to.", nil)
	}
	return f, nil
}

// ipParam parses the optional query parameter name as an IP address, in the form the log
// records (IPv4-mapped addresses as IPv4, no zone).
func ipParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		return "", Public(ErrInvalidRequest, name+" must be an IPv4 or IPv6 address.", err)
	}
	return ip.Unmap().WithZone("").String(), nil
}

// countryParam parses the optional ISO 3166-1 alpha-2 code of name (any case).
func countryParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	if len(raw) != 2 || strings.Trim(strings.ToUpper(raw), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return "", Public(ErrInvalidRequest, name+" must be an ISO 3166-1 alpha-2 country code, e.g. GB.", nil)
	}
	return strings.ToUpper(raw), nil
}

// idParam parses an optional query parameter that names an id (an account): printable, at
// most maxPathID bytes.
func idParam(c *gin.Context, name string) (string, error) {
	raw := c.Query(name)
	if raw == "" {
		return "", nil
	}
	if len(raw) > maxPathID || !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool {
		return r < 0x21 || r == 0x7f
	}) {
		return "", Public(ErrInvalidRequest, name+" is not an id.", nil)
	}
	return raw, nil
}

// optString is a string that is null when empty.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// activityItemJSON is API.md's /me/activity item, with the network's organisation and the
// one-line description besides.
type activityItemJSON struct {
	ID       string  `json:"id"`
	Position uint64  `json:"position"`
	Time     apiTime `json:"time"`
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
		ID: r.ID, Position: r.Position, Time: apiTime(r.Time), Type: r.Type, Outcome: r.Outcome,
		IP: optString(r.IP), Location: r.Location, ASOrg: optString(r.ASOrg),
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
	StartedAt      apiTime                `json:"started_at"`
	LastAccessedAt apiTime                `json:"last_accessed_at"`
	ExpiresAt      apiTime                `json:"expires_at"`
	Client         *projections.ClientRef `json:"client"`
}

// auditSessionItemJSON is the /audit/sessions item: the /me/sessions item and its account.
type auditSessionItemJSON struct {
	sessionItemJSON
	AccountID string `json:"account_id"`
}

// liveSessions turns rows of the sessions read model into items for the caller: current
// marks the caller's session; the last access is the later of the recorded one and the one
// this instance's session index knows (the table records at most one a minute); and a
// session that whoami already refuses (past its lifetime or idle timeout, which the sweeper
// turns into SessionExpired within its interval) is left out, so a page may hold fewer
// items than the limit.
func (s *Server) liveSessions(rows []projections.SessionRow, callerSession string) []auditSessionItemJSON {
	now := s.now()
	out := make([]auditSessionItemJSON, 0, len(rows))
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
		out = append(out, auditSessionItemJSON{
			sessionItemJSON: sessionItemJSON{
				ID: r.ID, Current: r.ID == callerSession, OS: r.OS, Browser: r.Browser, Device: r.Device,
				IP: optString(r.IP), Location: r.Location, StartedAt: apiTime(r.StartedAt),
				LastAccessedAt: apiTime(last), ExpiresAt: apiTime(r.ExpiresAt), Client: r.Client,
			},
			AccountID: r.AccountID,
		})
	}
	return out
}

// defineReadSchemas adds the component schemas of the read side.
func (s *Server) defineReadSchemas() {
	s.routes.define("Location", schema{
		"type":        []string{"object", "null"},
		"description": "Where the address was, from the GeoIP database at the time the event was processed; null when unknown (no database, a private or unknown address).",
		"properties": map[string]schema{
			"city":         {"type": "string", "description": "\"\" when unknown."},
			"region":       {"type": "string", "description": "\"\" when unknown."},
			"country":      stringSchema(),
			"country_code": {"type": "string", "description": "ISO 3166-1 alpha-2."},
			"latitude":     {"type": "number"},
			"longitude":    {"type": "number"},
		},
		"required": []string{"city", "region", "country", "country_code", "latitude", "longitude"},
	})
	s.routes.define("ClientRef", schema{
		"type":        []string{"object", "null"},
		"description": "The application signed in through (portal is Vigil's own); null when none was named.",
		"properties":  map[string]schema{"id": stringSchema(), "name": stringSchema()},
		"required":    []string{"id", "name"},
	})
	sessionProps := map[string]schema{
		"id":               stringSchema(),
		"current":          {"type": "boolean", "description": "true for the session making the request."},
		"os":               {"type": "string", "description": "From the sign-in's User-Agent; \"\" when unknown."},
		"browser":          {"type": "string", "description": "From the sign-in's User-Agent; \"\" when unknown."},
		"device":           {"type": "string", "description": "A device model or Desktop, Mobile, Tablet; \"\" for API clients."},
		"ip":               {"type": []string{"string", "null"}, "description": "The sign-in's client IP address."},
		"location":         ref("Location"),
		"started_at":       dateTime(),
		"last_accessed_at": dateTime(),
		"expires_at":       {"type": "string", "format": "date-time", "description": "The absolute end (the idle timeout may end it sooner)."},
		"client":           ref("ClientRef"),
	}
	sessionRequired := []string{"id", "current", "os", "browser", "device", "ip", "location", "started_at", "last_accessed_at", "expires_at", "client"}
	s.routes.define("SessionItem", object(sessionProps, sessionRequired...))
	auditSession := map[string]schema{"account_id": stringSchema()}
	for k, v := range sessionProps {
		auditSession[k] = v
	}
	s.routes.define("AuditSessionItem", object(auditSession, append([]string{"account_id"}, sessionRequired...)...))

	activityProps := map[string]schema{
		"id":             {"type": "string", "description": "The event's id."},
		"position":       {"type": "integer", "description": "The event's global position."},
		"time":           dateTime(),
		"type":           {"type": "string", "description": "The event type (API.md \"Event types\")."},
		"outcome":        {"type": "string", "enum": []string{"success", "failure"}},
		"ip":             {"type": []string{"string", "null"}, "description": "The client IP address; null when the event came from no request."},
		"location":       ref("Location"),
		"asn":            {"type": []string{"integer", "null"}, "description": "The autonomous system number of the address; null when unknown."},
		"as_org":         {"type": []string{"string", "null"}, "description": "The autonomous system's organisation; null when unknown."},
		"access_type":    {"type": "string", "enum": []string{"browser", "api"}},
		"access_details": {"type": "string", "description": "Browser, operating system and device from the User-Agent, e.g. \"Chrome 126 on macOS (desktop)\"."},
		"client":         ref("ClientRef"),
		"actor_account_id": {"type": []string{"string", "null"},
			"description": "The account that acted when it was not the subject (an admin, a delegate); null otherwise."},
		"details":     {"type": "object", "description": "The event's particulars (reason, amr, device names, ...); never secrets."},
		"description": {"type": "string", "description": "One line for people, in English."},
	}
	activityRequired := []string{"id", "position", "time", "type", "outcome", "ip", "location", "asn", "access_type",
		"access_details", "client", "actor_account_id", "details"}
	s.routes.define("ActivityItem", object(activityProps, activityRequired...))
	auditActivity := map[string]schema{"account_id": {"type": []string{"string", "null"},
		"description": "The subject account; null for a failed sign-in of an unknown email."}}
	for k, v := range activityProps {
		auditActivity[k] = v
	}
	s.routes.define("AuditActivityItem", object(auditActivity, append([]string{"account_id"}, activityRequired...)...))

	s.routes.define("AuditEvent", object(map[string]schema{
		"id":             stringSchema(),
		"stream":         stringSchema(),
		"version":        {"type": "integer", "description": "1-based within the stream."},
		"position":       {"type": "integer", "description": "Global position: strictly increasing, not necessarily contiguous."},
		"type":           stringSchema(),
		"schema_version": integerSchema(),
		"time":           {"type": "string", "format": "date-time", "description": "When the store recorded the event."},
		"data":           {"description": "The event's data as stored, with every member its type does not declare public or personal (credential material such as password_hash, token_hash, code_hashes, secret, and anything undeclared) replaced by \"[redacted]\"."},
		"metadata": object(map[string]schema{
			"actor":              object(map[string]schema{"type": stringSchema(), "id": stringSchema()}, "type"),
			"subject_account_id": stringSchema(),
			"ip":                 stringSchema(),
			"user_agent":         stringSchema(),
			"client_id":          stringSchema(),
			"correlation_id":     stringSchema(),
			"causation_id":       stringSchema(),
		}, "actor"),
	}, "id", "stream", "version", "position", "type", "schema_version", "time", "data", "metadata"))
}
