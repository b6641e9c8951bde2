package handlers

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// HeadReader is the part of the event store the server checks for health: the global
// position of the last event (eventstore.Store satisfies it).
type HeadReader interface {
	Head(ctx context.Context) (uint64, error)
}

// DefaultMinPositionWait is how long a read with ?min_position waits for the read models.
const DefaultMinPositionWait = 2 * time.Second

// PositionWaiter waits until the read models include a global position of the log
// (*projections.Runner satisfies it). WaitFor returns ctx's error when ctx ends first.
type PositionWaiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// sessionService is what the common middleware asks of the domain (*domain.Service
// satisfies it): the session of a token, noting its use, the account's roles, the client a
// request names and the step-up window.
type sessionService interface {
	Whoami(ctx context.Context, token string) (domain.Session, error)
	Touch(ctx context.Context, sessionID string) (uint64, error)
	SessionByID(sessionID string) (domain.Session, error)
	Account(ctx context.Context, accountID string) (*domain.Account, error)
	Client(ctx context.Context, clientID string) (domain.Client, error)
	RequireRecentAuth(sess domain.Session, window time.Duration) error
}

// tokenAuthenticator checks a service token for a scope (*domain.ServiceTokens satisfies
// it).
type tokenAuthenticator interface {
	Authenticate(ctx context.Context, token, scope string, rm domain.RequestMeta) (domain.ServiceToken, error)
}

// core is what the JSON API, the event stream and the portal share: the middleware of every
// request, authentication and CSRF, the request metadata of commands, the log position
// header, the session cookie and the route registry of the OpenAPI document.
type core struct {
	log     *slog.Logger
	trusted []netip.Prefix
	metrics *httpMetrics
	doc     *registry // the OpenAPI document's routes and schemas
	store   HeadReader

	// The JSON API's (nil svc: not served).
	svc       sessionService
	tokens    tokenAuthenticator // nil: no service tokens
	csrfKey   []byte
	positions PositionWaiter
	minWait   time.Duration
	now       func() time.Time
	// insecureCookies drops Secure from the cookies (Config.InsecureCookies).
	insecureCookies bool
}
