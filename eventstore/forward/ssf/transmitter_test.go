package ssf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// TestPushEveryMappedEvent: each Vigil event of API.md's mapping reaches a push receiver as
// the SET it maps to, verified with the JWK set alone by another JOSE library, with iss,
// aud, unique jti, txn = the event id and the subject; other events send nothing; a
// verification request arrives with its state, in order with the rest.
func TestPushEveryMappedEvent(t *testing.T) {
	e := newEnv(t, nil)
	rcv := newReceiver(t, e.keys)
	id := e.createStream(ssf.MethodPush, rcv.srv.URL)
	acct := "acct-1"
	md := accountMD(acct)
	now := time.Now().UTC()
	type want struct {
		uri     string
		members map[string]any
		session string
	}
	var envs []domain.Envelope
	var wants []want
	add := func(stream string, ev domain.Event, md domain.Metadata, w want) {
		envs = append(envs, e.mustAppend(stream, ev, md))
		wants = append(wants, w)
	}
	cc := func(ctype, change string) want {
		return want{uri: ssf.EventCredentialChange, members: map[string]any{"credential_type": ctype, "change_type": change}}
	}
	e.mustAppend(domain.AccountStream(acct), domain.LoginFailed{Reason: "invalid_credentials", At: now}, md) // not mapped
	add(domain.SessionStream("s1"), domain.SessionSignedOut{Reason: "signed_out_by_admin", At: now}, md,
		want{uri: ssf.EventSessionRevoked, session: "s1", members: map[string]any{"initiating_entity": "admin"}})
	add(domain.SessionStream("s2"), domain.SessionExpired{Reason: "idle", At: now}, md,
		want{uri: ssf.EventSessionRevoked, session: "s2", members: map[string]any{"initiating_entity": "system"}})
	add(domain.AccountStream(acct), domain.PasswordChanged{PasswordHash: "h", At: now}, md, cc("password", "update"))
	add(domain.AccountStream(acct), domain.PasswordResetCompleted{RequestID: "r", PasswordHash: "h", At: now}, md, cc("password", "update"))
	add(domain.AccountStream(acct), domain.TOTPDeviceConfirmed{DeviceID: "d1", Step: 1, At: now}, md, cc("app", "create"))
	add(domain.AccountStream(acct), domain.TOTPDeviceRemoved{DeviceID: "d1", At: now}, md, cc("app", "delete"))
	add(domain.AccountStream(acct), domain.PasskeyRegistered{PasskeyID: "p1", Name: "Phone", BackupEligible: true, At: now}, md, cc("fido2-platform", "create"))
	add(domain.AccountStream(acct), domain.PasskeyRegistered{PasskeyID: "p2", Name: "Key", At: now}, md, cc("fido2-roaming", "create"))
	add(domain.AccountStream(acct), domain.PasskeyRemoved{PasskeyID: "p1", At: now}, md, cc("fido2-platform", "delete"))
	add(domain.AccountStream(acct), domain.PasskeyRemoved{PasskeyID: "p2", At: now}, md, cc("fido2-roaming", "delete"))
	add(domain.AccountStream(acct), domain.EmailChanged{OldEmail: "a@example.com", NewEmail: "b@example.com", At: now}, md,
		want{uri: ssf.EventIdentifierChanged, members: map[string]any{}})
	add(domain.AccountStream(acct), domain.SuspiciousActivityReported{EventID: "x", Source: "mail", At: now}, md,
		want{uri: ssf.EventCredentialCompromise, members: map[string]any{"credential_type": "password"}})
	verif := e.change(id, func(c *domain.SSFStreamChanged) { c.Change, c.State = ssf.ChangeVerification, "st-42" })
	envs = append(envs, verif)
	wants = append(wants, want{uri: ssf.EventVerification, members: map[string]any{"state": "st-42"}})
	add(domain.AccountStream(acct), domain.AccountErased{At: now}, md, want{uri: ssf.EventAccountPurged, members: map[string]any{}})

	got := rcv.waitSets(len(wants))
	if len(got) != len(wants) {
		t.Fatalf("%d SETs, want %d", len(got), len(wants))
	}
	jtis := map[string]bool{}
	for i, s := range got {
		w, env := wants[i], envs[i]
		uri, members := s.event()
		if uri != w.uri {
			t.Errorf("SET %d: event %s, want %s (for %s)", i, uri, w.uri, env.Type)
			continue
		}
		if s.Claims.Iss != iss || s.Claims.Aud != "aud-"+id || s.Claims.Txn != env.ID || s.Claims.Iat == 0 {
			t.Errorf("SET %d (%s): iss %q aud %q txn %q (event %s) iat %d", i, env.Type, s.Claims.Iss, s.Claims.Aud, s.Claims.Txn, env.ID, s.Claims.Iat)
		}
		if s.Claims.Jti == "" || jtis[s.Claims.Jti] {
			t.Errorf("SET %d: jti %q empty or repeated", i, s.Claims.Jti)
		}
		jtis[s.Claims.Jti] = true
		for k, v := range w.members {
			if members[k] != v {
				t.Errorf("SET %d (%s): %s = %v, want %v", i, env.Type, k, members[k], v)
			}
		}
		if ts, _ := members["event_timestamp"].(float64); int64(ts) != env.RecordedAt.Unix() {
			t.Errorf("SET %d: event_timestamp %v, want %d", i, members["event_timestamp"], env.RecordedAt.Unix())
		}
		sub := s.Claims.SubID
		switch {
		case uri == ssf.EventVerification:
			if sub["format"] != "opaque" || sub["id"] != id {
				t.Errorf("verification sub_id %v", sub)
			}
		case w.session != "":
			user, _ := sub["user"].(map[string]any)
			sess, _ := sub["session"].(map[string]any)
			if sub["format"] != "complex" || user["format"] != "iss_sub" || user["iss"] != iss || user["sub"] != acct ||
				sess["format"] != "opaque" || sess["id"] != w.session {
				t.Errorf("SET %d: sub_id %v", i, sub)
			}
		default:
			if sub["format"] != "iss_sub" || sub["iss"] != iss || sub["sub"] != acct {
				t.Errorf("SET %d: sub_id %v", i, sub)
			}
		}
		raw, _ := json.Marshal(s.Claims)
		if strings.Contains(string(raw), "example.com\"") && strings.Contains(string(raw), "b@example.com") {
			t.Errorf("SET %d carries the new email: %s", i, raw)
		}
	}
}

// TestEventsRequestedFilter: a stream gets only the event types it asked for.
func TestEventsRequestedFilter(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createStream(ssf.MethodPoll, "")
	e.change(id, func(c *domain.SSFStreamChanged) {
		c.Change, c.EventsRequested = ssf.ChangeUpdated, []string{ssf.EventAccountPurged, "https://example.com/unknown"}
	})
	md := accountMD("a1")
	e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md)
	erased := e.mustAppend(domain.AccountStream("a1"), domain.AccountErased{At: time.Now()}, md)
	ctx, cancel := testwait.Context(10 * time.Second)
	defer cancel()
	if err := e.tr.WaitStream(ctx, id, erased.Position); err != nil {
		t.Fatal(err)
	}
	res := poll(t, e, id, 10, true, nil)
	if len(res) != 1 {
		t.Fatalf("%d SETs, want only account-purged", len(res))
	}
	for _, s := range res {
		if uri, _ := s.event(); uri != ssf.EventAccountPurged || s.Claims.Txn != erased.ID {
			t.Fatalf("got %s txn %s", uri, s.Claims.Txn)
		}
	}
}

// poll polls and verifies every SET returned, by jti.
func poll(t *testing.T, e *env, id string, max int, immediate bool, ack []string) map[string]set {
	t.Helper()
	ctx, cancel := testwait.Context(40 * time.Second)
	defer cancel()
	res, err := e.tr.Poll(ctx, id, max, immediate, ack)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]set{}
	jwks := jwksJSON(t, e.keys)
	for jti, tok := range res.Sets {
		s, err := verify(t, jwks, tok)
		if err != nil {
			t.Fatal(err)
		}
		if s.Claims.Jti != jti {
			t.Fatalf("poll key %s holds jti %s", jti, s.Claims.Jti)
		}
		out[jti] = s
	}
	return out
}

func txns(sets map[string]set) []string {
	var out []string
	for _, s := range sets {
		out = append(out, s.Claims.Txn)
	}
	slices.Sort(out)
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPollWithAndWithoutAck: unacknowledged SETs come again, acknowledged ones never;
// maxEvents and moreAvailable page the queue; a long poll returns when a SET is made.
func TestPollWithAndWithoutAck(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createStream(ssf.MethodPoll, "")
	md := accountMD("a1")
	var want []string
	for range 5 {
		want = append(want, e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md).ID)
	}
	testwait.Until(t, 10*time.Second, "5 SETs made", func() (bool, string) {
		n := len(poll(t, e, id, 10, true, nil))
		return n == 5, fmt.Sprint(n)
	})
	ctx := context.Background()
	r, err := e.tr.Poll(ctx, id, 2, true, nil)
	if err != nil || len(r.Sets) != 2 || !r.MoreAvailable {
		t.Fatalf("maxEvents 2: %d sets, more %v, %v", len(r.Sets), r.MoreAvailable, err)
	}
	again := poll(t, e, id, 2, true, nil)
	if !slices.Equal(sortedKeys(again), sortedKeys(r.Sets)) {
		t.Fatal("without an ack the same SETs come again")
	}
	seen := map[string]bool{}
	var got []string
	ack := keys(r.Sets)
	for _, k := range ack {
		seen[k] = true
	}
	got = append(got, txns(again)...)
	for {
		res, err := e.tr.Poll(ctx, id, 2, true, ack)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sets) == 0 {
			break
		}
		ack = keys(res.Sets)
		for k, tok := range res.Sets {
			if seen[k] {
				t.Fatalf("acknowledged SET %s returned again", k)
			}
			seen[k] = true
			s, err := verify(t, jwksJSON(t, e.keys), tok)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, s.Claims.Txn)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("polled %v, want %v", got, want)
	}
	// Long poll: nothing waits; it returns with the SET appended meanwhile.
	res := make(chan ssf.PollResult, 1)
	go func() {
		r, err := e.tr.Poll(context.Background(), id, 10, false, nil)
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	late := e.mustAppend(domain.AccountStream("a1"), domain.AccountErased{At: time.Now()}, md)
	r2, _ := testwait.Recv(t, 10*time.Second, "the long poll to return", res)
	if len(r2.Sets) != 1 {
		t.Fatalf("long poll: %d SETs", len(r2.Sets))
	}
	for _, tok := range r2.Sets {
		s, err := verify(t, jwksJSON(t, e.keys), tok)
		if err != nil || s.Claims.Txn != late.ID {
			t.Fatalf("long poll got txn %s, want %s (%v)", s.Claims.Txn, late.ID, err)
		}
	}
	if _, err := e.tr.Poll(ctx, "nope", 1, true, nil); err == nil {
		t.Fatal("an unknown stream polls")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	k := keys(m)
	slices.Sort(k)
	return k
}

// TestPauseKeepsDisableDrops: events while paused are delivered once enabled; a disabling
// drops the SETs waiting and the events until the stream is enabled again.
func TestPauseKeepsDisableDrops(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createStream(ssf.MethodPoll, "")
	md := accountMD("a1")
	status := func(s string) domain.Envelope {
		return e.change(id, func(c *domain.SSFStreamChanged) { c.Change, c.Status = ssf.ChangeStatus, s })
	}
	waitStream := func(pos uint64) {
		ctx, cancel := testwait.Context(10 * time.Second)
		defer cancel()
		if err := e.tr.WaitStream(ctx, id, pos); err != nil {
			t.Fatal(err)
		}
	}
	pw := func() domain.Envelope {
		return e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md)
	}
	status(ssf.StatusPaused)
	kept := pw()
	waitStream(kept.Position)
	if n := len(poll(t, e, id, 10, true, nil)); n != 0 {
		t.Fatalf("a paused stream polled %d SETs", n)
	}
	waitStream(status(ssf.StatusEnabled).Position)
	if got := txns(poll(t, e, id, 10, true, nil)); !slices.Equal(got, []string{kept.ID}) {
		t.Fatalf("after enabling: %v, want the event kept while paused %s", got, kept.ID)
	}
	// Waiting SETs are dropped by the disabling; events while disabled too.
	pw()
	status(ssf.StatusDisabled)
	pw()
	waitStream(status(ssf.StatusEnabled).Position)
	after := pw()
	waitStream(after.Position)
	if got := txns(poll(t, e, id, 10, true, nil)); !slices.Equal(got, []string{after.ID}) {
		t.Fatalf("after disable then enable: %v, want only %s", got, after.ID)
	}
}

// TestReceiverDownGetsEverythingInOrder: a push receiver that answers 503 for a while gets
// every SET afterwards, each once, in log order.
func TestReceiverDownGetsEverythingInOrder(t *testing.T) {
	e := newEnv(t, nil)
	rcv := newReceiver(t, e.keys)
	rcv.setDown(true)
	id := e.createStream(ssf.MethodPush, rcv.srv.URL)
	_ = id
	md := accountMD("a1")
	var want []string
	for i := range 30 {
		if i%2 == 0 {
			want = append(want, e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md).ID)
		} else {
			want = append(want, e.mustAppend(domain.SessionStream(fmt.Sprint("s", i)), domain.SessionSignedOut{Reason: "logout", At: time.Now()}, md).ID)
		}
	}
	testwait.Until(t, 10*time.Second, "the receiver to refuse a few pushes", func() (bool, string) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.failures >= 4, fmt.Sprint(rcv.failures, " failures")
	})
	rcv.setDown(false)
	got := rcv.waitSets(len(want))
	var order []string
	for _, s := range got {
		order = append(order, s.Claims.Txn)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("received %v\nwant        %v", order, want)
	}
}

// TestRestartNeitherLosesNorResends: SETs acknowledged before a restart are not sent again;
// events appended while the transmitter was down are sent after it, in order; a poll
// stream's acknowledged SETs stay acknowledged and the others come again.
func TestRestartNeitherLosesNorResends(t *testing.T) {
	e := newEnv(t, nil)
	rcv := newReceiver(t, e.keys)
	e.createStream(ssf.MethodPush, rcv.srv.URL)
	pollID := e.createStream(ssf.MethodPoll, "")
	md := accountMD("a1")
	var want []string
	add := func() {
		want = append(want, e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, md).ID)
	}
	for range 4 {
		add()
	}
	rcv.waitSets(4)
	var acked []string
	testwait.Until(t, 10*time.Second, "4 SETs to poll", func() (bool, string) {
		r := poll(t, e, pollID, 2, true, nil)
		acked = keys(r)
		n := len(poll(t, e, pollID, 10, true, nil))
		return n == 4, fmt.Sprint(n)
	})
	if _, err := e.tr.Poll(context.Background(), pollID, 0, true, acked); err != nil {
		t.Fatal(err)
	}
	e.stop()
	for range 3 {
		add()
	}
	e.start()
	got := rcv.waitSets(len(want))
	var order []string
	for _, s := range got {
		order = append(order, s.Claims.Txn)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("push after restart: %v\nwant %v", order, want)
	}
	testwait.Until(t, 10*time.Second, "the poll stream to hold 5 SETs", func() (bool, string) {
		r := poll(t, e, pollID, 10, true, nil)
		for _, k := range acked {
			if _, ok := r[k]; ok {
				t.Fatalf("acknowledged SET %s returned after the restart", k)
			}
		}
		return len(r) == 5, fmt.Sprint(len(r))
	})
}

// TestStreamThatCannotDeliverIsDisabled: a push stream failing for DisableAfter is disabled
// with a reason, in the log (so its status shows it) and in /metrics; its SETs are dropped.
func TestStreamThatCannotDeliverIsDisabled(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *ssf.Config) { c.DisableAfter, c.Registerer = 200*time.Millisecond, reg })
	rcv := newReceiver(t, e.keys)
	rcv.setDown(true)
	id := e.createStream(ssf.MethodPush, rcv.srv.URL)
	e.mustAppend(domain.AccountStream("a1"), domain.PasswordChanged{At: time.Now()}, accountMD("a1"))
	testwait.Until(t, 15*time.Second, "the stream to be disabled", func() (bool, string) {
		c := e.config(id)
		return c.Status == ssf.StatusDisabled, c.Status
	})
	if c := e.config(id); !strings.Contains(c.Reason, "503") {
		t.Fatalf("reason %q does not say why", c.Reason)
	}
	testwait.Until(t, 10*time.Second, "the metrics to show it", func() (bool, string) {
		n, err := testutil.GatherAndCount(reg, "vigil_ssf_stream_status")
		if err != nil || n == 0 {
			return false, fmt.Sprint(err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "vigil_ssf_stream_status" {
				continue
			}
			for _, m := range mf.GetMetric() {
				lbl := map[string]string{}
				for _, l := range m.GetLabel() {
					lbl[l.GetName()] = l.GetValue()
				}
				if lbl["stream"] == id && lbl["status"] == "disabled" && m.GetGauge().GetValue() == 1 && lbl["reason"] != "" {
					return true, ""
				}
			}
		}
		return false, "no disabled series"
	})
	evs, err := e.log.ReadStream(context.Background(), domain.SSFStream(id), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	disabled := 0
	for _, ev := range evs {
		if de, _ := domain.DecodeEvent(ev); de.(domain.SSFStreamChanged).Status == ssf.StatusDisabled {
			disabled++
		}
	}
	if disabled != 1 {
		t.Errorf("%d disabling events, want one", disabled)
	}
	testwait.Until(t, 10*time.Second, "the SETs to be dropped", func() (bool, string) {
		list, err := e.tr.Streams(context.Background())
		if err != nil || len(list) != 1 {
			return false, fmt.Sprint(err)
		}
		return list[0].Pending == 0, fmt.Sprint(list[0].Pending, " pending")
	})
}

// TestKeyRotation: a rotated key stays in the JWK set for a day, so a SET signed before the
// rotation still verifies; after that it is gone.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	old, created, err := ssf.EnsureKeys(path, time.Now())
	if err != nil || !created {
		t.Fatal(err, created)
	}
	tok, err := old.Sign([]byte(`{"iss":"x","jti":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k, err := ssf.RotateKey(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if k.ActiveKeyID() == old.ActiveKeyID() {
		t.Fatal("rotation kept the kid")
	}
	reloaded, err := ssf.LoadKeys(path)
	if err != nil || reloaded.ActiveKeyID() != k.ActiveKeyID() {
		t.Fatal("the file does not hold the new key", err)
	}
	set := reloaded.JWKS(now.Add(time.Hour))
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys within the day", len(set.Keys))
	}
	b, _ := json.Marshal(set)
	if _, err := verify(t, b, tok); err != nil {
		t.Fatalf("a SET signed by the replaced key: %v", err)
	}
	b, _ = json.Marshal(reloaded.JWKS(now.Add(25 * time.Hour)))
	if _, err := verify(t, b, tok); err == nil {
		t.Fatal("the replaced key still verifies after a day")
	}
}

// BenchmarkSignSET is the cost of making one SET: mapping, JSON and the RS256 signature.
func BenchmarkSignSET(b *testing.B) {
	keys, _, err := ssf.EnsureKeys(filepath.Join(b.TempDir(), "k"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	claims := []byte(`{"iss":"https://id.example.com","aud":"s","iat":1700000000,"jti":"0123456789abcdef0123456789abcdef","txn":"0190f1c4-7b1e-7c3a-9d2e-1a2b3c4d5e6f","sub_id":{"format":"iss_sub","iss":"https://id.example.com","sub":"a1"},"events":{"https://schemas.openid.net/secevent/caep/event-type/credential-change":{"event_timestamp":1700000000,"credential_type":"password","change_type":"update"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.Sign(claims); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEndPollsReleasesLongPolls: a long poll waiting returns (empty) at once when the server
// starts shutting down.
func TestEndPollsReleasesLongPolls(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createStream(ssf.MethodPoll, "")
	done := make(chan ssf.PollResult, 1)
	go func() {
		r, err := e.tr.Poll(context.Background(), id, 10, false, nil)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	e.tr.EndPolls()
	if r, _ := testwait.Recv(t, 5*time.Second, "the long poll to end", done); len(r.Sets) != 0 {
		t.Fatalf("%d SETs", len(r.Sets))
	}
}
