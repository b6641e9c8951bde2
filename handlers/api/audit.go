package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// auditRoutes: the security teams' routes (API.md "Security teams", role auditor or admin):
// an account's raw events and its security state at a past time, read from the log; the
// activity log and the active sessions across accounts, read from the read models; and
// signing a session out.
func (s *API) auditRoutes() []web.Route {
	tags := []string{"audit"}
	return []web.Route{
		{
			Method: http.MethodGet, Path: "/audit/accounts/:id/events", Access: web.AccessAudit, Read: true, List: true,
			Op: web.Operation{
				ID: "listAccountEvents", Summary: "An account's raw events", Tags: tags,
				Description: "Every event whose subject is the account (its account stream, its sessions, its sign-ins), in " +
					"global order after position `after` (exclusive), read from the log. Every member of data that the event's " +
					"type does not declare public or personal (credential material such as password_hash, token_hash, code_hashes, " +
					"secret, and anything undeclared) is replaced by \"[redacted]\". On a backend without a " +
					"subject index the log is scanned, at most 10,000 events per page, so a page may hold fewer items than " +
					"limit (even none) and still have a next_cursor.",
				Params: []web.Param{{Name: "after", In: "query", Description: "A global position; only events after it. Default 0. A cursor, when given, wins.",
					Schema: web.Schema{"type": "integer", "minimum": 0}}},
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of events, oldest first.", Schema: web.ListSchema(web.Ref("AuditEvent"))}},
			},
			Errors: []web.ProblemLine{
				{Status: http.StatusBadRequest, Text: "invalid_request: after is not a non-negative integer"},
				{Status: http.StatusNotFound, Text: "not_found: no account has this id"},
			},
			Handler: web.List(s.Core, s.listAccountEvents),
		},
		{
			Method: http.MethodGet, Path: "/audit/accounts/:id/security", Access: web.AccessAudit, Read: true,
			Op: web.Operation{
				ID: "getAccountSecurityAt", Summary: "An account's security state at a time", Tags: tags,
				Description: "The state of GET /api/v1/me/security as it was at `at`, rebuilt by folding the account's events " +
					"recorded up to then with the reducer of the live read model. two_factor_required_by is empty: the " +
					"organisations' policies are not part of the account's log.",
				Params:    []web.Param{{Name: "at", In: "query", Required: true, Description: "An RFC 3339 time.", Schema: web.DateTime()}},
				Responses: map[int]web.Response{http.StatusOK: {Description: "The security state at that time.", Schema: web.Ref("SecurityState")}},
			},
			Errors: []web.ProblemLine{
				{Status: http.StatusBadRequest, Text: "invalid_request: at is missing or not an RFC 3339 time"},
				{Status: http.StatusNotFound, Text: "not_found: no account with this id existed at that time"},
			},
			Handler: web.Command(s.Core, web.MetaCaller, s.getAccountSecurityAt),
		},
		{
			Method: http.MethodGet, Path: "/audit/activity", Access: web.AccessAudit, Read: true, List: true,
			Op: web.Operation{
				ID: "listAuditActivity", Summary: "The activity log across accounts", Tags: tags,
				Description: "As GET /api/v1/me/activity, for every account (and failed sign-ins of unknown emails, whose " +
					"account_id is null), with more filters; all given filters apply.",
				Params: append([]web.Param{
					{Name: "account", In: "query", Description: "Only this account's entries."},
					{Name: "ip", In: "query", Description: "Only entries from this IP address."},
					{Name: "country", In: "query", Description: "Only entries located in this country (ISO 3166-1 alpha-2, any case)."},
					{Name: "outcome", In: "query", Schema: web.Schema{"type": "string", "enum": []string{"success", "failure"}}},
				}, activityParams()...),
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of the activity log.",
					Schema: web.ListSchema(web.Ref("AuditActivityItem"))}},
			},
			Errors: append(activityErrors(), web.ProblemLine{Status: http.StatusBadRequest,
				Text: "invalid_request: account is not an id, ip not an IP address, country not a two-letter code or outcome neither success nor failure"}),
			Handler: web.List(s.Core, s.listAuditActivity),
		},
		{
			Method: http.MethodGet, Path: "/audit/sessions", Access: web.AccessAudit, Read: true, List: true,
			Op: web.Operation{
				ID: "listAuditSessions", Summary: "Active sessions across accounts", Tags: tags,
				Description: "As GET /api/v1/me/sessions (newest first), for every account or the one named.",
				Params:      []web.Param{{Name: "account", In: "query", Description: "Only this account's sessions."}},
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of sessions.",
					Schema: web.ListSchema(web.Ref("AuditSessionItem"))}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusBadRequest, Text: "invalid_request: account is not an id"}},
			Handler: web.List(s.Core, s.listAuditSessions),
		},
		{
			Method: http.MethodDelete, Path: "/audit/sessions/:id", Access: web.AccessAudit,
			Op: web.Operation{
				ID: "deleteAuditSession", Summary: "Sign any session out", Tags: tags,
				Description: "Reason signed_out_by_admin; the caller is recorded as the acting admin. The session fails whoami " +
					"before this answers.",
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Signed out.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no active session has this id"}},
			Handler: web.Command(s.Core, web.MetaAdmin, s.deleteAuditSession),
		},
	}
}

// Paging of the raw events.
const (
	// eventsScanBatch and eventsScanMax bound the log scan of a backend without
	// ReadSubject: the events read per ReadAll and per page (Server.scanBatch, scanMax).
	eventsScanBatch = 1000
	eventsScanMax   = 10_000
	eventsCursor    = "ev"
)

// encodeEventsCursor makes the cursor that resumes account's events after position pos.
func encodeEventsCursor(account string, pos uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(eventsCursor + ":" + strconv.FormatUint(pos, 10) + ":" + account))
}

// decodeEventsCursor returns the position of a cursor of account's events.
func DecodeEventsCursor(account, cursor string) (uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, projections.ErrBadCursor
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != eventsCursor || parts[2] != account {
		return 0, projections.ErrBadCursor
	}
	pos, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || pos == 0 || encodeEventsCursor(account, pos) != cursor {
		// One position, one cursor: "ev:05:..." or a newline (base64 skips it) is refused.
		return 0, projections.ErrBadCursor
	}
	return pos, nil
}

// listAccountEvents pages an account's raw events, after the cursor's position, else the
// query's `after`.
func (s *API) listAccountEvents(r *web.Call[web.NoBody]) ([]domain.Envelope, string, error) {
	var after uint64
	var err error
	if raw, ok := r.C.GetQuery("after"); ok && raw != "" {
		if after, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return nil, "", web.Public(web.ErrInvalidRequest, "after must be a non-negative integer (a global position).", err)
		}
	}
	if r.Cursor != "" {
		if after, err = DecodeEventsCursor(r.ID, r.Cursor); err != nil {
			return nil, "", err
		}
	}
	first, err := s.Events.ReadStream(r.Ctx, domain.AccountStream(r.ID), 1, 1)
	if err != nil {
		return nil, "", err
	}
	if len(first) == 0 {
		return nil, "", web.Public(web.ErrNotFound, "No account has this id.", nil)
	}
	events, next, err := s.AccountEvents(r.Ctx, r.ID, after, r.Limit)
	if err != nil {
		return nil, "", err
	}
	for i := range events {
		events[i] = RedactEvent(events[i])
	}
	return events, next, nil
}

// accountEvents returns up to limit events whose subject is account, after position after,
// and the cursor of the next page ("" on the last). With the store's subject index
// (ReadSubject) that is one indexed read; otherwise the log is scanned with ReadAll, at
// most s.scanMax events per page, and a page that stops at that bound resumes after the
// last event scanned.
func (s *API) AccountEvents(ctx context.Context, account string, after uint64, limit int) ([]domain.Envelope, string, error) {
	if s.Subjects != nil {
		events, err := s.Subjects.ReadSubject(ctx, account, after, limit+1)
		if err != nil {
			return nil, "", err
		}
		if len(events) > limit {
			events = events[:limit]
			return events, encodeEventsCursor(account, events[limit-1].Position), nil
		}
		return events, "", nil
	}
	var out []domain.Envelope
	scanned, pos := 0, after
	for scanned < s.scanMax {
		n := min(s.scanBatch, s.scanMax-scanned)
		batch, err := s.Events.ReadAll(ctx, pos, n)
		if err != nil {
			return nil, "", err
		}
		for _, ev := range batch {
			if ev.Metadata.SubjectAccountID == account {
				if len(out) == limit {
					return out, encodeEventsCursor(account, out[limit-1].Position), nil
				}
				out = append(out, ev)
			}
			pos = ev.Position
		}
		scanned += len(batch)
		if len(batch) < n {
			return out, "", nil // the end of the log
		}
	}
	// The bound: there may be more after pos. (A log that ends exactly here costs the client
	// one more, empty, page.)
	return out, encodeEventsCursor(account, pos), nil
}

// redactEvent returns ev with its data as it may leave the service: every member that the
// event registry does not declare public or personal is "[redacted]" (export.RedactEnvelope,
// the same rule as the compliance stream's and the forwarders').
func RedactEvent(ev domain.Envelope) domain.Envelope { return export.RedactEnvelope(ev) }

func (s *API) getAccountSecurityAt(r *web.Call[web.NoBody]) (web.Reply, error) {
	if r.C.Query("at") == "" {
		return web.Reply{}, web.Public(web.ErrInvalidRequest, "at is required: an RFC 3339 time, e.g. 2026-03-02T09:00:00Z.", nil)
	}
	at, err := web.TimeParam(r.C, "at")
	if err != nil {
		return web.Reply{}, err
	}
	st, err := projections.SecurityAt(r.Ctx, s.Events, r.ID, at)
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			err = web.Public(web.ErrNotFound, "No account with this id existed at "+at.Format(time.RFC3339Nano)+".", err)
		}
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, securityView(st), 0), nil
}

func (s *API) listAuditActivity(r *web.Call[web.NoBody]) ([]auditActivityItemJSON, string, error) {
	c := r.C
	f, err := web.ActivityFilter(c, r.Limit, r.Cursor)
	if err != nil {
		return nil, "", err
	}
	if f.AccountID, err = web.IdParam(c, "account"); err != nil {
		return nil, "", err
	}
	if f.IP, err = web.IpParam(c, "ip"); err != nil {
		return nil, "", err
	}
	if f.CountryCode, err = web.CountryParam(c, "country"); err != nil {
		return nil, "", err
	}
	switch f.Outcome = c.Query("outcome"); f.Outcome {
	case "", "success", "failure":
	default:
		return nil, "", web.Public(web.ErrInvalidRequest, "outcome must be success or failure.", nil)
	}
	return s.auditActivity(r.Ctx, f)
}

// auditActivity reads a page of the activity log with the account of each entry.
func (s *API) auditActivity(ctx context.Context, f projections.ActivityFilter) ([]auditActivityItemJSON, string, error) {
	rows, next, err := s.Reads.Activity(ctx, f)
	if err != nil {
		return nil, "", err
	}
	items := make([]auditActivityItemJSON, len(rows))
	for i, r := range rows {
		items[i] = auditActivityItemJSON{activityItemJSON: activityView(r), AccountID: web.OptString(r.AccountID)}
	}
	return items, next, nil
}

func (s *API) listAuditSessions(r *web.Call[web.NoBody]) ([]AuditSessionItemJSON, string, error) {
	account, err := web.IdParam(r.C, "account")
	if err != nil {
		return nil, "", err
	}
	rows, next, err := s.Reads.ActiveSessions(r.Ctx, account, r.Limit, r.Cursor)
	if err != nil {
		return nil, "", err
	}
	return s.LiveSessions(rows, r.Caller.ID), next, nil
}

func (s *API) deleteAuditSession(r *web.Call[web.NoBody]) (web.Reply, error) {
	return s.signOutByID(r, s.svc.AdminSignOut)
}
