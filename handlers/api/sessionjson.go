package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/handlers/web"
)

// whoami is the hot path of every relying application (it asks on each of its own requests),
// so its answer is appended by hand instead of through encoding/json's reflection: the same
// bytes (TestSessionJSONMatchesEncodingJSON), with a shared Content-Type value. The answer
// is kept with the session's state (command.SessionMemo) and written as kept
// until a session event replaces that state: a relying application asks many times a
// minute, the session changes far less often.

// jsonContentType is the Content-Type of JSON answers (gin's), shared and never mutated.
var jsonContentType = []string{"application/json; charset=utf-8"}

func (s *API) whoami(c *gin.Context) {
	memo := web.CallerMemo(c)
	b := memo.Encoding()
	if b == nil {
		b = sessionView(web.CallerOf(c)).appendJSON(make([]byte, 0, 320))
		memo.KeepEncoding(b)
	}
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(b)
}

// appendJSON appends v as encoding/json marshals it.
func (v sessionJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"account_id":`...)
	b = appendJSONString(b, v.AccountID)
	if v.ActorAccountID != "" {
		b = append(b, `,"actor_account_id":`...)
		b = appendJSONString(b, v.ActorAccountID)
	}
	b = append(b, `,"session_id":`...)
	b = appendJSONString(b, v.SessionID)
	b = append(b, `,"aal":`...)
	b = appendJSONString(b, v.AAL)
	b = append(b, `,"amr":`...)
	if v.AMR == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, m := range v.AMR {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m)
		}
		b = append(b, ']')
	}
	b = append(b, `,"authenticated_at":`...)
	b = v.AuthenticatedAt.appendJSON(b)
	b = append(b, `,"expires_at":`...)
	b = v.ExpiresAt.appendJSON(b)
	b = append(b, `,"restricted":`...)
	b = strconv.AppendBool(b, v.Restricted)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string as encoding/json writes it: printable ASCII
// other than the quote, the backslash and the HTML characters < > & (which encoding/json
// escapes) is copied; any other string is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSON appends t as MarshalJSON writes it.
func (t APITime) appendJSON(b []byte) []byte {
	tt := time.Time(t)
	if tt.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = tt.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
