package handlers

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// readRoutes: the account's own lists, answered from the read models (API.md
// GET /me/sessions and GET /me/activity).
func (s *jsonAPI) readRoutes() []apiRoute {
	return []apiRoute{
		{
			method: http.MethodGet, path: "/me/sessions", access: signedIn, cap: domain.CapRead, read: true, list: true,
			op: operation{
				ID: "listMySessions", Summary: "The caller's active sessions",
				Description: "Newest first. current marks the session making the request. When the read model has not yet " +
					"taken in the caller's own session, the first page waits (at most 2 s) for it. A session whose lifetime or " +
					"idle timeout has passed is left out before the sweeper records its expiry, so a page may hold fewer items " +
					"than limit and still have a next_cursor.",
				Responses: map[int]response{http.StatusOK: {Description: "A page of sessions.", Schema: listSchema(ref("SessionItem"))}},
			},
			h: s.listMySessions,
		},
		{
			method: http.MethodGet, path: "/me/activity", access: signedIn, cap: domain.CapRead, read: true, list: true,
			op: operation{
				ID: "listMyActivity", Summary: "The caller's activity log",
				Description: "Newest first (by global position): sign-ins and their failures, second factors, credential and " +
					"profile changes, sessions ended, roles. time is when the event was decided.",
				Params: activityParams(),
				Responses: map[int]response{http.StatusOK: {Description: "A page of the activity log.",
					Schema: listSchema(ref("ActivityItem"))}},
			},
			errors: activityErrors(),
			h:      s.listMyActivity,
		},
	}
}

// activityParams are the query parameters /me/activity and /audit/activity share.
func activityParams() []param {
	return []param{
		{Name: "type", In: "query", Description: "Comma-separated event type names (API.md \"Event types\"); any of them matches."},
		{Name: "from", In: "query", Description: "Only entries at or after this RFC 3339 time.", Schema: dateTime()},
		{Name: "to", In: "query", Description: "Only entries at or before this RFC 3339 time.", Schema: dateTime()},
	}
}

func activityErrors() []problemLine {
	return []problemLine{{http.StatusBadRequest,
		"invalid_request: type names an unknown event type, from or to is not an RFC 3339 time, or from is after to"}}
}

func (s *jsonAPI) listMySessions(c *gin.Context) {
	limit, cursor, err := pageParams(c)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	caller := callerOf(c)
	if cursor == "" {
		s.awaitSession(ctx, caller.ID)
	}
	rows, next, err := s.reads.ActiveSessions(ctx, caller.AccountID, limit, cursor)
	if err != nil {
		writeError(c, err)
		return
	}
	live := s.liveSessions(rows, caller.ID)
	items := make([]sessionItemJSON, len(live))
	for i, it := range live {
		items[i] = it.sessionItemJSON
	}
	c.JSON(http.StatusOK, page(items, next))
}

// awaitSession waits (at most minWait) until the read models include the SessionStarted of
// session id, when they do not yet: the caller's own session, just started, must be in its
// list. The position comes from the session's stream (its first two events; SessionStarted
// follows LoginSucceeded). Failures only skip the wait.
func (s *jsonAPI) awaitSession(ctx context.Context, id string) {
	if s.positions == nil {
		return
	}
	if _, ok, err := s.reads.SessionOwner(ctx, id); err != nil || ok {
		return
	}
	events, err := s.events.ReadStream(ctx, domain.SessionStream(id), 1, 2)
	if err != nil {
		return
	}
	for _, ev := range events {
		if ev.Type == domain.EventSessionStarted {
			ctx, cancel := context.WithTimeout(ctx, s.minWait)
			_ = s.positions.WaitFor(ctx, ev.Position) // then answer with what there is
			cancel()
			return
		}
	}
}

func (s *jsonAPI) listMyActivity(c *gin.Context) {
	f, err := activityFilter(c)
	if err != nil {
		writeError(c, err)
		return
	}
	f.AccountID = callerOf(c).AccountID
	rows, next, err := s.reads.Activity(c.Request.Context(), f)
	if err != nil {
		writeError(c, err)
		return
	}
	items := make([]activityItemJSON, len(rows))
	for i, r := range rows {
		items[i] = activityView(r)
	}
	c.JSON(http.StatusOK, page(items, next))
}
