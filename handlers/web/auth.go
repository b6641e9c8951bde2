package web

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// Names of API.md's cookie, headers and query parameter.
const (
	// SessionCookie carries the session token of browser sessions (HttpOnly, Secure,
	// SameSite=Lax, Path=/).
	SessionCookie = "vigil_session"
	// CSRFHeader must carry the token of GET /api/v1/csrf on unsafe requests authenticated by
	// the cookie.
	CSRFHeader = "X-CSRF-Token"
	// ClientHeader names the client application of a request (a `client_id` field wins).
	ClientHeader = "X-Vigil-Client"
	// PositionHeader carries the global log position a state change wrote.
	PositionHeader = "Vigil-Position"
	// MinPositionParam makes a read wait (bounded) until the read models include a position.
	MinPositionParam = "min_position"
)

// maxTokenLength bounds the session tokens looked up (Vigil's are 43 characters).
const MaxTokenLength = 512

// maxUserAgent bounds the user agent recorded with events, in bytes.
const maxUserAgent = 512

// keyCaller is the gin context key of the authenticated caller.
const KeyCaller = "vigil.caller"

// csrfKeyInfo separates the CSRF key from any other key derived from the server key.
const csrfKeyInfo = "vigil csrf token v1"

// deriveCSRFKey derives the CSRF HMAC key from the server key with HKDF-SHA256.
func deriveCSRFKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, csrfKeyInfo, 32)
}

// csrfToken is the CSRF token of a session: HMAC-SHA256 over its id, base64url. It is
// stable for the session's life and useless for any other session.
func (s *Core) CsrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF compares a presented token with the session's in constant time.
func (s *Core) ValidCSRF(sessionID, presented string) bool {
	if presented == "" {
		return false
	}
	return hmac.Equal([]byte(presented), []byte(s.CsrfToken(sessionID)))
}

// unsafeMethod reports whether method changes state (RFC 9110 §9.2.1), so that a cookie
// request with it needs the CSRF token.
func UnsafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// sessionToken finds the request's session token: the Authorization bearer token, else the
// session cookie. A malformed Authorization header is refused rather than ignored.
func sessionToken(r *http.Request) (token string, viaCookie bool, err error) {
	if h := headerValue(r.Header, "Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > MaxTokenLength {
			return "", false, Public(ErrUnauthenticated, "The Authorization header must be \"Bearer <session token>\".", nil)
		}
		return tok, false, nil
	}
	if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" && len(ck.Value) <= MaxTokenLength {
		return ck.Value, true, nil
	}
	return "", false, Public(ErrUnauthenticated, "Sign in, then send \"Authorization: Bearer <session token>\" or the vigil_session cookie.", nil)
}

// access says who may call a route.
type access int

const (
	// public routes need no session.
	AccessPublic access = iota
	// signedIn routes need an active session holding the route's capability (apiRoute.cap:
	// the account holder's own unrestricted session unless the route names a weaker one).
	AccessSignedIn
	// admin routes need a session of an account with role admin that holds
	// domain.CapTeam (the holder's own, aal2); their changes also need the step-up window.
	AccessAdmin
	// audit routes (the security teams') need a session of an account with role auditor or
	// admin that holds domain.CapTeam; their GET routes also take a service token with
	// scope audit:read.
	AccessAudit
	// events routes (the compliance stream) take a service token with scope events:read,
	// or a session of an account with role admin that holds domain.CapTeam.
	AccessEvents
	// ssf routes (the Shared Signals stream management and polling) take a service token
	// with scope ssf:manage, or a session of an account with role admin that holds
	// domain.CapTeam (its changes also need the step-up window).
	AccessSSF
)

// authenticate is the middleware of routes that need a session: it finds the token (bearer
// or cookie), looks the session up in memory (Whoami), checks the CSRF token of cookie
// requests with unsafe methods, refuses a session that does not hold capability need
// (domain.Session.Allows: enrollment_required, delegate_not_allowed, mfa_required), notes
// the use (Touch; its failure is logged, never the caller's problem) and stores the caller
// for callerOf. A cookie whose session is over is cleared with the 401.
func (s *Core) authenticate(need domain.Capability) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := serviceOf(c); ok { // serviceAuth authenticated a service token
			c.Next()
			return
		}
		ctx := c.Request.Context()
		token, viaCookie, err := sessionToken(c.Request)
		if err != nil {
			WriteError(c, err)
			return
		}
		use, err := s.svc.Use(ctx, token)
		sess := use.Session
		if err != nil {
			if errors.Is(err, domain.ErrSessionNotFound) {
				err = Public(ErrUnauthenticated, "The session is unknown, signed out or expired; sign in again.", err)
				if viaCookie {
					s.ClearSessionCookie(c) // it is of no use any more
				}
			}
			WriteError(c, err)
			return
		}
		if viaCookie && UnsafeMethod(c.Request.Method) && !s.ValidCSRF(sess.ID, c.GetHeader(CSRFHeader)) {
			WriteError(c, Public(ErrCSRFFailed, "Send the token of GET /api/v1/csrf in the X-CSRF-Token header.", nil))
			return
		}
		if err := sess.Allows(need); err != nil {
			WriteError(c, err)
			return
		}
		if _, err := s.svc.TouchUse(ctx, use); err != nil && !errors.Is(err, domain.ErrSessionNotFound) {
			LoggerFrom(c).WarnContext(ctx, "recording a session access failed",
				"route", RouteLabel(c), "request_id", RequestID(c), "error", err.Error())
		}
		setCaller(c, use, s.svc)
		c.Next()
	}
}

// requireRole returns the middleware that refuses (403 forbidden) a caller whose account
// holds none of roles; an admin may do what an auditor may (the security teams' routes take
// either). Roles are events on the account (RoleGranted, RoleRevoked; --admin-emails grants
// admin once, as an event too), read on every request: a revoked role takes effect at once.
// authenticate has already refused a delegate's acting session (domain.CapTeam).
func (s *Core) requireRole(roles ...string) gin.HandlerFunc {
	need := strings.Join(roles, " or ")
	return func(c *gin.Context) {
		if _, ok := serviceOf(c); ok { // its scope was checked by serviceAuth
			c.Next()
			return
		}
		a, err := s.svc.Account(c.Request.Context(), CallerOf(c).AccountID)
		if err != nil {
			WriteError(c, err)
			return
		}
		for _, r := range roles {
			if a.HasRole(r) {
				c.Next()
				return
			}
		}
		WriteError(c, Public(ErrForbidden, "This needs role "+need+".", nil))
	}
}

// requireCapability refuses a session caller that does not hold need (a service token
// passes: serviceAuth checked its scope). authenticate checks the capability of most routes
// itself; team routes check domain.CapTeam after the role.
func (s *Core) requireCapability(need domain.Capability) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := serviceOf(c); !ok {
			if err := CallerOf(c).Allows(need); err != nil {
				WriteError(c, err)
				return
			}
		}
		c.Next()
	}
}

// requireStepUp refuses (403 reauthentication_required) a caller whose last authentication
// is older than the step-up window: every change by an administrator or the security team
// is a sensitive one.
func (s *Core) requireStepUp(c *gin.Context) {
	if _, ok := serviceOf(c); ok { // a machine: its scope was checked by serviceAuth
		c.Next()
		return
	}
	if err := s.svc.RequireRecentAuth(CallerOf(c), 0); err != nil {
		WriteError(c, err)
		return
	}
	c.Next()
}

// setCaller stores the authenticated caller, the memo of its session's state (CallerMemo)
// and the service that found it (CallerError asks it whether the session still exists) in
// the request's state; outside the middleware (no state), the caller and the service under
// KeyCaller and keySessions.
func setCaller(c *gin.Context, use command.SessionUse, sessions sessionChecker) {
	if r := requestOf(c); r != nil {
		r.caller, r.hasCaller, r.sessions, r.memo = use.Session, true, sessions, use.Memo()
		return
	}
	c.Set(KeyCaller, use.Session)
	c.Set(keySessions, sessions)
}

// callerOf returns the session authenticate stored (the zero Session on public routes), or
// one stored under KeyCaller (the portal's pages).
func CallerOf(c *gin.Context) domain.Session {
	if r := requestOf(c); r != nil && r.hasCaller {
		return r.caller
	}
	if v, ok := c.Get(KeyCaller); ok {
		if sess, ok := v.(domain.Session); ok {
			return sess
		}
	}
	return domain.Session{}
}

// CallerMemo returns the memo of the caller's session state that authenticate found, or
// the zero SessionMemo (which keeps nothing) on other routes.
func CallerMemo(c *gin.Context) command.SessionMemo {
	if r := requestOf(c); r != nil {
		return r.memo
	}
	return command.SessionMemo{}
}

// sessionChecker finds a session by id (*command.Service satisfies it): writeError asks it
// whether the caller's own session still exists.
type sessionChecker interface {
	SessionByID(sessionID string) (domain.Session, error)
}

// keySessions is the gin context key of the sessionChecker authenticate stored with the
// caller.
const keySessions = "vigil.sessions"

// callerError says what the domain's errors mean for a signed-in caller: a wrong password or
// code is 403 where it is 401 at sign-in (API.md), and a "session not found"
// about the caller's own session (it ended while the request ran) is 401 unauthenticated,
// not 404. Errors of anonymous requests pass as they are.
func CallerError(c *gin.Context, err error) error {
	sess := CallerOf(c)
	if sess.ID == "" {
		return err
	}
	if errors.Is(err, domain.ErrSessionNotFound) {
		var sessions sessionChecker
		if r := requestOf(c); r != nil && r.hasCaller {
			sessions = r.sessions
		} else if v, ok := c.Get(keySessions); ok {
			sessions, _ = v.(sessionChecker)
		}
		if sessions != nil {
			if _, e := sessions.SessionByID(sess.ID); e != nil {
				err = Public(ErrUnauthenticated, "The session ended; sign in again.", err)
			}
		}
	}
	if errors.Is(err, domain.ErrInvalidCredentials) {
		return Public(ErrInvalidCredentialsSignedIn, "", err)
	}
	return err
}

// meta is the request's metadata for commands: client IP (ClientIP), user agent (bounded),
// correlation id (the request id) and the client from the X-Vigil-Client header, which must
// name a registered client (else command.ErrUnknownClient).
func (s *Core) Meta(c *gin.Context) (command.RequestMeta, error) {
	rm := RequestMeta(c)
	if id := c.GetHeader(ClientHeader); id != "" {
		if _, err := s.svc.Client(c.Request.Context(), id); err != nil {
			return rm, err
		}
		rm.ClientID = id
	}
	return rm, nil
}

// requestMeta is what every command records about the request: the client IP (through the
// trusted proxies), the user agent (bounded) and the request id as correlation id. It names
// no client: sign-in commands check theirs (signInClient), the others take meta's.
func RequestMeta(c *gin.Context) command.RequestMeta {
	return command.RequestMeta{
		IP:            ClientIP(c),
		UserAgent:     TruncateUTF8(c.GetHeader("User-Agent"), maxUserAgent),
		CorrelationID: RequestID(c),
	}
}

// signInClient is the client a sign-in names: its client_id field, else the X-Vigil-Client
// header ("" for none). The sign-in command refuses an unknown one.
func SignInClient(c *gin.Context, field string) string {
	if field != "" {
		return field
	}
	return c.GetHeader(ClientHeader)
}

// truncateUTF8 cuts s to at most n bytes of valid UTF-8.
func TruncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// setPosition sets the Vigil-Position header of a state change. A command that wrote
// nothing (an unchanged profile, a second factor still to come) answers the log's head, a
// position that includes everything the command saw.
func (s *Core) SetPosition(c *gin.Context, pos uint64) {
	if pos == 0 {
		h, err := s.Store.Head(c.Request.Context())
		if err != nil {
			LoggerFrom(c).WarnContext(c.Request.Context(), "reading the log head for Vigil-Position failed",
				"route", RouteLabel(c), "request_id", RequestID(c), "error", err.Error())
			return
		}
		pos = h
	}
	c.Header(PositionHeader, strconv.FormatUint(pos, 10))
}

// waitMinPosition is the middleware of reads: with ?min_position=P it waits (at most
// minWait) until the read models include P, then serves the read whether or not they do. A
// value that is not a non-negative integer is 400 invalid_request.
func (s *Core) waitMinPosition(c *gin.Context) {
	if c.Request.URL.RawQuery == "" {
		c.Next()
		return
	}
	raw, ok := c.GetQuery(MinPositionParam)
	if !ok {
		c.Next()
		return
	}
	p, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		WriteError(c, Public(ErrInvalidRequest, "min_position must be a non-negative integer (a Vigil-Position value).", err))
		return
	}
	if p > 0 && s.Positions != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.MinWait)
		_ = s.Positions.WaitFor(ctx, p) // after the bound the read is answered anyway
		cancel()
	}
	c.Next()
}

// setSessionCookie sets the session cookie of a new session, living until its absolute
// expiry.
func (s *Core) SetSessionCookie(c *gin.Context, token string, expiresAt time.Time) {
	maxAge := int(math.Ceil(expiresAt.Sub(s.Now()).Seconds()))
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !s.InsecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// clearSessionCookie tells the browser to drop the session cookie.
func (s *Core) ClearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !s.InsecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// noStore keeps API answers (tokens, secrets, personal data) out of caches.
func NoStore(c *gin.Context) {
	c.Writer.Header()["Cache-Control"] = noStore
	c.Next()
}

// noStore is the Cache-Control value of API answers, shared and never mutated (an append
// makes a new slice: its capacity is its length), so setting it allocates nothing.
var noStore = []string{"no-store"}

// adminMeta is the request metadata of an administrative command: the admin acted.
func (s *Core) AdminMeta(c *gin.Context) (command.RequestMeta, error) {
	rm, err := s.Meta(c)
	if err != nil {
		return rm, err
	}
	rm.Actor = &domain.Actor{Type: domain.ActorAdmin, ID: CallerOf(c).AccountID}
	return rm, nil
}
