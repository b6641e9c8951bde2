package api

import (
	"context"
	"net/http"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/web"
)

// readRoutes: the account's own lists, answered from the read models (API.md
// GET /me/sessions and GET /me/activity).
func (s *API) readRoutes() []web.Route {
	return []web.Route{
		{
			Method: http.MethodGet, Path: "/me/sessions", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
			Op: web.Operation{
				ID: "listMySessions", Summary: "The caller's active sessions",
				Description: "Newest first. current marks the session making the request. When the read model has not yet " +
					"taken in the caller's own session, the first page waits (at most 2 s) for it. A session whose lifetime or " +
					"idle timeout has passed is left out before the sweeper records its expiry, so a page may hold fewer items " +
					"than limit and still have a next_cursor.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of sessions.", Schema: web.ListSchema(web.Ref("SessionItem"))}},
			},
			Handler: web.List(s.Core, s.listMySessions),
		},
		{
			Method: http.MethodGet, Path: "/me/activity", Access: web.AccessSignedIn, Cap: domain.CapRead, Read: true, List: true,
			Op: web.Operation{
				ID: "listMyActivity", Summary: "The caller's activity log",
				Description: "Newest first (by global position): sign-ins and their failures, second factors, credential and " +
					"profile changes, sessions ended, roles. time is when the event was decided.",
				Params: activityParams(),
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of the activity log.",
					Schema: web.ListSchema(web.Ref("ActivityItem"))}},
			},
			Errors:  activityErrors(),
			Handler: web.List(s.Core, s.listMyActivity),
		},
	}
}

// activityParams are the query parameters /me/activity and /audit/activity share.
func activityParams() []web.Param {
	return []web.Param{
		{Name: "type", In: "query", Description: "Comma-separated event type names (API.md \"Event types\"); any of them matches."},
		{Name: "from", In: "query", Description: "Only entries at or after this RFC 3339 time.", Schema: web.DateTime()},
		{Name: "to", In: "query", Description: "Only entries at or before this RFC 3339 time.", Schema: web.DateTime()},
	}
}

func activityErrors() []web.ProblemLine {
	return []web.ProblemLine{{Status: http.StatusBadRequest,
		Text: "invalid_request: type names an unknown event type, from or to is not an RFC 3339 time, or from is after to"}}
}

func (s *API) listMySessions(r *web.Call[web.NoBody]) ([]sessionItemJSON, string, error) {
	if r.Cursor == "" {
		s.AwaitSession(r.Ctx, r.Caller.ID)
	}
	rows, next, err := s.Reads.ActiveSessions(r.Ctx, r.Caller.AccountID, r.Limit, r.Cursor)
	if err != nil {
		return nil, "", err
	}
	live := s.LiveSessions(rows, r.Caller.ID)
	items := make([]sessionItemJSON, len(live))
	for i, it := range live {
		items[i] = it.sessionItemJSON
	}
	return items, next, nil
}

// awaitSession waits (at most minWait) until the read models include the SessionStarted of
// session id, when they do not yet: the caller's own session, just started, must be in its
// list. The position comes from the session's stream (its first two events; SessionStarted
// follows LoginSucceeded). Failures only skip the wait.
func (s *API) AwaitSession(ctx context.Context, id string) {
	if s.Positions == nil {
		return
	}
	if _, ok, err := s.Reads.SessionOwner(ctx, id); err != nil || ok {
		return
	}
	events, err := s.Events.ReadStream(ctx, domain.SessionStream(id), 1, 2)
	if err != nil {
		return
	}
	for _, ev := range events {
		if ev.Type == domain.EventSessionStarted {
			ctx, cancel := context.WithTimeout(ctx, s.MinWait)
			_ = s.Positions.WaitFor(ctx, ev.Position) // then answer with what there is
			cancel()
			return
		}
	}
}

func (s *API) listMyActivity(r *web.Call[web.NoBody]) ([]activityItemJSON, string, error) {
	f, err := web.ActivityFilter(r.C, r.Limit, r.Cursor)
	if err != nil {
		return nil, "", err
	}
	f.AccountID = r.Caller.AccountID
	rows, next, err := s.Reads.Activity(r.Ctx, f)
	if err != nil {
		return nil, "", err
	}
	items := make([]activityItemJSON, len(rows))
	for i, row := range rows {
		items[i] = activityView(row)
	}
	return items, next, nil
}
