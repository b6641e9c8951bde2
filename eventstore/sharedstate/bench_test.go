package sharedstate_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/throttle"
)

// BenchmarkReserve: one throttling reservation (a sign-in's count taken before the check) in
// memory and in NATS (an in-process server: a read and a compare-and-set write, two round
// trips), on distinct keys from parallel callers.
func BenchmarkReserve(b *testing.B) {
	ns := startNATS(b, b.TempDir(), -1)
	rule := throttle.Rule{Free: 1 << 30, BaseDelay: time.Second, MaxDelay: time.Minute, ForgetAfter: time.Hour}
	for _, impl := range []struct {
		name  string
		store throttle.Store
	}{{"memory", throttle.NewMemoryStore()}, {"nats", open(b, ns.ClientURL(), "bench").Throttle}} {
		b.Run(impl.name, func(b *testing.B) {
			var n atomic.Int64
			now := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("email:%d@example.com", n.Add(1)%1000)
					if _, err := impl.store.Reserve(b.Context(), key, rule, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkLeases: what a lease costs on NATS (in-process server): the holder's renewal (a
// read and a compare-and-set), and the shared progress a follower saves after each mail,
// event or pushed SET (a read and a compare-and-set).
func BenchmarkLeases(b *testing.B) {
	ns := startNATS(b, b.TempDir(), -1)
	l := open(b, ns.ClientURL(), "benchleases").Leases
	b.Run("renew", func(b *testing.B) {
		for b.Loop() {
			if held, err := l.Acquire(b.Context(), "mail", "me"); err != nil || !held {
				b.Fatal(held, err)
			}
		}
	})
	b.Run("save-progress", func(b *testing.B) {
		var pos uint64
		for b.Loop() {
			pos++
			if err := l.SaveProgress(b.Context(), "mail", pos); err != nil {
				b.Fatal(err)
			}
		}
	})
}
