package stream

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The compliance stream (API.md "Compliance stream"): GET /api/v1/events pages the log in
// global order, GET /api/v1/events/stream serves it as Server-Sent Events. Both take a
// service token with scope events:read, or an admin's session, and write CloudEvents 1.0
// structured JSON (or OCSF records with format=ocsf).

// EventStream is a live feed of events in global order (eventstore.Subscription satisfies
// it): Events is closed when it ends, then Err says why; Close ends it.
type EventStream interface {
	Events() <-chan domain.Envelope
	Err() error
	Close() error
}

// EventSubscriber opens a feed of every event after a global position: catch-up, then live,
// no gap, no duplicate (the event store's Subscribe).
type EventSubscriber interface {
	SubscribeEvents(ctx context.Context, after uint64) (EventStream, error)
}

// StreamConfig configures the compliance stream. Without Subscriber (or without
// Config.ServiceTokens or Config.Log) the /events routes are not served.
type StreamConfig struct {
	// Subscriber feeds the SSE stream's fan-out (one subscription for all clients).
	Subscriber EventSubscriber
	// Source is the CloudEvents source of every event (the public URL); default
	// export.DefaultSource.
	Source string
	// Heartbeat is the interval of the SSE comment lines that keep idle connections open;
	// default DefaultHeartbeat.
	Heartbeat time.Duration
	// Buffer is how many live events may wait for one client before it counts as too slow
	// and is disconnected (it resumes with Last-Event-ID); default DefaultStreamBuffer.
	Buffer int
	// WriteTimeout bounds each write to a client; a client that accepts nothing for this
	// long is disconnected; default DefaultStreamWriteTimeout.
	WriteTimeout time.Duration
}

// Defaults of StreamConfig.
const (
	DefaultHeartbeat          = 15 * time.Second
	DefaultStreamBuffer       = 4096
	DefaultStreamWriteTimeout = 10 * time.Second
)

// Limits of the event routes.
const (
	// eventsPageScanMax bounds the events examined for one page of GET /events when
	// filters drop most of them; next_after then says where to go on.
	eventsPageScanMax = 10_000
	// maxTypeFilters bounds the names in types=.
	maxTypeFilters = 64
	// catchUpPage is the page size of the stream's catch-up reads.
	catchUpPage = 500
)

// Formats of the event routes.
const (
	formatCloudEvents = "cloudevents"
	formatOCSF        = "ocsf"
)

// eventFilter is the parsed query of an event route.
type eventFilter struct {
	after   uint64
	types   map[string]bool // nil: every type
	account string
	format  string
}

func (f eventFilter) match(e domain.Envelope) bool {
	if f.types != nil && !f.types[e.Type] {
		return false
	}
	return f.account == "" || e.Metadata.SubjectAccountID == f.account
}

// parseEventFilter reads after, types, account and format; a value that is not valid is
// ErrInvalidRequest with a detail.
func parseEventFilter(c *gin.Context) (eventFilter, error) {
	f := eventFilter{format: formatCloudEvents}
	if raw, ok := c.GetQuery("after"); ok {
		p, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return f, web.Public(web.ErrInvalidRequest, "after must be a non-negative integer (a global position).", err)
		}
		f.after = p
	}
	if raw, ok := c.GetQuery("types"); ok {
		names := strings.Split(raw, ",")
		if len(names) > maxTypeFilters {
			return f, web.Public(web.ErrInvalidRequest, "types names at most 64 event types.", nil)
		}
		f.types = map[string]bool{}
		for _, n := range names {
			n = strings.TrimSpace(n)
			if _, known := domain.Catalog().CurrentVersion(n); !known {
				return f, web.Public(web.ErrInvalidRequest, "types must be a comma-separated list of event type names (API.md \"Event types\"); "+
					strconv.Quote(web.TruncateUTF8(n, 64))+" is not one.", nil)
			}
			f.types[n] = true
		}
	}
	if raw, ok := c.GetQuery("account"); ok {
		if raw == "" || len(raw) > web.MaxPathID || strings.ContainsFunc(raw, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return f, web.Public(web.ErrInvalidRequest, "account must be an account id.", nil)
		}
		f.account = raw
	}
	if raw, ok := c.GetQuery("format"); ok {
		switch raw {
		case formatCloudEvents, formatOCSF:
			f.format = raw
		default:
			return f, web.Public(web.ErrInvalidRequest, "format must be cloudevents or ocsf.", nil)
		}
	}
	return f, nil
}

// encode returns the JSON of e in f's format; false when the format has no record for e
// (OCSF maps sign-ins and credential changes only).
func (s *Stream) encodeEvent(f eventFilter, e domain.Envelope) ([]byte, bool, error) {
	if f.format == formatOCSF {
		return export.MarshalOCSF(e)
	}
	b, err := export.MarshalCloudEvent(e, s.stream.source)
	return b, err == nil, err
}

// eventRoutes: the compliance stream.
func (s *Stream) eventRoutes() []web.Route {
	tags := []string{"compliance"}
	filterParams := []web.Param{
		{Name: "after", In: "query", Description: "A global position: only events after it (exclusive). Default 0.",
			Schema: web.Schema{"type": "integer", "minimum": 0}},
		{Name: "types", In: "query", Description: "Comma-separated event type names (API.md \"Event types\"); only these. An unknown name is 400."},
		{Name: "account", In: "query", Description: "Only events whose subject is this account."},
		{Name: "format", In: "query", Description: "cloudevents (default): CloudEvents 1.0 structured JSON with the vigilposition and vigilhash extensions; " +
			"ocsf: OCSF 1.x records (Authentication 3002 for sign-ins, Account Change 3001 for credential changes; other events are skipped).",
			Schema: web.Schema{"type": "string", "enum": []string{formatCloudEvents, formatOCSF}}},
	}
	filterErr := web.ProblemLine{Status: http.StatusBadRequest,
		Text: "invalid_request: after is not a non-negative integer, types names an unknown event type, account is not an id or format is neither cloudevents nor ocsf"}
	return []web.Route{
		{
			Method: http.MethodGet, Path: "/events", Access: web.AccessEvents,
			Op: web.Operation{
				ID: "listEvents", Summary: "Events in global order, paged", Tags: tags,
				Description: "Up to limit events after position `after`, in global order. next_after is the position of the " +
					"last event examined (filters may skip events; at most 10,000 are examined per request): pass it as after " +
					"for the next page. A page with fewer items than limit is not the end of the log: poll again later.",
				Params: append(slices.Clone(filterParams), web.Param{Name: "limit", In: "query",
					Description: "Page size: default 50; above 500 counts as 500.", Schema: web.Schema{"type": "integer", "minimum": 1, "default": web.DefaultPageLimit}}),
				Responses: map[int]web.Response{http.StatusOK: {Description: "A page of events.",
					Schema: web.Object(map[string]web.Schema{
						"items":      web.ArrayOf(web.Schema{"type": "object", "description": "A CloudEvent (or an OCSF record with format=ocsf)."}),
						"next_after": {"type": "integer", "description": "The after of the next page."},
					}, "items", "next_after")}},
			},
			Errors:  []web.ProblemLine{filterErr, {Status: http.StatusBadRequest, Text: "invalid_request: limit is zero, negative or not a number"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.listEvents),
		},
		{
			Method: http.MethodGet, Path: "/events/stream", Access: web.AccessEvents,
			Op: web.Operation{
				ID: "streamEvents", Summary: "Events as Server-Sent Events", Tags: tags,
				Description: "One event per SSE message: `id:` is its global position, `data:` its JSON. Catch-up from `after` " +
					"(or from the Last-Event-ID header, which wins) and then live, with no gap and no duplicate. Idle " +
					"connections get comment lines (heartbeats). A client that falls too far behind is sent `event: error` " +
					"with data {code:\"slow_consumer\"} and disconnected; it resumes with Last-Event-ID.",
				Params: append(slices.Clone(filterParams), web.Param{Name: "Last-Event-ID", In: "header",
					Description: "The id of the last event received: the stream resumes after it.", Schema: web.Schema{"type": "integer", "minimum": 0}}),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The event stream.", ContentType: "text/event-stream",
					Schema: web.StringSchema()}},
			},
			Errors: []web.ProblemLine{filterErr, {Status: http.StatusBadRequest, Text: "invalid_request: Last-Event-ID is not a non-negative integer"},
				{Status: http.StatusServiceUnavailable, Text: "not_ready: the server is shutting down"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.streamEvents),
		},
	}
}

type eventsPageJSON struct {
	Items     []jsonRaw `json:"items"`
	NextAfter uint64    `json:"next_after"`
}

// jsonRaw is pre-encoded JSON.
type jsonRaw []byte

// MarshalJSON returns the bytes as they are.
func (j jsonRaw) MarshalJSON() ([]byte, error) { return j, nil }

func (s *Stream) listEvents(r *web.Call[web.NoBody]) (web.Reply, error) {
	f, err := parseEventFilter(r.C)
	if err != nil {
		return web.Reply{}, err
	}
	limit, _, err := web.PageParams(r.C)
	if err != nil {
		return web.Reply{}, err
	}
	out := eventsPageJSON{Items: []jsonRaw{}, NextAfter: f.after}
	scanned := 0
	for len(out.Items) < limit && scanned < eventsPageScanMax {
		batch := limit
		if f.types != nil || f.account != "" || f.format == formatOCSF {
			batch = catchUpPage
		}
		evs, err := s.events.ReadAll(r.Ctx, out.NextAfter, batch)
		if err != nil {
			return web.Reply{}, err
		}
		for _, e := range evs {
			scanned++
			out.NextAfter = e.Position
			if f.match(e) {
				b, ok, err := s.encodeEvent(f, e)
				if err != nil {
					return web.Reply{}, err
				}
				if ok {
					out.Items = append(out.Items, b)
				}
			}
			if len(out.Items) == limit {
				break
			}
		}
		if len(evs) < batch {
			break
		}
	}
	return web.JSON(http.StatusOK, out, 0), nil
}

// lastEventID is the Last-Event-ID header as a position (ok false when absent).
func lastEventID(c *gin.Context) (uint64, bool, error) {
	raw := strings.TrimSpace(c.GetHeader("Last-Event-ID"))
	if raw == "" {
		return 0, false, nil
	}
	p, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, false, web.Public(web.ErrInvalidRequest, "Last-Event-ID must be a non-negative integer (an id: of this stream).", err)
	}
	return p, true, nil
}

// Reasons a stream ends, for the log and the metric.
const (
	streamEndClient   = "client_gone"
	streamEndSlow     = "slow_consumer"
	streamEndShutdown = "shutdown"
	streamEndWrite    = "write_failed"
	streamEndError    = "error"
)

// streamEvents serves the SSE stream. It joins the hub (which from then on buffers the
// live events that match), catches up from the log up to the hub's position at joining,
// then writes the buffered and following live events. A client whose buffer overflowed
// while it caught up joins again (nothing is lost: the log is read up to the new position);
// one whose buffer overflows while live is sent `event: error` and disconnected.
func (s *Stream) streamEvents(r *web.Call[web.NoBody]) (web.Reply, error) {
	c := r.C
	f, err := parseEventFilter(c)
	if err != nil {
		return web.Reply{}, err
	}
	if p, ok, err := lastEventID(c); err != nil {
		return web.Reply{}, err
	} else if ok {
		f.after = p
	}
	h := s.stream.hub
	if err := h.start(); err != nil {
		return web.Reply{}, err
	}
	s.serveStream(c, f)
	return web.Written(), nil
}

// serveStream writes the stream of the events f matches, from f.after on, until the client
// goes, the hub stops or the client falls too far behind.
func (s *Stream) serveStream(c *gin.Context, f eventFilter) {
	ctx := c.Request.Context()
	h := s.stream.hub
	log := web.LoggerFrom(c)
	w := &sseWriter{c: c, rc: http.NewResponseController(c.Writer), timeout: s.stream.writeTimeout}
	defer func() { _ = w.rc.SetWriteDeadline(time.Time{}) }()
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-store")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	if err := w.comment("vigil event stream"); err != nil {
		return
	}
	h.metrics.clients.Inc()
	defer h.metrics.clients.Dec()

	last := f.after
	reason := streamEndClient
	defer func() {
		h.metrics.ended.WithLabelValues(reason).Inc()
		if reason == streamEndSlow || reason == streamEndError {
			log.WarnContext(ctx, "event stream client disconnected", "reason", reason, "last_event_id", last, "request_id", web.RequestID(c))
		}
	}()
	for {
		cl := newStreamClient(s.stream.buffer, f.match, f.types == nil && f.account == "")
		joinedAt, err := h.join(ctx, cl)
		if err != nil {
			reason = streamEndShutdown
			if ctx.Err() != nil {
				reason = streamEndClient
			}
			return
		}
		// Catch up from the log to the position the live feed starts after.
		for last < joinedAt {
			if s.stream.hub.ctx.Err() != nil {
				h.leave(cl)
				reason = streamEndShutdown
				_ = w.flush()
				return
			}
			evs, err := s.events.ReadAll(ctx, last, catchUpPage)
			if err != nil {
				h.leave(cl)
				if ctx.Err() == nil {
					reason = streamEndError
					_ = w.event("error", `{"code":"internal","detail":"reading the log failed; resume with Last-Event-ID"}`)
				}
				return
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if e.Position > joinedAt {
					break
				}
				if f.match(e) {
					if err := s.writeStreamEvent(w, f, e, nil); err != nil {
						h.leave(cl)
						reason = streamEndWrite
						return
					}
				}
				last = e.Position
			}
			if evs[len(evs)-1].Position >= joinedAt {
				last = max(last, joinedAt)
				break
			}
			if err := w.flush(); err != nil {
				h.leave(cl)
				reason = streamEndWrite
				return
			}
		}
		last = max(last, joinedAt)
		if err := w.flush(); err != nil {
			h.leave(cl)
			reason = streamEndWrite
			return
		}
		if cl.overflowed.Load() {
			h.leave(cl) // fell behind while catching up: read the log again, from where it is
			continue
		}
		reason = s.serveLive(ctx, w, f, cl, &last)
		h.leave(cl)
		return
	}
}

// serveLive writes the client's live events and heartbeats until the client goes, the hub
// stops or the client's buffer overflows; it returns the reason.
func (s *Stream) serveLive(ctx context.Context, w *sseWriter, f eventFilter, cl *streamClient, last *uint64) string {
	tick := time.NewTicker(s.stream.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return streamEndClient
		case <-cl.stop:
			if cl.overflowed.Load() {
				// Send what fitted, then say why the stream ends.
				for {
					select {
					case batch := <-cl.ch:
						cl.take(len(batch))
						for _, he := range batch {
							if he.env.Position > *last {
								if s.writeStreamEvent(w, f, he.env, he) != nil {
									return streamEndSlow
								}
								*last = he.env.Position
							}
						}
						continue
					default:
					}
					break
				}
				_ = w.event("error", `{"code":"slow_consumer","detail":"the client fell too far behind; resume with Last-Event-ID","last_event_id":"`+
					strconv.FormatUint(*last, 10)+`"}`)
				_ = w.flush()
				return streamEndSlow
			}
			return streamEndShutdown
		case <-tick.C:
			if w.comment("heartbeat") != nil || w.flush() != nil {
				return streamEndWrite
			}
		case batch := <-cl.ch:
			// Write this batch and whatever else is waiting, then flush once.
			oldest := batch[0].env.RecordedAt
			for n := 0; ; n++ {
				cl.take(len(batch))
				for _, he := range batch {
					if he.env.Position > *last {
						if s.writeStreamEvent(w, f, he.env, he) != nil {
							return streamEndWrite
						}
						*last = he.env.Position
					}
				}
				if n >= 16 {
					break
				}
				var more bool
				select {
				case batch, more = <-cl.ch:
				default:
				}
				if !more {
					break
				}
			}
			if w.flush() != nil {
				return streamEndWrite
			}
			s.stream.hub.metrics.lag.Observe(time.Since(oldest).Seconds())
		}
	}
}

// writeStreamEvent writes one SSE message for e (nothing when the format has no record for
// it). he, when set, carries the CloudEvent the hub encoded once for every client.
func (s *Stream) writeStreamEvent(w *sseWriter, f eventFilter, e domain.Envelope, he *hubEvent) error {
	var (
		b   []byte
		ok  bool
		err error
	)
	if he != nil && f.format == formatCloudEvents {
		b, err = he.cloudEvent(s.stream.source)
		ok = err == nil
	} else {
		b, ok, err = s.encodeEvent(f, e)
	}
	if err != nil || !ok {
		return nil // an event that cannot be encoded is skipped, never a broken stream
	}
	return w.message(e.Position, b)
}

// sseWriter writes SSE lines to the response with a deadline per write.
type sseWriter struct {
	c       *gin.Context
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (w *sseWriter) message(id uint64, data []byte) error {
	w.buf = append(w.buf, "id: "...)
	w.buf = strconv.AppendUint(w.buf, id, 10)
	w.buf = append(w.buf, "\ndata: "...)
	w.buf = append(w.buf, data...)
	w.buf = append(w.buf, "\n\n"...)
	if len(w.buf) >= 64<<10 {
		return w.flush()
	}
	return nil
}

func (w *sseWriter) event(name, data string) error {
	w.buf = append(w.buf, "event: "+name+"\ndata: "+data+"\n\n"...)
	return nil
}

func (w *sseWriter) comment(text string) error {
	w.buf = append(w.buf, ": "+text+"\n\n"...)
	return w.flush()
}

// flush writes the buffered lines and flushes them to the client.
func (w *sseWriter) flush() error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	if len(w.buf) > 0 {
		if _, err := w.c.Writer.Write(w.buf); err != nil {
			w.buf = w.buf[:0]
			return err
		}
		w.buf = w.buf[:0]
	}
	return w.rc.Flush()
}
