package forward_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// startNATS runs an in-process NATS server with JetStream, storing in a temp dir.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(testwait.Deadline(5 * time.Second)) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestNATSForwarderRestartMidway: events are appended all along while the forwarder runs,
// is stopped, loses part of its checkpoint (as after a crash between JetStream's ack and the
// checkpoint write) and runs again. The stream ends with every event of the log exactly
// once, in log order, with Nats-Msg-Id = event id and subject <prefix>.<type>.
func TestNATSForwarderRestartMidway(t *testing.T) {
	ns := startNATS(t)
	dir := t.TempDir()
	log := openLog(t, dir)
	db := openDB(t, dir)
	newF := func() *forward.Forwarders {
		f, err := forward.New(forward.Config{
			Log: log, DB: db, Encode: testEncode, Logger: quietLogger(),
			NATS:     &forward.NATSConfig{URL: ns.ClientURL(), SubjectPrefix: "audit.vigil"},
			Webhooks: forward.WebhookConfig{Secret: []byte("0123456789abcdef01234567")},
		})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	appendN(t, log, 0, 100) // a backlog before the first start
	var wg sync.WaitGroup
	appending := func(from, n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from; i < from+n; i += 10 {
				appendN(t, log, i, 10)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	appending(100, 400)
	stop := running(t, newF())
	eventually(t, 5*time.Second, "the first forwarder to pass position 150", func() (bool, string) {
		cp, err := db.Checkpoint(context.Background(), forward.NATSName)
		return err == nil && cp >= 150, fmt.Sprintf("checkpoint %d (%v)", cp, err)
	})
	stop()
	// A crash after JetStream acknowledged but before the checkpoint was written: the last
	// 40 events go out again on restart.
	cp, err := db.Checkpoint(context.Background(), forward.NATSName)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveCheckpoint(context.Background(), forward.NATSName, cp-40); err != nil {
		t.Fatal(err)
	}
	appending(500, 200) // appends continue while it is down and after it is back
	running(t, newF())
	wg.Wait()
	want := logIDs(t, log)
	if len(want) != 700 {
		t.Fatalf("log holds %d events, want 700", len(want))
	}
	head, _ := log.Head(context.Background())
	eventually(t, 10*time.Second, fmt.Sprintf("the forwarder to reach the head %d", head), func() (bool, string) {
		cp, err := db.Checkpoint(context.Background(), forward.NATSName)
		return err == nil && cp == head, fmt.Sprintf("checkpoint %d (%v)", cp, err)
	})

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.StreamInfo(forward.DefaultNATSStream)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(want)) {
		t.Fatalf("stream holds %d messages, want %d (one per event)", info.State.Msgs, len(want))
	}
	if len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != "audit.vigil.>" {
		t.Errorf("stream subjects %v", info.Config.Subjects)
	}
	for i, id := range want {
		m, err := js.GetMsg(forward.DefaultNATSStream, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != id {
			t.Fatalf("message %d has Nats-Msg-Id %q, want event %q", i+1, got, id)
		}
		if m.Subject != "audit.vigil.TestHappened" {
			t.Fatalf("message %d on subject %q", i+1, m.Subject)
		}
	}
}

// TestNATSExistingStreamMustCaptureSubjects: a stream of the configured name that does not
// capture <prefix>.> stops start-up with ErrNATS instead of publishing into the void.
func TestNATSExistingStreamMustCaptureSubjects(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	if _, err := js.AddStream(&nats.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := openDB(t, dir)
	_, err = forward.New(forward.Config{Log: openLog(t, dir), DB: db, Encode: testEncode, Logger: quietLogger(),
		NATS:     &forward.NATSConfig{URL: ns.ClientURL(), Stream: "OTHER"},
		Webhooks: forward.WebhookConfig{Secret: []byte("0123456789abcdef01234567")}})
	if !errors.Is(err, forward.ErrNATS) {
		t.Fatalf("New with a stream that does not capture vigil.events.>: %v", err)
	}
	_, err = forward.New(forward.Config{Log: openLog(t, t.TempDir()), DB: db, Encode: testEncode, Logger: quietLogger(),
		NATS:     &forward.NATSConfig{URL: "nats://127.0.0.1:1"},
		Webhooks: forward.WebhookConfig{Secret: []byte("0123456789abcdef01234567")}})
	if !errors.Is(err, forward.ErrNATS) {
		t.Fatalf("New with an unreachable NATS server: %v", err)
	}
}
