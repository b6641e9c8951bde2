package sealed_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// BenchmarkAppend64 compares 64 concurrent writers appending one-event commands (each to its
// own stream and account, a sign-in failure with a typed email, IP and user agent) to the
// bare SQLite store and through the sealing store. Run with -count N: the two alternate, so
// compare the medians.
func BenchmarkAppend64(b *testing.B) {
	for _, mode := range []string{"bare", "sealed"} {
		b.Run(mode, func(b *testing.B) {
			var s eventstore.Store
			if mode == "bare" {
				inner, err := sqlite.Open(sqlite.Config{Path: filepath.Join(b.TempDir(), "events.db")})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { inner.Close() })
				s = inner
			} else {
				s = open(b, b.TempDir()).store
			}
			const writers = 64
			evs := make([]domain.EventData, b.N)
			for i := range evs {
				account := fmt.Sprintf("0193f0a4-7c1e-7b2a-9a51-%012d", i%writers)
				e, err := domain.NewEventData("LoginFailed", 1, map[string]any{
					"reason": "bad_password", "stage": "password", "method": "password", "attempted_email": fmt.Sprintf("user%d@example.com", i%writers),
				}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, SubjectAccountID: account,
					IP: "203.0.113.54", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0", CorrelationID: domain.NewID()})
				if err != nil {
					b.Fatal(err)
				}
				evs[i] = e
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stream := fmt.Sprintf("account-0193f0a4-7c1e-7b2a-9a51-%012d", w)
					var version uint64
					for i := w; i < b.N; i += writers {
						res, err := s.Append(ctx, stream, eventstore.Exact(version), evs[i:i+1])
						if err != nil {
							b.Error(err)
							return
						}
						version = res.NextVersion
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
