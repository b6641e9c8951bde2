package command_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/argon2"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
)

// hashTimes collects what the hasher's Observe hook reports.
type hashTimes struct {
	mu      sync.Mutex
	wait    []time.Duration
	compute []time.Duration
	last    atomic.Int64 // compute time of the latest hash (for sequential runs)
}

func (h *hashTimes) observe(wait, compute time.Duration) {
	h.mu.Lock()
	h.wait = append(h.wait, wait)
	h.compute = append(h.compute, compute)
	h.mu.Unlock()
	h.last.Store(int64(wait + compute))
}

func (h *hashTimes) reset() {
	h.mu.Lock()
	h.wait, h.compute = nil, nil
	h.mu.Unlock()
}

type benchEnv struct {
	svc   *command.Service
	store *sqlite.Store
	hash  *hashTimes
	clock *testkit.Clock
}

func newBenchEnv(b *testing.B, argon credential.Argon2Config) *benchEnv {
	b.Helper()
	store, kr := testkit.SQLite(b), testkit.Keyring(b, "s")
	e := &benchEnv{store: store, hash: &hashTimes{}, clock: testkit.NewClock(start)}
	argon.Observe = e.hash.observe
	var err error
	e.svc, err = command.NewService(command.Config{Store: store, Keyring: kr, Snapshots: ephemeral.NewMemorySnapshotStore(),
		Argon2: argon, Now: e.clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func (e *benchEnv) register(b *testing.B, email string) string {
	res, err := e.svc.Register(context.Background(), command.Registration{Email: email, Password: goodPassword, FirstName: "Ann", LastName: "Lee"}, command.RequestMeta{})
	if err != nil {
		b.Fatal(err)
	}
	return res.AccountID
}

func pctl(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(max(1, len(d)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// argonCeiling is the machine's argon2id rate with the production parameters on all cores,
// measured by the "ceiling" sub-benchmark of BenchmarkPasswordLogin in the same run, and
// argonCPU the process CPU time per hash in that sub-benchmark.
var (
	argonCeiling float64
	argonCPU     time.Duration
)

// BenchmarkPasswordLogin measures password sign-ins (account without 2FA: verify the
// password, start a session) with the production argon2id cost (m=19456 KiB, t=2, p=1) from
// 1, 4 and 16 concurrent clients, each on its own account. First it measures the ceiling: the
// hasher's argon2id hashes per second on every core with the same parameters (and, for
// comparison, x/crypto's). Each sub-benchmark
// reports logins/s and its share of that ceiling, latency p50/p99/max, the hashing time
// (compute and queueing for a hash slot) and the rest (total minus hashing: reads, decisions,
// appends). At 1 client the split is exact per login; at 4 and 16 it is a mean.
func BenchmarkPasswordLogin(b *testing.B) {
	prod := credential.Argon2Config{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}
	// ceiling-xcrypto is x/crypto's argon2id alone (it allocates the 19 MiB per hash), for
	// comparison; the ceiling the sign-ins are measured against is that of the hasher they
	// use (credential.Argon2Hasher: the same argon2id computed in reused memory), hashing
	// from GOMAXPROCS goroutines and nothing else.
	b.Run("ceiling-xcrypto", func(b *testing.B) {
		salt := []byte("0123456789abcdef")
		rate, cpu := hashAllCores(b, b.N, func() {
			argon2.IDKey([]byte(goodPassword), salt, prod.Iterations, prod.MemoryKiB, prod.Parallelism, 32)
		})
		b.ReportMetric(rate, "hashes/s")
		b.ReportMetric(ms(cpu), "cpu-ms/op")
	})
	b.Run("ceiling", func(b *testing.B) {
		h, err := credential.NewArgon2Hasher(prod)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		argonCeiling, argonCPU = hashAllCores(b, b.N, func() {
			if _, err := h.Hash(goodPassword); err != nil {
				b.Error(err)
			}
		})
		b.ReportMetric(argonCeiling, "hashes/s")
		b.ReportMetric(ms(argonCPU), "cpu-ms/op")
	})
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			e := newBenchEnv(b, prod)
			emails := make([]string, clients)
			for i := range emails {
				emails[i] = fmt.Sprintf("bench%d@example.com", i)
				e.register(b, emails[i])
			}
			e.hash.reset()
			ctx := context.Background()
			lat := make([]time.Duration, b.N)
			rest := make([]time.Duration, 0, b.N)
			var errs atomic.Int64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			startAt, cpu0 := time.Now(), processCPU(b)
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						res, err := e.svc.Login(ctx, emails[c], goodPassword, "", command.RequestMeta{IP: fmt.Sprintf("192.0.2.%d", c+1)})
						lat[i] = time.Since(t0)
						if err != nil || res.Authenticated == nil {
							errs.Add(1)
						}
						if clients == 1 {
							rest = append(rest, lat[i]-time.Duration(e.hash.last.Load()))
						}
					}
				}()
			}
			wg.Wait()
			elapsed, cpu := time.Since(startAt), (processCPU(b)-cpu0)/time.Duration(b.N)
			b.StopTimer()
			rate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "logins/s")
			if argonCeiling > 0 {
				b.ReportMetric(100*rate/argonCeiling, "%-of-ceiling")
			}
			// The CPU a sign-in costs against the CPU of one bare hash: the share of the
			// ceiling the sign-ins would reach if they had the cores to themselves.
			b.ReportMetric(ms(cpu), "cpu-ms/op")
			if argonCPU > 0 && cpu > 0 {
				b.ReportMetric(100*float64(argonCPU)/float64(cpu), "%-of-ceiling-cpu")
			}
			b.ReportMetric(ms(pctl(lat, 50)), "p50-ms")
			b.ReportMetric(ms(pctl(lat, 99)), "p99-ms")
			b.ReportMetric(ms(slices.Max(lat)), "max-ms")
			b.ReportMetric(float64(errs.Load()), "errors")
			e.hash.mu.Lock()
			b.ReportMetric(ms(pctl(e.hash.compute, 50)), "hash-p50-ms")
			b.ReportMetric(ms(mean(e.hash.wait)), "hash-wait-mean-ms")
			b.ReportMetric(ms(mean(lat)-mean(e.hash.compute)-mean(e.hash.wait)), "rest-mean-ms")
			e.hash.mu.Unlock()
			if clients == 1 {
				b.ReportMetric(ms(pctl(rest, 50)), "rest-p50-ms")
			}
		})
	}
}

// hashAllCores runs hash n times from GOMAXPROCS goroutines and returns the rate and the
// process CPU time per hash.
func hashAllCores(b *testing.B, n int, hash func()) (float64, time.Duration) {
	var done atomic.Int64
	startAt, cpu0 := time.Now(), processCPU(b)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Add(1) <= int64(n) {
				hash()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(startAt).Seconds(), (processCPU(b) - cpu0) / time.Duration(n)
}

// BenchmarkLoginWithHistory measures a complete two-factor sign-in (password, then a TOTP
// code) for an account with no earlier sign-ins and for one with 10,000 earlier two-factor
// sign-ins. Sign-ins live on their own session streams, but each accepted TOTP code is an
// event on the account stream (it enforces one use per time step), so the account stream of a
// busy account grows; snapshots keep loading it bounded. The history is written as those
// events are by real sign-ins. A low argon2 cost (m=8192 KiB, t=1) keeps hashing from
// drowning the difference being measured; compare the two ns/op.
func BenchmarkLoginWithHistory(b *testing.B) {
	for _, history := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("earlier=%d", history), func(b *testing.B) {
			e := newBenchEnv(b, credential.Argon2Config{MemoryKiB: 8192, Iterations: 1})
			ctx := context.Background()
			id := e.register(b, "busy@example.com")
			secret, deviceID := enrollTOTP(b, e, id)
			seedTOTPHistory(b, e, id, deviceID, history)
			login := func() time.Duration {
				e.clock.Advance(30 * time.Second) // a new time step per sign-in
				t0 := time.Now()
				res, err := e.svc.Login(ctx, "busy@example.com", goodPassword, "", command.RequestMeta{IP: "192.0.2.9"})
				if err != nil || res.SecondFactor == nil {
					b.Fatalf("login: %+v, %v", res, err)
				}
				code, _ := totp.GenerateCode(secret, e.clock.Now())
				res, err = e.svc.SecondFactor(ctx, res.SecondFactor.Ticket, "totp", code, command.RequestMeta{IP: "192.0.2.9"})
				if err != nil || res.Authenticated == nil {
					b.Fatalf("second factor: %+v, %v", res, err)
				}
				return time.Since(t0)
			}
			login() // the first load after seeding replays the history and writes a snapshot
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				lat[i] = login()
			}
			b.StopTimer()
			b.ReportMetric(ms(pctl(lat, 50)), "p50-ms")
		})
	}
}

func enrollTOTP(b *testing.B, e *benchEnv, accountID string) (secret, deviceID string) {
	ctx := context.Background()
	res, err := e.svc.Login(ctx, "busy@example.com", goodPassword, "", command.RequestMeta{})
	if err != nil || res.Authenticated == nil {
		b.Fatalf("login: %+v, %v", res, err)
	}
	caller := res.Authenticated.Session
	enr, err := e.svc.AddTOTPDevice(ctx, caller, "phone", command.RequestMeta{})
	if err != nil {
		b.Fatal(err)
	}
	code, _ := totp.GenerateCode(enr.Secret, e.clock.Now())
	if _, err := e.svc.ConfirmTOTPDevice(ctx, caller, enr.DeviceID, code, command.RequestMeta{}); err != nil {
		b.Fatal(err)
	}
	return enr.Secret, enr.DeviceID
}

// seedTOTPHistory appends n TOTPCodeAccepted events, as n earlier two-factor sign-ins leave
// on the account stream, with consecutive time steps ending before the clock's current step.
func seedTOTPHistory(b *testing.B, e *benchEnv, accountID, deviceID string, n int) {
	if n == 0 {
		return
	}
	ctx := context.Background()
	first := e.clock.Now().Unix()/30 - int64(n) - 2
	batch := make([]domain.EventData, 0, 500)
	md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: accountID}, SubjectAccountID: accountID}
	for i := range n {
		ev, err := domain.NewEventData(domain.EventTOTPCodeAccepted, 1, domain.TOTPCodeAccepted{
			DeviceID: deviceID, Step: first + int64(i), Purpose: "login", At: time.Unix((first+int64(i))*30, 0).UTC()}, md)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, ev)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := e.store.Append(ctx, domain.AccountStream(accountID), expect.Any, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}
