package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// Webhook administration (role admin): registering, listing and removing the endpoints the
// webhook forwarder delivers every event to, and seeing and replaying its parked deliveries.

// WebhookAdmin is what the webhook routes need from the forwarders (cmd/vigil/app adapts
// eventstore/forward to it). Unknown endpoints and deliveries give errors wrapping
// domain.ErrNotFound. Implementations are safe for concurrent use.
type WebhookAdmin interface {
	// WaitRegistry blocks until the forwarders have applied the log up to position (an
	// endpoint registered there runs, one removed there has stopped), or ctx ends.
	WaitRegistry(ctx context.Context, position uint64) error
	// Endpoints lists every endpoint, the configured one (--webhook-url) first.
	Endpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// Parked lists an endpoint's parked deliveries with an id above after, oldest first.
	Parked(ctx context.Context, endpointID string, after int64, limit int) ([]ParkedDelivery, error)
	// Replay makes one new attempt of a parked delivery.
	Replay(ctx context.Context, endpointID string, deliveryID int64) (ReplayResult, error)
}

// WebhookEndpoint describes one endpoint.
type WebhookEndpoint struct {
	ID        string
	URL       string
	Source    string    // "config" (--webhook-url) or "api"
	CreatedAt time.Time // zero for the configured endpoint
	Position  uint64    // the last global position delivered or parked
	Parked    int
}

// ParkedDelivery is a delivery that failed every attempt.
type ParkedDelivery struct {
	ID        int64
	EventID   string
	Position  uint64
	Type      string
	Attempts  int
	LastError string
	ParkedAt  time.Time
}

// ReplayResult is the outcome of a replay: delivered (and no longer parked), or refused
// again (still parked, the attempt counted, LastError saying why).
type ReplayResult struct {
	Delivered bool
	Attempts  int
	LastError string
}

// registryWait bounds how long registering or removing an endpoint waits for the
// forwarders to start or stop it.
const registryWait = 2 * time.Second

func (s *API) webhookRoutes() []web.Route {
	tags := []string{"administration"}
	idParam := func() []web.Param {
		return []web.Param{{Name: "id", In: "path", Required: true, Description: "The endpoint's id (\"configured\" for --webhook-url)."}}
	}
	notFound := web.ProblemLine{Status: http.StatusNotFound, Text: "not_found: no webhook endpoint has this id"}
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/admin/webhooks", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "registerWebhook", Summary: "Register a webhook endpoint", Tags: tags,
				Description: "Records WebhookRegistered. From its position on, every event of the log is POSTed to url, " +
					"in order, signed per Standard Webhooks (webhook-id = event id, webhook-timestamp, webhook-signature " +
					"with the endpoint's own secret, returned here once). The answer comes once the endpoint's forwarder runs (at most 2 s).",
				Request: web.JsonBody(web.Object(map[string]web.Schema{"url": {"type": "string", "format": "uri", "maxLength": 2048,
					"description": "An absolute http or https URL without credentials or fragment."}}, "url")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The endpoint and its signing secret (shown only here).",
					Schema: web.Schema{"allOf": []web.Schema{web.Ref("WebhookEndpoint"), web.Object(map[string]web.Schema{
						"secret": {"type": "string", "description": "The endpoint's Standard Webhooks secret, whsec_ + base64; shown once, stored only sealed with the server key."},
					}, "secret")}}}},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.registerWebhook),
		},
		{
			Method: http.MethodGet, Path: "/admin/webhooks", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "listWebhooks", Summary: "The webhook endpoints", Tags: tags,
				Description: "Every endpoint (one page: there are few), the configured one first, with its delivery position and parked count.",
				Responses:   map[int]web.Response{http.StatusOK: {Description: "The endpoints.", Schema: web.ListSchema(web.Ref("WebhookEndpoint"))}},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.listWebhooks),
		},
		{
			Method: http.MethodDelete, Path: "/admin/webhooks/:id", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "removeWebhook", Summary: "Remove a webhook endpoint", Tags: tags, Params: idParam(),
				Description: "Records WebhookRemoved: nothing more is delivered and the parked deliveries are dropped. The configured endpoint cannot be removed here (restart without --webhook-url).",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Removed.")},
			},
			Errors:  []web.ProblemLine{notFound},
			Handler: web.Command(s.Core, web.MetaAdmin, s.removeWebhook),
		},
		{
			Method: http.MethodGet, Path: "/admin/webhooks/:id/parked", Access: web.AccessAdmin, List: true,
			Op: web.Operation{
				ID: "listParkedDeliveries", Summary: "An endpoint's parked deliveries", Tags: tags, Params: idParam(),
				Description: "Deliveries that failed every attempt, oldest first. The endpoint went on with later events, so a replayed one arrives after them.",
				Responses:   map[int]web.Response{http.StatusOK: {Description: "A page of parked deliveries.", Schema: web.ListSchema(web.Ref("ParkedDelivery"))}},
			},
			Errors:  []web.ProblemLine{notFound},
			Handler: web.List(s.Core, s.listParked),
		},
		{
			Method: http.MethodPost, Path: "/admin/webhooks/:id/parked/:delivery_id/replay", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "replayParkedDelivery", Summary: "Replay a parked delivery", Tags: tags,
				Params: append(idParam(), web.Param{Name: "delivery_id", In: "path", Required: true, Description: "The parked delivery's id."}),
				Description: "One new attempt, freshly signed, with the body the delivery was parked with. Delivered, it is " +
					"no longer parked; refused, it stays parked (delivered=false, last_error says why).",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The outcome.", Schema: web.Object(map[string]web.Schema{
					"delivered": web.BoolSchema(), "attempts": web.IntegerSchema(), "last_error": web.StringSchema(),
				}, "delivered", "attempts")}},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no webhook endpoint has this id, or it has no parked delivery with this id"}},
			Handler: web.Command(s.Core, web.MetaNone, s.replayParked),
		},
	}
}

// defineWebhookSchemas adds the schemas of the webhook routes.
func (s *API) defineWebhookSchemas() {
	s.Doc.Define("WebhookEndpoint", web.Object(map[string]web.Schema{
		"id":         web.StringSchema(),
		"url":        web.StringSchema(),
		"source":     {"type": "string", "enum": []string{"config", "api"}},
		"created_at": web.NullableDateTime(),
		"position":   {"type": "integer", "description": "The last global position delivered (or parked) to this endpoint."},
		"parked":     {"type": "integer", "description": "Deliveries parked after failing every attempt."},
	}, "id", "url", "source", "created_at", "position", "parked"))
	s.Doc.Define("ParkedDelivery", web.Object(map[string]web.Schema{
		"id":         web.StringSchema(),
		"event_id":   web.StringSchema(),
		"position":   web.IntegerSchema(),
		"type":       web.StringSchema(),
		"attempts":   web.IntegerSchema(),
		"last_error": web.StringSchema(),
		"parked_at":  web.DateTime(),
	}, "id", "event_id", "position", "type", "attempts", "last_error", "parked_at"))
}

type webhookJSON struct {
	ID        string  `json:"id"`
	URL       string  `json:"url"`
	Source    string  `json:"source"`
	CreatedAt APITime `json:"created_at"`
	Position  uint64  `json:"position"`
	Parked    int     `json:"parked"`
}

// registeredWebhookJSON is the answer of a registration: the endpoint and its secret.
type registeredWebhookJSON struct {
	webhookJSON
	Secret string `json:"secret"`
}

type registerWebhookRequest struct {
	URL string `json:"url"`
}

func (s *API) registerWebhook(r *web.Call[registerWebhookRequest]) (web.Reply, error) {
	w, pos, err := s.svc.RegisterWebhook(r.Ctx, r.In.URL, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.JSON(http.StatusCreated, registeredWebhookJSON{
		webhookJSON: webhookJSON{ID: w.ID, URL: w.URL, Source: "api", CreatedAt: APITime(w.CreatedAt)},
		Secret:      w.Secret,
	}, pos), nil
}

// waitRegistry waits (bounded) until the forwarders apply pos; after the bound the answer
// goes out anyway: the forwarders apply it when they catch up.
func (s *API) waitRegistry(c *gin.Context, pos uint64) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), registryWait)
	defer cancel()
	if err := s.webhooks.WaitRegistry(ctx, pos); err != nil {
		web.LoggerFrom(c).WarnContext(c.Request.Context(), "the webhook forwarders did not apply a registration in time",
			"position", pos, "request_id", web.RequestID(c))
	}
}

func (s *API) listWebhooks(r *web.Call[web.NoBody]) (web.Reply, error) {
	eps, err := s.webhooks.Endpoints(r.Ctx)
	if err != nil {
		return web.Reply{}, err
	}
	items := make([]webhookJSON, 0, len(eps))
	for _, e := range eps {
		items = append(items, webhookJSON{ID: e.ID, URL: e.URL, Source: e.Source, CreatedAt: APITime(e.CreatedAt),
			Position: e.Position, Parked: e.Parked})
	}
	return web.JSON(http.StatusOK, web.Page(items, ""), 0), nil
}

func (s *API) removeWebhook(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.RemoveWebhook(r.Ctx, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.Done(pos), nil
}

type parkedJSON struct {
	ID        string  `json:"id"`
	EventID   string  `json:"event_id"`
	Position  uint64  `json:"position"`
	Type      string  `json:"type"`
	Attempts  int     `json:"attempts"`
	LastError string  `json:"last_error"`
	ParkedAt  APITime `json:"parked_at"`
}

func (s *API) listParked(r *web.Call[web.NoBody]) ([]parkedJSON, string, error) {
	var after int64
	if r.Cursor != "" {
		var err error
		if after, err = strconv.ParseInt(r.Cursor, 10, 64); err != nil || after <= 0 {
			return nil, "", projections.ErrBadCursor
		}
	}
	list, err := s.webhooks.Parked(r.Ctx, r.ID, after, r.Limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(list) > r.Limit {
		list = list[:r.Limit]
		next = strconv.FormatInt(list[r.Limit-1].ID, 10)
	}
	items := make([]parkedJSON, 0, len(list))
	for _, p := range list {
		items = append(items, parkedJSON{ID: strconv.FormatInt(p.ID, 10), EventID: p.EventID, Position: p.Position,
			Type: p.Type, Attempts: p.Attempts, LastError: p.LastError, ParkedAt: APITime(p.ParkedAt)})
	}
	return items, next, nil
}

type replayJSON struct {
	Delivered bool   `json:"delivered"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// parkedDelivery is the delivery the path of a replay names.
type parkedDelivery struct {
	web.NoBody
	id int64
}

// FromPath reads the delivery id: a positive integer, else nothing has it.
func (d *parkedDelivery) FromPath(p web.Path) error {
	id, err := strconv.ParseInt(p.Param("delivery_id"), 10, 64)
	if err != nil || id <= 0 {
		return web.Public(web.ErrNotFound, "No parked delivery has this id.", err)
	}
	d.id = id
	return nil
}

// replayParked changes the delivery's state, not the event log: it has no request metadata
// and sends no Vigil-Position.
func (s *API) replayParked(r *web.Call[parkedDelivery]) (web.Reply, error) {
	res, err := s.webhooks.Replay(r.Ctx, r.ID, r.In.id)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, replayJSON{Delivered: res.Delivered, Attempts: res.Attempts, LastError: res.LastError}, 0), nil
}
