// Package stripe splits state that every request writes into stripes, one per processor (the
// Go scheduler's P) as far as there are stripes, so that requests running on different cores
// do not write the same cache lines. On a two-core server answering tens of thousands of
// requests a second, a counter or a read lock shared by every request moves its cache line
// between the cores on each of them (BENCHMARKS.md: whoami's session index and HTTP metrics).
package stripe

import (
	"sync"
	"sync/atomic"
)

// N is the number of stripes: the processors of a small server each get one of their own;
// on a larger one, a stripe shared by several processors still divides the traffic by N.
const N = 8

// Picker hands out stripe numbers with affinity to the processor that asks: a sync.Pool
// keeps a per-P cache, so a P that puts its number back gets the same one next time, and
// two Ps hold different numbers as long as there are no more Ps than stripes. A number lost
// to a garbage collection (pools are emptied) is replaced by the next one round robin; a
// stripe two Ps happen to share only costs them what a single shared value would. The zero
// Picker is ready to use.
type Picker struct {
	pool sync.Pool
	next atomic.Uint32
}

// Index returns the stripe number (0 to N-1) of the processor the caller runs on.
func (p *Picker) Index() int {
	v, ok := p.pool.Get().(*uint32)
	if !ok {
		i := p.next.Add(1) % N
		v = &i
	}
	i := int(*v)
	p.pool.Put(v)
	return i
}

// RWMutex is a reader/writer lock whose readers take only their processor's stripe: readers
// on different cores write different cache lines. A writer takes every stripe (in order), so
// writing costs N locks: for data read on every request and written rarely. The zero
// RWMutex is unlocked.
type RWMutex struct {
	picker Picker
	locks  [N]struct {
		sync.RWMutex
		_ [64]byte // keeps the next stripe's lock off this one's cache line
	}
}

// RLock locks the caller's stripe for reading and returns it, for RUnlock.
func (m *RWMutex) RLock() int {
	i := m.picker.Index()
	m.locks[i].RLock()
	return i
}

// RUnlock undoes the RLock that returned stripe.
func (m *RWMutex) RUnlock(stripe int) { m.locks[stripe].RUnlock() }

// Lock locks every stripe for writing.
func (m *RWMutex) Lock() {
	for i := range m.locks {
		m.locks[i].Lock()
	}
}

// Unlock undoes Lock.
func (m *RWMutex) Unlock() {
	for i := len(m.locks) - 1; i >= 0; i-- {
		m.locks[i].Unlock()
	}
}
