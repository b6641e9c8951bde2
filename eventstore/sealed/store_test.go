package sealed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sealed/keystore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

var serverKey = bytes.Repeat([]byte{0x5a}, 32)

// personalOf is the test registry: which members of each event type are personal.
var personalOf = map[string][]string{
	"AccountRegistered": {"email", "first_name", "last_name"},
	"LoginFailed":       {"attempted_email"},
	// the contract suite's events
	"ThingHappened": {"n"}, "Before": {"n"}, "During": {"n"}, "Large": {"blob"},
}

func personal(eventType string, _ int) []string { return personalOf[eventType] }

type fixture struct {
	dir    string
	inner  *sqlite.Store
	store  *sealed.Store
	hasher *sealed.Hasher
}

func open(t testing.TB, dir string) *fixture {
	t.Helper()
	return openWith(t, dir, sqlite.Config{})
}

// openWith is open with the log's configuration (its Path is set here).
func openWith(t testing.TB, dir string, cfg sqlite.Config) *fixture {
	t.Helper()
	cfg.Path = filepath.Join(dir, "events.db")
	inner, err := sqlite.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keystore.OpenSQLite(filepath.Join(dir, "keys.db"), serverKey)
	if err != nil {
		inner.Close()
		t.Fatal(err)
	}
	h, err := sealed.NewHasher(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealed.New(inner, sealed.Config{Keys: keys, Personal: personal, Owner: sealed.DefaultOwner(h, "attempted_email")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{dir: dir, inner: inner, store: s, hasher: h}
}

func ctx(t testing.TB) context.Context {
	c, cancel := testwait.Context(30 * time.Second)
	t.Cleanup(cancel)
	return c
}

// TestContract: the sealed store is a drop-in eventstore.Store (the contract suite's events
// carry IP and user agent, and their members are declared personal here).
func TestContract(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return open(t, t.TempDir()).store })
}

type person struct {
	account, email, first, last, ip, ua string
}

var (
	alice = person{"0193f0a4-7c1e-7b2a-9a51-2f1c0d9e8a71", "alice.liddell@example.com", "Alicia", "Liddellton", "203.0.113.54", "AliceBrowser/7.1 (Wonderland)"}
	bob   = person{"0193f0a4-7c1e-7b2a-9a51-2f1c0d9e8a72", "bob.builder@example.org", "Roberto", "Buildington", "198.51.100.23", "BobAgent/2.0 (Site)"}
)

func registered(t testing.TB, p person) domain.EventData {
	e, err := domain.NewEventData("AccountRegistered", 1, map[string]any{
		"account_id": p.account, "email": p.email, "first_name": p.first, "last_name": p.last, "at": "2026-01-02T03:04:05Z",
	}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: p.account}, SubjectAccountID: p.account, IP: p.ip, UserAgent: p.ua})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// failedUnknown is a failed sign-in with p's email typed while no account holds it.
func failedUnknown(t testing.TB, p person) domain.EventData {
	e, err := domain.NewEventData("LoginFailed", 1, map[string]any{"reason": "unknown_email", "attempted_email": " " + strings.ToUpper(p.email)},
		domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, IP: p.ip, UserAgent: p.ua})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// appendPeople writes, for each person, a registration in their account stream and a failed
// sign-in in system-signin, and returns what was appended by event id.
func appendPeople(t *testing.T, f *fixture, people ...person) map[string]domain.EventData {
	want := map[string]domain.EventData{}
	for _, p := range people {
		r, l := registered(t, p), failedUnknown(t, p)
		if _, err := f.store.Append(ctx(t), domain.AccountStream(p.account), eventstore.NoStream, []domain.EventData{r}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(ctx(t), domain.SigninStream, eventstore.Any, []domain.EventData{l}); err != nil {
			t.Fatal(err)
		}
		want[r.ID], want[l.ID] = r, l
	}
	return want
}

// readPaths reads every event through each read path of the sealed store.
func readPaths(t *testing.T, f *fixture, people ...person) map[string][]domain.Envelope {
	t.Helper()
	c := ctx(t)
	out := map[string][]domain.Envelope{}
	all, err := f.store.ReadAll(c, 0, 1000)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	out["ReadAll"] = all
	for _, p := range people {
		evs, err := f.store.ReadStream(c, domain.AccountStream(p.account), 1, 0)
		if err != nil {
			t.Fatalf("ReadStream: %v", err)
		}
		out["ReadStream"] = append(out["ReadStream"], evs...)
		if evs, err = f.store.ReadSubject(c, p.account, 0, 100); err != nil {
			t.Fatalf("ReadSubject: %v", err)
		}
		out["ReadSubject"] = append(out["ReadSubject"], evs...)
	}
	signin, err := f.store.ReadStream(c, domain.SigninStream, 1, 0)
	if err != nil {
		t.Fatalf("ReadStream(signin): %v", err)
	}
	out["ReadStream"] = append(out["ReadStream"], signin...)
	sub, err := f.store.Subscribe(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for range all {
		e, ok := testwait.Recv(t, 10*time.Second, "a subscribed event", sub.Events())
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		out["Subscribe"] = append(out["Subscribe"], e)
	}
	return out
}

func dataOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("data %s: %v", raw, err)
	}
	return m
}

func TestEveryReadPathOpens(t *testing.T) {
	f := open(t, t.TempDir())
	want := appendPeople(t, f, alice, bob)
	for path, evs := range readPaths(t, f, alice, bob) {
		if len(evs) == 0 {
			t.Fatalf("%s read nothing", path)
		}
		for _, e := range evs {
			w := want[e.ID]
			if got, exp := dataOf(t, e.Data), dataOf(t, w.Data); fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Errorf("%s: event %s data = %v, want %v", path, e.Type, got, exp)
			}
			if e.Metadata != w.Metadata {
				t.Errorf("%s: event %s metadata = %+v, want %+v", path, e.Type, e.Metadata, w.Metadata)
			}
		}
	}
	// The log itself holds every personal value sealed, in the sealed form.
	raw, err := f.inner.ReadAll(ctx(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range raw {
		for _, m := range personalOf[e.Type] {
			if v, _ := dataOf(t, e.Data)[m].(string); !strings.HasPrefix(v, sealed.Prefix) {
				t.Errorf("stored %s.%s = %q, not sealed", e.Type, m, v)
			}
		}
		if !strings.HasPrefix(e.Metadata.IP, sealed.Prefix) || !strings.HasPrefix(e.Metadata.UserAgent, sealed.Prefix) {
			t.Errorf("stored metadata not sealed: %+v", e.Metadata)
		}
	}
	// And no file of the log holds a personal value in clear, before or after a clean close.
	assertNotInFiles(t, f.dir, "events.db", personalValues(alice, bob)...)
	f.store.Close()
	assertNotInFiles(t, f.dir, "events.db", personalValues(alice, bob)...)
}

func personalValues(people ...person) []string {
	var out []string
	for _, p := range people {
		out = append(out, p.email, strings.ToUpper(p.email), p.first, p.last, p.ip, p.ua)
	}
	return out
}

// assertNotInFiles fails when base or its -wal/-shm holds any of values.
func assertNotInFiles(t *testing.T, dir, base string, values ...string) {
	t.Helper()
	scanned, control := 0, false
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, base+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		scanned += len(b)
		control = control || bytes.Contains(b, []byte(alice.account)) // the scan does see what is stored
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s%s holds %q in clear", base, suffix, v)
			}
		}
	}
	if scanned == 0 || !control {
		t.Fatalf("the %s files (%d bytes) do not even hold the public account id", base, scanned)
	}
}

func TestDestroyReadsErased(t *testing.T) {
	f := open(t, t.TempDir())
	want := appendPeople(t, f, alice, bob)
	if err := f.store.Destroy(ctx(t), sealed.AccountKeyID(alice.account), f.hasher.IdentifierKeyID(alice.email)); err != nil {
		t.Fatal(err)
	}
	// Appended after the destroy: erased on arrival.
	late := registered(t, alice)
	late.Metadata.SubjectAccountID = alice.account
	if _, err := f.store.Append(ctx(t), domain.AccountStream(alice.account), eventstore.Any, []domain.EventData{late}); err != nil {
		t.Fatal(err)
	}
	want[late.ID] = late
	if err := f.store.CreateKey(ctx(t), sealed.AccountKeyID(alice.account)); !errors.Is(err, sealed.ErrKeyDestroyed) {
		t.Errorf("CreateKey of a destroyed key: %v, want ErrKeyDestroyed", err)
	}
	isAlice := func(e domain.Envelope) bool {
		return e.Metadata.SubjectAccountID == alice.account || strings.Contains(string(want[e.ID].Data), strings.ToUpper(alice.email))
	}
	for path, evs := range readPaths(t, f, alice, bob) {
		for _, e := range evs {
			w := want[e.ID]
			got := dataOf(t, e.Data)
			exp := dataOf(t, w.Data)
			md := w.Metadata
			if isAlice(e) {
				for _, m := range personalOf[e.Type] {
					exp[m] = sealed.Erased
				}
				md.IP, md.UserAgent = sealed.Erased, sealed.Erased
			}
			if fmt.Sprint(got) != fmt.Sprint(exp) || e.Metadata != md {
				t.Errorf("%s: %s of %s = %v %+v, want %v %+v", path, e.Type, e.Metadata.SubjectAccountID, got, e.Metadata, exp, md)
			}
		}
	}
	// The log still holds every event, in order.
	raw, err := f.inner.ReadAll(ctx(t), 0, 100)
	if err != nil || len(raw) != 5 {
		t.Fatalf("log holds %d events (%v), want 5", len(raw), err)
	}
}

// storedEvent returns the stored event of the log's first event of type typ.
func storedEvent(t *testing.T, f *fixture, typ string) domain.Envelope {
	raw, err := f.inner.ReadAll(ctx(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range raw {
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("no %s in the log", typ)
	return domain.Envelope{}
}

// appendRaw writes an event straight to the inner store (as an attacker with the file would).
func appendRaw(t *testing.T, f *fixture, stream string, e domain.Envelope) domain.Envelope {
	ev := domain.EventData{ID: domain.NewID(), Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data, Metadata: e.Metadata}
	res, err := f.inner.Append(ctx(t), stream, eventstore.Any, []domain.EventData{ev})
	if err != nil {
		t.Fatal(err)
	}
	e.ID, e.Position = ev.ID, res.LastPosition
	return e
}

func TestSealedValuesAreBoundToTheirPlace(t *testing.T) {
	f := open(t, t.TempDir())
	appendPeople(t, f, alice)
	orig := storedEvent(t, f, "AccountRegistered")
	d := dataOf(t, orig.Data)
	edits := map[string]func(e *domain.Envelope){
		"moved to another event": func(e *domain.Envelope) {},
		"members swapped": func(e *domain.Envelope) {
			m := dataOf(t, e.Data)
			m["first_name"], m["last_name"] = d["last_name"], d["first_name"]
			e.Data, _ = json.Marshal(m)
		},
		"metadata swapped": func(e *domain.Envelope) { e.Metadata.IP, e.Metadata.UserAgent = e.Metadata.UserAgent, e.Metadata.IP },
		"payload altered": func(e *domain.Envelope) {
			m := dataOf(t, e.Data)
			s := m["email"].(string)
			m["email"] = s[:len(s)-3] + "AAA"
			e.Data, _ = json.Marshal(m)
		},
		"malformed": func(e *domain.Envelope) {
			m := dataOf(t, e.Data)
			m["email"] = sealed.Prefix + "account-x:!!"
			e.Data, _ = json.Marshal(m)
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			e := orig
			edit(&e)
			stream := "system-tamper-" + domain.NewID()
			appendRaw(t, f, stream, e) // under a new id (TestSwapWithinOneEvent keeps the id)
			_, err := f.store.ReadStream(ctx(t), stream, 1, 0)
			if !errors.Is(err, sealed.ErrTampered) {
				t.Fatalf("reading it: %v, want ErrTampered", err)
			}
		})
	}
	// A value naming a key the store never held is not "[erased]" either.
	e := orig
	m := dataOf(t, e.Data)
	m["email"] = strings.Replace(m["email"].(string), sealed.AccountKeyID(alice.account), sealed.AccountKeyID("nobody"), 1)
	e.Data, _ = json.Marshal(m)
	stream := "system-tamper-" + domain.NewID()
	appendRaw(t, f, stream, e)
	if _, err := f.store.ReadStream(ctx(t), stream, 1, 0); !errors.Is(err, sealed.ErrUnknownKey) {
		t.Fatalf("reading a value under an unknown key: %v, want ErrUnknownKey", err)
	}
	// The subscription ends with the error.
	sub, err := f.store.Subscribe(ctx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for {
		_, ok := testwait.Recv(t, 10*time.Second, "the subscription's end", sub.Events())
		if !ok {
			break
		}
	}
	if !errors.Is(sub.Err(), sealed.ErrTampered) {
		t.Fatalf("subscription ended with %v, want ErrTampered", sub.Err())
	}
}

// TestSwapWithinOneEvent edits the stored event in place (same id), so that only the
// member binding can catch it.
func TestSwapWithinOneEvent(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	appendPeople(t, f, alice)
	orig := storedEvent(t, f, "AccountRegistered")
	f.store.Close()
	m := dataOf(t, orig.Data)
	m["first_name"], m["last_name"] = m["last_name"], m["first_name"]
	swapped, _ := json.Marshal(m)
	db, err := sqlOpen(filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE events SET data = ? WHERE id = ?`, swapped, orig.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f = open(t, dir)
	if _, err := f.store.ReadStream(ctx(t), domain.AccountStream(alice.account), 1, 0); !errors.Is(err, sealed.ErrTampered) {
		t.Fatalf("reading an event whose sealed members were swapped: %v, want ErrTampered", err)
	}
}

func TestWrongServerKey(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	appendPeople(t, f, alice)
	f.store.Close()
	other := bytes.Repeat([]byte{0x17}, 32)
	_, err := keystore.OpenSQLite(filepath.Join(dir, "keys.db"), other)
	if !errors.Is(err, sealed.ErrWrongServerKey) || !strings.Contains(err.Error(), "the server key does not open the key store") {
		t.Fatalf("OpenSQLite with another server key: %v", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	f := open(t, t.TempDir())
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := person{account: fmt.Sprintf("0193f0a4-0000-7000-8000-%012d", w%5), ip: fmt.Sprintf("192.0.2.%d", w), ua: "UA"}
			var v uint64
			for i := range each {
				p.email, p.first, p.last = fmt.Sprintf("w%d-%d@example.com", w, i), "F", "L"
				res, err := f.store.Append(ctx(t), fmt.Sprintf("session-%d", w), eventstore.Exact(v), []domain.EventData{registered(t, p)})
				if err != nil {
					errs <- err
					return
				}
				v = res.NextVersion
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := f.store.ReadAll(ctx(t), 0, writers*each+1)
	if err != nil || len(all) != writers*each {
		t.Fatalf("ReadAll: %d events, %v", len(all), err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		email := dataOf(t, e.Data)["email"].(string)
		var w, i int
		if _, err := fmt.Sscanf(email, "w%d-%d@example.com", &w, &i); err != nil || e.StreamID != fmt.Sprintf("session-%d", w) || seen[email] {
			t.Fatalf("event in %s opened to %q", e.StreamID, email)
		}
		seen[email] = true
	}
}

// TestWrappersPassAnnouncedAppendsOn: an append announced to the store in front of the log
// (Instrument over the sealed store over SQLite) reaches the SQLite writer, which holds
// another commit for it, and the announced append, carrying it in its context through both
// wrappers, releases it: the two commit together (one RecordedAt, stamped per transaction).
func TestWrappersPassAnnouncedAppendsOn(t *testing.T) {
	f := openWith(t, t.TempDir(), sqlite.Config{CommitWindow: time.Hour})
	s := eventstore.Instrument(f.store, nil)
	ctx := context.Background()
	exp := domain.ExpectAppend(s, time.Now().Add(20*time.Millisecond))
	if exp == nil {
		t.Fatal("the wrapped store did not take the announcement")
	}
	ev := func() []domain.EventData {
		return []domain.EventData{{ID: domain.NewID(), Type: "ThingHappened", SchemaVersion: 1, Data: []byte(`{"n":"x"}`)}}
	}
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "thing-first", eventstore.NoStream, ev())
		first <- err
	}()
	select {
	case err := <-first:
		t.Fatalf("the first append committed while an append was announced (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := s.Append(domain.WithExpectation(ctx, exp), "thing-second", eventstore.NoStream, ev()); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, stream := range []string{"thing-first", "thing-second"} {
		evs, err := s.ReadStream(ctx, stream, 0, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("read %s: %v", stream, err)
		}
		at = append(at, evs[0].RecordedAt)
	}
	if !at[0].Equal(at[1]) {
		t.Errorf("committed apart: %v", at)
	}
}
