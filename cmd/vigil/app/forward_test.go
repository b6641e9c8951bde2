package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// hookReceiver verifies Standard Webhooks signatures with its own code (the secret read from
// the file the app wrote), refuses ClientRegistered events while refuseClients is set, and
// records the event ids it accepted, in order.
type hookReceiver struct {
	key           []byte
	mu            sync.Mutex
	refuseClients bool
	accepted      []string
	badSigs       int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(r.Header.Get("webhook-signature")), []byte(want)) {
		h.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID, Type, SpecVersion string
	}
	_ = json.Unmarshal(body, &ev)
	if ev.Type == "vigil.ClientRegistered" && h.refuseClients {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	h.accepted = append(h.accepted, ev.ID)
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.accepted...)
}

type apiCall struct {
	method, path string
	status       int
}

// TestForwardersEndToEnd runs the real app with NATS forwarding on (an in-process JetStream
// server) and drives the webhook administration over HTTP: register an endpoint, watch a
// refused event get parked while later ones go on, replay it, remove the endpoint. The
// receiver gets every event after the registration exactly once, and JetStream holds every
// event of the log exactly once.
func TestForwardersEndToEnd(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(testwait.Deadline(5 * time.Second)) {
		t.Fatal("nats-server did not start")
	}
	defer ns.Shutdown()

	dir := t.TempDir()
	a, stop := runApp(t, Config{
		Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir,
		Argon2MemoryKiB: 8192, Argon2Iterations: 1, AdminEmails: []string{"root@example.com"},
		Forward: ForwardConfig{NATSURL: ns.ClientURL(), WebhookAttempts: 2,
			WebhookInitialBackoff: 5 * time.Millisecond, WebhookMaxBackoff: 10 * time.Millisecond},
	})
	defer stop()
	base := a.URL()
	waitServing(t, base)

	// No --webhook-url: no secret file for it is made.
	if _, err := os.Stat(filepath.Join(dir, WebhookSecretFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("webhook secret file made without --webhook-url: %v", err)
	}
	rcv := &hookReceiver{refuseClients: true}
	hook := httptest.NewServer(rcv)
	defer hook.Close()

	var calls []apiCall
	call := func(method, path, body, token string, want int) map[string]any {
		t.Helper()
		var header []string
		if token != "" {
			header = []string{"Authorization", "Bearer " + token}
		}
		status, m, _ := doJSON(t, method, base+path, body, header...)
		if status != want {
			t.Fatalf("%s %s = %d %v, want %d", method, path, status, m, want)
		}
		calls = append(calls, apiCall{method, path, want})
		return m
	}
	signIn := func(email string) string {
		call("POST", "/api/v1/accounts", `{"email":"`+email+`","password":"a long and unusual passphrase 42","first_name":"A","last_name":"B"}`, "", 201)
		m := call("POST", "/api/v1/login", `{"email":"`+email+`","password":"a long and unusual passphrase 42"}`, "", 200)
		return m["session_token"].(string)
	}
	root := signIn("root@example.com")
	user := signIn("user@example.com")
	// Administrators need a session with a second factor: root sets up an authenticator app.
	dev := call("POST", "/api/v1/me/totp", `{"name":"phone"}`, root, 201)
	otpCode, err := totp.GenerateCode(dev["secret"].(string), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	call("POST", "/api/v1/me/totp/"+dev["device_id"].(string)+"/confirm", `{"code":"`+otpCode+`"}`, root, 200)

	call("POST", "/api/v1/admin/webhooks", `{"url":"`+hook.URL+`/in"}`, user, 403)
	call("POST", "/api/v1/admin/webhooks", `{"url":"ftp://example.com/x"}`, root, 400)
	call("POST", "/api/v1/admin/webhooks", `{"url":"https://u:p@example.com/x"}`, root, 400)
	// Each registered endpoint has its own secret, shown once; the receiver verifies with it.
	rcv.mu.Lock()
	reg := call("POST", "/api/v1/admin/webhooks", `{"url":"`+hook.URL+`/in"}`, root, 201)
	id := reg["id"].(string)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(reg["secret"].(string), "whsec_"))
	if err != nil || len(key) != 32 {
		t.Fatalf("registration secret %v: %v", reg["secret"], err)
	}
	rcv.key = key
	rcv.mu.Unlock()

	// Events after the registration: a refused one (parked after 2 attempts), later ones.
	call("POST", "/api/v1/admin/clients", `{"name":"CRM"}`, root, 201)
	signIn("later@example.com")
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	evs, err := store.ReadAll(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	var clientEvent string
	seenReg := false
	for _, ev := range evs {
		if seenReg {
			after = append(after, ev.ID)
			if ev.Type == "ClientRegistered" {
				clientEvent = ev.ID
			}
		}
		if ev.Type == "WebhookRegistered" {
			seenReg = true
		}
	}
	if clientEvent == "" || len(after) < 4 {
		t.Fatalf("log after the registration: %d events, client event %q", len(after), clientEvent)
	}
	testwait.Until(t, 5*time.Second, fmt.Sprintf("the %d deliveries other than the parked one", len(after)-1), func() (bool, string) {
		n := len(rcv.got())
		return n == len(after)-1, fmt.Sprintf("%d deliveries", n)
	})

	list := call("GET", "/api/v1/admin/webhooks", "", root, 200)
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != id || items[0].(map[string]any)["parked"].(float64) != 1 {
		t.Fatalf("endpoints %v", list)
	}
	parked := call("GET", "/api/v1/admin/webhooks/"+id+"/parked", "", root, 200)["items"].([]any)
	if len(parked) != 1 {
		t.Fatalf("parked %v", parked)
	}
	p := parked[0].(map[string]any)
	if p["event_id"] != clientEvent || p["type"] != "ClientRegistered" || p["attempts"].(float64) != 2 || !strings.Contains(p["last_error"].(string), "502") {
		t.Fatalf("parked delivery %v", p)
	}
	pid := p["id"].(string)
	call("GET", "/api/v1/admin/webhooks/"+id+"/parked?limit=0", "", root, 400)
	call("GET", "/api/v1/admin/webhooks/nope/parked", "", root, 404)
	call("POST", "/api/v1/admin/webhooks/"+id+"/parked/999999/replay", "", root, 404)
	if r := call("POST", "/api/v1/admin/webhooks/"+id+"/parked/"+pid+"/replay", "", root, 200); r["delivered"] != false {
		t.Fatalf("replay while refused: %v", r)
	}
	rcv.mu.Lock()
	rcv.refuseClients = false
	rcv.mu.Unlock()
	if r := call("POST", "/api/v1/admin/webhooks/"+id+"/parked/"+pid+"/replay", "", root, 200); r["delivered"] != true || r["attempts"].(float64) != 4 {
		t.Fatalf("replay: %v", r)
	}
	if n := len(call("GET", "/api/v1/admin/webhooks/"+id+"/parked", "", root, 200)["items"].([]any)); n != 0 {
		t.Fatalf("%d still parked after the replay", n)
	}
	// Every event after the registration, exactly once: in log order, the parked one last.
	var want []string
	for _, e := range after {
		if e != clientEvent {
			want = append(want, e)
		}
	}
	want = append(want, clientEvent)
	got := rcv.got()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("received\n%v\nwant\n%v", got, want)
	}
	if rcv.badSigs != 0 {
		t.Fatalf("%d bad signatures", rcv.badSigs)
	}

	call("DELETE", "/api/v1/admin/webhooks/"+id, "", root, 204)
	call("DELETE", "/api/v1/admin/webhooks/"+id, "", root, 404)
	call("DELETE", "/api/v1/admin/webhooks/configured", "", root, 404)
	signIn("after-removal@example.com")
	if n := len(call("GET", "/api/v1/admin/webhooks", "", root, 200)["items"].([]any)); n != 0 {
		t.Fatalf("%d endpoints after the removal", n)
	}

	// NATS: every event of the log, once, in order.
	head, err := store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	evs, _ = store.ReadAll(context.Background(), 0, 10000)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	testwait.Until(t, 5*time.Second, fmt.Sprintf("JetStream to hold the %d events up to %d", len(evs), head), func() (bool, string) {
		info, err := js.StreamInfo("VIGIL_EVENTS")
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs == uint64(len(evs)), fmt.Sprintf("%d messages", info.State.Msgs)
	})
	for i, ev := range evs {
		m, err := js.GetMsg("VIGIL_EVENTS", uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Nats-Msg-Id") != ev.ID || m.Subject != "vigil.events."+ev.Type {
			t.Fatalf("message %d: %s on %s, want %s on vigil.events.%s", i+1, m.Header.Get("Nats-Msg-Id"), m.Subject, ev.ID, ev.Type)
		}
		var ce map[string]any
		if err := json.Unmarshal(m.Data, &ce); err != nil || ce["specversion"] != "1.0" || ce["type"] != "vigil."+ev.Type || ce["id"] != ev.ID ||
			ce["vigilposition"] != strconv.FormatUint(ev.Position, 10) {
			t.Fatalf("message %d body %s", i+1, m.Data)
		}
	}

	// Metrics and the OpenAPI document.
	code, metrics := get(t, base+"/metrics")
	for _, m := range []string{`vigil_forwarder_checkpoint{forwarder="nats"}`, `vigil_forwarder_lag_positions{forwarder="nats"}`,
		`vigil_forwarder_attempt_failures_total{forwarder="webhook-` + id + `"}`} {
		if code != 200 || !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	_, doc := get(t, base+"/openapi.json")
	var openapi struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc), &openapi); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if !strings.Contains(c.path, "/admin/webhooks") {
			continue
		}
		path := strings.SplitN(c.path, "?", 2)[0]
		path = strings.Replace(path, id, "{id}", 1)
		path = strings.Replace(path, "/nope/", "/{id}/", 1)
		path = strings.Replace(path, "/configured", "/{id}", 1)
		if i := strings.Index(path, "/parked/"); i >= 0 && strings.HasSuffix(path, "/replay") {
			path = path[:i] + "/parked/{delivery_id}/replay"
		}
		op, ok := openapi.Paths[path][strings.ToLower(c.method)]
		if !ok {

			t.Errorf("openapi.json lacks %s %s", c.method, path)
			continue
		}
		if _, ok := op.Responses[strconv.Itoa(c.status)]; !ok {
			t.Errorf("openapi.json: %s %s does not document %d", c.method, path, c.status)
		}
	}
}
