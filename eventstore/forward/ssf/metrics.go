package ssf

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the transmitter's collector: counters updated as SETs are made and delivered,
// and per-stream gauges (status, SETs waiting, failing time) computed at scrape time. The
// follower exports each consumer's checkpoint, lag and failures.
type metrics struct {
	t            *Transmitter
	queued       *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	pushFailures *prometheus.CounterVec
	status       *prometheus.Desc
	pending      *prometheus.Desc
	failing      *prometheus.Desc
}

func newMetrics(t *Transmitter) *metrics {
	l := []string{"stream"}
	return &metrics{t: t,
		queued:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ssf_sets_made_total", Help: "SETs signed and queued for a stream."}, l),
		delivered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ssf_sets_acknowledged_total", Help: "SETs acknowledged by the receiver (a push answered 202, or a poll's ack)."}, l),
		pushFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ssf_push_failures_total", Help: "Failed push attempts (errors, timeouts, answers other than 202)."}, l),
		status:       prometheus.NewDesc("vigil_ssf_stream_status", "1 for the stream's current status (enabled, paused, disabled); reason is set when disabled.", []string{"stream", "status", "reason"}, nil),
		pending:      prometheus.NewDesc("vigil_ssf_sets_pending", "SETs made and not yet acknowledged.", l, nil),
		failing:      prometheus.NewDesc("vigil_ssf_push_failing_seconds", "How long the stream's pushes have been failing; 0 when they are not.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.queued.Describe(ch)
	m.delivered.Describe(ch)
	m.pushFailures.Describe(ch)
	ch <- m.status
	ch <- m.pending
	ch <- m.failing
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.queued.Collect(ch)
	m.delivered.Collect(ch)
	m.pushFailures.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := m.t.db.streams(ctx)
	if err != nil {
		return
	}
	n, _, err := m.t.db.counts(ctx)
	if err != nil {
		return
	}
	now := m.t.cfg.Now()
	for _, r := range rows {
		for _, st := range []string{StatusEnabled, StatusPaused, StatusDisabled} {
			v, reason := 0.0, ""
			if r.Config.Status == st {
				v, reason = 1, r.Config.Reason
			}
			ch <- prometheus.MustNewConstMetric(m.status, prometheus.GaugeValue, v, r.ID, st, reason)
		}
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(n[r.ID]), r.ID)
		f := 0.0
		if !r.FailingSince.IsZero() {
			f = now.Sub(r.FailingSince).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(m.failing, prometheus.GaugeValue, f, r.ID)
	}
}
