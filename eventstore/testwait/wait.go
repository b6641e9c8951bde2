// Package testwait is how Vigil's tests wait: for a condition they need (a projection's
// position, a readiness answer, a delivery), never for a fixed time, with deadlines that scale
// with the machine, and, when they give up, a message that says what they waited for and the
// last thing they saw.
//
// A test names the deadline it would need on an idle developer machine without the race
// detector; Deadline multiplies it by Scale, which is
//
//   - VIGIL_TEST_TIMEOUT_SCALE (a positive number, default 1), for machines slower than that;
//   - times 3 under the race detector (go test -race): instrumented code, SQLite's
//     pointer checks above all, runs several times slower;
//   - times 4/NumCPU on machines with fewer than four CPUs: go test runs as many test
//     binaries in parallel as there are CPUs, beside the compiler, so on two cores each one
//     gets a fraction of a core.
//
// A wait that is met returns as soon as it is met, so a generous deadline costs nothing when
// the code works; it only makes a real hang take longer to report.
//
// The package imports only the standard library, so every test package of the module can
// import it without an import cycle, domain's and eventstore's own tests included. It lives
// under eventstore because the module's top level is fixed (cmd, domain, projections,
// handlers, eventstore, geoip, bench, docs) and, unlike eventstore/eventstoretest, it pulls
// in nothing of the module.
package testwait

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvScale names the environment variable that multiplies every deadline.
const EnvScale = "VIGIL_TEST_TIMEOUT_SCALE"

// raceFactor is how much longer a wait may take under the race detector.
const raceFactor = 3

// maxPause bounds the back-off between two checks of Until.
const maxPause = 100 * time.Millisecond

type scale struct {
	factor float64
	about  string // how factor was made, for failure messages
}

var current = sync.OnceValue(func() scale {
	env := 1.0
	if v := strings.TrimSpace(os.Getenv(EnvScale)); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) {
			panic(fmt.Sprintf("testwait: %s=%q is not a positive number", EnvScale, v))
		}
		env = f
	}
	s := scale{factor: env}
	parts := []string{fmt.Sprintf("%s=%g", EnvScale, env)}
	if raceEnabled {
		s.factor *= raceFactor
		parts = append(parts, fmt.Sprintf("race detector ×%d", raceFactor))
	}
	if n := runtime.NumCPU(); n < 4 {
		s.factor *= 4 / float64(n)
		parts = append(parts, fmt.Sprintf("%d CPUs ×%g", n, 4/float64(n)))
	}
	s.about = fmt.Sprintf("×%.3g: %s", s.factor, strings.Join(parts, ", "))
	return s
})

// Scale is the factor every deadline is multiplied by on this machine and build (see the
// package documentation). It panics when VIGIL_TEST_TIMEOUT_SCALE is set to something that is
// not a positive number.
func Scale() float64 { return current().factor }

// Describe says how Scale was made, e.g. "×6: VIGIL_TEST_TIMEOUT_SCALE=1, race detector ×3,
// 2 CPUs ×2".
func Describe() string { return current().about }

// Deadline is d, the time a wait would need on an idle machine without the race detector,
// scaled for this one. Use it for every timeout of a test: contexts, clients, waits.
func Deadline(d time.Duration) time.Duration {
	return time.Duration(float64(d) * Scale())
}

// Context is a context that ends after Deadline(d). It does not derive from t.Context(),
// which is already cancelled when cleanup functions run.
func Context(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), Deadline(d))
}

// Until checks cond, with a growing pause between checks (1ms doubling up to 100ms), until
// it reports ok; after Deadline(d) it fails the test with what it waited for and the last
// thing cond said it saw (a status code and body, each projection's checkpoint, a count).
// Like t.Fatal it must be called from the test's goroutine.
func Until(t testing.TB, d time.Duration, what string, cond func() (ok bool, saw string)) {
	t.Helper()
	if err := Poll(context.Background(), d, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll is Until for code that cannot fail the test itself (a goroutine, a helper returning
// an error): it returns nil once cond holds, or an error that names what it waited for and
// what it saw last, after Deadline(d) or when ctx ends.
func Poll(ctx context.Context, d time.Duration, what string, cond func() (ok bool, saw string)) error {
	limit := Deadline(d)
	start := time.Now()
	deadline := start.Add(limit)
	pause := time.Millisecond
	checks := 0
	for {
		ok, saw := cond()
		checks++
		if ok {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			why := fmt.Sprintf("deadline %v (%v %s)", limit.Round(time.Millisecond), d, Describe())
			if ctx.Err() != nil && left > 0 {
				why = "the test ended: " + context.Cause(ctx).Error()
			}
			return fmt.Errorf("gave up waiting for %s after %v and %d checks, %s; last saw: %s",
				what, time.Since(start).Round(time.Millisecond), checks, why, saw)
		}
		timer := time.NewTimer(min(pause, left))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		pause = min(2*pause, maxPause)
	}
}

// Recv receives from ch within Deadline(d), failing the test naming what it waited for when
// nothing arrives. ok is false when ch was closed (for a done channel, that is the signal). It
// must be called from the test's goroutine.
func Recv[T any](t testing.TB, d time.Duration, what string, ch <-chan T) (v T, ok bool) {
	t.Helper()
	limit := Deadline(d)
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v, ok = <-ch:
		return v, ok
	case <-timer.C:
		t.Fatalf("gave up waiting for %s after %v (%v %s)", what, limit.Round(time.Millisecond), d, Describe())
		return v, false
	}
}
