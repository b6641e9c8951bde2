package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/handlers"
)

// These tests reproduce issue 11, finding 3: the throttling limit was checked before the
// credential check and counted after it, so a burst of parallel wrong passwords got many
// more checks than the free failures allow, and a right password inside the burst signed
// in. The server is the real HTTP handler over a real Service on real SQLite; only the
// reads of one stream can be held (gateStore) to put requests exactly where the race was.

// freeChecks is how many wrong credentials one account may have checked in a row: the
// default five free failures plus the one that starts the first wait (as sequentially).
const freeChecks = 5 + 1

// gateStore is the real event log whose reads of stream are held, while armed, until
// release: a sign-in that got past the throttle waits there, before its credential is
// checked.
type gateStore struct {
	domain.EventStore
	mu      sync.Mutex
	stream  string
	held    int
	release chan struct{}
}

func (g *gateStore) arm(stream string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stream, g.held, g.release = stream, 0, make(chan struct{})
}

func (g *gateStore) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
	}
	g.stream, g.release = "", nil
}

func (g *gateStore) holding() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *gateStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]domain.Envelope, error) {
	g.mu.Lock()
	ch := g.release
	hold := ch != nil && stream == g.stream
	if hold {
		g.held++
	}
	g.mu.Unlock()
	if hold {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return g.EventStore.ReadStream(ctx, stream, from, limit)
}

// throttleEnv is a handlers.Server on httptest over a Service whose log is a gateStore.
type throttleEnv struct {
	t       *testing.T
	base    string
	clk     *testkit.Clock
	gate    *gateStore
	log     *sqlite.Store
	http    *http.Client
	keyring *credential.Keyring
}

func newThrottleEnv(t *testing.T) *throttleEnv {
	t.Helper()
	discard := slog.New(slog.DiscardHandler)
	log, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	key := bytes.Repeat([]byte("k"), 32)
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	clk := testkit.NewClock(time.Date(2026, 3, 2, 9, 0, 1, 0, time.UTC))
	gate := &gateStore{EventStore: log}
	svc, err := command.NewService(command.Config{Store: gate, Keyring: kr,
		Argon2: credential.Argon2Config{MemoryKiB: 8192, Iterations: 1}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := handlers.New(handlers.Config{Logger: discard, Store: log, Accounts: svc, SecretKey: key, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(gate.open) // never leave a request held
	return &throttleEnv{t: t, base: hs.URL, clk: clk, gate: gate, log: log, keyring: kr,
		http: &http.Client{Timeout: 60 * time.Second}}
}

// answer is a response read in full (err: the request failed).
type answer struct {
	code       int
	retryAfter string
	body       map[string]any
	err        error
}

// post sends body as JSON; safe to call from any goroutine (it never stops the test).
func (e *throttleEnv) post(path string, body any, token string) answer {
	data, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(data))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.http.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{err: err}
	}
	a := answer{code: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			a.err = fmt.Errorf("answer %d is not JSON: %s", res.StatusCode, raw)
		}
	}
	return a
}

// must sends a request from the test goroutine and expects status.
func (e *throttleEnv) must(path string, body any, token string, status int) map[string]any {
	e.t.Helper()
	a := e.post(path, body, token)
	if a.err != nil || a.code != status {
		e.t.Fatalf("POST %s: %d %v %v, want %d", path, a.code, a.body, a.err, status)
	}
	return a.body
}

// burst is requests in flight together; n counts those answered.
type burst struct {
	wg       sync.WaitGroup
	answered atomic.Int64
	mu       sync.Mutex
	answers  []answer
}

func (b *burst) fire(send func() answer) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		a := send()
		b.mu.Lock()
		b.answers = append(b.answers, a)
		b.mu.Unlock()
		b.answered.Add(1)
	}()
}

// waitUntil polls cond until it holds, failing the test after 30 s.
func (e *throttleEnv) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tally counts the answers by status; every 429 must carry a positive Retry-After and the
// problem code too_many_attempts.
func (e *throttleEnv) tally(answers []answer) map[int]int {
	e.t.Helper()
	n := map[int]int{}
	for _, a := range answers {
		if a.err != nil {
			e.t.Fatalf("request failed: %v", a.err)
		}
		n[a.code]++
		if a.code == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
				e.t.Errorf("429 with Retry-After %q", a.retryAfter)
			}
			if a.body["code"] != "too_many_attempts" {
				e.t.Errorf("429 problem %v", a.body)
			}
		}
	}
	return n
}

// failures counts the LoginFailed events of the account by reason.
func (e *throttleEnv) failures(accountID string) map[string]int {
	e.t.Helper()
	evs, err := e.log.ReadStream(context.Background(), domain.AccountStream(accountID), 1, 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	n := map[string]int{}
	for _, env := range evs {
		if env.Type != domain.EventLoginFailed {
			continue
		}
		ev, err := domain.DecodeEvent(env)
		if err != nil {
			e.t.Fatal(err)
		}
		n[ev.(domain.LoginFailed).Reason]++
	}
	return n
}

func (e *throttleEnv) register(email string) string {
	e.t.Helper()
	m := e.must("/api/v1/accounts", map[string]string{"email": email, "password": testPassword,
		"first_name": "Ann", "last_name": "Lee"}, "", 201)
	return m["account_id"].(string)
}

// heldBurst fires n requests with send while the reads of stream are held, waits until each
// is either answered or held (got past the throttle), then sends last the same way and
// waits until it too is answered or held; it then lets everything go and returns the n
// answers and the last one. Before the fix every request got past the throttle check
// (failures were counted after the check), so last was checked too.
func (e *throttleEnv) heldBurst(stream string, n int, send func(i int) answer, last func() answer) ([]answer, answer) {
	e.t.Helper()
	e.gate.arm(stream)
	var b burst
	for i := range n {
		b.fire(func() answer { return send(i) })
	}
	e.waitUntil("every request of the burst is answered or held", func() bool {
		return int(b.answered.Load())+e.gate.holding() == n
	})
	held := e.gate.holding()
	var l burst
	l.fire(last)
	e.waitUntil("the last request is answered or held", func() bool {
		return l.answered.Load() == 1 || e.gate.holding() > held
	})
	e.gate.open()
	b.wg.Wait()
	l.wg.Wait()
	return b.answers, l.answers[0]
}

// checkHeldBurst checks a held burst of 30 wrong secrets (noun: "password" or "code") at
// account id and the right one sent inside it: at most freeChecks were checked (401, each a
// LoginFailed with reason), the rest throttled (429), the right one throttled too.
func (e *throttleEnv) checkHeldBurst(id, noun, reason string, answers []answer, last answer) {
	e.t.Helper()
	n := e.tally(answers)
	if n[401]+n[429] != 30 || n[401] > freeChecks {
		e.t.Errorf("30 parallel wrong %ss: %d checked (401), %d throttled (429), want at most %d checked", noun, n[401], n[429], freeChecks)
	}
	if checked := e.failures(id)[reason]; checked > freeChecks {
		e.t.Errorf("%d %ss checked (LoginFailed %s), want at most %d", checked, noun, reason, freeChecks)
	}
	if e.tally([]answer{last}); last.code != http.StatusTooManyRequests {
		e.t.Errorf("the right %s inside the burst: %d %v, want 429", noun, last.code, last.body)
	}
}

func TestLoginBurstIsThrottledBeforeTheCheck(t *testing.T) {
	t.Parallel()
	e := newThrottleEnv(t)
	id := e.register("ann@example.com")
	wrong := map[string]string{"email": "ann@example.com", "password": "wrong-password-123"}
	answers, last := e.heldBurst(domain.EmailStream(e.keyring.Index("email", "ann@example.com")), 30,
		func(int) answer { return e.post("/api/v1/login", wrong, "") },
		func() answer {
			return e.post("/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, "")
		})
	e.checkHeldBurst(id, "password", reasons.LoginFailedInvalidCredentials, answers, last)
}

func TestSecondFactorBurstIsThrottledBeforeTheCheck(t *testing.T) {
	t.Parallel()
	e := newThrottleEnv(t)
	id := e.register("ann@example.com")
	login := map[string]string{"email": "ann@example.com", "password": testPassword}
	token := e.must("/api/v1/login", login, "", 200)["session_token"].(string)
	dev := e.must("/api/v1/me/totp", map[string]string{"name": "phone"}, token, 201)
	secret := dev["secret"].(string)
	code := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.must("/api/v1/me/totp/"+dev["device_id"].(string)+"/confirm", map[string]string{"code": code(e.clk.Now())}, token, 200)
	e.clk.Advance(30 * time.Second) // the confirmation spent the current step

	// The attacker knows the password: each ticket allows five codes, so they take several.
	var tickets []string
	for range 7 {
		m := e.must("/api/v1/login", login, "", 200)
		if m["status"] != "second_factor_required" {
			t.Fatalf("login with 2FA: %v", m)
		}
		tickets = append(tickets, m["login_ticket"].(string))
	}
	now := e.clk.Now()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		valid[code(now.Add(d))] = true
	}
	bad := "000000"
	for i := 1; valid[bad]; i++ {
		bad = strings.Repeat(strconv.Itoa(i), 6)
	}
	answers, last := e.heldBurst(domain.AccountStream(id), 30,
		func(i int) answer {
			return e.post("/api/v1/login/second-factor", map[string]string{"login_ticket": tickets[i/5], "method": "totp", "code": bad}, "")
		},
		func() answer {
			return e.post("/api/v1/login/second-factor", map[string]string{"login_ticket": tickets[6], "method": "totp", "code": code(now)}, "")
		})
	e.checkHeldBurst(id, "code", reasons.LoginFailedInvalidSecondFactor, answers, last)
}

func TestReauthBurstIsThrottledBeforeTheCheck(t *testing.T) {
	t.Parallel()
	e := newThrottleEnv(t)
	id := e.register("ann@example.com")
	token := e.must("/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, "", 200)["session_token"].(string)
	// Nothing to hold here: the account is read before the throttle. A burst of parallel
	// wrong passwords must still get no more checks than a sequence of them.
	var b burst
	for range 30 {
		b.fire(func() answer {
			return e.post("/api/v1/reauth", map[string]string{"password": "wrong-password-123"}, token)
		})
	}
	b.wg.Wait()
	n := e.tally(b.answers)
	if n[403]+n[429] != 30 || n[403] > freeChecks {
		t.Errorf("30 parallel wrong passwords: %d checked (403), %d throttled (429), want at most %d checked", n[403], n[429], freeChecks)
	}
	if checked := e.failures(id)[reasons.LoginFailedInvalidCredentials]; checked > freeChecks {
		t.Errorf("%d passwords checked (LoginFailed invalid_credentials), want at most %d", checked, freeChecks)
	}
	last := e.post("/api/v1/reauth", map[string]string{"password": testPassword}, token)
	if e.tally([]answer{last}); last.code != http.StatusTooManyRequests {
		t.Errorf("the right password after the burst: %d %v, want 429", last.code, last.body)
	}
}
