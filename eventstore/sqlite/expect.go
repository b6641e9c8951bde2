package sqlite

import (
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
)

// expected holds the appends announced to the writer (Expect) and not yet queued. A commit
// whose sync would otherwise be paid alone waits for those due within the commit window: a
// sign-in's commit waits for the one whose hash ends a few milliseconds later, and the two
// share a sync. Nothing waits for an append that nobody announced.
type expected struct {
	mu      sync.Mutex
	list    []*domain.Expectation
	changed chan struct{} // a token whenever an expectation is withdrawn
}

// Expect implements domain.Expecter: the writer may hold a commit until an append due at
// about at is queued (its context carries the expectation, domain.WithExpectation), for
// no longer than the commit window. It returns nil when the store never holds a commit
// (CommitWindow negative, or read-only).
func (s *Store) Expect(at time.Time) *domain.Expectation {
	if s.cfg.CommitWindow < 0 || s.cfg.ReadOnly {
		return nil
	}
	e := domain.NewExpectation(at, s.expected.drop)
	s.expected.mu.Lock()
	s.expected.list = append(s.expected.list, e)
	s.expected.mu.Unlock()
	return e
}

func (x *expected) drop(e *domain.Expectation) {
	x.mu.Lock()
	for i, o := range x.list {
		if o == e {
			last := len(x.list) - 1
			x.list[i] = x.list[last]
			x.list[last] = nil
			x.list = x.list[:last]
			break
		}
	}
	x.mu.Unlock()
	select {
	case x.changed <- struct{}{}:
	default:
	}
}

// due reports whether an announced append is due by deadline. One overdue by more than
// window (its caller slower than announced, or one that forgot Done) is not waited for.
func (x *expected) due(now, deadline time.Time, window time.Duration) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.list {
		if !e.At.After(deadline) && e.At.Add(window).After(now) {
			return true
		}
	}
	return false
}

// awaitExpected adds to batch the appends announced to arrive within the commit window from
// first (when the batch's first request was taken), waiting for them until they are queued or
// the window ends, whichever is first; with nothing announced it returns at once.
func (s *Store) awaitExpected(batch []*appendReq, first time.Time) []*appendReq {
	window := s.cfg.CommitWindow
	if window <= 0 {
		return batch
	}
	deadline := first.Add(window)
	var timer *time.Timer
	for len(batch) < s.cfg.MaxBatch && s.expected.due(time.Now(), deadline, window) {
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case req := <-s.reqs:
			batch = append(batch, req)
		case <-s.expected.changed:
		case <-timer.C:
			return s.drainQueued(batch)
		case <-s.closing:
			return batch
		}
	}
	return s.drainQueued(batch)
}

// drainQueued adds to batch what is queued now, up to MaxBatch, without waiting.
func (s *Store) drainQueued(batch []*appendReq) []*appendReq {
	for len(batch) < s.cfg.MaxBatch {
		select {
		case req := <-s.reqs:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}
