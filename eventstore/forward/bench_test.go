package forward_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/forward"
)

// BenchmarkCatchUp measures how fast a fresh forwarder delivers a backlog of 5,000 events
// (from a real SQLite log, through the Watermill bridge and router, one event at a time,
// checkpoint saved after each): to an in-process JetStream server, and to a local webhook
// receiver that verifies nothing (the signing is done, the HTTP round trip is real).
func BenchmarkCatchUp(b *testing.B) {
	const backlog = 5000
	for _, dest := range []string{"nats", "webhook"} {
		b.Run(dest, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				log := openLog(b, dir)
				appendN(b, log, 0, backlog)
				db, err := forward.OpenDB(filepath.Join(dir, "forward.db"))
				if err != nil {
					b.Fatal(err)
				}
				cfg := forward.Config{Log: log, DB: db, Encode: testEncode, Logger: quietLogger(),
					Webhooks: forward.WebhookConfig{Secret: mustKey(b)}}
				if dest == "nats" {
					cfg.NATS = &forward.NATSConfig{URL: startNATS(b).ClientURL()}
				} else {
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
					defer srv.Close()
					cfg.Webhooks.URL = srv.URL
				}
				f, err := forward.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				name := forward.NATSName
				if dest == "webhook" {
					name = "webhook-" + forward.ConfiguredEndpointID
				}
				ctx, cancel := context.WithCancel(context.Background())
				b.StartTimer()
				start := time.Now()
				go f.Run(ctx)
				for f.Positions()[name] < backlog {
					time.Sleep(time.Millisecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(backlog)/elapsed.Seconds(), "events/s")
				cancel()
				f.Close()
				db.Close()
				log.Close()
			}
		})
	}
}

// BenchmarkLiveLag measures append → acknowledged-by-destination latency while 500
// events/s are appended for 2 s (open loop), for the NATS forwarder and a webhook endpoint.
func BenchmarkLiveLag(b *testing.B) {
	for _, dest := range []string{"nats", "webhook"} {
		b.Run(dest, func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				log := openLog(b, dir)
				db, err := forward.OpenDB(filepath.Join(dir, "forward.db"))
				if err != nil {
					b.Fatal(err)
				}
				var mu sync.Mutex
				appended := map[uint64]time.Time{}
				var lags []time.Duration
				record := func(pos uint64) {
					mu.Lock()
					if at, ok := appended[pos]; ok {
						lags = append(lags, time.Since(at))
					}
					mu.Unlock()
				}
				cfg := forward.Config{Log: log, DB: db, Logger: quietLogger(), Webhooks: forward.WebhookConfig{Secret: mustKey(b)}}
				name := forward.NATSName
				if dest == "nats" {
					cfg.NATS = &forward.NATSConfig{URL: startNATS(b).ClientURL()}
					cfg.Encode = func(ev domain.Envelope) ([]byte, error) { return testEncode(ev) }
				} else {
					name = "webhook-" + forward.ConfiguredEndpointID
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
					defer srv.Close()
					cfg.Webhooks.URL = srv.URL
					cfg.Encode = testEncode
				}
				f, err := forward.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				go f.Run(ctx)
				<-f.Running()
				// The forwarder's checkpoint moves right after the destination's ack:
				// poll it every 200µs and stamp each newly covered position.
				done := make(chan struct{})
				go func() {
					var last uint64
					for {
						select {
						case <-done:
							return
						default:
						}
						p := f.Positions()[name]
						for q := last + 1; q <= p; q++ {
							record(q)
						}
						last = p
						time.Sleep(200 * time.Microsecond)
					}
				}()
				tick := time.NewTicker(2 * time.Millisecond)
				for i := range 1000 {
					<-tick.C
					ed, _ := domain.NewEventData("TestHappened", 1, map[string]int{"n": i}, domain.Metadata{})
					at := time.Now()
					res, err := log.Append(context.Background(), "system-bench", expect.Any, []domain.EventData{ed})
					if err != nil {
						b.Fatal(err)
					}
					mu.Lock()
					appended[res.LastPosition] = at
					mu.Unlock()
				}
				tick.Stop()
				for f.Positions()[name] < 1000 {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond)
				close(done)
				mu.Lock()
				sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
				if len(lags) > 0 {
					b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
				}
				mu.Unlock()
				cancel()
				f.Close()
				db.Close()
				log.Close()
			}
		})
	}
}
