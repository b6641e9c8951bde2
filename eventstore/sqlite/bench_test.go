package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// benchEvent is a realistic small event: a sign-in with full metadata, about 300 bytes.
func benchEvent(b testing.TB, i int) domain.EventData {
	e, err := domain.NewEventData("LoginSucceeded", 1, map[string]any{
		"account_id": "0193f0a4-7c1e-7b2a-9a51-2f1c0d9e8a71", "amr": []string{"pwd", "otp"}, "aal": "aal2", "n": i,
	}, domain.Metadata{
		Actor:            domain.Actor{Type: domain.ActorAccount, ID: "0193f0a4-7c1e-7b2a-9a51-2f1c0d9e8a71"},
		SubjectAccountID: "0193f0a4-7c1e-7b2a-9a51-2f1c0d9e8a71",
		IP:               "203.0.113.54", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
		ClientID: "portal", CorrelationID: domain.NewID(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func openBench(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(b.TempDir(), "events.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppend measures one-event appends, each to its writer's own stream with the exact
// expected version (what a command does), from 1, 16 and 64 concurrent writers. It reports
// throughput and the latency percentiles of single appends.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			evs := make([]domain.EventData, b.N)
			for i := range evs {
				evs[i] = benchEvent(b, i)
			}
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stream := fmt.Sprintf("session-bench-%d", w)
					var version uint64
					for i := w; i < b.N; i += writers {
						t0 := time.Now()
						res, err := s.Append(ctx, stream, eventstore.Exact(version), evs[i:i+1])
						lat[i] = time.Since(t0)
						if err != nil {
							b.Error(err)
							return
						}
						version = res.NextVersion
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatency(b, lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// seed writes n events in batches of 1,000.
func seed(b *testing.B, s *sqlite.Store, n int) {
	ctx := context.Background()
	batch := make([]domain.EventData, 0, 1000)
	for i := range n {
		batch = append(batch, benchEvent(b, i))
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Append(ctx, fmt.Sprintf("session-seed-%d", i%97), eventstore.Any, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkReadAll measures paging through the whole log with ReadAll, in pages of 1,000 (a
// catching-up subscription) and of 16,384 (a rebuild's pages). One op reads 200,000 events.
func BenchmarkReadAll(b *testing.B) {
	const total = 200_000
	s := openBench(b)
	seed(b, s, total)
	ctx := context.Background()
	for _, page := range []int{1000, 16384} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for range b.N {
				var pos uint64
				n := 0
				for {
					evs, err := s.ReadAll(ctx, pos, page)
					if err != nil {
						b.Fatal(err)
					}
					if len(evs) == 0 {
						break
					}
					n += len(evs)
					pos = evs[len(evs)-1].Position
				}
				if n != total {
					b.Fatalf("read %d events, want %d", n, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
