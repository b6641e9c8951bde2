package command

import (
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/reasons"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// envelopes stores events as the first versions of stream.
func envelopes(t *testing.T, stream string, events ...domain.Event) []domain.Envelope {
	t.Helper()
	out := make([]domain.Envelope, 0, len(events))
	for i, e := range events {
		d, err := domain.EncodeEvent(e, domain.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, domain.Envelope{ID: d.ID, StreamID: stream, Version: uint64(i + 1), Position: uint64(i + 1),
			Type: d.Type, SchemaVersion: d.SchemaVersion, Data: d.Data})
	}
	return out
}

// startEvents are the first events of session sid of account, signed in with amr at now.
func startEvents(sid, account, token string, amr []string, now time.Time) []domain.Event {
	return domain.DecideStartSession(domain.SessionStart{SessionID: sid, AccountID: account, TokenHash: hexTokenHash(token),
		Method: domain.MethodPassword, AMR: amr, Lifetime: 24 * time.Hour, IdleTimeout: 2 * time.Hour}, now)
}

var registered = domain.AccountRegistered{AccountID: "a1", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", PasswordHash: "h0", At: t0}

func TestSessionIndexApplyOrderAndTombstones(t *testing.T) {
	x := newSessionIndex()
	envs := envelopes(t, domain.SessionStream("s1"), append(startEvents("s1", "a1", "tok", []string{domain.AMRPassword}, t0),
		domain.SessionAccessed{At: t0.Add(5 * time.Minute)}, domain.SessionSignedOut{Reason: reasons.SignOutLogout, At: t0.Add(6 * time.Minute)})...)
	other := envelopes(t, domain.AccountStream("a1"), registered)
	if err := x.Apply(other[0]); err != nil || x.Len() != 0 {
		t.Fatalf("account event: %v, %d", err, x.Len())
	}
	for _, e := range envs[:3] {
		if err := x.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	s, ok := x.Lookup(credential.HashSessionToken("tok"))
	if !ok || !s.LastAccessedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("lookup %+v %v", s, ok)
	}
	if _, ok := x.Lookup(credential.HashSessionToken("other")); ok {
		t.Fatal("unknown token found")
	}
	if got := x.sessionsOf("a1"); len(got) != 1 || got[0].ID != "s1" {
		t.Fatalf("by account %v", got)
	}
	// replaying an old envelope changes nothing
	if err := x.Apply(envs[1]); err != nil {
		t.Fatal(err)
	}
	if s, _ := x.Get("s1"); !s.LastAccessedAt.Equal(t0.Add(5 * time.Minute)) {
		t.Fatal("old domain.SessionStarted rewound the session")
	}
	if err := x.Apply(envs[3]); err != nil {
		t.Fatal(err)
	}
	if _, ok := x.Lookup(credential.HashSessionToken("tok")); ok || x.Len() != 0 || len(x.sessionsOf("a1")) != 0 {
		t.Fatal("signed-out session still indexed")
	}
	// a late domain.SessionStarted (a lagging projection) does not bring it back
	if err := x.Apply(envs[1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := x.Lookup(credential.HashSessionToken("tok")); ok {
		t.Fatal("tombstoned session resurrected")
	}
	x.prune(t0.Add(24*time.Hour + tombstoneGrace + time.Second))
	if len(x.tombstones) != 0 {
		t.Fatal("tombstone not pruned")
	}
}

func TestSessionIndexObserveThenLateProjection(t *testing.T) {
	// The synchronous path signs a session out before the projection has even delivered
	// its start: the start must not appear afterwards.
	x := newSessionIndex()
	all := append(startEvents("s2", "a1", "tok2", []string{domain.AMRPassword}, t0), domain.SessionSignedOut{Reason: reasons.SignOutByAdmin, At: t0})
	envs := envelopes(t, domain.SessionStream("s2"), all...)
	r, err := domain.Rebuild[*domain.SessionRecord]("s2", envs)
	if err != nil {
		t.Fatal(err)
	}
	x.observe(r)
	for _, e := range envs {
		_ = x.Apply(e)
	}
	if x.Len() != 0 {
		t.Fatal("session signed out on this instance reappeared from the projection")
	}
}

func TestSessionIndexConcurrentUse(t *testing.T) {
	x := newSessionIndex()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sid := domain.NewID()
			tok := sid + "-token"
			for _, e := range envelopes(t, domain.SessionStream(sid), startEvents(sid, "a1", tok, []string{domain.AMRPassword}, t0)...) {
				_ = x.Apply(e)
			}
			for j := 0; j < 200; j++ {
				if _, ok := x.Lookup(credential.HashSessionToken(tok)); !ok {
					t.Error("lookup failed")
					return
				}
				x.touch(sid, t0.Add(time.Duration(j)*time.Second))
				_ = x.sessionsOf("a1")
			}
		}(i)
	}
	wg.Wait()
	if x.Len() != 8 {
		t.Fatalf("%d sessions", x.Len())
	}
}

// TestSessionIndexTouchesSurviveReplacement: uses noted by concurrent touches (under the read
// lock) while the entry is replaced again and again (a newer record observed, as a command
// or the projection feed does) all count: the session's last use is the latest touch.
func TestSessionIndexTouchesSurviveReplacement(t *testing.T) {
	x, rec := oneSessionIndex(t)
	want := touchWhileReplaced(t, x, rec, func(at time.Time) bool {
		_, _, _, ok := x.touch("s1", at)
		return ok
	})
	for name, s := range map[string]domain.Session{"Get": mustGet(t, x, "s1"), "Lookup": mustLookup(t, x, "tok")} {
		if !s.LastAccessedAt.Equal(want) {
			t.Errorf("%s: last access %v, want %v", name, s.LastAccessedAt, want)
		}
	}
	// An earlier touch does not move it back.
	x.touch("s1", t0.Add(time.Millisecond))
	if s := mustGet(t, x, "s1"); !s.LastAccessedAt.Equal(want) {
		t.Errorf("after an earlier touch: %v", s.LastAccessedAt)
	}
}

// oneSessionIndex returns an index holding session s1 (token "tok") from the log, and the
// session's record at the same version (observing it replaces the entry).
func oneSessionIndex(t *testing.T) (*SessionIndex, *domain.SessionRecord) {
	t.Helper()
	x := newSessionIndex()
	envs := envelopes(t, domain.SessionStream("s1"), startEvents("s1", "a1", "tok", []string{domain.AMRPassword}, t0)...)
	for _, e := range envs {
		if err := x.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := domain.Next(domain.NewSessionRecord("s1"), startEvents("s1", "a1", "tok", []string{domain.AMRPassword}, t0), uint64(len(envs)))
	if err != nil {
		t.Fatal(err)
	}
	return x, rec
}

// touchWhileReplaced runs four goroutines noting 300 uses each with touch (at distinct
// times) while another replaces s1's entry 200 times with rec, and returns the latest use.
func touchWhileReplaced(t *testing.T, x *SessionIndex, rec *domain.SessionRecord, touch func(at time.Time) bool) time.Time {
	t.Helper()
	const touchers, each = 4, 300
	var wg sync.WaitGroup
	for g := range touchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if !touch(t0.Add(time.Duration(j*touchers+g+1) * time.Millisecond)) {
					t.Error("touch failed")
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			x.observe(rec) // same version: replaces the entry, keeping the latest use
		}
	}()
	wg.Wait()
	return t0.Add(time.Duration(each*touchers) * time.Millisecond)
}

func mustGet(t *testing.T, x *SessionIndex, id string) domain.Session {
	t.Helper()
	s, ok := x.Get(id)
	if !ok {
		t.Fatalf("session %s not held", id)
	}
	return s
}

func mustLookup(t *testing.T, x *SessionIndex, token string) domain.Session {
	t.Helper()
	s, ok := x.Lookup(credential.HashSessionToken(token))
	if !ok {
		t.Fatalf("token %s not held", token)
	}
	return s
}

// TestSessionIndexTouchEntryFollowsReplacement: a touch through the entry a lookup returned
// (the API's authenticate: lookupEntry, then touchEntry once the request passed its checks)
// reports a replaced entry as gone, and the uses noted by touches that find the session again
// then (as TouchUse does) all count while the entry is replaced again and again.
func TestSessionIndexTouchEntryFollowsReplacement(t *testing.T) {
	x, rec := oneSessionIndex(t)
	old, _ := x.lookupEntry(credential.HashSessionToken("tok"))
	if _, _, ok := x.touchEntry(old, t0.Add(time.Millisecond)); !ok {
		t.Fatal("touch of the current entry failed")
	}
	x.observe(rec)
	if _, _, ok := x.touchEntry(old, t0.Add(2*time.Millisecond)); ok {
		t.Fatal("a replaced entry was touched")
	}
	want := touchWhileReplaced(t, x, rec, func(at time.Time) bool {
		e, _ := x.lookupEntry(credential.HashSessionToken("tok"))
		if e == nil {
			return false
		}
		if _, _, ok := x.touchEntry(e, at); ok {
			return true
		}
		_, _, _, ok := x.touch("s1", at)
		return ok
	})
	if s := mustGet(t, x, "s1"); !s.LastAccessedAt.Equal(want) {
		t.Errorf("last access %v, want %v", s.LastAccessedAt, want)
	}
}

// TestKeepAccessWritesOnlyNewerUsesByItsGranularity: an entry's latest use moves forward by
// at least accessGranularity (a burst of uses on several cores writes it once), never back.
func TestKeepAccessWritesOnlyNewerUsesByItsGranularity(t *testing.T) {
	e := &indexEntry{}
	steps := []struct {
		at   time.Time
		want time.Time
	}{
		{t0, t0},
		{t0.Add(accessGranularity / 2), t0},
		{t0.Add(accessGranularity - 1), t0},
		{t0.Add(accessGranularity), t0.Add(accessGranularity)},
		{t0.Add(-time.Minute), t0.Add(accessGranularity)},
		{t0.Add(time.Minute), t0.Add(time.Minute)},
	}
	for i, s := range steps {
		e.keepAccess(s.at)
		if got := time.Unix(0, e.accessed.Load()).UTC(); !got.Equal(s.want) {
			t.Errorf("step %d: use at %v: latest %v, want %v", i, s.at, got, s.want)
		}
	}
}

// TestTouchEntryWithinTheGranularityTakesNoLock: a touch that would not write (within
// accessGranularity of the use held) answers while a writer holds the index's lock, and
// reports the record's recorded access and version; a touch of a replaced entry is still
// refused on that path, and a touch past the granularity still writes.
func TestTouchEntryWithinTheGranularityTakesNoLock(t *testing.T) {
	x, rec := oneSessionIndex(t)
	e, _ := x.lookupEntry(credential.HashSessionToken("tok"))
	at := t0.Add(time.Minute)
	if _, _, ok := x.touchEntry(e, at); !ok {
		t.Fatal("touch of the current entry failed")
	}
	x.mu.Lock()
	locked := true
	defer func() {
		if locked {
			x.mu.Unlock()
		}
	}()
	done := make(chan bool, 1)
	go func() {
		recorded, version, ok := x.touchEntry(e, at.Add(accessGranularity/2))
		done <- ok && recorded.Equal(e.rec.RecordedAccessAt()) && version == e.rec.Version()
	}()
	if ok, _ := testwait.Recv(t, 5*time.Second, "a touch within the granularity while the lock is held", done); !ok {
		t.Fatal("the touch did not report the current entry's record")
	}
	x.mu.Unlock()
	locked = false
	if got := time.Unix(0, e.accessed.Load()).UTC(); !got.Equal(at) {
		t.Errorf("latest use %v, want %v (nothing written within the granularity)", got, at)
	}
	if _, _, ok := x.touchEntry(e, at.Add(accessGranularity)); !ok {
		t.Fatal("touch past the granularity failed")
	}
	if got := time.Unix(0, e.accessed.Load()).UTC(); !got.Equal(at.Add(accessGranularity)) {
		t.Errorf("latest use %v, want %v", got, at.Add(accessGranularity))
	}
	x.observe(rec) // replaces e
	if _, _, ok := x.touchEntry(e, at.Add(accessGranularity)); ok {
		t.Fatal("a replaced entry was touched within the granularity")
	}
}
