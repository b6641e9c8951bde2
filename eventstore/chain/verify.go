package chain

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/vigil-auth/vigil/domain"
)

// What a Failure says is wrong.
const (
	Altered      = "altered"       // an event's content no longer matches its hash
	Missing      = "missing"       // an event was dropped
	Inserted     = "inserted"      // an event that was never appended is in the log
	Reordered    = "reordered"     // events are out of their original order
	BadSignature = "bad signature" // a checkpoint's signature does not verify
)

// Failure is the first problem a Verifier found.
type Failure struct {
	Position uint64
	Kind     string // Altered, Missing, Inserted, Reordered or BadSignature
	Detail   string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("position %d: %s: %s", f.Position, f.Kind, f.Detail)
}

// Result is what a successful verification covered.
type Result struct {
	Events uint64 // events checked
	Head   uint64 // position of the last one
}

// row is what the verifier remembers of an event it has passed.
type row struct {
	pos    uint64
	stored Sum
}

// pending is a failure whose kind depends on events after it.
type pending struct {
	at       domain.Envelope // the failing event
	prev     Sum             // stored hash of the event before it
	needNext bool            // look at the next event for an insertion
	want     string          // stream whose next version is looked for, for a reordering
	wantVer  uint64
	foundAt  uint64
}

// Verifier recomputes a log's chain event by event and checks the signed checkpoints along
// it. Feed it every event in log order with Event (Envelope.Hash holding the stored or
// exported hash), then call Finish. Memory is one entry per stream (its last version) besides
// the checkpoints.
//
// A tampered log fails at the first event whose hash does not follow from the event before
// it. What went wrong is then inferred: positions that go backwards or (in a log whose
// positions are contiguous, like SQLite's) skip a number, a stream version that comes too
// early or too late, or an event that makes the chain hold once the event before it (or the
// event itself) is left out, name a reordering, a dropped event or an insertion; anything else
// is an alteration. A log whose chain was recomputed after tampering passes the per-event
// check and fails at the first signed checkpoint it contradicts.
type Verifier struct {
	keys       KeySet
	cps        []Checkpoint
	next       int
	contiguous bool

	h        Hasher
	events   uint64
	p, pp    row
	havePrev bool
	versions map[string]uint64

	pend *pending
	fail *Failure
}

// NewVerifier verifies against the trusted keys and the log's checkpoints (in any order).
// contiguous says the log numbers its events 1, 2, 3... (SQLite), so that a skipped number is
// a dropped event.
func NewVerifier(keys KeySet, checkpoints []Checkpoint, contiguous bool) *Verifier {
	cps := slices.Clone(checkpoints)
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Position, b.Position) })
	return &Verifier{keys: keys, cps: cps, contiguous: contiguous, versions: map[string]uint64{}}
}

// Failed reports whether the verdict is already known to be a failure (the caller may stop
// reading the log then, unless the verifier still wants to see what follows: Wants).
func (v *Verifier) Failed() bool { return v.fail != nil || v.pend != nil }

// Wants reports whether the verifier needs more events to settle its verdict.
func (v *Verifier) Wants() bool { return v.fail == nil }

func (v *Verifier) failAt(pos uint64, kind, format string, args ...any) {
	if v.fail == nil {
		v.fail = &Failure{Position: pos, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
}

// checkpointsUpTo checks every checkpoint before pos (exclusive) that is still unchecked:
// those are checkpoints of positions the log does not hold.
func (v *Verifier) checkpointsBefore(pos uint64, headNote string) {
	for v.fail == nil && v.next < len(v.cps) && v.cps[v.next].Position < pos {
		cp := v.cps[v.next]
		v.next++
		if err := v.keys.Verify(cp); err != nil {
			v.failAt(cp.Position, BadSignature, "the checkpoint signed at %s does not verify: %v", cp.Time, err)
			return
		}
		v.failAt(cp.Position, Missing, "a checkpoint signed at %s covers an event at position %d that is not in the log%s", cp.Time, cp.Position, headNote)
	}
}

// Event feeds the next event of the log.
func (v *Verifier) Event(e domain.Envelope) {
	if v.fail != nil {
		return
	}
	if v.pend != nil {
		v.settle(&e)
		return
	}
	v.checkpointsBefore(e.Position, "")
	if v.fail != nil {
		return
	}
	stored, perr := ParseSum(e.Hash)
	prev := Zero
	if v.havePrev {
		prev = v.p.stored
	}
	got := v.h.Next(prev, &e)
	if perr == nil && got == stored && (!v.havePrev || e.Position > v.p.pos) {
		v.pass(&e, stored)
		return
	}
	v.diagnose(&e, stored)
}

func (v *Verifier) pass(e *domain.Envelope, stored Sum) {
	v.events++
	v.pp, v.p, v.havePrev = v.p, row{e.Position, stored}, true
	v.versions[e.StreamID] = e.Version
	for v.next < len(v.cps) && v.cps[v.next].Position == e.Position {
		cp := v.cps[v.next]
		v.next++
		if err := v.keys.Verify(cp); err != nil {
			v.failAt(cp.Position, BadSignature, "the checkpoint signed at %s does not verify: %v", cp.Time, err)
			return
		}
		if cp.Hash != stored.String() {
			v.failAt(cp.Position, Altered, "the chain hash here differs from the checkpoint signed at %s: an event at or before this position was altered, dropped, inserted or reordered and the chain recomputed", cp.Time)
			return
		}
	}
}

// at returns e as it would hash at another position.
func at(e *domain.Envelope, pos uint64) *domain.Envelope {
	c := *e
	c.Position = pos
	return &c
}

func (v *Verifier) diagnose(e *domain.Envelope, stored Sum) {
	if v.havePrev && e.Position <= v.p.pos {
		v.failAt(e.Position, Reordered, "this event comes after position %d in the log", v.p.pos)
		return
	}
	expect := uint64(1)
	if v.havePrev {
		expect = v.p.pos + 1
	}
	if v.contiguous && e.Position != expect {
		if e.Position == expect+1 {
			v.failAt(expect, Missing, "the event at position %d was dropped (the log goes on at %d)", expect, e.Position)
		} else {
			v.failAt(expect, Missing, "the events at positions %d to %d were dropped", expect, e.Position-1)
		}
		return
	}
	last := v.versions[e.StreamID]
	if e.Version <= last {
		v.failAt(e.Position, Reordered, "version %d of stream %s comes after its version %d", e.Version, e.StreamID, last)
		return
	}
	prev := Zero
	if v.havePrev {
		prev = v.p.stored
	}
	p := &pending{at: *e, prev: prev}
	if e.Version > last+1 {
		p.want, p.wantVer = e.StreamID, last+1
	}
	if v.havePrev && p.want == "" {
		ppHash := Zero
		if v.events >= 2 {
			ppHash = v.pp.stored
		}
		if v.h.Next(ppHash, e) == stored || v.h.Next(ppHash, at(e, v.p.pos)) == stored {
			v.failAt(v.p.pos, Inserted, "the chain holds without the event at this position: it was never appended")
			return
		}
	}
	p.needNext = p.want == ""
	v.pend = p
}

// settle looks at an event after a pending failure.
func (v *Verifier) settle(n *domain.Envelope) {
	p := v.pend
	if p.needNext {
		p.needNext = false
		stored, err := ParseSum(n.Hash)
		if err == nil && (v.h.Next(p.prev, n) == stored || v.h.Next(p.prev, at(n, p.at.Position)) == stored) {
			v.failAt(p.at.Position, Inserted, "the chain holds without the event at this position: it was never appended")
			return
		}
	}
	if p.want != "" && p.foundAt == 0 && n.StreamID == p.want && n.Version == p.wantVer {
		p.foundAt = n.Position
	}
	if !p.needNext && (p.want == "" || p.foundAt != 0) {
		v.resolve()
	}
}

func (v *Verifier) resolve() {
	p := v.pend
	switch {
	case p.want != "" && p.foundAt != 0:
		v.failAt(p.at.Position, Reordered, "version %d of stream %s is here, but its version %d comes later, at position %d", p.at.Version, p.want, p.wantVer, p.foundAt)
	case p.want != "":
		v.failAt(p.at.Position, Missing, "version %d of stream %s is here, but its version %d is not in the log (dropped)", p.at.Version, p.want, p.wantVer)
	default:
		v.failAt(p.at.Position, Altered, "the event's content does not match its hash")
	}
}

// Finish ends the log and returns what was verified, or the first failure (a *Failure).
func (v *Verifier) Finish() (Result, error) {
	if v.fail == nil && v.pend != nil {
		v.resolve()
	}
	if v.fail == nil {
		note := fmt.Sprintf(" (the log ends at position %d)", v.p.pos)
		v.checkpointsBefore(^uint64(0), note)
	}
	if v.fail != nil {
		return Result{}, v.fail
	}
	return Result{Events: v.events, Head: v.p.pos}, nil
}

// AsFailure returns err's *Failure, if it is one.
func AsFailure(err error) (*Failure, bool) {
	var f *Failure
	ok := errors.As(err, &f)
	return f, ok
}
