package web

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// HeadReader is the part of the event store the server checks for health: the global
// position of the last event (eventstore.Store satisfies it).
type HeadReader interface {
	Head(ctx context.Context) (uint64, error)
}

// DefaultMinPositionWait is how long a read with ?min_position waits for the read models.
const DefaultMinPositionWait = 2 * time.Second

// PositionWaiter waits until the read models include a global position of the log
// (*runner.Runner (projections/runner) satisfies it). WaitFor returns ctx's error when ctx ends first.
type PositionWaiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// sessionService is what the common middleware asks of the domain (*command.Service
// satisfies it): the session of a token, noting its use, the account's roles, the client a
// request names and the step-up window.
type sessionService interface {
	Use(ctx context.Context, token string) (command.SessionUse, error)
	TouchUse(ctx context.Context, u command.SessionUse) (uint64, error)
	SessionByID(sessionID string) (domain.Session, error)
	Account(ctx context.Context, accountID string) (*domain.Account, error)
	Client(ctx context.Context, clientID string) (command.Client, error)
	RequireRecentAuth(sess domain.Session, window time.Duration) error
}

// tokenAuthenticator checks a service token for a scope (*command.ServiceTokens satisfies
// it).
type tokenAuthenticator interface {
	Authenticate(ctx context.Context, token, scope string, rm command.RequestMeta) (command.ServiceToken, error)
}

// core is what the JSON API, the event stream and the portal share: the middleware of every
// request, authentication and CSRF, the request metadata of commands, the log position
// header, the session cookie and the route registry of the OpenAPI document.
type Core struct {
	Log     *slog.Logger
	trusted []netip.Prefix
	metrics *httpMetrics
	Doc     *registry // the OpenAPI document's routes and schemas
	Store   HeadReader

	// The JSON API's (nil svc: not served).
	svc       sessionService
	tokens    tokenAuthenticator // nil: no service tokens
	csrfKey   []byte
	Positions PositionWaiter
	MinWait   time.Duration
	Now       func() time.Time
	// insecureCookies drops Secure from the cookies (Config.InsecureCookies).
	InsecureCookies bool
}

// middleware is the chain every request of the API's and the portal's engines passes:
// request id, request log, metrics, panic recovery, body limit, client IP.
func (s *Core) Middleware() []gin.HandlerFunc {
	return []gin.HandlerFunc{s.requestID, s.logRequests, s.measure, s.recoverPanics, limitBody, s.resolveClientIP}
}

// coreConfig configures newCore (the Config fields of the same names, checked by New).
type CoreConfig struct {
	Logger          *slog.Logger
	Registry        prometheus.Registerer
	TrustedProxies  []netip.Prefix
	PublicURL       string
	Store           HeadReader
	Positions       PositionWaiter
	MinPositionWait time.Duration
	Now             func() time.Time
	InsecureCookies bool
	// SecretKey is the server key the CSRF key is derived from (needed by serve).
	SecretKey []byte
}

// newCore builds the shared part of the server and registers the HTTP metrics.
func NewCore(cfg CoreConfig) (*Core, error) {
	trusted := make([]netip.Prefix, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		trusted[i] = p.Masked()
	}
	k := &Core{
		Log:             cfg.Logger,
		trusted:         trusted,
		metrics:         newHTTPMetrics(cfg.Registry),
		Doc:             newRegistry(strings.TrimSuffix(cfg.PublicURL, "/")),
		Store:           cfg.Store,
		Positions:       cfg.Positions,
		MinWait:         cfg.MinPositionWait,
		Now:             cfg.Now,
		InsecureCookies: cfg.InsecureCookies,
	}
	if len(cfg.SecretKey) > 0 {
		key, err := deriveCSRFKey(cfg.SecretKey)
		if err != nil {
			return nil, err
		}
		k.csrfKey = key
	}
	return k, nil
}

// serve makes the core authenticate the sessions of svc (the JSON API is served).
func (s *Core) Serve(svc sessionService) { s.svc = svc }

// acceptTokens makes the routes that take a service token accept those of tokens.
func (s *Core) AcceptTokens(tokens tokenAuthenticator) { s.tokens = tokens }

// routeGroup is g recording its routes in the OpenAPI document.
func (s *Core) RouteGroup(g *gin.RouterGroup) RouteGroup { return RouteGroup{g: g, reg: s.Doc} }

// NewEngine is a Gin engine as the API's and the portal's are: 405 for a known path's other
// methods, no redirects of trailing slashes or fixed paths, the request's context as the
// fallback, and gin's own client IP resolution off (ClientIP resolves it from the trusted
// proxies).
func NewEngine() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	e.ForwardedByClientIP = false
	if err := e.SetTrustedProxies(nil); err != nil {
		return nil, err
	}
	return e, nil
}
