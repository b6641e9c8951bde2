package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
)

// TestContract runs the shared contract suite against a real KurrentDB server named by
// VIGIL_TEST_KURRENTDB. The suite writes only to fresh streams and looks only at its own
// events, so a shared, long-lived server is fine.
func TestContract(t *testing.T) {
	cs := os.Getenv("VIGIL_TEST_KURRENTDB")
	if cs == "" {
		if os.Getenv("VIGIL_REQUIRE_ALL") == "1" {
			t.Fatal("VIGIL_TEST_KURRENTDB is not set but VIGIL_REQUIRE_ALL=1: set VIGIL_TEST_KURRENTDB=kurrentdb://localhost:2113?tls=false (docker compose up kurrentdb starts one)")
		}
		t.Skip("set VIGIL_TEST_KURRENTDB=kurrentdb://localhost:2113?tls=false to run the contract suite against KurrentDB; docker compose up kurrentdb starts one")
	}
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := Open(ctx, Config{ConnectionString: cs, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Open(%s): %v", redact(cs), err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// testLogger sends the store's messages to the test log, so that they show only on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestExpectedRevision(t *testing.T) {
	cases := []struct {
		in   eventstore.ExpectedVersion
		want esdb.ExpectedRevision
	}{
		{eventstore.Any, esdb.Any{}},
		{eventstore.NoStream, esdb.NoStream{}},
		{eventstore.Exact(0), esdb.NoStream{}},
		{eventstore.Exact(1), esdb.Revision(0)},
		{eventstore.Exact(42), esdb.Revision(41)},
	}
	for _, c := range cases {
		got, err := expectedRevision(c.in)
		if err != nil || got != c.want {
			t.Errorf("expectedRevision(%s) = %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
	if _, err := expectedRevision(eventstore.ExpectedVersion(-2)); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("expectedRevision(-2) error = %v, want ErrInvalidEvent", err)
	}
}

func sampleEvent(t testing.TB) domain.EventData {
	t.Helper()
	e, err := domain.NewEventData("PasswordChanged", 3, map[string]any{"hash": "$argon2id$v=19$...", "n": 7}, domain.Metadata{
		Actor:            domain.Actor{Type: domain.ActorAdmin, ID: "acc-9"},
		SubjectAccountID: "acc-1",
		IP:               "2001:db8::1",
		UserAgent:        "Mozilla/5.0 (X11; Linux x86_64)",
		ClientID:         "portal",
		CorrelationID:    "corr-1",
		CausationID:      "cause-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEventRoundTrip(t *testing.T) {
	in := sampleEvent(t)
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	ed, err := encodeEvent(in, at)
	if err != nil {
		t.Fatal(err)
	}
	if ed.EventID.String() != in.ID || ed.EventType != in.Type || ed.ContentType != esdb.ContentTypeJson || string(ed.Data) != string(in.Data) {
		t.Fatalf("encoded %+v from %+v", ed, in)
	}
	var md map[string]any
	if err := json.Unmarshal(ed.Metadata, &md); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"schema_version": float64(3), "recorded_at": "2025-03-04T04:06:07.123456789Z",
		"subject_account_id": "acc-1", "ip": "2001:db8::1", "correlation_id": "corr-1",
		"$correlationId": "corr-1", "$causationId": "cause-1",
	} {
		if md[key] != want {
			t.Errorf("metadata[%q] = %v, want %v (metadata %s)", key, md[key], want, ed.Metadata)
		}
	}

	rec := &esdb.RecordedEvent{
		EventID:      ed.EventID,
		EventType:    ed.EventType,
		ContentType:  "application/json",
		StreamID:     "account-1",
		EventNumber:  4,
		Position:     esdb.Position{Commit: 123456, Prepare: 123456},
		CreatedDate:  time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), // the server's clock: not used
		Data:         ed.Data,
		UserMetadata: ed.Metadata,
	}
	got, err := decodeEvent(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Envelope{
		ID: in.ID, StreamID: "account-1", Version: 5, Position: 123456, Type: in.Type,
		SchemaVersion: 3, RecordedAt: at.UTC(), Data: in.Data, Metadata: in.Metadata,
	}
	if got.RecordedAt.Location() != time.UTC || !got.RecordedAt.Equal(want.RecordedAt) {
		t.Errorf("RecordedAt = %v (%v), want %v in UTC", got.RecordedAt, got.RecordedAt.Location(), want.RecordedAt)
	}
	got.RecordedAt, want.RecordedAt = time.Time{}, time.Time{}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
	}
}

func TestDecodeForeignAndOldServer(t *testing.T) {
	created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	// An event another tool wrote (no metadata), read from a stream on a server too old to
	// report positions on stream reads.
	got, err := decodeEvent(&esdb.RecordedEvent{
		EventID: uuid.New(), EventType: "Imported", StreamID: "org-1", EventNumber: 0,
		Position: esdb.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}, CreatedDate: created,
		Data: []byte(`{"a":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Position != 0 || !got.RecordedAt.Equal(created) || got.SchemaVersion != 0 || got.Metadata != (domain.Metadata{}) {
		t.Errorf("decoded %+v", got)
	}
	if _, err := decodeEvent(&esdb.RecordedEvent{EventID: uuid.New(), UserMetadata: []byte("{not json")}); err == nil {
		t.Error("decoding unreadable metadata succeeded")
	}
}

func TestEncodeRejects(t *testing.T) {
	good := sampleEvent(t)
	cases := map[string]func(e *domain.EventData){
		"not a uuid":      func(e *domain.EventData) { e.ID = "evt-1" },
		"upper case uuid": func(e *domain.EventData) { e.ID = strings.ToUpper(e.ID) },
		"nil uuid":        func(e *domain.EventData) { e.ID = uuid.Nil.String() },
		"invalid json":    func(e *domain.EventData) { e.Data = json.RawMessage(`{"a":`) },
	}
	for name, mutate := range cases {
		e := good
		mutate(&e)
		if _, err := encodeEvent(e, time.Now()); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: error = %v, want ErrInvalidEvent", name, err)
		}
	}
}

func TestPositions(t *testing.T) {
	if p, ok := allFrom(0).(esdb.Start); !ok {
		t.Errorf("allFrom(0) = %#v, want Start", p)
	}
	if p := allFrom(8812); p != (esdb.Position{Commit: 8812, Prepare: 8812}) {
		t.Errorf("allFrom(8812) = %#v", p)
	}
	if positionOf(esdb.Position{Commit: 99, Prepare: 98}) != 99 {
		t.Error("positionOf does not take the commit position")
	}
	if positionOf(esdb.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}) != 0 {
		t.Error("positionOf(no position) != 0")
	}
	a, b := esdb.Position{Commit: 10, Prepare: 5}, esdb.Position{Commit: 10, Prepare: 7}
	if !posLess(a, b) || posLess(b, a) || posLess(a, a) || !posLess(b, esdb.Position{Commit: 11}) {
		t.Error("posLess orders positions wrongly")
	}
}

func TestVigilEvents(t *testing.T) {
	for _, c := range []struct {
		stream, typ string
		want        bool
	}{
		{"account-1", "PasswordChanged", true},
		{"session-1", "SessionStarted", true},
		{"org-1", "OrgCreated", true},
		{"client-x", "ClientRegistered", true},
		{"system-contract-1", "Anything", true},
		{"account-1", "$metadata", false},
		{"$stats-127.0.0.1:2113", "$statsCollected", false},
		{"$$account-1", "$metadata", false},
		{"orders-1", "OrderPlaced", false},
		{"Account-1", "X", false},
	} {
		if got := isVigilEvent(c.stream, c.typ); got != c.want {
			t.Errorf("isVigilEvent(%q, %q) = %v", c.stream, c.typ, got)
		}
	}
	f := vigilFilter()
	if f.Type != esdb.StreamFilterType || strings.Join(f.Prefixes, ",") != strings.Join(domain.StreamPrefixes, ",") || f.Regex != "" {
		t.Errorf("vigilFilter() = %+v", f)
	}
}

func TestConnectionStrings(t *testing.T) {
	for _, c := range []struct {
		in       string
		address  string
		seeds    int
		discover bool
		tls      bool
	}{
		{"kurrentdb://localhost:2113?tls=false", "localhost:2113", 0, false, false},
		{"KurrentDB://localhost?tls=false", "localhost:2113", 0, false, false},
		{"kdb://db.example:1234", "db.example:1234", 0, false, true},
		{"esdb://admin:changeit@localhost:2113", "localhost:2113", 0, false, true},
		{"kurrentdb+discover://cluster.example:2113", "cluster.example:2113", 0, true, true},
		{"kurrentdb://n1:2113,n2:2113,n3:2113?tls=false", "", 3, false, false},
	} {
		conf, err := parseConnectionString(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if conf.Address != c.address || len(conf.GossipSeeds) != c.seeds || conf.DnsDiscover != c.discover || conf.DisableTLS == c.tls {
			t.Errorf("%s: parsed %+v", c.in, conf)
		}
	}
	for _, bad := range []string{"", "localhost:2113", "http://localhost:2113", "kurrentdb://"} {
		if _, err := parseConnectionString(bad); err == nil {
			t.Errorf("parseConnectionString(%q) succeeded", bad)
		}
	}
	if got := redact("kurrentdb://admin:s3cret@n1:2113,n2:2113?tls=true"); strings.Contains(got, "s3cret") || !strings.Contains(got, "admin:xxxxx@n1") {
		t.Errorf("redact = %q", got)
	}
	if got := redact("kurrentdb://localhost:2113?tls=false"); got != "kurrentdb://localhost:2113?tls=false" {
		t.Errorf("redact changed a string without credentials: %q", got)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c := Config{ConnectionString: "kurrentdb://localhost:2113?tls=false"}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Logger == nil || c.Now == nil || c.OpenAttempts != 5 || c.RetryBackoff != 100*time.Millisecond ||
		c.MaxRetryBackoff != 5*time.Second || c.ReadBatch != 1024 || c.SubscriptionBuffer != 256 || c.CloseTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for name, c := range map[string]Config{
		"no connection string": {},
		"negative attempts":    {ConnectionString: "kdb://x", OpenAttempts: -1},
		"max below first":      {ConnectionString: "kdb://x", RetryBackoff: time.Second, MaxRetryBackoff: time.Millisecond},
	} {
		if err := c.fill(); err == nil {
			t.Errorf("%s: fill accepted %+v", name, c)
		}
	}
	if _, err := Open(context.Background(), Config{ConnectionString: "http://x"}); err == nil {
		t.Error("Open accepted a bad scheme")
	}
}

// TestErrorMapping checks the classification of errors a test can build without a server (the
// client's *esdb.Error cannot be built outside its package; the fake server test covers it).
func TestErrorMapping(t *testing.T) {
	s, err := newStore(Config{ConnectionString: "kurrentdb://localhost:1?tls=false", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	grpcErr := func(c codes.Code) error { return status.Error(c, c.String()) }
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"unavailable", grpcErr(codes.Unavailable), eventstore.ErrUnavailable},
		{"deadline", grpcErr(codes.DeadlineExceeded), eventstore.ErrUnavailable},
		{"append timeout", grpcErr(codes.Aborted), eventstore.ErrUnavailable},
		{"discovery", errors.New("maximum discovery attempt count reached: 10. Last Error: boom"), eventstore.ErrUnavailable},
		{"invalid", fmt.Errorf("%w: x", eventstore.ErrInvalidEvent), eventstore.ErrInvalidEvent},
	}
	for _, c := range cases {
		if got := s.mapError(ctx, "op", c.err); !errors.Is(got, c.want) {
			t.Errorf("%s: mapError = %v, want %v", c.name, got, c.want)
		}
	}
	if got := s.mapError(ctx, "op", grpcErr(codes.PermissionDenied)); errors.Is(got, eventstore.ErrUnavailable) || !permanent(got) {
		t.Errorf("permission denied mapped to %v", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got := s.mapError(cctx, "op", grpcErr(codes.Canceled)); !errors.Is(got, context.Canceled) {
		t.Errorf("cancelled context: %v", got)
	}
	if !isInvalidPosition(fmt.Errorf("x: %w", grpcErr(codes.InvalidArgument))) || !isNotFound(grpcErr(codes.NotFound)) {
		t.Error("status codes are not seen through wrapping")
	}
}

// unreachable returns a connection string to a loopback port nothing listens on, with a
// discovery short enough for tests.
func unreachable(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "kurrentdb://" + addr + "?tls=false&maxDiscoverAttempts=2&discoveryInterval=10&gossipTimeout=1"
}

func TestAppendValidatesBeforeContactingTheServer(t *testing.T) {
	s, err := newStore(Config{ConnectionString: unreachable(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	good := sampleEvent(t)
	cases := map[string]struct {
		stream string
		evs    []domain.EventData
	}{
		"foreign stream": {"orders-1", []domain.EventData{good}},
		"no events":      {"account-1", nil},
		"bad id":         {"account-1", []domain.EventData{{ID: "x", Type: "T", Data: []byte("{}")}}},
		"bad json":       {"account-1", []domain.EventData{{ID: domain.NewID(), Type: "T", Data: []byte("{")}}},
	}
	for name, c := range cases {
		if _, err := s.Append(ctx, c.stream, eventstore.Any, c.evs); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: %v, want ErrInvalidEvent", name, err)
		}
	}
	if _, err := s.ReadAll(ctx, 0, 0); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("ReadAll limit 0: %v", err)
	}
	s.mu.Lock()
	created := s.nextID
	s.mu.Unlock()
	if created != 0 {
		t.Errorf("invalid calls created %d clients", created)
	}
}

// TestUnreachableServer runs the real client against a closed loopback port: Open gives up
// with ErrUnavailable after trying a fresh client each time, calls fail with ErrUnavailable
// instead of hanging (also many at once, which the client's connection loop cannot take
// while it discovers), and Close is prompt.
func TestUnreachableServer(t *testing.T) {
	cs := unreachable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Now()
	_, err := Open(ctx, Config{ConnectionString: cs, Logger: testLogger(t), OpenAttempts: 3, RetryBackoff: 10 * time.Millisecond})
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	t.Logf("Open gave up after %v: %v", time.Since(start), err)

	s, err := newStore(Config{ConnectionString: cs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 4 {
			case 0:
				_, err = s.Append(ctx, "account-"+domain.NewID(), eventstore.NoStream, []domain.EventData{sampleEvent(t)})
			case 1:
				_, err = s.ReadStream(ctx, "account-1", 1, 0)
			case 2:
				_, err = s.ReadAll(ctx, 0, 10)
			case 3:
				_, err = s.Head(ctx)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, eventstore.ErrUnavailable) {
			t.Errorf("call on an unreachable server: %v, want ErrUnavailable", err)
		}
	}
	if _, err := s.Subscribe(ctx, 0); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Errorf("Subscribe: %v, want ErrUnavailable", err)
	}
	s.mu.Lock()
	clients, open := s.nextID, len(s.conns)
	s.mu.Unlock()
	if clients < 2 {
		t.Errorf("only %d client(s) were created; a failed discovery must lead to a fresh client", clients)
	}
	t.Logf("%d clients created, %d not yet closed", clients, open)

	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
	if _, err := s.Head(ctx); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Head after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Subscribe(ctx, 0); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCallHonoursContext: a call whose context ends while the client is still discovering
// returns at once with the context's error.
func TestCallHonoursContext(t *testing.T) {
	// A listener that accepts connections and never answers: discovery waits for its gossip
	// timeout (1s here).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	s, err := newStore(Config{ConnectionString: "kurrentdb://" + l.Addr().String() + "?tls=false&maxDiscoverAttempts=1&gossipTimeout=1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Head(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Head = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Head returned after %v, long after its context ended", d)
	}
}
