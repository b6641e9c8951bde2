package throttle

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func defaultRules(t testing.TB) (account, ip Rule) {
	t.Helper()
	cfg := Config{}
	if err := cfg.Fill(); err != nil {
		t.Fatal(err)
	}
	return cfg.AccountRule(), cfg.IPRule()
}

func TestMemoryThrottleStore(t *testing.T) {
	ctx := t.Context()
	rule, _ := defaultRules(t)
	m := newMemoryStore(shardCount)
	now := t0
	k := AccountKey("ann@example.com")
	reserve := func() Decision {
		t.Helper()
		d, err := m.Reserve(ctx, k, rule, now)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 5 {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("free attempt %d: %+v", i+1, d)
		}
	}
	// The sixth attempt goes ahead and starts the wait at once; the wait doubles.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.Equal(now.Add(want)) {
			t.Fatalf("attempt %d: %+v, want a %s wait started", 6+i, d, want)
		}
		if d := reserve(); d.Wait != want || !d.First {
			t.Fatalf("first refusal after attempt %d: %+v, want %s first", 6+i, d, want)
		}
		if d := reserve(); d.Wait != want || d.First {
			t.Fatalf("second refusal of a wait reported as first: %+v", d)
		}
		now = now.Add(want)
	}
	for range 30 {
		d := reserve()
		now = now.Add(d.Wait)
		if d.Wait == 0 {
			now = now.Add(reserve().Wait)
		}
	}
	if d := reserve(); d.Wait != 0 || d.Reservation.Started.Sub(now) != 15*time.Minute {
		t.Fatalf("cap: %+v", d)
	}
	if err := m.Reset(ctx, k); err != nil {
		t.Fatal(err)
	}
	if d := reserve(); d.Wait != 0 {
		t.Fatal("reset did not clear")
	}
	// Forgotten after ForgetAfter without an attempt.
	now = now.Add(rule.ForgetAfter + time.Second)
	for range 5 {
		if d := reserve(); d.Wait != 0 || !d.Reservation.Started.IsZero() {
			t.Fatalf("the count did not start again: %+v", d)
		}
	}
	// Prune keeps waiting keys and forgets stale ones.
	_, _ = m.Reserve(ctx, "ip:192.0.2.1", rule, now)
	for range 10 {
		_, _ = m.Reserve(ctx, "ip:192.0.2.2", Rule{Free: 0, BaseDelay: 2 * time.Hour, MaxDelay: 2 * time.Hour, ForgetAfter: time.Minute}, now)
	}
	_ = m.Prune(ctx, now.Add(rule.ForgetAfter+time.Second))
	if n := m.len(); n != 1 {
		t.Fatalf("prune kept %d keys, want the waiting one", n)
	}
}

func (m *memoryStore) len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += len(m.shards[i].entries)
		m.shards[i].mu.Unlock()
	}
	return n
}

func TestMemoryThrottleRefund(t *testing.T) {
	ctx := t.Context()
	rule, _ := defaultRules(t)
	m := newMemoryStore(shardCount)
	k, now := "email:ann@example.com", t0
	var last Decision
	for range 6 {
		last, _ = m.Reserve(ctx, k, rule, now)
	}
	// A refunded attempt that started the wait takes its wait back.
	if err := m.Refund(ctx, k, last.Reservation); err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Reserve(ctx, k, rule, now); d.Wait != 0 || !d.Reservation.Started.Equal(now.Add(time.Second)) {
		t.Fatalf("after the refund the sixth attempt again starts the first wait: %+v", d)
	}
	// A right password after a wait (the seventh attempt) leaves no new wait behind.
	now = now.Add(time.Second)
	d, _ := m.Reserve(ctx, k, rule, now)
	if d.Wait != 0 || !d.Reservation.Started.Equal(now.Add(2*time.Second)) {
		t.Fatalf("seventh attempt: %+v", d)
	}
	_ = m.Refund(ctx, k, d.Reservation)
	if d, _ := m.Reserve(ctx, k, rule, now); d.Wait != 0 || !d.Reservation.Started.Equal(now.Add(2*time.Second)) {
		t.Fatalf("after refunding the seventh: %+v", d)
	}
	// A refund after a reset gives nothing to the new count.
	_ = m.Reset(ctx, k)
	for range 6 {
		last, _ = m.Reserve(ctx, k, rule, now)
	}
	_ = m.Refund(ctx, k, d.Reservation)
	if d, _ := m.Reserve(ctx, k, rule, now); d.Wait != time.Second {
		t.Fatalf("a stale refund changed the new count: %+v", d)
	}
	_ = m.Refund(ctx, "email:nobody@example.com", last.Reservation) // unknown key: nothing
}

// TestMemoryThrottleReserveIsAtomic: of many parallel attempts on one key exactly the free
// ones and the one that starts the wait go ahead, as one after the other.
func TestMemoryThrottleReserveIsAtomic(t *testing.T) {
	ctx := t.Context()
	rule, _ := defaultRules(t)
	m := newMemoryStore(shardCount)
	var ahead atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if d, _ := m.Reserve(ctx, "email:ann@example.com", rule, t0); d.Wait == 0 {
				ahead.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := ahead.Load(); n != int64(rule.Free+1) {
		t.Fatalf("%d of 200 parallel attempts went ahead, want %d", n, rule.Free+1)
	}
}

func TestIPThrottleKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":               "ip:192.0.2.1",
		"::ffff:192.0.2.1":        "ip:192.0.2.1",
		"2001:db8::1":             "ip:2001:db8::/64",
		"2001:db8::ffff:1":        "ip:2001:db8::/64",
		"2001:DB8:0:0:1:2:3:4":    "ip:2001:db8::/64",
		"2001:db8:0:1::1":         "ip:2001:db8:0:1::/64",
		"fe80::1%eth0":            "ip:fe80::/64",
		"::1":                     "ip:::/64",
		"not an address":          "ip:not an address",
		"2001:db8:aaaa:bbbb:cc::": "ip:2001:db8:aaaa:bbbb::/64",
	} {
		if got := IPKey(in); got != want {
			t.Errorf("IPKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkThrottleReserve measures Reserve from parallel goroutines on distinct keys (the
// sign-ins of unrelated accounts), with one mutex for all keys and with the default
// shards, alone and while another goroutine prunes a store of 200 000 keys (which holds
// each shard's mutex while it walks that shard).
func BenchmarkThrottleReserve(b *testing.B) {
	rule := Rule{Free: 1 << 30, BaseDelay: time.Second, MaxDelay: time.Minute, ForgetAfter: time.Hour}
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = AccountKey(fmt.Sprintf("user%d@example.com", i))
	}
	for _, shards := range []int{1, shardCount} {
		for _, pruning := range []bool{false, true} {
			b.Run(fmt.Sprintf("shards=%d/pruning=%v", shards, pruning), func(b *testing.B) {
				ctx := context.Background()
				m := newMemoryStore(shards)
				stop := make(chan struct{})
				var done sync.WaitGroup
				if pruning {
					for i := range 200_000 {
						_, _ = m.Reserve(ctx, fmt.Sprintf("ip:stale-%d", i), rule, t0)
					}
					done.Add(1)
					go func() { // nothing is stale at t0: every pass walks every key
						defer done.Done()
						for {
							select {
							case <-stop:
								return
							default:
								_ = m.Prune(ctx, t0)
							}
						}
					}()
				}
				var next atomic.Int64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := int(next.Add(1)) * 997
					for pb.Next() {
						i++
						if _, err := m.Reserve(ctx, keys[i%len(keys)], rule, t0); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.StopTimer()
				close(stop)
				done.Wait()
			})
		}
	}
}
