package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Problem codes: the stable machine-readable `code` of every problem document (API.md). They
// never change once published; clients switch on them, not on titles.
const (
	CodeInvalidRequest           = "invalid_request"
	CodeInvalidCredentials       = "invalid_credentials"
	CodeTooManyAttempts          = "too_many_attempts"
	CodeReauthenticationRequired = "reauthentication_required"
	CodeSecondFactorRequired     = "second_factor_required"
	CodeEnrollmentRequired       = "enrollment_required"
	CodeNotFound                 = "not_found"
	CodeForbidden                = "forbidden"
	CodeConflict                 = "conflict"
	CodeUnauthenticated          = "unauthenticated"
	CodeCSRFFailed               = "csrf_failed"
	// CodeMethodNotAllowed answers a known path asked with a method it does not serve (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeNotReady is /readyz's 503: the store is unreachable or a projection is stuck or
	// lagging.
	CodeNotReady = "not_ready"
	// CodeInternal is every unexpected failure (500); its details stay in the server log.
	CodeInternal = "internal"
)

// problemContentType is the media type of RFC 9457 problem documents.
const problemContentType = "application/problem+json"

// problemTypePrefix prefixes the code to make the problem's `type` URI. It is a name, not a
// link: nothing is served there.
const problemTypePrefix = "urn:vigil:problem:"

// Problem is an RFC 9457 problem document with Vigil's `code` extension member. Extensions
// holds further members (for instance `projections` on /readyz); they are merged into the
// top-level object and cannot override the standard members.
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Code       string         `json:"code"`
	Detail     string         `json:"detail,omitempty"`
	Instance   string         `json:"instance,omitempty"`
	Extensions map[string]any `json:"-"`
}

// MarshalJSON writes the standard members and the extensions in one object.
func (p Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Extensions)+6)
	for k, v := range p.Extensions {
		m[k] = v
	}
	m["type"] = p.Type
	m["title"] = p.Title
	m["status"] = p.Status
	m["code"] = p.Code
	if p.Detail != "" {
		m["detail"] = p.Detail
	} else {
		delete(m, "detail")
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	} else {
		delete(m, "instance")
	}
	return json.Marshal(m)
}

// newProblem returns the problem for status and code with title and detail.
func newProblem(status int, code, title, detail string) Problem {
	return Problem{Type: problemTypePrefix + code, Title: title, Status: status, Code: code, Detail: detail}
}

// Sentinel errors for the problems of API.md. Handlers return them (wrapped with
// fmt.Errorf("...: %w", ...) or with Public for a client-safe detail) and writeError turns
// them into problem documents; compare with errors.Is. Their messages are never shown: the
// client sees the problem's title and, for Public errors, their detail.
var (
	ErrInvalidRequest             = errors.New("invalid request")
	ErrInvalidCredentials         = errors.New("invalid credentials")
	ErrInvalidCredentialsSignedIn = errors.New("invalid credentials (signed in)")
	ErrTooManyAttempts            = errors.New("too many attempts")
	ErrReauthenticationRequired   = errors.New("reauthentication required")
	ErrSecondFactorRequired       = errors.New("second factor required")
	ErrEnrollmentRequired         = errors.New("enrollment required")
	ErrNotFound                   = errors.New("not found")
	ErrMethodNotAllowed           = errors.New("method not allowed")
	ErrForbidden                  = errors.New("forbidden")
	ErrConflict                   = errors.New("conflict")
	ErrUnauthenticated            = errors.New("unauthenticated")
	ErrCSRFFailed                 = errors.New("csrf token missing or wrong")
	ErrNotReady                   = errors.New("not ready")
)

// problemKind maps one sentinel to its HTTP answer.
type problemKind struct {
	err    error
	status int
	code   string
	title  string
}

// problemKinds is the one table from errors to HTTP. The first entry the error matches (with
// errors.Is) wins, so more specific sentinels come first. Errors of other packages (domain,
// projections) are added here, next to the sentinels they map to.
var problemKinds = []problemKind{
	{ErrInvalidRequest, http.StatusBadRequest, CodeInvalidRequest, "Invalid request"},
	{ErrInvalidCredentialsSignedIn, http.StatusForbidden, CodeInvalidCredentials, "Invalid credentials"},
	{ErrInvalidCredentials, http.StatusUnauthorized, CodeInvalidCredentials, "Invalid credentials"},
	{ErrTooManyAttempts, http.StatusTooManyRequests, CodeTooManyAttempts, "Too many attempts"},
	{ErrReauthenticationRequired, http.StatusForbidden, CodeReauthenticationRequired, "Reauthentication required"},
	{ErrSecondFactorRequired, http.StatusForbidden, CodeSecondFactorRequired, "Second factor required"},
	{ErrEnrollmentRequired, http.StatusForbidden, CodeEnrollmentRequired, "Enrollment of a second factor required"},
	{ErrUnauthenticated, http.StatusUnauthorized, CodeUnauthenticated, "Authentication required"},
	{ErrCSRFFailed, http.StatusForbidden, CodeCSRFFailed, "CSRF token missing or invalid"},
	{ErrForbidden, http.StatusForbidden, CodeForbidden, "Forbidden"},
	{ErrNotFound, http.StatusNotFound, CodeNotFound, "Not found"},
	{ErrMethodNotAllowed, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed"},
	{ErrConflict, http.StatusConflict, CodeConflict, "Conflict"},
	{ErrNotReady, http.StatusServiceUnavailable, CodeNotReady, "Not ready"},
}

// PublicError is an error whose Detail is written for the client: it becomes the problem's
// `detail`. Kind is one of the sentinels above and decides status and code; Err is the
// underlying cause, logged at most, never shown. errors.Is matches both Kind and Err.
type PublicError struct {
	Kind   error
	Detail string
	Err    error
}

// Public returns a PublicError of kind with the client-safe detail and the cause err (nil
// when there is none).
func Public(kind error, detail string, err error) error {
	return &PublicError{Kind: kind, Detail: detail, Err: err}
}

// Error describes the error for logs: kind, detail and cause.
func (e *PublicError) Error() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Kind and, when set, Err, for errors.Is and errors.As.
func (e *PublicError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// problemFor maps err to its problem document. An error that matches no kind is an internal
// error: the answer is a generic 500 and known is false (the caller logs err).
func problemFor(err error) (p Problem, known bool) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newProblem(http.StatusBadRequest, CodeInvalidRequest, "Invalid request", bodyTooLargeDetail), true
	}
	for _, k := range problemKinds {
		if errors.Is(err, k.err) {
			p := newProblem(k.status, k.code, k.title, "")
			var pe *PublicError
			if errors.As(err, &pe) && errors.Is(pe.Kind, k.err) {
				p.Detail = pe.Detail
			}
			return p, true
		}
	}
	return newProblem(http.StatusInternalServerError, CodeInternal, "Internal server error",
		"The server could not complete the request; it has been logged."), false
}

// writeError answers the request with the problem document for err and aborts the handler
// chain. This is the one place where errors become HTTP: known kinds get their status and
// code; anything else is logged with the request id and answered with a generic 500
// `internal` problem that reveals nothing of err.
func writeError(c *gin.Context, err error) {
	p, known := problemFor(err)
	if !known {
		loggerFrom(c).ErrorContext(c.Request.Context(), "request failed",
			"route", routeLabel(c), "request_id", RequestID(c), "error", err.Error())
	}
	writeProblem(c, p)
}

// writeProblem sends p as application/problem+json and aborts the handler chain. Nothing is
// written when the response has already started.
func writeProblem(c *gin.Context, p Problem) {
	c.Abort()
	if c.Writer.Written() {
		return
	}
	body, err := json.Marshal(p)
	if err != nil { // only extensions can fail; drop them
		p.Extensions = nil
		body, _ = json.Marshal(p)
	}
	c.Data(p.Status, problemContentType, body)
}
