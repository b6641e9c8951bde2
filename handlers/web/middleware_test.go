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

// TestMetricsCountEachSeries: requests of different routes and statuses, interleaved and
// from several goroutines, each count under their own series (the series answered last is
// reused only for the same method, route and status).
func TestMetricsCountEachSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, err := NewCore(CoreConfig{Logger: slog.New(slog.DiscardHandler), Registry: reg, PublicURL: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	g := gin.New()
	g.Use(core.Middleware()...)
	g.GET("/a", func(c *gin.Context) { c.Status(http.StatusOK) })
	g.GET("/b", func(c *gin.Context) { c.Status(http.StatusOK) })
	g.GET("/c", func(c *gin.Context) { c.Status(http.StatusTeapot) })
	paths := []string{"/a", "/a", "/b", "/a", "/c", "/c", "/b", "/nope"}
	const workers, rounds = 4, 50
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range rounds {
				for _, p := range paths {
					g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[route+" "+code] = m.GetCounter().GetValue()
		}
	}
	n := float64(workers * rounds)
	want := map[string]float64{"/a 200": 3 * n, "/b 200": 2 * n, "/c 418": 2 * n, "unmatched 404": n}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v requests counted, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
}
