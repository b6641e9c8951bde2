package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the runner's Prometheus collector: counters and histograms it updates, plus
// checkpoint, lag and stuck gauges computed at scrape time from Status.
type metrics struct {
	r            *Runner
	events       *prometheus.CounterVec
	failures     *prometheus.CounterVec
	applySeconds *prometheus.HistogramVec
	batchSeconds *prometheus.HistogramVec
	checkpoint   *prometheus.Desc
	lagEvents    *prometheus.Desc
	lagSeconds   *prometheus.Desc
	stuck        *prometheus.Desc
}

func newMetrics(r *Runner) *metrics {
	label := []string{"projection"}
	return &metrics{
		r: r,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_projection_events_total", Help: "Events committed to each projection.",
		}, label),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_projection_failures_total", Help: "Events that still failed after the retries.",
		}, label),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_projection_apply_seconds", Help: "Time to apply one event.",
			Buckets: prometheus.ExponentialBuckets(5e-6, 4, 10),
		}, label),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_projection_commit_seconds", Help: "Time to commit one batch with its checkpoint.",
			Buckets: prometheus.ExponentialBuckets(5e-5, 4, 9),
		}, label),
		checkpoint: prometheus.NewDesc("vigil_projection_checkpoint", "Last committed global position.", label, nil),
		lagEvents:  prometheus.NewDesc("vigil_projection_lag_positions", "Log head minus the committed checkpoint.", label, nil),
		lagSeconds: prometheus.NewDesc("vigil_projection_lag_seconds", "Age of the oldest event not yet committed.", label, nil),
		stuck:      prometheus.NewDesc("vigil_projection_stuck", "1 while an event keeps failing.", label, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.events.Describe(ch)
	m.failures.Describe(ch)
	m.applySeconds.Describe(ch)
	m.batchSeconds.Describe(ch)
	ch <- m.checkpoint
	ch <- m.lagEvents
	ch <- m.lagSeconds
	ch <- m.stuck
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.events.Collect(ch)
	m.failures.Collect(ch)
	m.applySeconds.Collect(ch)
	m.batchSeconds.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sts, err := m.r.Status(ctx)
	if err != nil {
		return // the store is unreachable: /readyz says so; the gauges are simply absent
	}
	for _, st := range sts {
		stuck := 0.0
		if st.Stuck {
			stuck = 1
		}
		ch <- prometheus.MustNewConstMetric(m.checkpoint, prometheus.GaugeValue, float64(st.Checkpoint), st.Name)
		ch <- prometheus.MustNewConstMetric(m.lagEvents, prometheus.GaugeValue, float64(st.Head-min(st.Head, st.Checkpoint)), st.Name)
		ch <- prometheus.MustNewConstMetric(m.lagSeconds, prometheus.GaugeValue, st.LagSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(m.stuck, prometheus.GaugeValue, stuck, st.Name)
	}
}
