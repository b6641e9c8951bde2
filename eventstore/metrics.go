package eventstore

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
)

// Append results, the values of the result label of vigil_eventstore_appends_total.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultError    = "error"
)

// appendBuckets spans 100µs (an in-process group commit) to 1s (a slow fsync or a remote
// cluster under load), roughly ×2.5 per step.
var appendBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1,
}

type storeMetrics struct {
	appends  *prometheus.CounterVec
	events   prometheus.Counter
	duration prometheus.Histogram
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_eventstore_appends_total",
			Help: "Append calls to the event store by result: ok, conflict (wrong expected version) or error.",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_eventstore_appended_events_total",
			Help: "Events written to the event store by successful appends.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_eventstore_append_duration_seconds",
			Help:    "Duration of event store append calls in seconds, whatever their result.",
			Buckets: appendBuckets,
		}),
	}
	if reg != nil {
		m.appends = register(reg, m.appends)
		m.events = register(reg, m.events)
		m.duration = register(reg, m.duration)
	}
	// Export every result from the start, so that rate() sees the first conflict.
	for _, r := range []string{resultOK, resultConflict, resultError} {
		m.appends.WithLabelValues(r)
	}
	return m
}

// register registers c, or returns the equal collector already registered (a second store
// instrumented against the same registry, as tests do, shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clashing collector of another shape: keep counting, unexported. This is a
		// programming error that tests of the wiring catch; the store must still work.
	}
	return c
}

// instrumented is a Store that measures appends and passes everything else through.
type instrumented struct {
	Store
	m   *storeMetrics
	now func() time.Time
}

// Instrument returns s wrapped with Prometheus metrics registered on reg:
// vigil_eventstore_appends_total{result="ok|conflict|error"} (conflict is an error wrapping
// ErrWrongExpectedVersion), vigil_eventstore_appended_events_total (events written by
// successful appends) and vigil_eventstore_append_duration_seconds (a histogram of every
// Append call, buckets from 100µs to 1s). Every other method is passed through unchanged, and
// Append's results and errors are returned as they are.
//
// A nil reg measures without exporting. Instrumenting several stores against one registry
// shares the series instead of failing. The wrapper is safe for concurrent use when s is;
// Unwrap gives back s.
func Instrument(s Store, reg prometheus.Registerer) Store {
	return &instrumented{Store: s, m: newStoreMetrics(reg), now: time.Now}
}

// Append implements Store, measuring the call.
func (s *instrumented) Append(ctx context.Context, stream string, expected ExpectedVersion, events []domain.EventData) (AppendResult, error) {
	start := s.now()
	res, err := s.Store.Append(ctx, stream, expected, events)
	s.m.duration.Observe(s.now().Sub(start).Seconds())
	switch {
	case err == nil:
		s.m.appends.WithLabelValues(resultOK).Inc()
		s.m.events.Add(float64(len(events)))
	case errors.Is(err, ErrWrongExpectedVersion):
		s.m.appends.WithLabelValues(resultConflict).Inc()
	default:
		s.m.appends.WithLabelValues(resultError).Inc()
	}
	return res, err
}

// Unwrap returns the store that was instrumented.
func (s *instrumented) Unwrap() Store { return s.Store }

// Expect passes an announced append on to the instrumented store (domain.Expecter).
func (s *instrumented) Expect(at time.Time) *domain.Expectation {
	return domain.ExpectAppend(s.Store, at)
}

// Unwrap returns the backend under any Instrument wrappers of s, so that a caller can reach a
// backend's own extra methods (type-assert the result); a store that is not wrapped is
// returned as it is.
func Unwrap(s Store) Store {
	for {
		w, ok := s.(interface{ Unwrap() Store })
		if !ok {
			return s
		}
		s = w.Unwrap()
	}
}
