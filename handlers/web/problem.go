package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/projections"
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
	CodeMFARequired              = "mfa_required"
	CodeDelegateNotAllowed       = "delegate_not_allowed"
	CodeInvalidToken             = "invalid_token"
	// CodeMethodNotAllowed answers a known path asked with a method it does not serve (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeNotReady is /readyz's 503: the store is unreachable or a projection is stuck or
	// lagging.
	CodeNotReady = "not_ready"
	// CodeUnavailable is a 503 of sign-in steps while the state instances share (NATS, with
	// --nats-url) cannot be reached: they fail closed, with Retry-After.
	CodeUnavailable = "unavailable"
	// CodeInternal is every unexpected failure (500); its details stay in the server log.
	CodeInternal = "internal"
)

// unavailableRetryAfter is the Retry-After (seconds) of CodeUnavailable.
const unavailableRetryAfter = 5

// problemContentType is the media type of RFC 9457 problem documents.
const ProblemContentType = "application/problem+json"

// problemTypePrefix prefixes the code to make the problem's `type` URI. It is a name, not a
// link: nothing is served there.
const ProblemTypePrefix = "urn:vigil:problem:"

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
	return Problem{Type: ProblemTypePrefix + code, Title: title, Status: status, Code: code, Detail: detail}
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

// problemKind maps one sentinel (or one typed error) to its HTTP answer.
type problemKind struct {
	// err is matched with errors.Is; as, when set instead, with errors.As-style code.
	err    error
	as     func(error) bool
	Status int
	Code   string
	Title  string
	// detail, when set, gives the client-safe detail and extension members for a matching
	// error that carries no Public detail (validation reasons, the wait of a throttle).
	detail func(error) (string, map[string]any)
}

func (k problemKind) matches(err error) bool {
	if k.as != nil {
		return k.as(err)
	}
	return errors.Is(err, k.err)
}

// fixedDetail is a detail func that always answers d.
func fixedDetail(d string) func(error) (string, map[string]any) {
	return func(error) (string, map[string]any) { return d, nil }
}

// problemKinds is the one table from errors to HTTP. The first entry the error matches (with
// errors.Is, or errors.As for typed errors) wins, so more specific entries come first: the
// handlers' own sentinels (which wrap domain errors to say more, e.g. a wrong password of a
// signed-in caller) before the domain's.
var ProblemKinds = []problemKind{
	{err: ErrInvalidRequest, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request"},
	{err: ErrInvalidCredentialsSignedIn, Status: http.StatusForbidden, Code: CodeInvalidCredentials, Title: "Invalid credentials"},
	{err: ErrInvalidCredentials, Status: http.StatusUnauthorized, Code: CodeInvalidCredentials, Title: "Invalid credentials"},
	{err: ErrTooManyAttempts, Status: http.StatusTooManyRequests, Code: CodeTooManyAttempts, Title: "Too many attempts"},
	{err: ErrReauthenticationRequired, Status: http.StatusForbidden, Code: CodeReauthenticationRequired, Title: "Reauthentication required"},
	{err: ErrSecondFactorRequired, Status: http.StatusForbidden, Code: CodeSecondFactorRequired, Title: "Second factor required"},
	{err: ErrEnrollmentRequired, Status: http.StatusForbidden, Code: CodeEnrollmentRequired, Title: "Enrollment of a second factor required"},
	{err: ErrUnauthenticated, Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Title: "Authentication required"},
	{err: ErrCSRFFailed, Status: http.StatusForbidden, Code: CodeCSRFFailed, Title: "CSRF token missing or invalid"},
	{err: ErrForbidden, Status: http.StatusForbidden, Code: CodeForbidden, Title: "Forbidden"},
	{err: ErrNotFound, Status: http.StatusNotFound, Code: CodeNotFound, Title: "Not found"},
	{err: ErrMethodNotAllowed, Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Title: "Method not allowed"},
	{err: ErrConflict, Status: http.StatusConflict, Code: CodeConflict, Title: "Conflict"},
	{err: ErrNotReady, Status: http.StatusServiceUnavailable, Code: CodeNotReady, Title: "Not ready"},

	// The read models' (package projections): a cursor the list did not issue, a filter
	// value it cannot use. The handlers check filters first, with their own details.
	{err: projections.ErrBadCursor, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request",
		detail: fixedDetail("The cursor is not one this list issued (a next_cursor of the same list); start again without it.")},
	{err: projections.ErrBadFilter, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request",
		detail: fixedDetail("A filter value is invalid: outcome must be success or failure, and from must not be after to.")},

	// The domain's errors (package domain, errors.go).
	{err: domain.ErrInvalidInput, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request", detail: validationDetail},
	// A passkey ceremony id that is unknown, expired, used (every ceremony is single-use,
	// whatever its outcome) or was begun for something else or by another session.
	{err: command.ErrCeremonyInvalid, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request",
		detail: fixedDetail("The passkey ceremony is unknown, expired or already used; start the ceremony again (its options route).")},
	// No relying party is configured: the passkey routes do not exist here.
	{err: command.ErrPasskeysDisabled, Status: http.StatusNotFound, Code: CodeNotFound, Title: "Not found",
		detail: fixedDetail("Passkeys are not configured on this server.")},
	// A mailed link's token (verification, reset, "this wasn't me") that does not work
	// (command.ErrInvalidToken says when).
	{err: command.ErrInvalidToken, Status: http.StatusBadRequest, Code: CodeInvalidToken, Title: "Invalid token",
		detail: fixedDetail("The link is invalid, expired or already used; ask for a new one.")},
	{err: command.ErrUnknownClient, Status: http.StatusBadRequest, Code: CodeInvalidRequest, Title: "Invalid request",
		detail: fixedDetail("The client_id (field or X-Vigil-Client header) names no registered client application.")},
	// --nats-url's shared state (login tickets, passkey ceremonies, throttling counts) cannot
	// be reached: sign-ins, second factors and re-authentications are refused, never let
	// through unthrottled (sharedstate.ErrUnavailable is throttle.ErrUnavailable).
	{err: throttle.ErrUnavailable, Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Title: "Service unavailable",
		detail: fixedDetail("Signing in is unavailable for a moment: the state this service's instances share cannot be reached. Nothing was checked or changed; try again shortly.")},
	{as: isThrottled, Status: http.StatusTooManyRequests, Code: CodeTooManyAttempts, Title: "Too many attempts", detail: throttleDetail},
	// A wrong password or code at sign-in (and, with the same answer, an unknown email); the
	// handlers of signed-in callers wrap it in ErrInvalidCredentialsSignedIn (403). A refused
	// passkey assertion (domain.ErrPasskeyInvalid, also an unknown credential) and one whose
	// sign count did not increase (command.ErrPasskeyCloneSuspected) wrap it too.
	{err: domain.ErrInvalidCredentials, Status: http.StatusUnauthorized, Code: CodeInvalidCredentials, Title: "Invalid credentials"},
	{err: command.ErrTicketInvalid, Status: http.StatusUnauthorized, Code: CodeInvalidCredentials, Title: "Invalid credentials",
		detail: fixedDetail("The login ticket is unknown, expired, used or has had too many wrong codes; sign in with the password again.")},
	{err: command.ErrReauthenticationRequired, Status: http.StatusForbidden, Code: CodeReauthenticationRequired, Title: "Reauthentication required",
		detail: fixedDetail("This change needs a recent authentication: re-authenticate with POST /api/v1/reauth and try again.")},
	{err: domain.ErrEnrollmentRequired, Status: http.StatusForbidden, Code: CodeEnrollmentRequired, Title: "Enrollment of a second factor required",
		detail: fixedDetail(restrictedDetail)},
	// Also another account's session: a session's existence is not revealed.
	{err: domain.ErrSessionNotFound, Status: http.StatusNotFound, Code: CodeNotFound, Title: "Not found"},
	{err: domain.ErrNotFound, Status: http.StatusNotFound, Code: CodeNotFound, Title: "Not found"},
	// Before ErrForbidden, which both wrap: a delegate's acting session asking for what only
	// the account holder may do (domain.Session.Allows), and a session without a second
	// factor where one is needed.
	{err: domain.ErrDelegateNotAllowed, Status: http.StatusForbidden, Code: CodeDelegateNotAllowed, Title: "Not allowed for a delegate",
		detail: fixedDetail("A delegate's acting session may not do this: only the account holder may, in a session of their own.")},
	{err: domain.ErrMFARequired, Status: http.StatusForbidden, Code: CodeMFARequired, Title: "Second factor required",
		detail: fixedDetail("This needs a session that proved a second factor (aal2): set up an authenticator app or a passkey (confirming it upgrades this session), sign in again with one, or re-authenticate with a code.")},
	// Not an owner or admin of the organisation, or no 2FA where the command needs it.
	{err: domain.ErrForbidden, Status: http.StatusForbidden, Code: CodeForbidden, Title: "Forbidden"},
	{err: domain.ErrTwoFactorRequired, Status: http.StatusConflict, Code: CodeConflict, Title: "Conflict",
		detail: fixedDetail("An organisation requires two-factor authentication of this account.")},
	{err: domain.ErrConflict, Status: http.StatusConflict, Code: CodeConflict, Title: "Conflict"},
	// Service tokens (issue 6): an unknown, malformed or revoked token; a token without
	// the route's scope.
	{err: command.ErrServiceTokenInvalid, Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Title: "Authentication required",
		detail: fixedDetail("The service token is unknown or revoked.")},
	{err: command.ErrInsufficientScope, Status: http.StatusForbidden, Code: CodeForbidden, Title: "Forbidden",
		detail: fixedDetail("The service token lacks the scope this route needs.")},
	// The compliance stream stopped (the server is shutting down).
	{err: ErrStreamClosed, Status: http.StatusServiceUnavailable, Code: CodeNotReady, Title: "Not ready",
		detail: fixedDetail("The server is shutting down; reconnect with Last-Event-ID.")},
}

// restrictedDetail explains enrollment_required.
const restrictedDetail = "An organisation requires two-factor authentication: this session may only enroll a " +
	"second factor (TOTP or passkey), re-authenticate, read /api/v1/me/security, whoami and csrf, and sign out."

func isThrottled(err error) bool {
	var te *throttle.Error
	return errors.As(err, &te)
}

func throttleDetail(err error) (string, map[string]any) {
	var te *throttle.Error
	if !errors.As(err, &te) {
		return "", nil
	}
	n := te.RetryAfterSeconds()
	return fmt.Sprintf("Too many failed attempts; try again in %d seconds.", n), map[string]any{"retry_after": n}
}

// FieldError names a refused input field and the reasons (English sentences safe to show);
// problems of code invalid_request list them in their `errors` member.
type FieldError struct {
	Field   string   `json:"field"`
	Reasons []string `json:"reasons"`
}

// passwordField names the request field a *domain.PasswordPolicyError is about (the domain
// does not know the API's field names): "password" unless a handler says otherwise.
type passwordField struct {
	field string
	err   error
}

func (e *passwordField) Error() string { return e.err.Error() }
func (e *passwordField) Unwrap() error { return e.err }

// withPasswordField says which request field carries the new password that err (when it is
// a *domain.PasswordPolicyError) refused.
func WithPasswordField(field string, err error) error {
	if err == nil {
		return nil
	}
	return &passwordField{field: field, err: err}
}

// validationDetail turns the *domain.ValidationError and *domain.PasswordPolicyError values
// in err (several when joined with errors.Join) into the detail ("field: reasons; ...") and
// the `errors` member listing them.
func validationDetail(err error) (string, map[string]any) {
	var fields []FieldError
	var walk func(e error, pwField string)
	walk = func(e error, pwField string) {
		switch e := e.(type) {
		case nil:
			return
		case *domain.ValidationError:
			fields = append(fields, FieldError{Field: e.Field, Reasons: []string{e.Reason}})
			return
		case *domain.PasswordPolicyError:
			fe := FieldError{Field: pwField, Reasons: append([]string(nil), e.Reasons...)}
			if len(fe.Reasons) == 0 {
				fe.Reasons = []string{"The password is not acceptable."}
			}
			fields = append(fields, fe)
			return
		case *passwordField:
			walk(e.err, e.field)
			return
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x, pwField)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap(), pwField)
		}
	}
	walk(err, "password")
	if len(fields) == 0 {
		return "The request is not valid.", nil
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + strings.Join(f.Reasons, " ")
	}
	return strings.Join(parts, "; "), map[string]any{"errors": fields}
}

// PublicError is an error whose Detail is written for the client: it becomes the problem's
// `detail`. Kind is one of the sentinels above and decides status and code; Err is the
// underlying cause, logged at most, never shown. errors.Is matches both Kind and Err.
type PublicError struct {
	Kind   error
	Detail string
	Err    error
	// Extensions, when set, are the problem's extension members (e.g. the projections of a
	// 503 from /readyz).
	Extensions map[string]any
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
func ProblemFor(err error) (p Problem, known bool) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newProblem(http.StatusBadRequest, CodeInvalidRequest, "Invalid request", bodyTooLargeDetail), true
	}
	for _, k := range ProblemKinds {
		if k.matches(err) {
			p := newProblem(k.Status, k.Code, k.Title, "")
			var pe *PublicError
			if errors.As(err, &pe) && k.err != nil && errors.Is(pe.Kind, k.err) {
				p.Detail, p.Extensions = pe.Detail, pe.Extensions
			}
			if p.Detail == "" && k.detail != nil {
				p.Detail, p.Extensions = k.detail(err)
			}
			return p, true
		}
	}
	return newProblem(http.StatusInternalServerError, CodeInternal, "Internal server error",
		"The server could not complete the request; it has been logged."), false
}

// writeError answers the request with the problem document for err and aborts the handler
// chain. This is the one place where errors become HTTP, for every route and middleware:
// first callerError says what the domain's errors mean for a signed-in caller (its own
// session ending is 401, a wrong password or code is 403); then known kinds get their
// status and code; anything else is logged with the request id and answered with a generic
// 500 `internal` problem that reveals nothing of err.
func WriteError(c *gin.Context, err error) {
	err = CallerError(c, err)
	p, known := ProblemFor(err)
	if !known {
		LoggerFrom(c).ErrorContext(c.Request.Context(), "request failed",
			"route", RouteLabel(c), "request_id", RequestID(c), "error", err.Error())
	}
	var te *throttle.Error
	if errors.As(err, &te) && p.Status == http.StatusTooManyRequests {
		c.Header("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
	}
	if p.Code == CodeUnavailable {
		c.Header("Retry-After", strconv.Itoa(unavailableRetryAfter))
	}
	if p.Status == http.StatusUnauthorized {
		// RFC 9110: a 401 names the scheme that would work.
		c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
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
	c.Data(p.Status, ProblemContentType, body)
}

// errStreamClosed: the stream hub has stopped (shutdown).
var ErrStreamClosed = errors.New("event stream closed")
