package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-auth/vigil/projections"
)

// readyCheckTimeout bounds the store and projection checks of /readyz.
const readyCheckTimeout = 2 * time.Second

// defineSchemas adds the component schemas shared by routes.
func (s *Server) defineSchemas() {
	s.core.doc.define("Problem", schema{
		"type":        "object",
		"description": "An RFC 9457 problem document with Vigil's stable machine-readable code.",
		"properties": map[string]schema{
			"type":     {"type": "string", "format": "uri-reference"},
			"title":    stringSchema(),
			"status":   integerSchema(),
			"code":     {"type": "string", "description": "Stable machine-readable error code, e.g. invalid_request."},
			"detail":   stringSchema(),
			"instance": stringSchema(),
		},
		"required":             []string{"type", "title", "status", "code"},
		"additionalProperties": true,
	})
	s.core.doc.define("ProjectionStatus", object(map[string]schema{
		"name":           stringSchema(),
		"checkpoint":     schema{"type": "integer", "description": "Last global position committed with the read model."},
		"head":           schema{"type": "integer", "description": "Global position of the last event in the log."},
		"lag_seconds":    schema{"type": "number", "description": "Age of the oldest event not yet committed; 0 when caught up."},
		"stuck":          boolSchema(),
		"stuck_position": integerSchema(),
		"last_error":     stringSchema(),
		"updated_at":     schema{"type": "string", "format": "date-time"},
	}, "name", "checkpoint", "head", "lag_seconds", "stuck", "updated_at"))
}

// registerOperations registers the operational routes.
func (s *Server) registerOperations() {
	ops := []string{"operations"}
	s.root.handle(http.MethodGet, "/healthz", operation{
		ID: "getHealth", Summary: "Liveness: the process is up", Tags: ops,
		Responses: map[int]response{http.StatusOK: {
			Description: "The process is up.",
			Schema:      object(map[string]schema{"status": {"type": "string", "const": "ok"}}, "status"),
		}},
	}, s.healthz)
	s.root.handle(http.MethodGet, "/readyz", operation{
		ID: "getReadiness", Summary: "Readiness: the store is reachable and the projections are caught up", Tags: ops,
		Description: "Ready when the event store answers and no projection is stuck or more than the " +
			"allowed lag (5 s by default) behind the log.",
		Responses: map[int]response{
			http.StatusOK: {
				Description: "Ready.",
				Schema: object(map[string]schema{
					"status":      {"type": "string", "const": "ready"},
					"projections": arrayOf(ref("ProjectionStatus")),
				}, "status", "projections"),
			},
			http.StatusServiceUnavailable: problemResponse("Not ready: the detail names the unreachable store or the stuck or lagging projections; " +
				"the `projections` member, when present, has every projection's status."),
		},
	}, s.readyz)
	s.root.handle(http.MethodGet, "/metrics", operation{
		ID: "getMetrics", Summary: "Prometheus metrics", Tags: ops,
		Responses: map[int]response{http.StatusOK: {
			Description: "Metrics in the Prometheus text exposition format (or OpenMetrics when negotiated).",
			ContentType: "text/plain",
			Schema:      stringSchema(),
		}},
	}, gin.WrapH(promhttp.InstrumentMetricHandler(s.registry, promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))))
	s.root.handle(http.MethodGet, "/openapi.json", operation{
		ID: "getOpenAPIDocument", Summary: "This OpenAPI 3.1 document", Tags: ops,
		Responses: map[int]response{http.StatusOK: {
			Description: "The OpenAPI document of every route served.",
			Schema:      schema{"type": "object"},
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
		writeError(c, Public(ErrNotReady, "Vigil is starting: it is still reading the event log.", nil))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyCheckTimeout)
	defer cancel()
	if _, err := s.core.store.Head(ctx); err != nil {
		s.core.log.WarnContext(ctx, "readiness: event store unreachable", "request_id", RequestID(c), "error", err.Error())
		writeError(c, Public(ErrNotReady, "The event store is unreachable.", err))
		return
	}
	statuses := []projections.Status{}
	if s.projections != nil {
		st, err := s.projections.Status(ctx)
		if err != nil {
			s.core.log.WarnContext(ctx, "readiness: projection status unavailable", "request_id", RequestID(c), "error", err.Error())
			writeError(c, Public(ErrNotReady, "The projections' status is unavailable (the event store may be unreachable).", err))
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
			s.core.log.WarnContext(ctx, "readiness: projection stuck", "projection", st.Name,
				"position", st.StuckPosition, "error", st.LastError, "request_id", RequestID(c))
			problems = append(problems, fmt.Sprintf("projection %q is stuck at position %d", st.Name, st.StuckPosition))
		} else {
			problems = append(problems, fmt.Sprintf("projection %q is lagging %.1fs behind the log (checkpoint %d, head %d; at most %s allowed)",
				st.Name, st.LagSeconds, st.Checkpoint, st.Head, s.maxLag))
		}
	}
	if len(problems) > 0 {
		writeError(c, &PublicError{Kind: ErrNotReady, Detail: strings.Join(problems, "; ") + ".",
			Extensions: map[string]any{"projections": statuses}})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "projections": statuses})
}

func (s *Server) openAPI(c *gin.Context) {
	doc, err := s.core.doc.document()
	if err != nil {
		writeError(c, fmt.Errorf("render openapi document: %w", err))
		return
	}
	c.Data(http.StatusOK, "application/json", doc)
}
