package forward

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the forwarders' own Prometheus collector: delivery counters updated as
// deliveries happen, and the parked gauge computed at scrape time. The follower exports the
// failures, checkpoint and lag series (forward.go).
type metrics struct {
	f               *Forwarders
	delivered       *prometheus.CounterVec
	attemptFailures *prometheus.CounterVec
	parked          *prometheus.CounterVec
	parkedNow       *prometheus.Desc
}

func newMetrics(f *Forwarders) *metrics {
	label := []string{"forwarder"}
	return &metrics{
		f: f,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_delivered_total", Help: "Events delivered (acknowledged by the destination), replays included.",
		}, label),
		attemptFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_attempt_failures_total", Help: "Failed webhook delivery attempts (errors, timeouts, answers that are not 2xx).",
		}, label),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forwarder_parked_total", Help: "Webhook deliveries parked after their last attempt.",
		}, label),
		parkedNow: prometheus.NewDesc("vigil_forwarder_parked", "Webhook deliveries parked now, waiting for a replay.", label, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.delivered.Describe(ch)
	m.attemptFailures.Describe(ch)
	m.parked.Describe(ch)
	ch <- m.parkedNow
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.delivered.Collect(ch)
	m.attemptFailures.Collect(ch)
	m.parked.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if counts, err := m.f.cfg.DB.parkedCounts(ctx); err == nil {
		m.f.mu.Lock()
		for id, e := range m.f.endpoints {
			ch <- prometheus.MustNewConstMetric(m.parkedNow, prometheus.GaugeValue, float64(counts[id]), e.name)
		}
		m.f.mu.Unlock()
	}
}
