// Package eventstoretest is the contract every eventstore.Store backend must meet. A backend
// runs it from a one-line test:
//
//	func TestContract(t *testing.T) { eventstoretest.Run(t, newStore) }
//
// The suite tolerates a shared server: it writes only to streams with fresh names and, for
// ReadAll and Subscribe, looks only at the events it wrote itself after the head it saw when
// the test began.
package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// NewStore opens a store for one test; it registers its own cleanup with t.Cleanup.
type NewStore func(t *testing.T) eventstore.Store

// Run runs every contract test against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewStore)
	}{
		{"AppendReadRoundTrip", testRoundTrip},
		{"ExpectedVersionRules", testExpectedVersion},
		{"InvalidAppends", testInvalid},
		{"ConcurrentSameVersionOneWins", testRace},
		{"ReadAllOrderAcrossStreams", testReadAllOrder},
		{"SubscribeFromStartAndMiddleWhileWriting", testSubscribeWhileWriting},
		{"LargeEvent", testLargeEvent},
		{"ManySmallEvents", testManySmall},
		{"Cancellation", testCancellation},
		{"CloseEndsSubscription", testCloseEndsSubscription},
		{"HashChain", testHashChain},
		{"Checkpoints", testCheckpoints},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

// streamName returns a fresh stream id with a Vigil prefix, unique across runs.
func streamName(kind string) string {
	return domain.StreamPrefixSystem + "contract-" + kind + "-" + domain.NewID()
}

func event(t testing.TB, typ string, n int) domain.EventData {
	t.Helper()
	e, err := domain.NewEventData(typ, 1, map[string]any{"n": n}, domain.Metadata{
		Actor:            domain.Actor{Type: domain.ActorAccount, ID: "acc-1"},
		SubjectAccountID: "acc-1",
		IP:               "203.0.113.7",
		UserAgent:        "contract-test/1",
		ClientID:         "portal",
		CorrelationID:    "corr-1",
		CausationID:      "cause-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func events(t testing.TB, typ string, from, count int) []domain.EventData {
	out := make([]domain.EventData, count)
	for i := range out {
		out[i] = event(t, typ, from+i)
	}
	return out
}

// ctxT is a context for a test that would need at most d on an idle machine without the race
// detector, scaled for this one (testwait.Deadline).
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := testwait.Context(d)
	t.Cleanup(cancel)
	return ctx
}

func mustHead(t *testing.T, ctx context.Context, s eventstore.Store) uint64 {
	t.Helper()
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

func testRoundTrip(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 15*time.Second)
	stream := streamName("roundtrip")
	before := time.Now().Add(-time.Second)
	in := events(t, "ThingHappened", 0, 3)
	in[1].SchemaVersion = 2
	res, err := s.Append(ctx, stream, eventstore.NoStream, in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.NextVersion != 3 || res.FirstPosition == 0 || res.LastPosition < res.FirstPosition {
		t.Fatalf("AppendResult = %+v, want NextVersion 3 and positions set", res)
	}
	if h := mustHead(t, ctx, s); h < res.LastPosition {
		t.Fatalf("Head = %d, before last appended position %d", h, res.LastPosition)
	}
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil {
		t.Fatalf("ReadStream: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("ReadStream returned %d events, want 3", len(got))
	}
	for i, e := range got {
		w := in[i]
		if e.ID != w.ID || e.Type != w.Type || e.StreamID != stream || e.Version != uint64(i+1) || e.SchemaVersion != w.SchemaVersion {
			t.Errorf("event %d = %+v, want id %s type %s version %d schema %d", i, e, w.ID, w.Type, i+1, w.SchemaVersion)
		}
		if !jsonEqual(e.Data, w.Data) {
			t.Errorf("event %d data = %s, want %s", i, e.Data, w.Data)
		}
		if e.Metadata != w.Metadata {
			t.Errorf("event %d metadata = %+v, want %+v", i, e.Metadata, w.Metadata)
		}
		if e.RecordedAt.Before(before) || e.RecordedAt.After(time.Now().Add(time.Minute)) || e.RecordedAt.Location() != time.UTC {
			t.Errorf("event %d RecordedAt = %v, want a UTC time around now", i, e.RecordedAt)
		}
		if i > 0 && e.Position <= got[i-1].Position {
			t.Errorf("positions not increasing: %d then %d", got[i-1].Position, e.Position)
		}
	}
	if got[0].Position != res.FirstPosition || got[2].Position != res.LastPosition {
		t.Errorf("positions %d..%d, AppendResult said %d..%d", got[0].Position, got[2].Position, res.FirstPosition, res.LastPosition)
	}
	// Reading from the middle and with a limit.
	mid, err := s.ReadStream(ctx, stream, 2, 1)
	if err != nil || len(mid) != 1 || mid[0].Version != 2 {
		t.Fatalf("ReadStream(from 2, limit 1) = %v, %v; want version 2 only", mid, err)
	}
	// A stream that does not exist reads as empty, not as an error.
	none, err := s.ReadStream(ctx, streamName("missing"), 1, 0)
	if err != nil || len(none) != 0 {
		t.Fatalf("ReadStream(missing) = %v, %v; want empty, nil", none, err)
	}
	// ReadAll after the position before our first event returns our events first.
	all, err := s.ReadAll(ctx, res.FirstPosition-1, 3)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(all) != 3 || all[0].ID != in[0].ID || all[2].ID != in[2].ID {
		t.Fatalf("ReadAll after %d = %v, want our three events", res.FirstPosition-1, ids(all))
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func ids(evs []domain.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testExpectedVersion(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 15*time.Second)
	stream := streamName("expected")
	wrong := func(name string, exp eventstore.ExpectedVersion) {
		t.Helper()
		_, err := s.Append(ctx, stream, exp, events(t, "Nope", 0, 1))
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			t.Errorf("%s: Append(expected %s) error = %v, want ErrWrongExpectedVersion", name, exp, err)
		}
	}
	ok := func(name string, exp eventstore.ExpectedVersion, wantVersion uint64) {
		t.Helper()
		res, err := s.Append(ctx, stream, exp, events(t, "Yes", 0, 1))
		if err != nil {
			t.Fatalf("%s: Append(expected %s): %v", name, exp, err)
		}
		if res.NextVersion != wantVersion {
			t.Errorf("%s: NextVersion = %d, want %d", name, res.NextVersion, wantVersion)
		}
	}
	wrong("exact version on a missing stream", eventstore.Exact(1))
	ok("no stream on a missing stream", eventstore.NoStream, 1)
	wrong("no stream on an existing stream", eventstore.NoStream)
	wrong("stale version", eventstore.Exact(5))
	ok("exact version", eventstore.Exact(1), 2)
	wrong("the version before", eventstore.Exact(1))
	ok("any", eventstore.Any, 3)
	ok("any on a new stream", eventstore.Any, 4)
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("stream holds %d events after 4 accepted appends (and rejected ones), want 4", len(got))
	}
	for i, e := range got {
		if e.Type != "Yes" || e.Version != uint64(i+1) {
			t.Errorf("event %d: type %s version %d; a rejected append leaked or versions skip", i, e.Type, e.Version)
		}
	}
	// Any on a missing stream starts it at version 1.
	res, err := s.Append(ctx, streamName("any-new"), eventstore.Any, events(t, "Yes", 0, 2))
	if err != nil || res.NextVersion != 2 {
		t.Fatalf("Any on a new stream: %+v, %v; want NextVersion 2", res, err)
	}
}

func testInvalid(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 15*time.Second)
	stream := streamName("invalid")
	good := event(t, "Fine", 1)
	cases := map[string]struct {
		stream string
		exp    eventstore.ExpectedVersion
		evs    []domain.EventData
	}{
		"no events":         {stream, eventstore.Any, nil},
		"empty stream id":   {"", eventstore.Any, []domain.EventData{good}},
		"no type":           {stream, eventstore.Any, []domain.EventData{{ID: domain.NewID(), Data: []byte(`{}`)}}},
		"no id":             {stream, eventstore.Any, []domain.EventData{{Type: "X", Data: []byte(`{}`)}}},
		"data is not JSON":  {stream, eventstore.Any, []domain.EventData{{ID: domain.NewID(), Type: "X", Data: []byte(`{"a":`)}}},
		"negative expected": {stream, eventstore.ExpectedVersion(-7), []domain.EventData{good}},
	}
	for name, c := range cases {
		if _, err := s.Append(ctx, c.stream, c.exp, c.evs); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: error = %v, want ErrInvalidEvent", name, err)
		}
	}
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("after invalid appends the stream holds %d events (%v), want none", len(got), err)
	}
}

func testRace(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 30*time.Second)
	stream := streamName("race")
	if _, err := s.Append(ctx, stream, eventstore.NoStream, events(t, "Start", 0, 1)); err != nil {
		t.Fatal(err)
	}
	const racers = 50
	var (
		wins, conflicts atomic.Int32
		wg              sync.WaitGroup
		start           = make(chan struct{})
		other           = make(chan error, racers)
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, stream, eventstore.Exact(1), events(t, fmt.Sprintf("Racer%d", i), 0, 2))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, eventstore.ErrWrongExpectedVersion):
				conflicts.Add(1)
			default:
				other <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(other)
	for err := range other {
		t.Errorf("racer failed with an error other than a conflict: %v", err)
	}
	if wins.Load() != 1 || conflicts.Load() != racers-1 {
		t.Fatalf("%d wins and %d conflicts, want exactly 1 and %d", wins.Load(), conflicts.Load(), racers-1)
	}
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Type != got[2].Type || !strings.HasPrefix(got[1].Type, "Racer") {
		t.Fatalf("stream after the race: %d events %v; want Start plus the two events of one racer", len(got), types(got))
	}
}

func types(evs []domain.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func testReadAllOrder(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 15*time.Second)
	start := mustHead(t, ctx, s)
	a, b := streamName("order-a"), streamName("order-b")
	var want []string
	for i := range 5 {
		for _, st := range []string{a, b} {
			e := events(t, "Interleaved", i, 2)
			if _, err := s.Append(ctx, st, eventstore.Any, e); err != nil {
				t.Fatal(err)
			}
			want = append(want, e[0].ID, e[1].ID)
		}
	}
	got := readOurs(t, ctx, s, start, func(st string) bool { return st == a || st == b }, len(want), 3)
	if strings.Join(ids(got), ",") != strings.Join(want, ",") {
		t.Fatalf("ReadAll order across streams differs from append order\n got %v\nwant %v", ids(got), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Fatalf("positions not increasing at %d: %d then %d", i, got[i-1].Position, got[i].Position)
		}
	}
}

// readOurs pages through ReadAll from start with the given page size, keeping the events of
// our streams, until it has want of them or the log ends.
func readOurs(t *testing.T, ctx context.Context, s eventstore.Store, start uint64, ours func(string) bool, want, page int) []domain.Envelope {
	t.Helper()
	var out []domain.Envelope
	pos := start
	for len(out) < want {
		evs, err := s.ReadAll(ctx, pos, page)
		if err != nil {
			t.Fatalf("ReadAll(after %d): %v", pos, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Position <= pos {
				t.Fatalf("ReadAll(after %d) returned position %d", pos, e.Position)
			}
			pos = e.Position
			if ours(e.StreamID) {
				out = append(out, e)
			}
		}
	}
	return out
}

// collect reads n events of our streams from sub, failing after testwait.Deadline(d). The
// subscription's context must outlast that deadline: a subscription whose context ended stops
// with a nil error.
func collect(t *testing.T, sub eventstore.Subscription, ours func(string) bool, n int, d time.Duration) []domain.Envelope {
	t.Helper()
	var out []domain.Envelope
	timeout := testwait.Deadline(d)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events: %v (nil: its context ended or the store closed)", len(out), n, sub.Err())
			}
			if ours(e.StreamID) {
				out = append(out, e)
			}
		case <-deadline:
			t.Fatalf("subscription delivered %d of %d events within %v", len(out), n, timeout)
		}
	}
	return out
}

func testSubscribeWhileWriting(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 60*time.Second)
	prefix := streamName("sub")
	ours := func(st string) bool { return strings.HasPrefix(st, prefix) }
	start := mustHead(t, ctx, s)

	// A first part of the log exists before anyone subscribes.
	const before = 200
	for i := range before / 10 {
		if _, err := s.Append(ctx, fmt.Sprintf("%s-pre%d", prefix, i%4), eventstore.Any, events(t, "Before", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	preEvents := readOurs(t, ctx, s, start, ours, before, 100)
	if len(preEvents) != before {
		t.Fatalf("ReadAll found %d of the %d events written before subscribing", len(preEvents), before)
	}
	middle := preEvents[before/2-1].Position

	subStart, err := s.Subscribe(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	defer subStart.Close()
	subMiddle, err := s.Subscribe(ctx, middle)
	if err != nil {
		t.Fatal(err)
	}
	defer subMiddle.Close()

	// 8 writers append while both subscriptions catch up.
	const writers, perWriter = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%s-w%d", prefix, w)
			for i := 0; i < perWriter; i += 5 {
				if _, err := s.Append(ctx, stream, eventstore.Any, events(t, "During", i, 5)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	total := before + writers*perWriter
	fromStart := collect(t, subStart, ours, total, 30*time.Second)
	fromMiddle := collect(t, subMiddle, ours, total-before/2, 30*time.Second)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	// What the log holds, in order, is what both subscriptions saw.
	logged := readOurs(t, ctx, s, start, ours, total, 500)
	checkSame(t, "from the start", fromStart, logged)
	checkSame(t, "from the middle", fromMiddle, logged[before/2:])
	// And nothing more arrives: no duplicate after the last event.
	select {
	case e, ok := <-subStart.Events():
		if ok && ours(e.StreamID) {
			t.Fatalf("extra event after the last one: position %d (a duplicate?)", e.Position)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func checkSame(t *testing.T, name string, got, want []domain.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, the log holds %d", name, len(got), len(want))
	}
	seen := make(map[string]bool, len(got))
	for i := range got {
		if seen[got[i].ID] {
			t.Fatalf("%s: duplicate event %s at index %d", name, got[i].ID, i)
		}
		seen[got[i].ID] = true
		if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
			t.Fatalf("%s: index %d is %s@%d, the log has %s@%d (gap or reordering)", name, i,
				got[i].ID, got[i].Position, want[i].ID, want[i].Position)
		}
	}
}

func testLargeEvent(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 30*time.Second)
	stream := streamName("large")
	blob := strings.Repeat("x", 1<<20-64)
	e, err := domain.NewEventData("Large", 1, map[string]string{"blob": blob}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Data) < 1<<20-64 {
		t.Fatalf("test event is only %d bytes", len(e.Data))
	}
	if _, err := s.Append(ctx, stream, eventstore.NoStream, []domain.EventData{e}); err != nil {
		t.Fatalf("Append of a 1 MiB event: %v", err)
	}
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadStream: %d events, %v", len(got), err)
	}
	var back map[string]string
	if err := json.Unmarshal(got[0].Data, &back); err != nil || back["blob"] != blob {
		t.Fatalf("1 MiB event came back different (%d bytes, %v)", len(got[0].Data), err)
	}
}

func testManySmall(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 100*time.Second)
	stream := streamName("many")
	start := mustHead(t, ctx, s)
	const total, per = 100_000, 1000
	sub, err := s.Subscribe(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < total; i += per {
		if _, err := s.Append(ctx, stream, eventstore.Exact(uint64(i)), events(t, "Small", i, per)); err != nil {
			t.Fatalf("Append at %d: %v", i, err)
		}
	}
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total || got[total-1].Version != total {
		t.Fatalf("ReadStream returned %d events, want %d", len(got), total)
	}
	all := readOurs(t, ctx, s, start, func(st string) bool { return st == stream }, total, 4096)
	if len(all) != total {
		t.Fatalf("ReadAll returned %d of %d events", len(all), total)
	}
	subbed := collect(t, sub, func(st string) bool { return st == stream }, total, 80*time.Second)
	for i := range subbed {
		if subbed[i].ID != all[i].ID || uint64(i+1) != subbed[i].Version {
			t.Fatalf("subscription index %d: %s v%d, log %s", i, subbed[i].ID, subbed[i].Version, all[i].ID)
		}
	}
}

func testCancellation(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stream := streamName("cancel")
	if _, err := s.Append(ctx, stream, eventstore.Any, events(t, "Cancelled", 0, 1)); err == nil {
		t.Errorf("Append with a cancelled context succeeded")
	}
	if _, err := s.ReadAll(ctx, 0, 10); err == nil {
		t.Errorf("ReadAll with a cancelled context succeeded")
	}
	live := ctxT(t, 15*time.Second)
	got, err := s.ReadStream(live, stream, 1, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("a cancelled append left %d events (%v)", len(got), err)
	}
	// Cancelling a subscription's context ends it with a nil error and a closed channel.
	subCtx, subCancel := context.WithCancel(live)
	sub, err := s.Subscribe(subCtx, mustHead(t, live, s))
	if err != nil {
		t.Fatal(err)
	}
	subCancel()
	timeout := time.After(testwait.Deadline(5 * time.Second))
	for {
		select {
		case _, ok := <-sub.Events():
			if ok {
				continue
			}
			if err := sub.Err(); err != nil {
				t.Fatalf("cancelled subscription ended with %v, want nil", err)
			}
			return
		case <-timeout:
			t.Fatalf("subscription did not end within %v of its context being cancelled", testwait.Deadline(5*time.Second))
		}
	}
}

func testCloseEndsSubscription(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx := ctxT(t, 15*time.Second)
	sub, err := s.Subscribe(ctx, mustHead(t, ctx, s))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range sub.Events() {
		}
		close(done)
	}()
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(testwait.Deadline(5 * time.Second)):
		t.Fatal("Close did not end the subscription")
	}
}
