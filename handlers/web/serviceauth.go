package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain/command"
)

// serviceOf returns the service token that authenticated the request, if one did.
func serviceOf(c *gin.Context) (command.ServiceToken, bool) {
	if r := requestOf(c); r != nil && r.service != nil {
		return *r.service, true
	}
	return command.ServiceToken{}, false
}

// ServiceCaller returns the service token that authenticated the request, if one did.
func ServiceCaller(c *gin.Context) (command.ServiceToken, bool) { return serviceOf(c) }

// bearerServiceToken returns the bearer token when it is a service token (vgl_ prefix).
func bearerServiceToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(tok, command.ServiceTokenPrefix) {
		return "", false
	}
	return tok, true
}

// serviceAuth is the middleware that authenticates a service token holding scope. Requests
// without one pass on unchanged to the session middleware.
func (s *Core) serviceAuth(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, ok := bearerServiceToken(c.Request)
		if !ok || s.tokens == nil {
			c.Next()
			return
		}
		st, err := s.tokens.Authenticate(c.Request.Context(), tok, scope, RequestMeta(c))
		if err != nil {
			if _, joined := err.(interface{ Unwrap() []error }); joined { // recording the denial failed
				LoggerFrom(c).WarnContext(c.Request.Context(), "service token denial not recorded", "route", RouteLabel(c),
					"request_id", RequestID(c), "error", err.Error())
			}
			if errors.Is(err, command.ErrInsufficientScope) {
				err = Public(ErrForbidden, "This service token lacks scope "+scope+".", err)
			}
			WriteError(c, err)
			return
		}
		if r := requestOf(c); r != nil { // always, under the server's middleware
			r.service = &st
		}
		c.Next()
	}
}
