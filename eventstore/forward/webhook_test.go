package forward_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks docs' example

// receiver is a webhook endpoint that verifies every request with its own implementation
// of the Standard Webhooks check, can refuse requests, and records what it accepted.
type receiver struct {
	t   *testing.T
	key []byte

	mu       sync.Mutex
	failNext int             // refuse this many further requests with 500
	refuse   map[string]bool // event ids always refused with 503
	accepted []string        // event ids, in the order accepted
	requests int
	badSigs  int
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, key: key, refuse: map[string]bool{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

// verify is an independent implementation of the Standard Webhooks verification: the
// signed content is id.timestamp.body, the header holds space-separated "v1,<base64>"
// signatures, and the timestamp must be within five minutes.
func (r *receiver) verify(req *http.Request, body []byte) bool {
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if !r.verify(req, body) {
		r.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("webhook-id") {
		r.t.Errorf("body %q does not carry the event of webhook-id %q", body, req.Header.Get("webhook-id"))
	}
	if r.failNext > 0 {
		r.failNext--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.refuse[ev.ID] {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.accepted = append(r.accepted, ev.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

func webhookForwarders(t *testing.T, dir string, url string, attempts int) (*forward.Forwarders, *forward.DB) {
	t.Helper()
	key, err := forward.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dir)
	f, err := forward.New(forward.Config{
		Log: openLog(t, dir), DB: db, Encode: testEncode, Logger: quietLogger(),
		Webhooks: forward.WebhookConfig{URL: url, Secret: key, Attempts: attempts,
			InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, db
}

func equalIDs(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d events, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	for i := range want {
		if seen[got[i]] {
			t.Fatalf("event %s received twice", got[i])
		}
		seen[got[i]] = true
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s (log order)", i, got[i], want[i])
		}
	}
}

// TestWebhookRetriesAndRestart: the receiver refuses the first deliveries, then accepts;
// the forwarder is stopped and started again in the middle. The receiver accepts every
// event exactly once, in log order, each with a valid signature.
func TestWebhookRetriesAndRestart(t *testing.T) {
	rcv, srv := newReceiver(t)
	rcv.failNext = 3
	dir := t.TempDir()
	f, db := webhookForwarders(t, dir, srv.URL+"/hook", 5)
	log := openLog(t, dir)
	appendN(t, log, 0, 40)
	stop := running(t, f)
	eventually(t, 5*time.Second, "20 deliveries", deliveries(rcv, 20, false))
	stop()
	rcv.mu.Lock()
	rcv.failNext = 2
	rcv.mu.Unlock()
	appendN(t, log, 40, 40)
	f2, err := forward.New(forward.Config{Log: log, DB: db, Encode: testEncode, Logger: quietLogger(),
		Webhooks: forward.WebhookConfig{URL: srv.URL + "/hook", Secret: mustKey(t), Attempts: 5,
			InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	running(t, f2)
	want := logIDs(t, log)
	eventually(t, 5*time.Second, fmt.Sprintf("every delivery (%d)", len(want)), deliveries(rcv, len(want), false))
	time.Sleep(50 * time.Millisecond)
	equalIDs(t, rcv.got(), want)
	if rcv.badSigs != 0 {
		t.Errorf("%d requests had a bad signature", rcv.badSigs)
	}
	if rcv.requests != len(want)+5 {
		t.Errorf("%d requests for %d events and 5 refusals", rcv.requests, len(want))
	}
}

func mustKey(t testing.TB) []byte {
	key, err := forward.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestWebhookParkAndReplay: an event the endpoint keeps refusing is parked after the
// configured attempts; later events go on; a replay once the endpoint accepts it delivers
// it (after the later ones) and unparks it.
func TestWebhookParkAndReplay(t *testing.T) {
	rcv, srv := newReceiver(t)
	dir := t.TempDir()
	f, _ := webhookForwarders(t, dir, srv.URL, 3)
	log := openLog(t, dir)
	appendN(t, log, 0, 10)
	ids := logIDs(t, log)
	rcv.refuse[ids[3]] = true
	running(t, f)
	eventually(t, 5*time.Second, "9 deliveries", deliveries(rcv, 9, true))
	ctx := context.Background()
	eventually(t, 5*time.Second, "the endpoint to reach the head", func() (bool, string) {
		eps, err := f.Endpoints(ctx)
		return err == nil && len(eps) == 1 && eps[0].Position == 10, fmt.Sprintf("endpoints %+v (%v)", eps, err)
	})
	eps, _ := f.Endpoints(ctx)
	if eps[0].ID != forward.ConfiguredEndpointID || eps[0].Parked != 1 || eps[0].Source != forward.SourceConfig {
		t.Fatalf("endpoints %+v", eps)
	}
	parked, err := f.Parked(ctx, forward.ConfiguredEndpointID, 0, 10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	p := parked[0]
	if p.EventID != ids[3] || p.Attempts != 3 || p.Position != 4 || !strings.Contains(p.LastError, "503") {
		t.Fatalf("parked delivery %+v", p)
	}
	// Still refused: it stays parked, the attempt counted.
	res, err := f.Replay(ctx, forward.ConfiguredEndpointID, p.ID)
	if err != nil || res.Delivered || res.Attempts != 4 {
		t.Fatalf("replay while refused: %+v, %v", res, err)
	}
	rcv.mu.Lock()
	delete(rcv.refuse, ids[3])
	rcv.mu.Unlock()
	res, err = f.Replay(ctx, forward.ConfiguredEndpointID, p.ID)
	if err != nil || !res.Delivered {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	want := append(append(append([]string(nil), ids[:3]...), ids[4:]...), ids[3])
	equalIDs(t, rcv.got(), want)
	if parked, _ := f.Parked(ctx, forward.ConfiguredEndpointID, 0, 10); len(parked) != 0 {
		t.Fatalf("still parked: %+v", parked)
	}
	if _, err := f.Replay(ctx, forward.ConfiguredEndpointID, p.ID); err == nil {
		t.Fatal("a replayed delivery was replayed again")
	}
	if _, err := f.Parked(ctx, "nope", 0, 10); err == nil {
		t.Fatal("an unknown endpoint listed parked deliveries")
	}
}

// TestSignKnownVector checks Sign against the Standard Webhooks reference example.
func TestSignKnownVector(t *testing.T) {
	key := mustKey(t)
	got := forward.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("signature %s", got)
	}
	if _, err := forward.ParseSecret("whsec_short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
	if _, err := forward.ParseSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err == nil {
		t.Fatal("a secret without whsec_ was accepted")
	}
}

// TestRegisteredEndpointSurvivesRestart: an endpoint registered by a WebhookRegistered event
// receives the events after its registration (not before); after a restart it resumes from
// its checkpoint; a WebhookRemoved stops it.
func TestRegisteredEndpointSurvivesRestart(t *testing.T) {
	rcv, srv := newReceiver(t)
	dir := t.TempDir()
	log := openLog(t, dir)
	db := openDB(t, dir)
	newF := func() *forward.Forwarders {
		f, err := forward.New(forward.Config{Log: log, DB: db, Encode: testEncode, Logger: quietLogger(),
			Webhooks: forward.WebhookConfig{Secret: mustKey(t), Attempts: 3, InitialBackoff: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	appendN(t, log, 0, 5) // before the registration: not delivered
	write := func(e domain.Event) uint64 {
		ed, err := domain.NewEventData(domain.EventTypeOf(e), 1, e, domain.Metadata{Actor: domain.Actor{Type: domain.ActorAdmin, ID: "a1"}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := log.Append(context.Background(), domain.WebhookStream("w1"), expect.Any, []domain.EventData{ed})
		if err != nil {
			t.Fatal(err)
		}
		return res.LastPosition
	}
	f := newF()
	stop := running(t, f)
	regPos := write(domain.WebhookRegistered{WebhookID: "w1", URL: srv.URL, At: time.Now()})
	ctx, cancel := testwait.Context(5 * time.Second)
	defer cancel()
	if err := f.WaitRegistry(ctx, regPos); err != nil {
		t.Fatal(err)
	}
	appendN(t, log, 5, 10)
	eventually(t, 5*time.Second, "10 deliveries", deliveries(rcv, 10, true))
	stop()
	appendN(t, log, 15, 10)
	f2 := newF()
	eps, err := f2.Endpoints(context.Background())
	if err != nil || len(eps) != 1 || eps[0].ID != "w1" || eps[0].Source != forward.SourceAPI || eps[0].Position != regPos+10 {
		t.Fatalf("endpoints after restart %+v, %v", eps, err)
	}
	running(t, f2)
	eventually(t, 5*time.Second, "20 deliveries", deliveries(rcv, 20, true))
	all := logIDs(t, log)
	equalIDs(t, rcv.got(), all[6:]) // after the 5 early events and the registration
	remPos := write(domain.WebhookRemoved{WebhookID: "w1", At: time.Now()})
	if err := f2.WaitRegistry(ctx, remPos); err != nil {
		t.Fatal(err)
	}
	appendN(t, log, 25, 3)
	time.Sleep(100 * time.Millisecond)
	if got := len(rcv.got()); got != 20 {
		t.Fatalf("a removed endpoint received %d events, want 20", got)
	}
	if eps, _ := f2.Endpoints(context.Background()); len(eps) != 0 {
		t.Fatalf("endpoints after removal %+v", eps)
	}
	if cp, _ := db.Checkpoint(context.Background(), "webhook-w1"); cp != 0 {
		t.Fatalf("the removed endpoint's checkpoint is still %d", cp)
	}
}

// TestWebhookOnceFromTwoInstances: two instances' forwarders (each with its own database)
// share leases: the configured endpoint gets every event once, in order. When the holder
// stops, the other takes over from the shared progress, not from its own checkpoint (which
// never moved): nothing is delivered twice.
func TestWebhookOnceFromTwoInstances(t *testing.T) {
	rcv, srv := newReceiver(t)
	log := openLog(t, t.TempDir())
	leases := &follow.MemoryLeases{Lifetime: time.Second}
	instance := func(holder string) *forward.Forwarders {
		f, err := forward.New(forward.Config{Log: log, DB: openDB(t, t.TempDir()), Encode: testEncode, Logger: quietLogger(),
			Leases: leases, Holder: holder,
			Webhooks: forward.WebhookConfig{URL: srv.URL + "/hook", Secret: mustKey(t), Attempts: 5,
				InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := instance("a"), instance("b")
	stopA := running(t, a)
	running(t, b)
	appendN(t, log, 0, 30)
	want := logIDs(t, log)
	eventually(t, 10*time.Second, "30 deliveries", deliveries(rcv, len(want), false))
	stopA() // b takes over at its next try
	appendN(t, log, 30, 20)
	want = logIDs(t, log)
	eventually(t, 10*time.Second, "50 deliveries", deliveries(rcv, len(want), false))
	equalIDs(t, rcv.got(), want)
}
