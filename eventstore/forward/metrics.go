package forward

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the forwarders' Prometheus collector: counters updated as deliveries happen,
// and checkpoint, lag and parked gauges computed at scrape time.
type metrics struct {
	f               *Forwarders
	delivered       *prometheus.CounterVec
	failures        *prometheus.CounterVec
	attemptFailures *prometheus.CounterVec
	parked          *prometheus.CounterVec
	checkpoint      *prometheus.Desc
	lag             *prometheus.Desc
	parkedNow       *prometheus.Desc
}

func newMetrics(f *Forwarders) *metrics {
	label := []string{"forwarder"}
	return &metrics{
		f: f,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_delivered_total", Help: "Events delivered (acknowledged by the destination), replays included.",
		}, label),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_failures_total", Help: "Events that still failed after the router's retries (tried again from the checkpoint).",
		}, label),
		attemptFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_attempt_failures_total", Help: "Failed webhook delivery attempts (errors, timeouts, answers that are not 2xx).",
		}, label),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_parked_total", Help: "Webhook deliveries parked after their last attempt.",
		}, label),
		checkpoint: prometheus.NewDesc("vigil_forwarder_checkpoint", "Global position of the last event the forwarder delivered or parked.", label, nil),
		lag:        prometheus.NewDesc("vigil_forwarder_lag_positions", "Log head minus the forwarder's checkpoint.", label, nil),
		parkedNow:  prometheus.NewDesc("vigil_forwarder_parked", "Webhook deliveries parked now, waiting for a replay.", label, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.delivered.Describe(ch)
	m.failures.Describe(ch)
	m.attemptFailures.Describe(ch)
	m.parked.Describe(ch)
	ch <- m.checkpoint
	ch <- m.lag
	ch <- m.parkedNow
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.delivered.Collect(ch)
	m.failures.Collect(ch)
	m.attemptFailures.Collect(ch)
	m.parked.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	positions := m.f.Positions()
	if head, err := m.f.cfg.Log.Head(ctx); err == nil {
		for name, pos := range positions {
			ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(head-min(head, pos)), name)
		}
	}
	for name, pos := range positions {
		ch <- prometheus.MustNewConstMetric(m.checkpoint, prometheus.GaugeValue, float64(pos), name)
	}
	if counts, err := m.f.cfg.DB.parkedCounts(ctx); err == nil {
		m.f.mu.Lock()
		for id, e := range m.f.endpoints {
			ch <- prometheus.MustNewConstMetric(m.parkedNow, prometheus.GaugeValue, float64(counts[id]), e.fw.name)
		}
		m.f.mu.Unlock()
	}
}
