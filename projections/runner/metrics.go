package runner

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics times applies and commits (projections.Observer); the follower exports the other
// projection series (events, failures, checkpoint, lag, stuck).
type metrics struct {
	applySeconds *prometheus.HistogramVec
	batchSeconds *prometheus.HistogramVec
}

func newMetrics() *metrics {
	label := []string{"projection"}
	return &metrics{
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_projection_apply_seconds", Help: "Time to apply one event.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 4, 10),
		}, label),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_projection_commit_seconds", Help: "Time to commit one batch with its checkpoint.",
			Buckets: prometheus.ExponentialBuckets(5e-5, 4, 9),
		}, label),
	}
}

// Applied implements projections.Observer.
func (m *metrics) Applied(projection string, d time.Duration) {
	m.applySeconds.WithLabelValues(projection).Observe(d.Seconds())
}

// Committed implements projections.Observer.
func (m *metrics) Committed(projection string, d time.Duration) {
	m.batchSeconds.WithLabelValues(projection).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.applySeconds.Describe(ch)
	m.batchSeconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.applySeconds.Collect(ch)
	m.batchSeconds.Collect(ch)
}
