package ssf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

const iss = "https://id.example.com"

// env is a real SQLite log, a signing key file and a transmitter on one directory.
type env struct {
	t     testing.TB
	dir   string
	log   *sqlite.Store
	keys  *ssf.Keys
	tr    *ssf.Transmitter
	stop  func()
	tweak func(*ssf.Config)
}

func newEnv(t testing.TB, tweak func(*ssf.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	log, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "events.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	keys, _, err := ssf.EnsureKeys(filepath.Join(dir, "ssf-signing.key"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, log: log, keys: keys, tweak: tweak}
	e.start()
	t.Cleanup(func() { e.stop() })
	return e
}

// start opens and runs a transmitter on the directory (again after stop: a restart).
func (e *env) start() {
	e.t.Helper()
	cfg := ssf.Config{Log: e.log, Path: filepath.Join(e.dir, "ssf.db"), Keys: e.keys, Issuer: iss,
		Logger: slog.New(slog.DiscardHandler), InitialBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Disable: func(ctx context.Context, id, reason string) error {
			cfg := e.config(id)
			cfg.Change, cfg.Status, cfg.Reason = ssf.ChangeStatus, ssf.StatusDisabled, reason
			_, err := e.appendTo(domain.SSFStream(id), cfg, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
			return err
		}}
	if e.tweak != nil {
		e.tweak(&cfg)
	}
	tr, err := ssf.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	testwait.Recv(e.t, 10*time.Second, "the transmitter to run", tr.Running())
	e.tr = tr
	e.stop = sync.OnceFunc(func() {
		cancel()
		if err := tr.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
		<-done
	})
}

// appendTo appends one event and returns its envelope.
func (e *env) appendTo(stream string, ev domain.Event, md domain.Metadata) (domain.Envelope, error) {
	d, err := domain.EncodeEvent(ev, md)
	if err != nil {
		return domain.Envelope{}, err
	}
	res, err := e.log.Append(context.Background(), stream, expect.Any, []domain.EventData{d})
	if err != nil {
		return domain.Envelope{}, err
	}
	evs, err := e.log.ReadAll(context.Background(), res.LastPosition-1, 1)
	if err != nil || len(evs) != 1 {
		return domain.Envelope{}, fmt.Errorf("read back: %v", err)
	}
	return evs[0], nil
}

func (e *env) mustAppend(stream string, ev domain.Event, md domain.Metadata) domain.Envelope {
	e.t.Helper()
	env, err := e.appendTo(stream, ev, md)
	if err != nil {
		e.t.Fatal(err)
	}
	return env
}

// config is a stream's last SSFStreamChanged in the log.
func (e *env) config(id string) domain.SSFStreamChanged {
	evs, err := e.log.ReadStream(context.Background(), domain.SSFStream(id), 1, 10000)
	if err != nil || len(evs) == 0 {
		e.t.Fatalf("stream %s: %v", id, err)
	}
	de, err := domain.DecodeEvent(evs[len(evs)-1])
	if err != nil {
		e.t.Fatal(err)
	}
	return de.(domain.SSFStreamChanged)
}

// createStream creates a stream requesting every supported event and waits until it runs.
func (e *env) createStream(method, url string) string {
	e.t.Helper()
	id := domain.NewID()
	ev := e.mustAppend(domain.SSFStream(id), domain.SSFStreamChanged{StreamID: id, Change: ssf.ChangeCreated, Audience: "aud-" + id,
		DeliveryMethod: method, EndpointURL: url, EventsRequested: append([]string{}, ssf.EventsSupported...),
		Status: ssf.StatusEnabled, At: time.Now().UTC()}, system)
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	if err := e.tr.WaitRegistry(ctx, ev.Position); err != nil {
		e.t.Fatal("the registry did not apply the stream:", err)
	}
	return id
}

// change appends a change of a stream's configuration.
func (e *env) change(id string, f func(*domain.SSFStreamChanged)) domain.Envelope {
	e.t.Helper()
	cfg := e.config(id)
	cfg.State, cfg.Reason = "", ""
	f(&cfg)
	return e.mustAppend(domain.SSFStream(id), cfg, system)
}

var system = domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}}

// accountMD is the metadata of an account's own event.
func accountMD(account string) domain.Metadata {
	return domain.Metadata{Actor: domain.Actor{Type: domain.ActorAccount, ID: account}, SubjectAccountID: account}
}

// set is a SET a receiver verified, with its header.
type set struct {
	Header map[string]any
	Claims struct {
		Iss    string                    `json:"iss"`
		Aud    string                    `json:"aud"`
		Iat    int64                     `json:"iat"`
		Jti    string                    `json:"jti"`
		Txn    string                    `json:"txn"`
		SubID  map[string]any            `json:"sub_id"`
		Events map[string]map[string]any `json:"events"`
	}
}

// event is the SET's only event: its type URI and members.
func (s set) event() (string, map[string]any) {
	for uri, m := range s.Claims.Events {
		return uri, m
	}
	return "", nil
}

// verify checks a SET with the JWK set alone (JSON, as GET <jwks_uri> serves it), using
// lestrrat-go/jwx (the transmitter signs with go-jose): RS256, typ secevent+jwt, a kid of
// the set.
func verify(t testing.TB, jwksJSON []byte, token string) (set, error) {
	var out set
	keys, err := jwk.Parse(jwksJSON)
	if err != nil {
		return out, fmt.Errorf("parse the JWK set: %w", err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return out, fmt.Errorf("parse the JWS: %w", err)
	}
	if len(msg.Signatures()) != 1 {
		return out, fmt.Errorf("%d signatures", len(msg.Signatures()))
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	typ, _ := h.Type()
	kid, _ := h.KeyID()
	alg, _ := h.Algorithm()
	if typ != "secevent+jwt" || kid == "" || alg != jwa.RS256() {
		return out, fmt.Errorf("header typ %q kid %q alg %v", typ, kid, alg)
	}
	payload, err := jws.Verify([]byte(token), jws.WithKeySet(keys, jws.WithRequireKid(true)))
	if err != nil {
		return out, fmt.Errorf("verify: %w", err)
	}
	out.Header = map[string]any{"typ": typ, "kid": kid}
	if err := json.Unmarshal(payload, &out.Claims); err != nil {
		return out, err
	}
	return out, nil
}

func jwksJSON(t testing.TB, k *ssf.Keys) []byte {
	b, err := json.Marshal(k.JWKS(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receiver is an RFC 8935 push receiver that verifies every SET with the JWK set alone.
type receiver struct {
	t    testing.TB
	jwks []byte
	srv  *httptest.Server

	mu       sync.Mutex
	down     bool // answer 503
	sets     []set
	failures int
	bad      []string
}

func newReceiver(t testing.TB, keys *ssf.Keys) *receiver {
	r := &receiver{t: t, jwks: jwksJSON(t, keys)}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		r.failures++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/secevent+jwt" {
		r.bad = append(r.bad, "content type "+ct)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s, err := verify(r.t, r.jwks, string(body))
	if err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.sets = append(r.sets, s)
	w.WriteHeader(http.StatusAccepted)
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *receiver) got() []set {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Errorf("the receiver refused SETs: %v", r.bad)
	}
	return append([]set(nil), r.sets...)
}

// waitSets waits until the receiver holds n SETs.
func (r *receiver) waitSets(n int) []set {
	r.t.Helper()
	testwait.Until(r.t, 15*time.Second, fmt.Sprintf("%d SETs at the receiver", n), func() (bool, string) {
		got := r.got()
		return len(got) >= n, fmt.Sprintf("%d SETs", len(got))
	})
	return r.got()
}
