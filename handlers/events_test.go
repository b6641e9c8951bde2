package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

const adminEmail = "root@example.com"

// adminEnv is an env with a signed-in admin.
func adminEnv(t *testing.T, opts ...envOption) (*env, session) {
	t.Helper()
	e := newEnv(t, append([]envOption{withAdmins(adminEmail)}, opts...)...)
	e.register(adminEmail)
	return e, e.teamLogin(adminEmail)
}

// createToken creates a service token and returns its id and secret.
func (e *env) createToken(admin session, name string, scopes ...string) (string, string) {
	e.t.Helper()
	m := e.expect(e.do("POST", "/api/v1/admin/service-tokens", map[string]any{"name": name, "scopes": scopes}, admin.auth()), 201, "")
	id, _ := m["id"].(string)
	tok, _ := m["token"].(string)
	if id == "" || !strings.HasPrefix(tok, "vgl_") || len(tok) < 4+43 {
		e.t.Fatalf("created token %v", m)
	}
	return id, tok
}

// logWriter appends events straight to the log file, as another instance would.
func logWriter(t *testing.T, e *env) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: e.log, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendClients appends n ClientRegistered events, per events in one append.
func appendClients(t *testing.T, s *sqlite.Store, n, per int) {
	t.Helper()
	for n > 0 {
		k := min(n, per)
		evs := make([]domain.EventData, k)
		id := domain.NewID()
		for i := range evs {
			d, err := domain.NewEventData(domain.EventClientRegistered, 1, domain.ClientRegistered{ClientID: id, Name: "App " + strings.Repeat("x", 60), At: time.Now().UTC()},
				domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
			if err != nil {
				t.Error(err)
				return
			}
			evs[i] = d
		}
		if _, err := s.Append(context.Background(), domain.ClientStream(id), expect.Any, evs); err != nil {
			t.Error(err)
			return
		}
		n -= k
	}
}

// positions returns the positions of every event in the log (matching keep) in order.
func positions(t *testing.T, s *sqlite.Store, keep func(domain.Envelope) bool) []uint64 {
	t.Helper()
	var out []uint64
	for _, ev := range testkit.ReadLog(t, s) {
		if keep == nil || keep(ev) {
			out = append(out, ev.Position)
		}
	}
	return out
}

func TestServiceTokenAdministration(t *testing.T) {
	e, admin := adminEnv(t)
	e.register("ann@example.com")
	ann := e.login("ann@example.com", testPassword)

	// Only admins; bad bodies and values change nothing.
	e.expect(e.do("POST", "/api/v1/admin/service-tokens", map[string]any{"name": "x", "scopes": []string{"events:read"}}, ann.auth()), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/admin/service-tokens", map[string]any{"name": "x", "scopes": []string{"events:read"}}, nil), 401, "unauthenticated")
	e.checkBadBodies("POST", "/api/v1/admin/service-tokens", map[string]any{"name": "x", "scopes": []string{"events:read"}}, admin.auth())
	for _, body := range []map[string]any{
		{"name": "", "scopes": []string{"events:read"}},
		{"name": "x", "scopes": []string{}},
		{"name": "x", "scopes": []string{"events:write"}},
		{"name": "x"},
	} {
		before := e.head()
		e.expect(e.do("POST", "/api/v1/admin/service-tokens", body, admin.auth()), 400, "invalid_request")
		if e.head() != before {
			t.Errorf("%v wrote to the log", body)
		}
	}

	evID, evTok := e.createToken(admin, "SIEM", "events:read")
	_, auTok := e.createToken(admin, "Auditor bot", "audit:read")

	// The list shows no secret and no hash.
	r := e.do("GET", "/api/v1/admin/service-tokens", nil, admin.auth())
	e.expect(r, 200, "")
	if strings.Contains(string(r.body), evTok) || strings.Contains(string(r.body), "hash") || !strings.Contains(string(r.body), `"SIEM"`) {
		t.Fatalf("list: %s", r.body)
	}
	e.expect(e.do("GET", "/api/v1/admin/service-tokens", nil, bearer(evTok)), 401, "unauthenticated") // a service token is no admin

	// Scopes: events:read reads the events, not the audit; audit:read the audit GETs only.
	e.expect(e.do("GET", "/api/v1/events", nil, bearer(evTok)), 200, "")
	e.expect(e.do("GET", "/api/v1/audit/activity", nil, bearer(evTok)), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/audit/activity", nil, bearer(auTok)), 200, "")
	e.expect(e.do("GET", "/api/v1/audit/sessions", nil, bearer(auTok)), 200, "")
	e.expect(e.do("DELETE", "/api/v1/audit/sessions/"+ann.id, nil, bearer(auTok)), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/events", nil, bearer(auTok)), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/events", nil, bearer("vgl_"+strings.Repeat("A", 43))), 401, "unauthenticated")
	// Sessions: an admin may read the events, another account may not.
	e.expect(e.do("GET", "/api/v1/events", nil, admin.auth()), 200, "")
	e.expect(e.do("GET", "/api/v1/events", nil, ann.auth()), 403, "forbidden")

	// Revocation holds before DELETE answers; a second DELETE changes nothing; unknown is 404.
	r = e.do("DELETE", "/api/v1/admin/service-tokens/"+evID, nil, admin.auth())
	e.expect(r, 204, "")
	e.expect(e.do("GET", "/api/v1/events", nil, bearer(evTok)), 401, "unauthenticated")
	e.expect(e.do("GET", "/api/v1/events/stream", nil, bearer(evTok)), 401, "unauthenticated")
	e.expect(e.do("DELETE", "/api/v1/admin/service-tokens/"+evID, nil, admin.auth()), 204, "")
	e.expect(e.do("DELETE", "/api/v1/admin/service-tokens/nope", nil, admin.auth()), 404, "not_found")

	// Every creation, denial (rate-limited: one per token per minute) and revocation is an
	// event, read here through the events API itself.
	_, reader := e.createToken(admin, "reader", "events:read")
	m := e.expect(e.do("GET", "/api/v1/events?types=ServiceTokenCreated,ServiceTokenRevoked,ServiceTokenUseDenied&limit=500", nil, bearer(reader)), 200, "")
	counts := map[string]int{}
	for _, it := range m["items"].([]any) {
		ce := it.(map[string]any)
		counts[ce["type"].(string)]++
		if strings.Contains(fmt.Sprint(ce), evTok) || strings.Contains(fmt.Sprint(ce), evTok[4:]) {
			t.Fatalf("a token in the log: %v", ce)
		}
	}
	// Denied: auTok on /events twice (one recorded), evTok on audit (one), evTok after revocation twice (one).
	if counts["vigil.ServiceTokenCreated"] != 3 || counts["vigil.ServiceTokenRevoked"] != 1 || counts["vigil.ServiceTokenUseDenied"] != 3 {
		t.Fatalf("token events: %v", counts)
	}
	list := e.expect(e.do("GET", "/api/v1/admin/service-tokens", nil, admin.auth()), 200, "")["items"].([]any)
	if len(list) != 3 || list[0].(map[string]any)["revoked"] != true || list[0].(map[string]any)["revoked_at"] == nil {
		t.Fatalf("list after revoke: %v", list)
	}
}

func TestEventsPage(t *testing.T) {
	e, admin := adminEnv(t)
	annID := e.register("ann@example.com")
	e.login("ann@example.com", testPassword)
	_ = e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": "wrong-password-123"}, nil)
	_, tok := e.createToken(admin, "SIEM", "events:read")
	all := positions(t, logWriter(t, e), nil)

	// Pages of 3 walk the whole log in order, each item a CloudEvent.
	var got []uint64
	after := uint64(0)
	for i := 0; i < 100; i++ {
		m := e.expect(e.do("GET", "/api/v1/events?limit=3&after="+strconv.FormatUint(after, 10), nil, bearer(tok)), 200, "")
		items := m["items"].([]any)
		for _, it := range items {
			ce := it.(map[string]any)
			if ce["specversion"] != "1.0" || !strings.HasPrefix(ce["type"].(string), "vigil.") || ce["source"] != "http://localhost:8080" || ce["id"] == "" {
				t.Fatalf("not a CloudEvent: %v", ce)
			}
			p, err := strconv.ParseUint(ce["vigilposition"].(string), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p)
		}
		next := uint64(m["next_after"].(float64))
		if len(items) == 0 {
			if next != after {
				t.Fatalf("empty page moved next_after %d -> %d", after, next)
			}
			break
		}
		after = next
	}
	if fmt.Sprint(got) != fmt.Sprint(all[:len(got)]) || len(got) < len(all)-1 {
		t.Fatalf("paged %v, log %v", got, all)
	}

	// Filters: types and account.
	m := e.expect(e.do("GET", "/api/v1/events?types=LoginSucceeded,LoginFailed&account="+annID, nil, bearer(tok)), 200, "")
	items := m["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("filtered: %v", items)
	}
	for _, it := range items {
		ce := it.(map[string]any)
		if ce["vigilaccount"] != annID || (ce["type"] != "vigil.LoginSucceeded" && ce["type"] != "vigil.LoginFailed") {
			t.Fatalf("filter let through %v", ce)
		}
	}
	// Credential material is redacted.
	m = e.expect(e.do("GET", "/api/v1/events?types=AccountRegistered", nil, bearer(tok)), 200, "")
	for _, it := range m["items"].([]any) {
		d := it.(map[string]any)["data"].(map[string]any)["data"].(map[string]any)
		if d["password_hash"] != "[redacted]" {
			t.Fatalf("password hash exported: %v", d)
		}
	}
	// OCSF: sign-ins are Authentication (3002), registrations Account Change (3001); the rest skipped.
	m = e.expect(e.do("GET", "/api/v1/events?format=ocsf&account="+annID+"&limit=500", nil, bearer(tok)), 200, "")
	classes := map[float64]int{}
	for _, it := range m["items"].([]any) {
		classes[it.(map[string]any)["class_uid"].(float64)]++
	}
	if classes[3002] != 2 || classes[3001] != 1 || len(classes) != 2 {
		t.Fatalf("ocsf classes %v", classes)
	}

	// Bad parameters: 400 invalid_request.
	for _, q := range []string{"after=-1", "after=x", "types=Nope", "types=LoginSucceeded,,", "limit=0", "limit=-5", "limit=x",
		"account=a%20b", "account=", "format=xml"} {
		e.expect(e.do("GET", "/api/v1/events?"+q, nil, bearer(tok)), 400, "invalid_request")
	}
	// A position past any the log can hold (above SQLite's largest integer) has nothing after it.
	for _, far := range []string{"9223372036854775808", "18446744073709551615"} {
		m := e.expect(e.do("GET", "/api/v1/events?limit=500&after="+far, nil, bearer(tok)), 200, "")
		if items, _ := m["items"].([]any); len(items) != 0 {
			t.Errorf("after=%s: %v", far, items)
		}
	}
	// limit above 500 counts as 500.
	e.expect(e.do("GET", "/api/v1/events?limit=100000", nil, bearer(tok)), 200, "")
	r := e.do("GET", "/api/v1/events/stream?types=Nope", nil, bearer(tok))
	e.expect(r, 400, "invalid_request")
	r = e.do("GET", "/api/v1/events/stream", nil, bearer(tok).with("Last-Event-ID", "abc"))
	e.expect(r, 400, "invalid_request")
}

// sseMsg is one SSE message.
type sseMsg struct {
	id    uint64
	event string
	data  string
}

// sseClient reads one SSE connection.
type sseClient struct {
	resp     *http.Response
	msgs     chan sseMsg
	comments chan string
	done     chan error
	cancel   context.CancelFunc
}

func openStream(t *testing.T, e *env, query string, h hdr) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/events/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{resp: resp, msgs: make(chan sseMsg, 1<<16), comments: make(chan string, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		br := bufio.NewReaderSize(resp.Body, 1<<16)
		var m sseMsg
		var hasData bool
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c.done <- err
				close(c.msgs) // after every message read
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if hasData {
					c.msgs <- m
				}
				m, hasData = sseMsg{}, false
			case strings.HasPrefix(line, ":"):
				select {
				case c.comments <- line:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				m.id, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data, hasData = line[6:], true
			}
		}
	}()
	t.Cleanup(cancel)
	return c
}

func (c *sseClient) close() { c.cancel() }

// TestEventStreamResumesWithoutGapOrDuplicate: a client reads the stream while events are
// appended, drops the connection, resumes with Last-Event-ID, and ends with exactly the
// log's positions, in order.
func TestEventStreamResumesWithoutGapOrDuplicate(t *testing.T) {
	e, admin := adminEnv(t)
	_, tok := e.createToken(admin, "SIEM", "events:read")
	w := logWriter(t, e)
	appendClients(t, w, 200, 7) // history to catch up on

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // appends continue throughout
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			appendClients(t, w, 5, 5)
			time.Sleep(2 * time.Millisecond)
		}
	}()

	var got []uint64
	var last uint64
	read := func(c *sseClient, n int) {
		t.Helper()
		deadline := time.After(testwait.Deadline(10 * time.Second))
		for i := 0; i < n; i++ {
			select {
			case m, ok := <-c.msgs:
				if !ok {
					t.Fatalf("stream ended: %v", <-c.done)
				}
				var ce map[string]any
				if err := json.Unmarshal([]byte(m.data), &ce); err != nil {
					t.Fatalf("data %q: %v", m.data, err)
				}
				if ce["vigilposition"] != strconv.FormatUint(m.id, 10) {
					t.Fatalf("id %d, vigilposition %v", m.id, ce["vigilposition"])
				}
				got = append(got, m.id)
				last = m.id
			case <-deadline:
				t.Fatalf("only %d of %d events", i, n)
			}
		}
	}
	c := openStream(t, e, "?after=0", bearer(tok))
	read(c, 150) // inside the catch-up
	c.close()
	c = openStream(t, e, "?after=1", bearer(tok).with("Last-Event-ID", strconv.FormatUint(last, 10))) // Last-Event-ID wins
	read(c, 300)                                                                                      // through the hand-over to live
	c.close()
	c = openStream(t, e, "", bearer(tok).with("Last-Event-ID", strconv.FormatUint(last, 10)))
	read(c, 100) // live
	close(stop)
	wg.Wait()
	// Everything appended so far arrives.
	want := positions(t, w, nil)
	for last < want[len(want)-1] {
		read(c, 1)
	}
	c.close()
	if fmt.Sprint(got) != fmt.Sprint(want[:len(got)]) {
		for i := range got {
			if i >= len(want) || got[i] != want[i] {
				t.Fatalf("at %d: got %d, log has %v", i, got[i], want[max(0, i-2):min(len(want), i+3)])
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events received, %d in the log", len(got), len(want))
	}
}

// TestEventStreamFiltersHeartbeatsAndSlowClients: filters by type and account, heartbeats on
// idle connections, and a client whose buffer overflows is told why and disconnected while a
// filtered client goes on undisturbed; the dropped client resumes without a gap.
func TestEventStreamFiltersHeartbeatsAndSlowClients(t *testing.T) {
	e, admin := adminEnv(t, func(c *handlertest.Config) {
		c.StreamHeartbeat = 50 * time.Millisecond
		c.StreamBuffer = 8
	})
	_, tok := e.createToken(admin, "SIEM", "events:read")
	w := logWriter(t, e)

	// The filtered client: only Ann's sign-ins.
	head := e.head()
	annID := e.register("ann@example.com")
	filtered := openStream(t, e, "?types=LoginSucceeded,LoginFailed&account="+annID+"&after="+strconv.FormatUint(head, 10), bearer(tok))
	select {
	case c := <-filtered.comments:
		_ = c
	case <-time.After(testwait.Deadline(5 * time.Second)):
		t.Fatal("no heartbeat")
	}
	waitHeartbeat := func() {
		deadline := time.After(testwait.Deadline(5 * time.Second))
		for n := 0; n < 2; {
			select {
			case c := <-filtered.comments:
				if c == ": heartbeat" {
					n++
				}
			case <-deadline:
				t.Fatal("no heartbeats on an idle stream")
			}
		}
	}
	waitHeartbeat()

	// The slow client: everything, with a buffer of 8 and a burst of 500 in one append.
	slow := openStream(t, e, "?after="+strconv.FormatUint(e.head(), 10), bearer(tok))
	// Joined and live: heartbeats are written by the live loop only.
	for c := ""; c != ": heartbeat"; {
		c, _ = testwait.Recv(t, 5*time.Second, "a heartbeat on the slow client's live stream", slow.comments)
	}
	start := e.head()
	appendClients(t, w, 500, 500)
	e.login("ann@example.com", testPassword)
	var got []uint64
	var errMsg *sseMsg
	deadline := time.After(testwait.Deadline(10 * time.Second))
	for errMsg == nil {
		select {
		case m, ok := <-slow.msgs:
			if !ok {
				t.Fatalf("slow stream ended without an error event: %v (after %d events)", <-slow.done, len(got))
			}
			if m.event == "error" {
				errMsg = &m
				break
			}
			got = append(got, m.id)
		case <-deadline:
			t.Fatalf("the slow client was never disconnected (%d events)", len(got))
		}
	}
	var reason map[string]any
	if err := json.Unmarshal([]byte(errMsg.data), &reason); err != nil || reason["code"] != "slow_consumer" {
		t.Fatalf("error event %q", errMsg.data)
	}
	select {
	case <-slow.done:
	case <-time.After(testwait.Deadline(5 * time.Second)):
		t.Fatal("the slow client's connection stayed open")
	}
	lastID, _ := strconv.ParseUint(reason["last_event_id"].(string), 10, 64)
	if len(got) > 0 && got[len(got)-1] != lastID || len(got) >= 501 {
		t.Fatalf("last_event_id %d after %d events", lastID, len(got))
	}
	// The filtered client got Ann's sign-in and nothing else.
	select {
	case m := <-filtered.msgs:
		if !strings.Contains(m.data, `"type":"vigil.LoginSucceeded"`) || !strings.Contains(m.data, annID) {
			t.Fatalf("filtered stream sent %s", m.data)
		}
	case <-time.After(testwait.Deadline(5 * time.Second)):
		t.Fatal("the filtered client missed Ann's sign-in")
	}
	// Resuming gives the rest, no gap, no duplicate.
	again := openStream(t, e, "", bearer(tok).with("Last-Event-ID", strconv.FormatUint(lastID, 10)))
	want := positions(t, w, func(ev domain.Envelope) bool { return ev.Position > start })
	for len(got) < len(want) {
		select {
		case m, ok := <-again.msgs:
			if !ok {
				t.Fatal("resumed stream ended")
			}
			got = append(got, m.id)
		case <-time.After(testwait.Deadline(5 * time.Second)):
			t.Fatalf("resume: %d of %d", len(got), len(want))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after resume the positions differ from the log")
	}
	select {
	case m, ok := <-filtered.msgs:
		t.Fatalf("filtered stream sent more (%v): %s", ok, m.data)
	default:
	}
}
