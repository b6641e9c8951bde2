package web

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-auth/vigil/domain/stripe"
)

// httpMetrics are the server's Prometheus metrics: vigil_http_requests_total by method,
// route template and status, and vigil_http_request_duration_seconds by method and route
// template. They are a collector of their own rather than a CounterVec and a HistogramVec:
// every request updates them, and the client library's series keep one set of atomic
// counters that both CPUs of a busy server write, so that the cache lines holding them move
// between the cores on every request (measured: about 2 % of whoami's rate on two cores).
// Here each series is split into stripes, and a request updates the stripe of the processor
// it runs on (package stripe); /metrics sums them. The exposition is the one the vectors gave.
type httpMetrics struct {
	requestsDesc, durationDesc *prometheus.Desc
	stripes                    stripe.Picker

	// series caches the counter and histogram of each method, route and status seen
	// (seriesKey -> *series); the keys are bounded: standard methods, route templates,
	// statuses. histograms holds the histogram of each method and route (routeKey ->
	// *durationHistogram), shared by the series of its statuses.
	series     sync.Map
	histograms sync.Map
	// last is the series answered last: most requests are of the route and status the one
	// before was (a relying application's whoami), and comparing the key is cheaper than
	// hashing it for the map.
	last atomic.Pointer[series]
}

// seriesKey names the series of one method, route template and status.
type seriesKey struct {
	method, route string
	code          int
}

// routeKey names the duration histogram of one method and route template.
type routeKey struct{ method, route string }

// series are the metrics of one seriesKey.
type series struct {
	key      seriesKey
	code     string // key.code as the label's value
	requests stripedCounter
	duration *durationHistogram
}

// durationBuckets are the upper bounds of the duration histogram, in seconds.
var durationBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// durationBounds are durationBuckets as durations, compared with a request's duration
// without converting it to seconds.
var durationBounds = func() [len(durationBuckets)]time.Duration {
	var b [len(durationBuckets)]time.Duration
	for i, s := range durationBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requestsDesc: prometheus.NewDesc("vigil_http_requests_total",
			"HTTP requests answered, by method, route template and status code.",
			[]string{"method", "route", "code"}, nil),
		durationDesc: prometheus.NewDesc("vigil_http_request_duration_seconds",
			"Time to answer HTTP requests in seconds, by method and route template.",
			[]string{"method", "route"}, nil),
	}
	return RegisterCollector(reg, m)
}

// observe counts a request of method, route template and status code that took d.
func (m *httpMetrics) observe(method, route string, code int, d time.Duration) {
	s := m.seriesOf(method, route, code)
	i := m.stripes.Index()
	s.requests[i].n.Add(1)
	s.duration.observe(i, d)
}

// seriesOf returns the metrics of method, route and code.
func (m *httpMetrics) seriesOf(method, route string, code int) *series {
	k := seriesKey{method, route, code}
	if s := m.last.Load(); s != nil && s.key == k {
		return s
	}
	v, ok := m.series.Load(k)
	if !ok {
		h, _ := m.histograms.LoadOrStore(routeKey{method, route}, new(durationHistogram))
		v, _ = m.series.LoadOrStore(k, &series{key: k, code: strconv.Itoa(code), duration: h.(*durationHistogram)})
	}
	s := v.(*series)
	m.last.Store(s)
	return s
}

// Describe implements prometheus.Collector.
func (m *httpMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.requestsDesc
	ch <- m.durationDesc
}

// Collect implements prometheus.Collector: the sums of the stripes of every series.
func (m *httpMetrics) Collect(ch chan<- prometheus.Metric) {
	m.series.Range(func(_, v any) bool {
		s := v.(*series)
		ch <- prometheus.MustNewConstMetric(m.requestsDesc, prometheus.CounterValue,
			float64(s.requests.sum()), s.key.method, s.key.route, s.code)
		return true
	})
	m.histograms.Range(func(k, v any) bool {
		key := k.(routeKey)
		count, sum, buckets := v.(*durationHistogram).snapshot()
		ch <- prometheus.MustNewConstHistogram(m.durationDesc, count, sum, buckets, key.method, key.route)
		return true
	})
}

// stripedCounter is a counter split into stripes, each on cache lines of its own.
type stripedCounter [stripe.N]struct {
	n atomic.Uint64
	_ [64]byte // keeps the next stripe's counter off this one's cache line
}

func (c *stripedCounter) sum() uint64 {
	var n uint64
	for i := range c {
		n += c[i].n.Load()
	}
	return n
}

// durationHistogram is a histogram of request durations split into stripes.
type durationHistogram [stripe.N]struct {
	// buckets counts the observations of each bound's bucket (not cumulative); the last
	// one those above every bound.
	buckets [len(durationBuckets) + 1]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
	_       [64]byte
}

func (h *durationHistogram) observe(stripeIndex int, d time.Duration) {
	i := 0
	for i < len(durationBounds) && d > durationBounds[i] {
		i++
	}
	s := &h[stripeIndex]
	s.buckets[i].Add(1)
	s.sum.Add(int64(d))
}

// snapshot sums the stripes: the count, the sum in seconds and the cumulative count of
// each bound, as prometheus.NewConstHistogram takes them. The count is the sum of the
// buckets, so that the three agree however requests interleave with the reading.
func (h *durationHistogram) snapshot() (uint64, float64, map[float64]uint64) {
	var counts [len(durationBuckets) + 1]uint64
	var sum int64
	for s := range h {
		for i := range counts {
			counts[i] += h[s].buckets[i].Load()
		}
		sum += h[s].sum.Load()
	}
	cumulative := make(map[float64]uint64, len(durationBuckets))
	var n uint64
	for i, bound := range durationBuckets {
		n += counts[i]
		cumulative[bound] = n
	}
	n += counts[len(durationBuckets)]
	return n, time.Duration(sum).Seconds(), cumulative
}
