package command_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
)

// BenchmarkPasswordLoginAlternating compares 16-client password sign-ins with the argon2id
// ceiling (the service's own hasher hashing from GOMAXPROCS goroutines and nothing else) in
// alternating rounds of the same size: ceiling, sign-ins, ceiling, sign-ins, ... On a shared
// machine whose load drifts within seconds, BenchmarkPasswordLogin's ceiling (measured once,
// before the sign-ins) and its sign-ins run under different load; here every round of each
// sits beside a round of the other, so drift hits both alike. b.N is the number of rounds;
// each round is roundSize hashes then roundSize sign-ins. It reports both rates, their ratio
// (%-of-ceiling), the median of the per-round ratios and the ratio of the process CPU time
// per hash and per sign-in, and counts errors.
func BenchmarkPasswordLoginAlternating(b *testing.B) {
	const (
		clients   = 16
		roundSize = 192 // 12 sign-ins per client: the tail of a round (fewer sign-ins left than cores) is about one hash in 190
	)
	prod := credential.Argon2Config{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}
	e := newBenchEnv(b, prod)
	emails := make([]string, clients)
	for i := range emails {
		emails[i] = fmt.Sprintf("alt%d@example.com", i)
		e.register(b, emails[i])
	}
	h := e.svc.Hasher()
	ctx := context.Background()
	var errs atomic.Int64
	signIns := func() time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= roundSize {
					res, err := e.svc.Login(ctx, emails[c], goodPassword, "", command.RequestMeta{IP: fmt.Sprintf("192.0.2.%d", c+1)})
					if err != nil || res.Authenticated == nil {
						errs.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(t0)
	}
	ceiling := func() time.Duration {
		rate, _ := hashAllCores(b, roundSize, func() {
			if _, err := h.Hash(goodPassword); err != nil {
				b.Error(err)
			}
		})
		return time.Duration(float64(roundSize) / rate * float64(time.Second))
	}
	var hashTime, loginTime, hashCPU, loginCPU time.Duration
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for range b.N {
		c0 := processCPU(b)
		ht := ceiling()
		c1 := processCPU(b)
		lt := signIns()
		c2 := processCPU(b)
		hashTime += ht
		loginTime += lt
		hashCPU += c1 - c0
		loginCPU += c2 - c1
		ratios = append(ratios, ht.Seconds()/lt.Seconds())
	}
	b.StopTimer()
	rounds := float64(len(ratios))
	b.ReportMetric(rounds*roundSize/hashTime.Seconds(), "hashes/s")
	b.ReportMetric(rounds*roundSize/loginTime.Seconds(), "logins/s")
	b.ReportMetric(100*hashTime.Seconds()/loginTime.Seconds(), "%-of-ceiling")
	slices.Sort(ratios)
	b.ReportMetric(100*ratios[len(ratios)/2], "%-of-ceiling-median-round")
	// The share of the ceiling the sign-ins would reach with the cores to themselves: the
	// CPU of a bare hash over the CPU of a sign-in (hashing included).
	b.ReportMetric(100*hashCPU.Seconds()/loginCPU.Seconds(), "%-of-ceiling-cpu")
	b.ReportMetric(float64(errs.Load()), "errors")
}
