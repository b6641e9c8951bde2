package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
)

// TestPollSlowsDownWhileNoOtherProcessAppends: a store that nobody else appends to polls the
// file less and less often, down to MaxPollInterval (its own appends do not count: they wake
// subscribers as they commit), and an append of another process (a second store on the file)
// still reaches its subscribers and brings the poll back to PollInterval.
func TestPollSlowsDownWhileNoOtherProcessAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	open := func() *Store {
		s, err := Open(Config{Path: path, PollInterval: 2 * time.Millisecond, MaxPollInterval: 40 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendOne := func(s *Store, stream string) {
		t.Helper()
		ev, err := domain.NewEventData("Polled", 1, map[string]string{"stream": stream}, domain.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, stream, eventstore.NoStream, []domain.EventData{ev}); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(a, "own-1") // its own append: no reason to poll faster
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: the poll's interval is %v after %d polls", what, time.Duration(a.pollInterval.Load()), a.polls.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("slowing down to MaxPollInterval", func() bool { return a.pollInterval.Load() == int64(40*time.Millisecond) })
	// At 2 ms throughout, the 40 ms interval would have come after more polls than
	// quietPolls per doubling (2 -> 4 -> ... -> 32 -> 40 ms: five doublings).
	if n := a.polls.Load(); n < 5*quietPolls || n > 6*quietPolls+10 {
		t.Fatalf("%d polls before the interval reached 40 ms, want about %d", n, 5*quietPolls)
	}

	sub, err := a.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b := open() // another process on the same file
	appendOne(b, "other-1")
	select {
	case env, ok := <-sub.Events():
		if !ok || env.StreamID != "other-1" {
			t.Fatalf("subscriber got %+v (open %v), want the other store's event", env, ok)
		}
	case <-ctx.Done():
		t.Fatal("the other store's append never reached the subscriber")
	}
	waitFor("back to PollInterval after another process's append", func() bool { return a.pollInterval.Load() == int64(2*time.Millisecond) })
}
