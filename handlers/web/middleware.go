package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxBodyBytes is the largest request body accepted (64 KiB). A larger one is answered 400
// invalid_request, as API.md requires (not 413).
const MaxBodyBytes = 64 << 10

// RequestIDHeader carries the request id: taken from the request when it is a sane token,
// generated otherwise, and always echoed on the response.
const RequestIDHeader = "X-Request-Id"

const bodyTooLargeDetail = "The request body exceeds 64 KiB."

// unmatchedRoute is the route label of requests that matched no route (404, 405): the raw
// path never becomes a label or a log field.
const unmatchedRoute = "unmatched"

// routeLabel is the route template of the request (e.g. /api/v1/me/sessions/:id).
func RouteLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return unmatchedRoute
}

// RequestID returns the id of the request being served (see RequestIDHeader), or "" outside
// the server's middleware.
func RequestID(c *gin.Context) string {
	if r := requestOf(c); r != nil {
		return r.id
	}
	return ""
}

// loggerFrom returns the server's logger for the request.
func LoggerFrom(c *gin.Context) *slog.Logger {
	if r := requestOf(c); r != nil && r.log != nil {
		return r.log
	}
	return slog.Default()
}

// validRequestID accepts ids of 1 to 128 characters from a conservative alphabet, so that a
// client cannot inject anything into logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("-_.:+/=", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// requestID starts the request's state (request): its id, the server's logger and its start
// time, and echoes the id.
func (s *Core) requestID(c *gin.Context) {
	r := &request{ResponseWriter: c.Writer, log: s.Log, start: time.Now(), trusted: s.trusted}
	id := headerValue(c.Request.Header, RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID(r.start)
	}
	r.id = id
	r.idHeader[0] = id
	// The header's value is the state's own one-element array: no allocation of its own, and
	// a handler appending to it gets a new slice (its capacity is its length).
	c.Writer.Header()[RequestIDHeader] = r.idHeader[:]
	c.Writer = r
	c.Next()
}

// headerValue is Header.Get for a key in canonical form, on the headers of a request
// net/http parsed (it canonicalises their keys): the map is read directly instead of the key
// being canonicalised again, on every request of the hot path.
func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// startOf is when the request started (requestID's time; now outside the middleware).
func startOf(c *gin.Context) time.Time {
	if r := requestOf(c); r != nil {
		return r.start
	}
	return time.Now()
}

// logRequests writes one line per request: method, route template, status, duration and
// request id. It never logs headers (Authorization, cookies), bodies, query strings or the raw
// path. Successful reads (GET and HEAD below 400) log at Debug: relying applications call
// whoami on every request of theirs, and what changes state is in the event log anyway;
// writes and client errors log at Info, server errors at Error.
func (s *Core) logRequests(c *gin.Context) {
	start := startOf(c)
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status < 400 && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead):
		level = slog.LevelDebug
	}
	if !s.Log.Enabled(c.Request.Context(), level) {
		return
	}
	s.Log.LogAttrs(c.Request.Context(), level, "http request",
		slog.String("method", c.Request.Method),
		slog.String("route", RouteLabel(c)),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", RequestID(c)),
	)
}

// registerCollector registers c on reg, or returns the collector of the same description
// already there (two servers on one registry, as in tests, share their series).
func RegisterCollector[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// measure counts the request and observes its duration under its route template.
func (s *Core) measure(c *gin.Context) {
	start := startOf(c)
	c.Next()
	s.metrics.observe(methodLabel(c.Request.Method), RouteLabel(c), c.Writer.Status(), time.Since(start))
}

// recoverPanics turns a panic in a handler into a 500 `internal` problem (when nothing has
// been written yet) and logs the panic with its stack. http.ErrAbortHandler is re-raised so
// that net/http aborts the response as intended.
func (s *Core) recoverPanics(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		s.Log.ErrorContext(c.Request.Context(), "panic while serving a request",
			"method", c.Request.Method, "route", RouteLabel(c), "request_id", RequestID(c),
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		p, _ := ProblemFor(errPanic)
		writeProblem(c, p)
	}()
	c.Next()
}

var errPanic = errors.New("handler panicked")

// bodyReadTimeout bounds the reading of a request that has a body (a slow client trickling
// its body). Requests without a body (GET, the event stream) get no read deadline: in net/http
// an expired read deadline cancels the request's context, which would end long responses.
const bodyReadTimeout = 30 * time.Second

// limitBody rejects a request whose declared body is over MaxBodyBytes at once and caps the
// reading of any other body, so that a handler reading past the limit gets an
// *http.MaxBytesError (writeError answers it 400 invalid_request).
func limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		WriteError(c, Public(ErrInvalidRequest, bodyTooLargeDetail, nil))
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		if c.Request.ContentLength != 0 {
			// Not every writer supports deadlines (tests' recorders); then there is none.
			_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

// resolveClientIP gives ClientIP the trusted proxies (requestID has already: an earlier
// ClientIP resolves the same way); ClientIP resolves the address on first use (whoami, the
// hot path, never needs it).
func (s *Core) resolveClientIP(c *gin.Context) {
	if r := requestOf(c); r != nil {
		r.trusted = s.trusted
	}
	c.Next()
}

// ClientIP returns the client's IP address (API.md): the TCP peer, or, when the peer is a
// trusted proxy, the X-Forwarded-For entry found by walking the list from the right and
// skipping trusted proxies (every X-Forwarded-For header counts, in order). When every entry
// is trusted the leftmost one is the client; an entry that is not an IP address stops the walk
// at the last address trusted so far. IPv4-mapped IPv6 addresses are given as IPv4. It returns
// "" when the peer address is unknown (not an IP connection).
func ClientIP(c *gin.Context) string {
	if r := requestOf(c); r != nil {
		r.ipOnce.Do(func() { r.clientIP = clientIP(c.Request, r.trusted) })
		return r.clientIP
	}
	return clientIP(c.Request, nil)
}

// clientIP implements ClientIP for a request and the trusted proxy ranges.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return ""
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var entries []string
	for _, h := range hops {
		entries = append(entries, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		e := strings.TrimSpace(entries[i])
		if e == "" {
			continue
		}
		addr, ok := parseHop(e)
		if !ok {
			break
		}
		client = addr
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return client.String()
}

// parseHop parses an address as found in RemoteAddr or X-Forwarded-For: an IP with or without
// a port ("1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80"), zone dropped, IPv4-mapped unmapped.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
