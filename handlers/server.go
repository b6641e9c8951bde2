// Package handlers is Vigil's HTTP face: the Gin engine, its middleware (request ids, request
// logs, Prometheus metrics, panic recovery, body limit, client IP), the mapping of errors to
// RFC 9457 problem documents, the route registry that generates /openapi.json, and the routes
// themselves. It calls domain commands and projection queries; it never reaches the event
// store directly beyond the small interfaces declared here.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/projections"
)

// DefaultMaxLag is how far behind the log a projection may be and still count as ready.
const DefaultMaxLag = 5 * time.Second

// HeadReader is the part of the event store the server checks for health: the global
// position of the last event (eventstore.Store satisfies it).
type HeadReader interface {
	Head(ctx context.Context) (uint64, error)
}

// StatusSource describes the projections (*projections.Runner satisfies it).
type StatusSource interface {
	Status(ctx context.Context) ([]projections.Status, error)
}

// Config configures New. Store is required; the rest have defaults.
type Config struct {
	// Logger receives request logs and server-side error details; default slog.Default().
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is what /metrics serves; default a new registry
	// with the Go and process collectors.
	Registry *prometheus.Registry
	// Store is checked by /readyz.
	Store HeadReader
	// Projections is checked by /readyz; nil means there are none to wait for.
	Projections StatusSource
	// TrustedProxies are the peers whose X-Forwarded-For is believed (see ClientIP); none by
	// default.
	TrustedProxies []netip.Prefix
	// MaxLag is how far behind the log a projection may be for /readyz; default DefaultMaxLag.
	MaxLag time.Duration

	// Accounts runs the account, sign-in and session commands. When nil, the JSON API of
	// accounts and sessions (/api/v1/...) is not served: only the operational routes are
	// (some tests build such a server).
	Accounts *domain.Service
	// SecretKey is the server key (at least 16 bytes; Vigil's is 32). The key of the CSRF
	// tokens is derived from it. Required with Accounts.
	SecretKey []byte
	// Positions lets a read wait for the read models (?min_position=P); nil means reads do
	// not wait. *projections.Runner satisfies it.
	Positions PositionWaiter
	// MinPositionWait bounds that wait; default DefaultMinPositionWait. After it the read is
	// answered anyway.
	MinPositionWait time.Duration
	// Now is the clock, used for cookie lifetimes; default time.Now. Give the domain's clock.
	Now func() time.Time
	// InsecureCookies sets the session cookie and the portal's sign-in nonce cookie without
	// the Secure attribute, so that a browser keeps them over plain http:// on a host that is
	// not a secure context (a trial on a LAN address). Never in production.
	InsecureCookies bool

	// ReadModels answers the lists of the read side (/me/sessions, /me/activity and the
	// audit lists); *projections.DB satisfies it. Log is the event log the audit reads
	// (raw events, the security state at a time) and where /me/sessions finds the position
	// of the caller's SessionStarted; eventstore.Store satisfies it. With Accounts, when
	// either is nil the read-side routes (/me/sessions, /me/activity, /audit/...) are not
	// served.
	ReadModels ReadModels
	Log        EventLog
	// Subjects, when the backend has a subject index (the SQLite store), serves an account's
	// raw events without scanning the log; nil makes the audit scan ReadAll. Log itself is
	// used when it is a SubjectReader and Subjects is nil.
	Subjects SubjectReader

	// ServiceTokens authenticates machines (Bearer vgl_...) and runs the service token
	// administration; nil: neither is served. With it, Log and Stream.Subscriber, the
	// compliance stream (/api/v1/events, /api/v1/events/stream) is served too.
	ServiceTokens *domain.ServiceTokens
	// Stream configures the compliance stream.
	Stream StreamConfig

	// PublicURL is the origin clients reach Vigil at (--public-url, e.g.
	// https://id.example.com): the OpenAPI document's server and contact. Empty: the
	// document's server is "/", the origin that served it.
	PublicURL string

	// HSTS sets Strict-Transport-Security on every answer: give it when the public URL is
	// https (API.md "Operations"). Every answer carries X-Content-Type-Options: nosniff.
	HSTS bool

	// Webhooks, with Accounts, serves the webhook administration (/admin/webhooks...); nil
	// serves none.
	Webhooks WebhookAdmin
}

// ReadModels is the part of the read models the handlers query (*projections.DB
// satisfies it). Each call sees the last committed batch of the projections.
type ReadModels interface {
	ActiveSessions(ctx context.Context, accountID string, limit int, cursor string) ([]projections.SessionRow, string, error)
	SessionOwner(ctx context.Context, sessionID string) (accountID string, ok bool, err error)
	Activity(ctx context.Context, f projections.ActivityFilter) ([]projections.ActivityRow, string, error)
}

// EventLog is the part of the event log the audit reads (eventstore.Store satisfies it).
type EventLog interface {
	ReadStream(ctx context.Context, stream string, fromVersion uint64, limit int) ([]domain.Envelope, error)
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// SubjectReader is a log that can read the events whose metadata subject is an account
// without scanning the whole log (the SQLite store's ReadSubject): up to limit events after
// global position after, in global order.
type SubjectReader interface {
	ReadSubject(ctx context.Context, accountID string, after uint64, limit int) ([]domain.Envelope, error)
}

// subjectReaderOf returns the configured SubjectReader, else log's own, else nil.
func subjectReaderOf(cfg Config) SubjectReader {
	if cfg.Subjects != nil {
		return cfg.Subjects
	}
	if sr, ok := cfg.Log.(SubjectReader); ok {
		return sr
	}
	return nil
}

// DefaultMinPositionWait is how long a read with ?min_position waits for the read models.
const DefaultMinPositionWait = 2 * time.Second

// PositionWaiter waits until the read models include a global position of the log
// (*projections.Runner satisfies it). WaitFor returns ctx's error when ctx ends first.
type PositionWaiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// Server is Vigil's HTTP server: a Gin engine with every route and middleware. Safe for
// concurrent use once New returns.
type Server struct {
	starting atomic.Bool // see Starting

	log         *slog.Logger
	registry    *prometheus.Registry
	store       HeadReader
	projections StatusSource
	trusted     []netip.Prefix
	maxLag      time.Duration

	engine  *gin.Engine
	routes  *registry
	root    routeGroup
	metrics *httpMetrics

	// The JSON API (nil svc: not served).
	svc       *domain.Service
	csrfKey   []byte
	positions PositionWaiter
	minWait   time.Duration
	now       func() time.Time
	// insecureCookies drops Secure from the cookies (Config.InsecureCookies).
	insecureCookies bool

	// The read side (nil reads: not served).
	reads    ReadModels
	events   EventLog
	subjects SubjectReader // nil: the audit scans ReadAll
	// scanBatch and scanMax bound that scan (eventsScanBatch, eventsScanMax).
	scanBatch, scanMax int

	// The web portal (portal.go); nil when the API or the read side is not served.
	portal *portal

	// Service tokens and the compliance stream (nil: not served).
	tokens *domain.ServiceTokens
	stream *streamState

	webhooks WebhookAdmin // nil: no webhook routes
	hsts     bool
}

// New builds the server and registers its routes and metrics. It fails on an invalid Config.
// HTTP metrics registered on a registry that already has them (a second Server on the same
// registry) are shared, not duplicated.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Store == nil {
		return nil, errors.New("handlers: Config.Store is required")
	}
	if cfg.MaxLag < 0 {
		return nil, errors.New("handlers: Config.MaxLag is negative")
	}
	if cfg.MaxLag == 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return nil, errors.New("handlers: invalid trusted proxy prefix")
		}
	}
	if cfg.Accounts != nil && len(cfg.SecretKey) < 16 {
		return nil, errors.New("handlers: Config.SecretKey (at least 16 bytes) is required with Config.Accounts")
	}
	if cfg.MinPositionWait < 0 {
		return nil, errors.New("handlers: Config.MinPositionWait is negative")
	}
	if cfg.MinPositionWait == 0 {
		cfg.MinPositionWait = DefaultMinPositionWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	trusted := make([]netip.Prefix, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		trusted[i] = p.Masked()
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// Client IPs are resolved by ClientIP from TrustedProxies; gin's own resolution stays off.
	e.ForwardedByClientIP = false
	if err := e.SetTrustedProxies(nil); err != nil {
		return nil, err
	}

	s := &Server{
		log:             cfg.Logger,
		registry:        cfg.Registry,
		store:           cfg.Store,
		projections:     cfg.Projections,
		trusted:         trusted,
		maxLag:          cfg.MaxLag,
		engine:          e,
		routes:          newRegistry(),
		metrics:         newHTTPMetrics(cfg.Registry),
		svc:             cfg.Accounts,
		positions:       cfg.Positions,
		minWait:         cfg.MinPositionWait,
		now:             cfg.Now,
		insecureCookies: cfg.InsecureCookies,
		scanBatch:       eventsScanBatch,
		scanMax:         eventsScanMax,
		webhooks:        cfg.Webhooks,
		hsts:            cfg.HSTS,
	}
	s.routes.publicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.ReadModels != nil && cfg.Log != nil {
		s.reads, s.events, s.subjects = cfg.ReadModels, cfg.Log, subjectReaderOf(cfg)
	}
	s.tokens = cfg.ServiceTokens
	if cfg.ServiceTokens != nil && cfg.Log != nil && cfg.Stream.Subscriber != nil {
		if s.events == nil {
			s.events = cfg.Log
		}
		s.stream = newStreamState(cfg.Stream, cfg.Store, cfg.Logger, cfg.Registry)
	}
	if cfg.Accounts != nil {
		key, err := deriveCSRFKey(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		s.csrfKey = key
	}
	// Outermost first: the id is known to every later step, the log and the metrics see the
	// status the recovery wrote.
	e.Use(s.requestID, s.logRequests, s.measure, s.recoverPanics, limitBody, s.resolveClientIP)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, Public(ErrNotFound, "No route matches this path.", nil))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, Public(ErrMethodNotAllowed, "This path does not serve this method; the Allow header lists those it does.", nil))
	})
	s.root = routeGroup{g: &e.RouterGroup, reg: s.routes}
	s.defineSchemas()
	s.registerOperations()
	if s.svc != nil {
		s.defineAPISchemas()
		if s.reads != nil {
			s.defineReadSchemas()
		}
		s.registerAPI()
		if s.reads != nil {
			if s.portal, err = newPortal(s); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// OpenAPIDocument is the OpenAPI 3.1 document that GET /openapi.json serves.
func (s *Server) OpenAPIDocument() ([]byte, error) { return s.routes.document() }

// Handler returns the handler of every route: the web portal's pages (when served) and the
// Gin engine of the API and operational routes.
func (s *Server) Handler() http.Handler {
	var h http.Handler = s.engine
	if s.portal != nil {
		h = s.portal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["X-Content-Type-Options"] = nosniff // canonical keys; shared, never-mutated values
		if s.hsts {
			hdr["Strict-Transport-Security"] = hsts
		}
		if s.starting.Load() && !opsPaths[r.URL.Path] {
			writeStarting(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hstsValue is the Strict-Transport-Security of an https deployment: one year, with the
// subdomains (no preload: that is the operator's decision, made at hstspreload.org).
const hstsValue = "max-age=31536000; includeSubDomains"

// nosniff and hsts are the values of the headers every answer carries, built once: the hot
// path (whoami) allocates nothing for them. A handler that adds to either header gets a new
// slice from append (their capacity is their length), so the shared ones never change.
var (
	nosniff = []string{"nosniff"}
	hsts    = []string{hstsValue}
)

// Starting(true) makes every route but /healthz, /readyz, /metrics and /openapi.json answer
// 503 not_ready (with Retry-After) until Starting(false): the instance is still reading the
// log, so its session and token indexes and its read models are incomplete. A new Server is
// not starting. Safe for concurrent use.
func (s *Server) Starting(on bool) { s.starting.Store(on) }

// opsPaths answer while the server is starting.
var opsPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true}

// writeStarting answers a request that came while the server is starting.
func writeStarting(w http.ResponseWriter) {
	p, _ := problemFor(ErrNotReady)
	p.Detail = "Vigil is starting: it is still reading the event log. Try again in a few seconds."
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", problemContentType)
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
