package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRequestStateKeepsTheConnectionReachable: the request's state wraps the response
// writer, and http.ResponseController must still reach the connection through it (the body
// read deadline of limitBody and the event stream's write deadlines are set that way, their
// errors ignored where a writer cannot: a wrapper that hid the connection would silently
// drop them). The state is found on the writer, and a request id comes back.
func TestRequestStateKeepsTheConnectionReachable(t *testing.T) {
	core, err := NewCore(CoreConfig{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), PublicURL: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	g := gin.New()
	g.Use(core.Middleware()...)
	g.POST("/probe", func(c *gin.Context) {
		rc := http.NewResponseController(c.Writer)
		var problems []string
		if err := rc.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			problems = append(problems, "read deadline: "+err.Error())
		}
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			problems = append(problems, "write deadline: "+err.Error())
		}
		if r := requestOf(c); r == nil || r.id == "" || RequestID(c) != r.id {
			problems = append(problems, "no request state on the writer")
		}
		body, _ := io.ReadAll(c.Request.Body)
		c.String(http.StatusOK, "%s|%s", strings.Join(problems, "; "), body)
		if err := rc.Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
	})
	srv := httptest.NewServer(g)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/probe", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != "|hello" {
		t.Fatalf("status %d, body %q (problems before the bar)", resp.StatusCode, got)
	}
	if resp.Header.Get(RequestIDHeader) == "" {
		t.Fatal("no request id header")
	}
}
