package web

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestStripedMetricsExposeWhatTheVectorsDid: the striped collector, fed the same requests
// from several goroutines (so from several stripes), exposes exactly the text a CounterVec
// and a HistogramVec of the same names, labels and buckets give for those requests: the
// counts, every cumulative bucket, the count and the sum of the durations (the sum to the
// rounding of the vector's float additions: the striped one adds nanoseconds).
func TestStripedMetricsExposeWhatTheVectorsDid(t *testing.T) {
	striped := prometheus.NewRegistry()
	m := newHTTPMetrics(striped)
	vectors := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_requests_total",
		Help: "HTTP requests answered, by method, route template and status code.",
	}, []string{"method", "route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_http_request_duration_seconds",
		Help:    "Time to answer HTTP requests in seconds, by method and route template.",
		Buckets: durationBuckets[:],
	}, []string{"method", "route"})
	vectors.MustRegister(requests, duration)

	type req struct {
		method, route string
		code          int
		d             time.Duration
	}
	// Durations on bucket bounds (a bound's bucket holds it), between them and above all.
	reqs := []req{
		{"GET", "/api/v1/whoami", 200, 500 * time.Microsecond},
		{"GET", "/api/v1/whoami", 200, 501 * time.Microsecond},
		{"GET", "/api/v1/whoami", 401, 2 * time.Millisecond},
		{"POST", "/api/v1/login", 200, 250 * time.Millisecond},
		{"POST", "/api/v1/login", 429, 11 * time.Second},
		{"GET", "unmatched", 404, 0},
	}
	const workers, rounds = 6, 200
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				r := reqs[(w+i)%len(reqs)]
				m.observe(r.method, r.route, r.code, r.d)
				mu.Lock()
				requests.WithLabelValues(r.method, r.route, strconv.Itoa(r.code)).Inc()
				duration.WithLabelValues(r.method, r.route).Observe(r.d.Seconds())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"vigil_http_requests_total", "vigil_http_request_duration_seconds"} {
		want, err := testutil.CollectAndFormat(vectors, expfmt.TypeTextPlain, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := testutil.CollectAndFormat(striped, expfmt.TypeTextPlain, name)
		if err != nil {
			t.Fatal(err)
		}
		if !sameExposition(string(got), string(want)) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		if !strings.Contains(string(want), `route="/api/v1/whoami"`) {
			t.Fatalf("%s: the reference lacks the whoami series: %s", name, want)
		}
	}
}

// sameExposition compares two text expositions line by line, the values of _sum lines to a
// relative 1e-9.
func sameExposition(got, want string) bool {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] == w[i] {
			continue
		}
		gk, gv, _ := strings.Cut(g[i], "} ")
		wk, wv, _ := strings.Cut(w[i], "} ")
		if gk != wk || !strings.Contains(gk, "_sum{") {
			return false
		}
		a, errA := strconv.ParseFloat(gv, 64)
		b, errB := strconv.ParseFloat(wv, 64)
		if errA != nil || errB != nil || math.Abs(a-b) > 1e-9*math.Abs(b) {
			return false
		}
	}
	return true
}
