package web

import (
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// request is what the middleware and authenticate learn about a request, kept in one
// allocation: the request id (and the X-Request-Id header value, sharing the allocation), the
// logger, when the request started (the log and the metrics time it from there), the client
// IP (resolved on first use: most requests never need it) and the authenticated caller or
// service token.
//
// It rides on the request's writer: requestID sets c.Writer to it (it wraps gin's writer and
// passes everything through), so that finding it is a type assertion. Under a gin key it cost
// the map gin allocates per request for its first key and a lock for every read, about 2 % of
// a whoami's CPU (issue 16's profile).
type request struct {
	gin.ResponseWriter

	id       string
	idHeader [1]string
	log      *slog.Logger
	start    time.Time

	trusted  []netip.Prefix
	ipOnce   sync.Once
	clientIP string

	caller    domain.Session
	hasCaller bool
	sessions  sessionChecker
	memo      command.SessionMemo // of the caller's session state (CallerMemo)

	// service is the service token serviceAuth accepted (nil: none). A pointer: few
	// requests carry one, and the state every request allocates stays in a smaller size class.
	service *command.ServiceToken
}

// Unwrap gives http.ResponseController the writer underneath (read and write deadlines).
func (r *request) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// requestOf returns the request's state (nil outside the server's middleware).
func requestOf(c *gin.Context) *request {
	r, _ := c.Writer.(*request)
	return r
}

// newRequestID returns a fresh request id: a UUIDv7 (48-bit Unix milliseconds, then random
// bits), like the log's ids. Request ids are correlation ids, not secrets (a client may choose
// its own), so the random bits come from math/rand/v2's per-thread generator instead of a
// crypto/rand read per request.
func newRequestID(now time.Time) string {
	var u [16]byte
	ms := uint64(now.UnixMilli())
	r1, r2 := rand.Uint64(), rand.Uint64()
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6], u[7] = 0x70|byte(r1>>8)&0x0f, byte(r1)
	u[8] = 0x80 | byte(r2>>56)&0x3f
	for i := 9; i < 16; i++ {
		u[i] = byte(r2 >> (8 * (15 - i)))
	}
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
