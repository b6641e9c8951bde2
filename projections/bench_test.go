package projections_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/wmbridge"
	"github.com/vigil-auth/vigil/projections"
)

// lagProbe is a projection that records, for each event, when its handler saw it.
type lagProbe struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (p *lagProbe) Name() string     { return "lag_probe" }
func (p *lagProbe) Schema() []string { return nil }
func (p *lagProbe) Apply(_ context.Context, _ *sql.Tx, ev domain.Envelope) error {
	now := time.Now()
	p.mu.Lock()
	p.seen[ev.ID] = now
	p.mu.Unlock()
	return nil
}

// BenchmarkSubscriptionLag appends one event at a time at a steady rate (5,000 events/s, open
// loop: each append starts at its scheduled time whatever the latency) for two seconds per op and measures, per event, the time from calling Append to
// the projection handler running (through the store subscription, the Watermill bridge and
// router), and to the batch holding it being committed (visible to queries).
func BenchmarkSubscriptionLag(b *testing.B) {
	const rate, seconds = 5000, 2
	dir := b.TempDir()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	db, err := projections.Open(projections.Config{Path: filepath.Join(dir, "projections.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	probe := &lagProbe{seen: map[string]time.Time{}}
	sub, _ := wmbridge.NewSubscriber(store, wmbridge.SubscriberConfig{Checkpoints: db})
	r, err := projections.NewRunner(projections.RunnerConfig{DB: db, Subscriber: sub, Log: store, Projections: []projections.Projection{probe}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	<-r.Running()
	defer r.Close()

	var handlerLag, commitLag []time.Duration
	b.ResetTimer()
	for range b.N {
		total := rate * seconds
		sent := make([]time.Time, total)
		ids := make([]string, total)
		committed := make([]time.Duration, total)
		interval := time.Second / rate
		var wg, visible sync.WaitGroup
		start := time.Now()
		for i := range total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev, _ := domain.NewEventData("SessionAccessed", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
				ids[i] = ev.ID
				sent[i] = time.Now()
				res, err := store.Append(ctx, fmt.Sprintf("session-lag-%d", i%50), eventstore.Any, []domain.EventData{ev})
				if err != nil {
					b.Error(err)
					return
				}
				visible.Add(1)
				go func() {
					defer visible.Done()
					if err := r.WaitFor(ctx, res.LastPosition); err != nil {
						b.Error(err)
						return
					}
					committed[i] = time.Since(sent[i])
				}()
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "appended-events/s")
		visible.Wait()
		probe.mu.Lock()
		for i, id := range ids {
			seen, ok := probe.seen[id]
			if !ok {
				b.Fatalf("event %d never reached the handler", i)
			}
			handlerLag = append(handlerLag, seen.Sub(sent[i]))
		}
		probe.mu.Unlock()
		commitLag = append(commitLag, committed...)
	}
	b.StopTimer()
	slices.Sort(handlerLag)
	slices.Sort(commitLag)
	pct := func(d []time.Duration, p int) float64 { return float64(d[len(d)*p/100].Microseconds()) / 1000 }
	b.ReportMetric(pct(handlerLag, 50), "handler-p50-ms")
	b.ReportMetric(pct(handlerLag, 99), "handler-p99-ms")
	b.ReportMetric(pct(commitLag, 50), "visible-p50-ms")
	b.ReportMetric(pct(commitLag, 99), "visible-p99-ms")
}
