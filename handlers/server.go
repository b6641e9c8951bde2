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
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/apidoc"
	"github.com/vigil-auth/vigil/handlers/portal"
	"github.com/vigil-auth/vigil/handlers/stream"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// DefaultMaxLag is how far behind the log a projection may be and still count as ready.
const DefaultMaxLag = 5 * time.Second

// StatusSource describes the projections (*runner.Runner (projections/runner) satisfies it).
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
	Store web.HeadReader
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
	Accounts *command.Service
	// SecretKey is the server key (at least 16 bytes; Vigil's is 32). The key of the CSRF
	// tokens is derived from it. Required with Accounts.
	SecretKey []byte
	// Positions lets a read wait for the read models (?min_position=P); nil means reads do
	// not wait. *runner.Runner (projections/runner) satisfies it.
	Positions web.PositionWaiter
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
	ReadModels api.ReadModels
	Log        api.EventLog
	// Subjects, when the backend has a subject index (the SQLite store), serves an account's
	// raw events without scanning the log; nil makes the audit scan ReadAll. Log itself is
	// used when it is a SubjectReader and Subjects is nil.
	Subjects api.SubjectReader

	// ServiceTokens authenticates machines (Bearer vgl_...) and runs the service token
	// administration; nil: neither is served. With it, Log and Stream.Subscriber, the
	// compliance stream (/api/v1/events, /api/v1/events/stream) is served too.
	ServiceTokens *command.ServiceTokens
	// Stream configures the compliance stream.
	Stream stream.StreamConfig

	// PublicURL is the origin clients reach Vigil at (--public-url, e.g.
	// https://id.example.com): the OpenAPI document's server and contact. Empty: the
	// document's server is "/", the origin that served it.
	PublicURL string

	// HSTS sets Strict-Transport-Security on every answer: give it when the public URL is
	// https (API.md "Operations"). Every answer carries X-Content-Type-Options: nosniff.
	HSTS bool

	// Webhooks, with Accounts, serves the webhook administration (/admin/webhooks...); nil
	// serves none.
	Webhooks api.WebhookAdmin
	// LogIntegrity serves GET /api/v1/log/keys and /api/v1/log/checkpoints; nil: not served.
	LogIntegrity api.LogIntegrity
	// ReadModelSnapshots serves GET /api/v1/admin/read-models/snapshot; nil: not served.
	ReadModelSnapshots api.ReadModelSnapshots
}

// Server is Vigil's HTTP server: a Gin engine with every route and middleware. Safe for
// concurrent use once New returns.
type Server struct {
	starting atomic.Bool // see Starting

	core        *web.Core
	registry    *prometheus.Registry
	projections StatusSource
	maxLag      time.Duration
	engine      *gin.Engine
	root        web.RouteGroup

	api    *api.API       // nil: the JSON API is not served
	stream *stream.Stream // nil: the compliance stream is not served
	portal *portal.Portal // nil when the API or the read side is not served
	// passwords is the policy the API reference describes (the domain's, when served).
	passwords *credential.PasswordPolicy
	hsts      bool
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
		cfg.MinPositionWait = web.DefaultMinPositionWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e, err := web.NewEngine()
	if err != nil {
		return nil, err
	}

	var secret []byte // the CSRF key's, with the API only
	if cfg.Accounts != nil {
		secret = cfg.SecretKey
	}
	k, err := web.NewCore(web.CoreConfig{
		Logger: cfg.Logger, Registry: cfg.Registry, TrustedProxies: cfg.TrustedProxies, PublicURL: cfg.PublicURL,
		Store: cfg.Store, Positions: cfg.Positions, MinPositionWait: cfg.MinPositionWait, Now: cfg.Now,
		InsecureCookies: cfg.InsecureCookies, SecretKey: secret,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{
		core:        k,
		registry:    cfg.Registry,
		projections: cfg.Projections,
		maxLag:      cfg.MaxLag,
		engine:      e,
		hsts:        cfg.HSTS,
	}
	if cfg.Accounts != nil {
		k.Serve(cfg.Accounts)
		s.passwords = cfg.Accounts.PasswordPolicy()
	}
	if cfg.ServiceTokens != nil {
		k.AcceptTokens(cfg.ServiceTokens)
	}
	// Outermost first: the id is known to every later step, the log and the metrics see the
	// status the recovery wrote.
	e.Use(k.Middleware()...)
	e.NoRoute(func(c *gin.Context) {
		web.WriteError(c, web.Public(web.ErrNotFound, "No route matches this path.", nil))
	})
	e.NoMethod(func(c *gin.Context) {
		web.WriteError(c, web.Public(web.ErrMethodNotAllowed, "This path does not serve this method; the Allow header lists those it does.", nil))
	})
	s.root = k.RouteGroup(&e.RouterGroup)
	s.defineSchemas()
	s.registerOperations()
	if cfg.Accounts == nil {
		return s, nil
	}
	acfg := api.Config{ReadModels: cfg.ReadModels, Log: cfg.Log, Subjects: cfg.Subjects, Webhooks: cfg.Webhooks, LogIntegrity: cfg.LogIntegrity}
	acfg.ReadModelSnapshots = cfg.ReadModelSnapshots
	if cfg.ServiceTokens != nil { // a nil *ServiceTokens is not a nil interface
		acfg.ServiceTokens = cfg.ServiceTokens
	}
	s.api = api.New(k, cfg.Accounts, acfg)
	if cfg.ServiceTokens != nil && cfg.Log != nil && cfg.Stream.Subscriber != nil {
		s.stream = stream.New(k, cfg.Log, cfg.Stream, cfg.Registry)
	}
	s.registerAPI()
	if cfg.ReadModels != nil && cfg.Log != nil {
		if s.portal, err = portal.New(k, cfg.Accounts, s.api, e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// OpenAPIDocument is the OpenAPI 3.1 document that GET /openapi.json serves.
func (s *Server) OpenAPIDocument() ([]byte, error) { return s.core.Doc.Document() }

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
	p, _ := web.ProblemFor(web.ErrNotReady)
	p.Detail = "Vigil is starting: it is still reading the event log. Try again in a few seconds."
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", web.ProblemContentType)
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// registerAPI registers the routes of the JSON API.
func (s *Server) registerAPI() {
	api := s.root.Group(web.ApiPrefix, web.NoStore)
	routes := s.api.Routes()
	if s.stream != nil {
		routes = append(routes, s.stream.Routes()...)
	}
	for _, r := range routes {
		s.core.HandleAPI(api, r)
	}
}

// APIReference renders the Markdown API reference of every route s serves, with the serve
// flags of the command.
func (s *Server) APIReference(flags []apidoc.ReferenceFlag) ([]byte, error) {
	doc, err := s.core.Doc.Document()
	if err != nil {
		return nil, err
	}
	pol := s.passwords
	if pol == nil {
		if pol, err = credential.NewPasswordPolicy(credential.PasswordPolicyConfig{}); err != nil {
			return nil, err
		}
	}
	return apidoc.Render(doc, pol, flags)
}

// CloseStreams ends every SSE stream at once and refuses new ones (503-free: a new stream
// request after it gets an empty stream that ends). Call it when the HTTP server starts
// shutting down (http.Server.RegisterOnShutdown), so that draining does not wait for
// streams that never end on their own. It is safe to call more than once, and on a server
// without the stream.
func (s *Server) CloseStreams() {
	if s.stream == nil {
		return
	}
	s.stream.Close()
}
