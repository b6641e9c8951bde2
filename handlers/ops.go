package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// readyCheckTimeout bounds the store and projection checks of /readyz.
const readyCheckTimeout = 2 * time.Second

// defineSchemas adds the component schemas shared by routes.
func (s *Server) defineSchemas() {
	s.core.Doc.Define("Problem", web.Schema{
		"type":        "object",
		"description": "An RFC 9457 problem document with Vigil's stable machine-readable code.",
		"properties": map[string]web.Schema{
			"type":     {"type": "string", "format": "uri-reference"},
			"title":    web.StringSchema(),
			"status":   web.IntegerSchema(),
			"code":     {"type": "string", "description": "Stable machine-readable error code, e.g. invalid_request."},
			"detail":   web.StringSchema(),
			"instance": web.StringSchema(),
		},
		"required":             []string{"type", "title", "status", "code"},
		"additionalProperties": true,
	})
	s.core.Doc.Define("ProjectionStatus", web.Object(map[string]web.Schema{
		"name":           web.StringSchema(),
		"checkpoint":     web.Schema{"type": "integer", "description": "Last global position committed with the read model."},
		"head":           web.Schema{"type": "integer", "description": "Global position of the last event in the log."},
		"lag_seconds":    web.Schema{"type": "number", "description": "Age of the oldest event not yet committed; 0 when caught up."},
		"stuck":          web.BoolSchema(),
		"stuck_position": web.IntegerSchema(),
		"last_error":     web.StringSchema(),
		"updated_at":     web.Schema{"type": "string", "format": "date-time"},
	}, "name", "checkpoint", "head", "lag_seconds", "stuck", "updated_at"))
}

// registerOperations registers the operational routes.
func (s *Server) registerOperations() {
	ops := []string{"operations"}
	s.root.Handle(http.MethodGet, "/healthz", web.Operation{
		ID: "getHealth", Summary: "Liveness: the process is up", Tags: ops,
		Responses: map[int]web.Response{http.StatusOK: {
			Description: "The process is up.",
			Schema:      web.Object(map[string]web.Schema{"status": {"type": "string", "const": "ok"}}, "status"),
		}},
	}, s.healthz)
	s.root.Handle(http.MethodGet, "/readyz", web.Operation{
		ID: "getReadiness", Summary: "Readiness: the store is reachable and the projections are caught up", Tags: ops,
		Description: "Ready when the event store answers and no projection is stuck or more than the " +
			"allowed lag (5 s by default) behind the log.",
		Responses: map[int]web.Response{
			http.StatusOK: {
				Description: "Ready.",
				Schema: web.Object(map[string]web.Schema{
					"status":      {"type": "string", "const": "ready"},
					"projections": web.ArrayOf(web.Ref("ProjectionStatus")),
				}, "status", "projections"),
			},
			http.StatusServiceUnavailable: web.ProblemResponse("Not ready: the detail names the unreachable store or the stuck or lagging projections; " +
				"the `projections` member, when present, has every projection's status."),
		},
	}, s.readyz)
	s.root.Handle(http.MethodGet, "/metrics", web.Operation{
		ID: "getMetrics", Summary: "Prometheus metrics", Tags: ops,
		Responses: map[int]web.Response{http.StatusOK: {
			Description: "Metrics in the Prometheus text exposition format (or OpenMetrics when negotiated).",
			ContentType: "text/plain",
			Schema:      web.StringSchema(),
		}},
	}, gin.WrapH(promhttp.InstrumentMetricHandler(s.registry, promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))))
	s.root.Handle(http.MethodGet, "/openapi.json", web.Operation{
		ID: "getOpenAPIDocument", Summary: "This OpenAPI 3.1 document", Tags: ops,
		Responses: map[int]web.Response{http.StatusOK: {
			Description: "The OpenAPI document of every route served.",
			Schema:      web.Schema{"type": "object"},
		}},
	}, s.openAPI)
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 when the server is not starting (see Starting), the store answers Head
// and every projection is Ready(maxLag), else a 503 problem that says which check failed. Underlying errors are logged, not shown.
func (s *Server) readyz(c *gin.Context) {
	if s.starting.Load() {
		web.WriteError(c, web.Public(web.ErrNotReady, "Vigil is starting: it is still reading the event log.", nil))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyCheckTimeout)
	defer cancel()
	if _, err := s.core.Store.Head(ctx); err != nil {
		s.core.Log.WarnContext(ctx, "readiness: event store unreachable", "request_id", web.RequestID(c), "error", err.Error())
		web.WriteError(c, web.Public(web.ErrNotReady, "The event store is unreachable.", err))
		return
	}
	statuses := []projections.Status{}
	if s.projections != nil {
		st, err := s.projections.Status(ctx)
		if err != nil {
			s.core.Log.WarnContext(ctx, "readiness: projection status unavailable", "request_id", web.RequestID(c), "error", err.Error())
			web.WriteError(c, web.Public(web.ErrNotReady, "The projections' status is unavailable (the event store may be unreachable).", err))
			return
		}
		if st != nil {
			statuses = st
		}
	}
	var problems []string
	for i, st := range statuses {
		// A projection's last error is internal: it goes to the log, never to the client.
		statuses[i].LastError = ""
		if st.Ready(s.maxLag) {
			continue
		}
		if st.Stuck {
			s.core.Log.WarnContext(ctx, "readiness: projection stuck", "projection", st.Name,
				"position", st.StuckPosition, "error", st.LastError, "request_id", web.RequestID(c))
			problems = append(problems, fmt.Sprintf("projection %q is stuck at position %d", st.Name, st.StuckPosition))
		} else {
			problems = append(problems, fmt.Sprintf("projection %q is lagging %.1fs behind the log (checkpoint %d, head %d; at most %s allowed)",
				st.Name, st.LagSeconds, st.Checkpoint, st.Head, s.maxLag))
		}
	}
	if len(problems) > 0 {
		web.WriteError(c, &web.PublicError{Kind: web.ErrNotReady, Detail: strings.Join(problems, "; ") + ".",
			Extensions: map[string]any{"projections": statuses}})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "projections": statuses})
}

func (s *Server) openAPI(c *gin.Context) {
	doc, err := s.core.Doc.Document()
	if err != nil {
		web.WriteError(c, fmt.Errorf("render openapi document: %w", err))
		return
	}
	c.Data(http.StatusOK, "application/json", doc)
}
