package command_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
)

const goodPassword = "umbrella-cactus-violin-47"

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// countingStore wraps the real store and counts the account-stream events commands read.
type countingStore struct {
	domain.EventStore
	mu           sync.Mutex
	accountReads int
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]domain.Envelope, error) {
	evs, err := c.EventStore.ReadStream(ctx, stream, from, limit)
	if strings.HasPrefix(stream, domain.StreamPrefixAccount) {
		c.mu.Lock()
		c.accountReads += len(evs)
		c.mu.Unlock()
	}
	return evs, err
}

func (c *countingStore) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.accountReads
	c.accountReads = 0
	return n
}

type harness struct {
	t       *testing.T
	ctx     context.Context
	store   *sqlite.Store
	counter *countingStore
	clock   *testkit.Clock
	snaps   *ephemeral.MemorySnapshotStore
	cfg     command.Config
	svc     *command.Service
}

// newHarness builds a Service on a real SQLite event store in a temporary directory, with
// an injected clock and small argon2 costs (m=8192 KiB, t=1).
func newHarness(t *testing.T, opts ...func(*command.Config)) *harness {
	t.Helper()
	store, kr := testkit.SQLite(t), testkit.Keyring(t, "s")
	h := &harness{t: t, ctx: t.Context(), store: store, counter: &countingStore{EventStore: store},
		clock: testkit.NewClock(start), snaps: ephemeral.NewMemorySnapshotStore()}
	h.cfg = command.Config{
		Store:     h.counter,
		Keyring:   kr,
		Snapshots: h.snaps,
		Argon2:    credential.Argon2Config{MemoryKiB: 8192, Iterations: 1},
		Now:       h.clock.Now,
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	var err error
	h.svc, err = command.NewService(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) register(email string) string {
	h.t.Helper()
	res, err := h.svc.Register(h.ctx, command.Registration{Email: email, Password: goodPassword, FirstName: "Ann", LastName: "Lee"}, command.RequestMeta{})
	if err != nil {
		h.t.Fatalf("register %s: %v", email, err)
	}
	return res.AccountID
}

// login signs in with the good password and expects a session.
func (h *harness) login(email string) command.Authenticated {
	h.t.Helper()
	res, err := h.svc.Login(h.ctx, email, goodPassword, domain.PortalClientID, command.RequestMeta{IP: "192.0.2.1"})
	if err != nil || res.Status != command.StatusAuthenticated {
		h.t.Fatalf("login %s: %+v %v", email, res, err)
	}
	return *res.Authenticated
}

// ticket signs in with the good password and expects a login ticket.
func (h *harness) ticket(email string) command.SecondFactorRequired {
	h.t.Helper()
	res, err := h.svc.Login(h.ctx, email, goodPassword, "", command.RequestMeta{})
	if err != nil || res.Status != command.StatusSecondFactorRequired {
		h.t.Fatalf("login %s: %+v %v", email, res, err)
	}
	return *res.SecondFactor
}

func (h *harness) code(secret string) string {
	h.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, h.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// enrollTOTP adds and confirms a TOTP device for the session's account and moves the clock
// to the next time step (the confirmation used the current one).
func (h *harness) enrollTOTP(sess domain.Session, name string) (deviceID, secret string, codes []string) {
	h.t.Helper()
	enr, err := h.svc.AddTOTPDevice(h.ctx, sess, name, command.RequestMeta{})
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.svc.ConfirmTOTPDevice(h.ctx, sess, enr.DeviceID, h.code(enr.Secret), command.RequestMeta{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.clock.Advance(30 * time.Second)
	return enr.DeviceID, enr.Secret, res.BackupCodes
}

func (h *harness) events(stream string) []domain.Envelope {
	h.t.Helper()
	evs, err := h.store.ReadStream(h.ctx, stream, 1, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *harness) types(stream string) []string {
	var out []string
	for _, e := range h.events(stream) {
		out = append(out, e.Type)
	}
	return out
}

func (h *harness) decode(env domain.Envelope) domain.Event {
	h.t.Helper()
	e, err := domain.DecodeEvent(env)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// race runs fn n times concurrently, released together, and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			errs[i] = fn(i)
		}(i)
	}
	close(gate)
	wg.Wait()
	return errs
}

func count(errs []error, target error) (nilCount, matching int) {
	for _, err := range errs {
		switch {
		case err == nil:
			nilCount++
		case errors.Is(err, target):
			matching++
		}
	}
	return
}

type requiredPolicy struct{ orgs []string }

func (p requiredPolicy) RequiredBy(context.Context, string) ([]string, error) { return p.orgs, nil }
