package eventstoretest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
)

func chained(t *testing.T, s eventstore.Store) eventstore.Chain {
	t.Helper()
	c, ok := s.(eventstore.Chain)
	if !ok {
		t.Fatalf("%T does not implement eventstore.Chain", s)
	}
	return c
}

func mustChainHead(t *testing.T, ctx context.Context, c eventstore.Chain) (uint64, chain.Sum) {
	t.Helper()
	pos, sum, err := c.ChainHead(ctx)
	if err != nil {
		t.Fatalf("ChainHead: %v", err)
	}
	return pos, sum
}

// testHashChain: every event read back carries the hash that chains it to the event before it
// in the global order, whichever read returns it, and ChainHead names the last one.
func testHashChain(t *testing.T, newStore NewStore) {
	s := newStore(t)
	c := chained(t, s)
	ctx := ctxT(t, 30*time.Second)
	startPos, startSum := mustChainHead(t, ctx, c)
	a, b := streamName("chain-a"), streamName("chain-b")
	var ours []string
	for i := range 4 {
		for _, st := range []string{a, b} {
			evs := events(t, "Chained", i, 1+i%3)
			if _, err := s.Append(ctx, st, eventstore.Any, evs); err != nil {
				t.Fatal(err)
			}
			ours = append(ours, ids(toEnvelopes(evs))...)
		}
	}
	sub, err := s.Subscribe(ctx, startPos)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// ReadAll from the head seen before: each event follows the one before it.
	// The chain covers the events as stored: a store that changes them on the way out (the
	// sealing decorator opens personal values) is checked on what it stores.
	stored := s
	if in, ok := s.(interface{ Inner() eventstore.Store }); ok {
		stored = in.Inner()
	}
	var logged []domain.Envelope
	prev, pos := startSum, startPos
	var h chain.Hasher
	for found := 0; found < len(ours); {
		page, err := stored.ReadAll(ctx, pos, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			t.Fatalf("ReadAll found %d of our %d events", found, len(ours))
		}
		for _, e := range page {
			want := h.Next(prev, &e)
			if e.Hash != want.String() {
				t.Fatalf("event at position %d has hash %q, want %s (the hash of its canonical bytes after %s)", e.Position, e.Hash, want, prev)
			}
			prev, pos = want, e.Position
			logged = append(logged, e)
			if strings.HasPrefix(e.StreamID, domain.StreamPrefixSystem+"contract-chain-") && (e.StreamID == a || e.StreamID == b) {
				found++
			}
		}
	}
	// ChainHead is at or after our last event, with that event's hash when nothing came after.
	if hp, hs := mustChainHead(t, ctx, c); hp < pos || (hp == pos && hs != prev) {
		t.Fatalf("ChainHead = %d %s, after reading up to %d %s", hp, hs, pos, prev)
	}
	byID := map[string]string{}
	for _, e := range logged {
		byID[e.ID] = e.Hash
	}
	// ReadStream and Subscribe give the same hashes.
	for _, st := range []string{a, b} {
		evs, err := s.ReadStream(ctx, st, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Hash == "" || e.Hash != byID[e.ID] {
				t.Fatalf("ReadStream(%s) gives event %s hash %q, ReadAll %q", st, e.ID, e.Hash, byID[e.ID])
			}
		}
	}
	got := collect(t, sub, func(st string) bool { return st == a || st == b }, len(ours), 20*time.Second)
	for _, e := range got {
		if e.Hash != byID[e.ID] {
			t.Fatalf("Subscribe gives event %s hash %q, ReadAll %q", e.ID, e.Hash, byID[e.ID])
		}
	}
	// The first event of the log follows the zero hash.
	first, err := stored.ReadAll(ctx, 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("ReadAll(0, 1) = %v, %v", first, err)
	}
	if want := chain.Next(chain.Zero, &first[0]); first[0].Hash != want.String() {
		t.Fatalf("the first event's hash is %q, want %s (after 32 zero bytes)", first[0].Hash, want)
	}
}

func toEnvelopes(in []domain.EventData) []domain.Envelope {
	out := make([]domain.Envelope, len(in))
	for i, e := range in {
		out[i] = domain.Envelope{ID: e.ID}
	}
	return out
}

// testCheckpoints: a signed checkpoint of the head is stored and listed; a second one at the
// same place is stale, one with the wrong hash or at no event is refused, and the
// Checkpointer writes one only when the log has grown.
func testCheckpoints(t *testing.T, newStore NewStore) {
	s := newStore(t)
	c := chained(t, s)
	ctx := ctxT(t, 30*time.Second)
	keys, _, err := chain.EnsureKeyRing(filepath.Join(t.TempDir(), "log-signing.key"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	appendOne := func() uint64 {
		t.Helper()
		res, err := s.Append(ctx, streamName("checkpoint"), eventstore.NoStream, events(t, "Checkpointed", 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		return res.LastPosition
	}
	appendOne()
	pos, sum := mustChainHead(t, ctx, c)
	cp := keys.Sign(pos, sum, time.Now())
	if err := c.AppendCheckpoint(ctx, cp); err != nil {
		t.Fatalf("AppendCheckpoint at the head: %v", err)
	}
	listed, err := c.Checkpoints(ctx, pos-1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) == 0 || listed[0] != cp {
		t.Fatalf("Checkpoints(after %d) = %+v, want %+v first", pos-1, listed, cp)
	}
	if err := keys.Public().Verify(listed[0]); err != nil {
		t.Fatalf("the stored checkpoint does not verify: %v", err)
	}
	if err := c.AppendCheckpoint(ctx, keys.Sign(pos, sum, time.Now())); !errors.Is(err, chain.ErrCheckpointStale) {
		t.Fatalf("a second checkpoint at %d: %v, want ErrCheckpointStale", pos, err)
	}
	appendOne()
	pos2, sum2 := mustChainHead(t, ctx, c)
	if err := c.AppendCheckpoint(ctx, keys.Sign(pos2, sum, time.Now())); !errors.Is(err, chain.ErrCheckpointMismatch) {
		t.Fatalf("a checkpoint with the previous hash: %v, want ErrCheckpointMismatch", err)
	}
	if err := c.AppendCheckpoint(ctx, keys.Sign(pos2+1<<40, sum2, time.Now())); !errors.Is(err, chain.ErrCheckpointMismatch) {
		t.Fatalf("a checkpoint beyond the log: %v, want ErrCheckpointMismatch", err)
	}
	cpr := chain.NewCheckpointer(chain.CheckpointerConfig{Log: c, Keys: keys, Interval: time.Hour})
	got, wrote, err := cpr.Checkpoint(ctx)
	if err != nil || !wrote || got.Position < pos2 {
		t.Fatalf("Checkpointer.Checkpoint after an append = %+v, %v, %v; want one at %d or later", got, wrote, err, pos2)
	}
	if _, wrote, err := cpr.Checkpoint(ctx); err != nil || wrote {
		t.Fatalf("Checkpointer.Checkpoint with nothing new = %v, %v; want nothing written", wrote, err)
	}
	cpr.Start(ctx)
	last := appendOne()
	if err := cpr.Stop(ctx); err != nil {
		t.Fatalf("Checkpointer.Stop: %v", err)
	}
	after, err := c.Checkpoints(ctx, got.Position, 10)
	if err != nil || len(after) == 0 || after[len(after)-1].Position < last {
		t.Fatalf("after Stop the checkpoints after %d are %+v (%v); want one at the head %d", got.Position, after, err, last)
	}
}
