package stripe

import (
	"sync"
	"testing"
)

// TestPickerIndexIsAStripe: every index handed out, from many goroutines and across garbage
// collections (which empty the pool), is a stripe.
func TestPickerIndexIsAStripe(t *testing.T) {
	var p Picker
	var wg sync.WaitGroup
	seen := make([]bool, N)
	var mu sync.Mutex
	for range 16 {
		wg.Go(func() {
			for range 1000 {
				i := p.Index()
				if i < 0 || i >= N {
					t.Errorf("index %d, not in [0, %d)", i, N)
					return
				}
				mu.Lock()
				seen[i] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !seen[p.Index()] {
		t.Error("the last index was never handed out before")
	}
}

// TestRWMutexExcludesWritersFromEveryStripe: readers on any stripe never see a writer's
// half-done change (two values a writer changes together always read equal), and writers
// exclude each other. Run with -race, the detector also checks the locking.
func TestRWMutexExcludesWritersFromEveryStripe(t *testing.T) {
	var m RWMutex
	var a, b int
	var wg sync.WaitGroup
	const writers, readers, rounds = 4, 16, 2000
	for range writers {
		wg.Go(func() {
			for range rounds {
				m.Lock()
				a++
				b++
				m.Unlock()
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range rounds {
				s := m.RLock()
				if a != b {
					t.Errorf("a reader on stripe %d saw a half-done write: %d, %d", s, a, b)
				}
				m.RUnlock(s)
			}
		})
	}
	wg.Wait()
	if a != writers*rounds || b != a {
		t.Fatalf("a %d, b %d, want %d", a, b, writers*rounds)
	}
}
