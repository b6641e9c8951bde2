package follow

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status describes one consumer.
type Status struct {
	Name       string
	Checkpoint uint64 // last position handled
	Head       uint64 // last position in the log
	// LagSeconds is how long ago the oldest event the consumer has not handled was recorded;
	// 0 when it is caught up.
	LagSeconds float64
	// Stuck is true while an event keeps failing after the retries; StuckPosition names it.
	Stuck         bool
	StuckPosition uint64
	LastError     string
	UpdatedAt     time.Time
	// Exclusive is set for a consumer that acts on one instance at a time (Consumer.Exclusive
	// with Config.Leases); Holder tells whether this instance holds its lease now. A
	// non-holder's Checkpoint is the shared progress it last read.
	Exclusive, Holder bool
}

// Status describes every consumer, in the order they were added. It reads the log, so it
// fails when the log is unreachable.
func (f *Follower) Status(ctx context.Context) ([]Status, error) {
	head, err := f.cfg.Log.Head(ctx)
	if err != nil {
		return nil, err
	}
	ws := f.list()
	out := make([]Status, 0, len(ws))
	for _, w := range ws {
		// The stuck state before the checkpoint: what was handled before the stuck event was
		// committed before it was marked, so the pair read this way is never older than it.
		w.stuckMu.Lock()
		stuck, stuckAt, lastErr := w.stuck, w.stuckAt, w.lastErr
		w.stuckMu.Unlock()
		cp := w.committed.Load()
		st := Status{Name: w.c.Name, Checkpoint: cp, Head: head, UpdatedAt: f.cfg.Now().UTC(), Exclusive: w.lease != nil,
			Stuck: stuck, StuckPosition: stuckAt, LastError: lastErr}
		if w.lease != nil {
			st.Holder = w.lease.Current() != nil
		}
		if cp < head {
			next, err := f.cfg.Log.ReadAll(ctx, cp, 1)
			if err != nil {
				return nil, err
			}
			if len(next) == 1 {
				st.LagSeconds = max(0, f.cfg.Now().Sub(next[0].RecordedAt).Seconds())
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Metric is the name and help text of one Prometheus series.
type Metric struct{ Name, Help string }

// Metrics names the Follower's series, each labelled Config.Kind with the consumer's name. A
// Metric without a Name is not exported.
type Metrics struct {
	Events       Metric // counter: events handled
	Failures     Metric // counter: events that still failed after the retries
	Checkpoint   Metric // gauge: last position handled
	LagPositions Metric // gauge: log head minus the checkpoint
	LagSeconds   Metric // gauge: age of the oldest event not handled (reads the log per consumer)
	Stuck        Metric // gauge: 1 while an event keeps failing
	// Holder, for the Exclusive consumers with Config.Leases: 1 while this instance holds
	// the consumer's lease (acts), 0 while another instance does.
	Holder Metric
}

// collector exports Metrics: counters updated as batches are handled, gauges computed at
// scrape time.
type collector struct {
	f                    *Follower
	events, failures     *prometheus.CounterVec
	checkpoint, lagPos   *prometheus.Desc
	lagSeconds, stuck    *prometheus.Desc
	holder               *prometheus.Desc
	counters             []*prometheus.CounterVec
	descs                []*prometheus.Desc
	needStatus, needHead bool
}

func newCollector(f *Follower) *collector {
	m, label := f.cfg.Metrics, []string{f.cfg.Kind}
	c := &collector{f: f}
	counter := func(mt Metric) *prometheus.CounterVec {
		if mt.Name == "" {
			return nil
		}
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: mt.Name, Help: mt.Help}, label)
		c.counters = append(c.counters, v)
		return v
	}
	desc := func(mt Metric) *prometheus.Desc {
		if mt.Name == "" {
			return nil
		}
		d := prometheus.NewDesc(mt.Name, mt.Help, label, nil)
		c.descs = append(c.descs, d)
		return d
	}
	c.events, c.failures = counter(m.Events), counter(m.Failures)
	c.checkpoint, c.lagPos, c.lagSeconds, c.stuck = desc(m.Checkpoint), desc(m.LagPositions), desc(m.LagSeconds), desc(m.Stuck)
	c.holder = desc(m.Holder)
	c.needStatus = c.lagSeconds != nil || c.stuck != nil
	c.needHead = c.lagPos != nil
	return c
}

func (c *collector) handled(name string, n int) {
	if c.events != nil {
		c.events.WithLabelValues(name).Add(float64(n))
	}
}

func (c *collector) failure(name string) {
	if c.failures != nil {
		c.failures.WithLabelValues(name).Inc()
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.counters {
		v.Describe(ch)
	}
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The gauges that need the log are absent while it
// is unreachable.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.counters {
		v.Collect(ch)
	}
	gauge := func(d *prometheus.Desc, v float64, name string) {
		if d != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
	}
	for name, held := range c.f.Leased() {
		v := 0.0
		if held {
			v = 1
		}
		gauge(c.holder, v, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c.needStatus {
		sts, err := c.f.Status(ctx)
		if err != nil {
			return
		}
		for _, st := range sts {
			stuck := 0.0
			if st.Stuck {
				stuck = 1
			}
			gauge(c.checkpoint, float64(st.Checkpoint), st.Name)
			gauge(c.lagPos, float64(st.Head-min(st.Head, st.Checkpoint)), st.Name)
			gauge(c.lagSeconds, st.LagSeconds, st.Name)
			gauge(c.stuck, stuck, st.Name)
		}
		return
	}
	positions := c.f.Positions()
	for name, pos := range positions {
		gauge(c.checkpoint, float64(pos), name)
	}
	if !c.needHead {
		return
	}
	if head, err := c.f.cfg.Log.Head(ctx); err == nil {
		for name, pos := range positions {
			gauge(c.lagPos, float64(head-min(head, pos)), name)
		}
	}
}
