package wmbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/wmbridge"
)

// openStore opens a real SQLite store in a temporary directory.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "events.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendN appends n events, round-robin over three streams, one append each, and returns
// their positions in order.
func appendN(t *testing.T, s eventstore.Store, n int) []uint64 {
	t.Helper()
	var pos []uint64
	for i := range n {
		ev, err := domain.NewEventData(fmt.Sprintf("Test%d", i%2), 1, map[string]int{"n": i},
			domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, CorrelationID: domain.NewID()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(context.Background(), fmt.Sprintf("%swmbridge-%d", domain.StreamPrefixSystem, i%3), eventstore.Any, []domain.EventData{ev})
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, res.LastPosition)
	}
	return pos
}

func newSubscriber(t *testing.T, s eventstore.Store, cfg wmbridge.SubscriberConfig) *wmbridge.Subscriber {
	t.Helper()
	sub, err := wmbridge.NewSubscriber(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// next receives one message within 5 s.
func next(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the channel was closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
	}
	return nil
}

// closed waits (5 s at most) for the channel to be closed, acking whatever still arrives.
func closed(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			m.Ack()
		case <-deadline:
			t.Fatal("the channel was not closed within 5 s")
		}
	}
}

func position(t *testing.T, m *message.Message) uint64 {
	t.Helper()
	p, err := strconv.ParseUint(m.Metadata.Get(wmbridge.MetaPosition), 10, 64)
	if err != nil {
		t.Fatalf("position metadata %q", m.Metadata.Get(wmbridge.MetaPosition))
	}
	return p
}

type checkpoints map[string]uint64

func (c checkpoints) Checkpoint(_ context.Context, name string) (uint64, error) { return c[name], nil }

// TestDeliversTheLogInOrder: every event once, in global order, one at a time, with its
// position, type and stream as metadata and the envelope as payload; then live events. The
// envelope a delivered message carries (what Envelope returns without decoding) is the one
// its JSON payload holds, and a copy of the message (no context of its own) gives the same
// from the payload.
func TestDeliversTheLogInOrder(t *testing.T) {
	s := openStore(t)
	want := appendN(t, s, 30)
	sub := newSubscriber(t, s, wmbridge.SubscriberConfig{})
	ch, err := sub.Subscribe(t.Context(), "projection")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range want {
		m := next(t, ch)
		ev, err := wmbridge.Envelope(m)
		if err != nil {
			t.Fatal(err)
		}
		if position(t, m) != p || ev.Position != p || m.UUID != ev.ID ||
			m.Metadata.Get(wmbridge.MetaType) != ev.Type || ev.Type != fmt.Sprintf("Test%d", i%2) ||
			m.Metadata.Get(wmbridge.MetaStream) != ev.StreamID || ev.StreamID != fmt.Sprintf("%swmbridge-%d", domain.StreamPrefixSystem, i%3) {
			t.Fatalf("message %d: metadata %v, envelope %+v, want position %d", i, m.Metadata, ev, p)
		}
		var fromPayload domain.Envelope
		if err := json.Unmarshal(m.Payload, &fromPayload); err != nil || !reflect.DeepEqual(ev, fromPayload) {
			t.Fatalf("message %d: envelope %+v, payload %+v (%v)", i, ev, fromPayload, err)
		}
		if copied, err := wmbridge.Envelope(m.Copy()); err != nil || !reflect.DeepEqual(copied, fromPayload) {
			t.Fatalf("message %d: copy %+v %v, want %+v", i, copied, err, fromPayload)
		}
		// One at a time: nothing else is offered before the ack.
		select {
		case extra := <-ch:
			t.Fatalf("message %d offered before %d was acked", position(t, extra), p)
		case <-time.After(5 * time.Millisecond):
		}
		m.Ack()
	}
	// Live: an event appended now arrives next.
	live := appendN(t, s, 1)
	if m := next(t, ch); position(t, m) != live[0] {
		t.Fatalf("live event at %d, want %d", position(t, m), live[0])
	} else {
		m.Ack()
	}
}

// TestMoreMetadata: vigil_more is "1" while the store subscription already holds the next
// event, and "0" for the last one of a quiet log.
func TestMoreMetadata(t *testing.T) {
	s := openStore(t)
	want := appendN(t, s, 10)
	sub := newSubscriber(t, s, wmbridge.SubscriberConfig{})
	ch, err := sub.Subscribe(t.Context(), "projection")
	if err != nil {
		t.Fatal(err)
	}
	first := next(t, ch)
	time.Sleep(200 * time.Millisecond) // the store subscription reads ahead meanwhile
	first.Ack()
	var more []string
	for range want[1:] {
		m := next(t, ch)
		more = append(more, m.Metadata.Get(wmbridge.MetaMore))
		m.Ack()
	}
	if more[0] != "1" || more[len(more)-1] != "0" {
		t.Errorf("vigil_more of messages 2..10: %v; want 1 first (read ahead) and 0 last", more)
	}
	for _, v := range more {
		if v != "0" && v != "1" {
			t.Errorf("vigil_more %q", v)
		}
	}
}

// TestResumesAfterCheckpoint: a topic starts after its consumer's checkpoint; each topic has
// its own.
func TestResumesAfterCheckpoint(t *testing.T) {
	s := openStore(t)
	pos := appendN(t, s, 20)
	sub := newSubscriber(t, s, wmbridge.SubscriberConfig{Checkpoints: checkpoints{"late": pos[11], "done": pos[19]}})
	ch, err := sub.Subscribe(t.Context(), "late")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pos[12:] {
		m := next(t, ch)
		if position(t, m) != p {
			t.Fatalf("got position %d, want %d (the first after the checkpoint %d)", position(t, m), p, pos[11])
		}
		m.Ack()
	}
	fresh, err := sub.Subscribe(t.Context(), "fresh") // no checkpoint: from the beginning
	if err != nil {
		t.Fatal(err)
	}
	if m := next(t, fresh); position(t, m) != pos[0] {
		t.Errorf("a topic without checkpoint starts at %d, want %d", position(t, m), pos[0])
	} else {
		m.Ack()
	}
	done, err := sub.Subscribe(t.Context(), "done")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-done:
		t.Errorf("a consumer at the head got position %d", position(t, m))
	case <-time.After(100 * time.Millisecond):
	}
}

// TestNackRedelivers: a nacked event comes again (after the back-off, from the committed
// checkpoint), followed by the rest in order.
func TestNackRedelivers(t *testing.T) {
	s := openStore(t)
	pos := appendN(t, s, 5)
	cp := checkpoints{"p": 0}
	sub := newSubscriber(t, s, wmbridge.SubscriberConfig{Checkpoints: cp, NackBackoff: time.Millisecond})
	ch, err := sub.Subscribe(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch)
	m.Ack()
	cp["p"] = pos[0] // the consumer committed the first event
	m = next(t, ch)
	if position(t, m) != pos[1] {
		t.Fatalf("position %d, want %d", position(t, m), pos[1])
	}
	id := m.UUID
	m.Nack()
	again := next(t, ch)
	if position(t, again) != pos[1] || again.UUID != id {
		t.Fatalf("after a nack got position %d (%s), want %d (%s) again", position(t, again), again.UUID, pos[1], id)
	}
	again.Ack()
	for _, p := range pos[2:] {
		m := next(t, ch)
		if position(t, m) != p {
			t.Fatalf("position %d, want %d", position(t, m), p)
		}
		m.Ack()
	}
	// Nacked twice in a row: still the same event, never skipped.
	more := appendN(t, s, 1)
	for range 2 {
		m := next(t, ch)
		if position(t, m) != more[0] {
			t.Fatalf("position %d, want %d", position(t, m), more[0])
		}
		cp["p"] = pos[4]
		m.Nack()
	}
	if m := next(t, ch); position(t, m) != more[0] {
		t.Fatalf("position %d, want %d", position(t, m), more[0])
	} else {
		m.Ack()
	}
}

// TestCloseEndsEverySubscription: Close closes the channels, whether a message awaits its ack
// or the subscription waits for new events, and later Subscribe calls fail.
func TestCloseEndsEverySubscription(t *testing.T) {
	s := openStore(t)
	appendN(t, s, 3)
	sub, err := wmbridge.NewSubscriber(s, wmbridge.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	waitingForAck, err := sub.Subscribe(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	unacked := next(t, waitingForAck) // never acked
	idle, err := sub.Subscribe(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		next(t, idle).Ack()
	}
	time.Sleep(50 * time.Millisecond) // "b" now waits for new events
	done := make(chan error, 1)
	go func() { done <- sub.Close() }()
	closed(t, waitingForAck)
	closed(t, idle)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := sub.Subscribe(t.Context(), "c"); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	unacked.Ack() // harmless after the end
}

// TestContextCancellationEndsTheSubscription: cancelling Subscribe's context closes the
// channel (waiting for an ack or for new events) and cancels the message's context; other
// topics go on.
func TestContextCancellationEndsTheSubscription(t *testing.T) {
	s := openStore(t)
	pos := appendN(t, s, 2)
	sub := newSubscriber(t, s, wmbridge.SubscriberConfig{})

	ctx, cancel := context.WithCancel(t.Context())
	ch, err := sub.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	m := next(t, ch)
	cancel()
	closed(t, ch)
	select {
	case <-m.Context().Done():
	case <-time.After(5 * time.Second):
		t.Error("the message's context was not cancelled")
	}

	idleCtx, cancelIdle := context.WithCancel(t.Context())
	idle, err := sub.Subscribe(idleCtx, "b")
	if err != nil {
		t.Fatal(err)
	}
	for range pos {
		next(t, idle).Ack()
	}
	other, err := sub.Subscribe(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	cancelIdle()
	closed(t, idle)
	if m := next(t, other); position(t, m) != pos[0] {
		t.Errorf("the other topic got %d", position(t, m))
	}

	// A cancelled context before Subscribe: the channel closes at once (or Subscribe fails).
	dead, cancelDead := context.WithCancel(t.Context())
	cancelDead()
	if ch, err := sub.Subscribe(dead, "d"); err == nil {
		closed(t, ch)
	}
}
