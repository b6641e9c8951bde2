// Package testkit holds the small fakes that tests all over the tree need alike: a buffer a
// logger may write to from several goroutines while the test reads it, an injected clock the
// test moves, and a throwaway SQLite event log with a server keyring. One copy here instead
// of one per package keeps the fakes from drifting apart.
package testkit

import (
	"bytes"
	"sync"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: loggers and
// subprocess pipes write to it while the test reads what they wrote.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is an injected clock the test moves. With a Tick it also advances by Tick on every
// reading, so that times taken one after another are distinct and ordered.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

// NewClock returns a clock standing at t until the test moves it.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// NewTickingClock returns a clock at t that advances by tick before every reading.
func NewTickingClock(t time.Time, tick time.Duration) *Clock { return &Clock{t: t, tick: tick} }

// Now returns the clock's time (after the tick, on a ticking clock).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.tick)
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
