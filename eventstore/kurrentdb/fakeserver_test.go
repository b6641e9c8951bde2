package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/eventstoretest"
)

// fakeServer is an in-memory stand-in for one KurrentDB node that speaks the real gRPC
// protocol (the Streams service only), so that the store can be tested through the real
// client with no server installed. It follows the server behaviour the store relies on, as
// read in KurrentDB's source:
//
//   - positions are byte offsets: strictly increasing, with gaps; an event's commit and prepare
//     positions are equal (single appends, never explicit transactions);
//   - an append answers with the current revision and the position of its last event, and a
//     version conflict as a WrongExpectedVersion result (not a gRPC error);
//   - $all reads from a position include the event there going forwards and exclude it going
//     backwards; a position that is not an event's (nor 0, nor the end) is refused with
//     InvalidArgument "Trying to read from an invalid position.";
//   - a missing stream reads as a StreamNotFound message; stream reads carry positions;
//   - an $all subscription confirms, excludes the event at its start position, filters on
//     stream prefixes, and sends checkpoints and a caught-up notice besides events.
//
// Tests can also drop every live subscription and restart the server on the same address.
type fakeServer struct {
	api.UnimplementedStreamsServer

	mu        sync.Mutex
	all       []*fakeEvent
	index     map[uint64]int // position -> index in all
	streams   map[string][]*fakeEvent
	next      uint64
	changed   chan struct{} // closed and replaced on every write
	drop      chan struct{} // closed and replaced to drop every live subscription
	maxAppend int

	addr string
	srv  *grpc.Server
}

type fakeEvent struct {
	id         uuid.UUID
	stream     string
	rev        uint64
	pos        uint64
	typ        string
	json       bool
	data, meta []byte
	created    int64 // .NET ticks (100ns) since the Unix epoch, as the server sends them
}

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{
		index:     make(map[uint64]int),
		streams:   make(map[string][]*fakeEvent),
		next:      4096,
		changed:   make(chan struct{}),
		drop:      make(chan struct{}),
		maxAppend: 8 << 20,
	}
	// What a real node holds before any client writes: system events.
	f.writeForeign("$stats-127.0.0.1:2113", "$statsCollected")
	f.writeForeign("$scavenges", "$scavengeStarted")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	f.serve(l)
	t.Cleanup(func() { f.srv.Stop() })
	return f
}

func (f *fakeServer) serve(l net.Listener) {
	srv := grpc.NewServer()
	api.RegisterStreamsServer(srv, f)
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// connString has a short discovery, so that a restart is noticed quickly.
func (f *fakeServer) connString() string {
	return "kurrentdb://" + f.addr + "?tls=false&maxDiscoverAttempts=3&discoveryInterval=20&gossipTimeout=1"
}

// restart stops the server (breaking every connection) and starts it again on the same
// address after down, keeping the data.
func (f *fakeServer) restart(t *testing.T, down time.Duration) {
	t.Helper()
	f.mu.Lock()
	srv := f.srv
	f.mu.Unlock()
	srv.Stop()
	time.Sleep(down)
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", f.addr, err)
	}
	f.serve(l)
}

// dropSubscriptions ends every live subscription with Unavailable, as a node shutting down
// its subscriptions would.
func (f *fakeServer) dropSubscriptions() {
	f.mu.Lock()
	close(f.drop)
	f.drop = make(chan struct{})
	f.mu.Unlock()
}

// writeForeign appends one event that is not Vigil's, as other tools or the server itself would.
func (f *fakeServer) writeForeign(stream, typ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeLocked(stream, []*fakeEvent{{id: uuid.New(), typ: typ, json: true, data: []byte(`{}`)}})
}

func (f *fakeServer) writeLocked(stream string, evs []*fakeEvent) *fakeEvent {
	for _, e := range evs {
		e.stream = stream
		e.rev = uint64(len(f.streams[stream]))
		e.pos = f.next
		e.created = time.Now().UnixNano() / 100
		f.next += 77 + uint64(len(e.data)+len(e.meta)+len(e.typ)+len(stream)) // a record's size on disk, roughly
		f.streams[stream] = append(f.streams[stream], e)
		f.index[e.pos] = len(f.all)
		f.all = append(f.all, e)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return evs[len(evs)-1]
}

func (f *fakeServer) Append(srv api.Streams_AppendServer) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "options first")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	var evs []*fakeEvent
	size := 0
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "proposed message expected")
		}
		typ, okType := m.Metadata["type"]
		ct, okCT := m.Metadata["content-type"]
		if !okType || !okCT {
			return status.Error(codes.InvalidArgument, "Required Metadata Property missing")
		}
		s := m.Id.GetStructured()
		if s == nil {
			return status.Error(codes.InvalidArgument, "structured id expected")
		}
		id, err := esdb.ParseUUIDFromInt64(s.MostSignificantBits, s.LeastSignificantBits)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		size += len(m.Data) + len(m.CustomMetadata) + len(typ)
		evs = append(evs, &fakeEvent{id: id, typ: typ, json: ct == "application/json", data: m.Data, meta: m.CustomMetadata})
	}
	if size > f.maxAppend {
		return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", f.maxAppend)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	cur := int64(len(f.streams[stream])) - 1
	ok := true
	switch o := opts.ExpectedStreamRevision.(type) {
	case *api.AppendReq_Options_NoStream:
		ok = cur == -1
	case *api.AppendReq_Options_StreamExists:
		ok = cur >= 0
	case *api.AppendReq_Options_Revision:
		ok = cur == int64(o.Revision)
	case *api.AppendReq_Options_Any:
	default:
		return status.Error(codes.InvalidArgument, "expected revision missing")
	}
	if !ok {
		wev := &api.AppendResp_WrongExpectedVersion{}
		if cur < 0 {
			wev.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		} else {
			wev.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(cur)}
		}
		return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wev}})
	}
	if len(evs) == 0 {
		return status.Error(codes.InvalidArgument, "no events")
	}
	last := f.writeLocked(stream, evs)
	return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.rev},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: last.pos, PreparePosition: last.pos,
		}},
	}}})
}

func (f *fakeServer) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o.GetSubscription() != nil {
		if o.GetAll() == nil {
			return status.Error(codes.Unimplemented, "the fake serves only $all subscriptions")
		}
		return f.subscribeAll(o, srv)
	}
	count := o.GetCount()
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	if so := o.GetStream(); so != nil {
		name := string(so.GetStreamIdentifier().GetStreamName())
		f.mu.Lock()
		evs := append([]*fakeEvent(nil), f.streams[name]...)
		f.mu.Unlock()
		if len(evs) == 0 {
			return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
				StreamIdentifier: so.GetStreamIdentifier(),
			}}})
		}
		var from int64
		switch {
		case so.GetStart() != nil:
			from = 0
			if backwards {
				from = -1
			}
		case so.GetEnd() != nil:
			from = int64(len(evs))
			if backwards {
				from = int64(len(evs)) - 1
			}
		default:
			from = int64(so.GetRevision())
		}
		for sent := uint64(0); sent < count; sent++ {
			if from < 0 || from >= int64(len(evs)) {
				return nil
			}
			if err := srv.Send(eventResp(evs[from])); err != nil {
				return err
			}
			if backwards {
				from--
			} else {
				from++
			}
		}
		return nil
	}

	f.mu.Lock()
	all := f.all
	idx, err := f.allIndexLocked(o.GetAll(), backwards, false)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for sent := uint64(0); sent < count; sent++ {
		if backwards {
			idx--
		}
		if idx < 0 || idx >= len(all) {
			return nil
		}
		if err := srv.Send(eventResp(all[idx])); err != nil {
			return err
		}
		if !backwards {
			idx++
		}
	}
	return nil
}

// allIndexLocked turns an $all start into an index: forwards, the first index to send
// (inclusive of the event at the position, or exclusive for subscriptions); backwards, the
// index just past the first one to send.
func (f *fakeServer) allIndexLocked(ao *api.ReadReq_Options_AllOptions, backwards, subscription bool) (int, error) {
	switch {
	case ao.GetStart() != nil:
		return 0, nil
	case ao.GetEnd() != nil:
		return len(f.all), nil
	}
	p := ao.GetPosition()
	if p.GetCommitPosition() != p.GetPreparePosition() {
		return 0, status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")
	}
	pos := p.GetCommitPosition()
	i, ok := f.index[pos]
	switch {
	case pos == 0:
		return 0, nil
	case pos == f.next:
		return len(f.all), nil
	case !ok:
		return 0, status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")
	case subscription:
		return i + 1, nil
	default:
		return i, nil // forwards includes the event at pos; backwards stops before it
	}
}

func (f *fakeServer) subscribeAll(o *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	var prefixes []string
	onType := false
	if fo := o.GetFilter(); fo != nil {
		expr := fo.GetStreamIdentifier()
		if expr == nil {
			expr, onType = fo.GetEventType(), true
		}
		if expr.GetRegex() != "" {
			return status.Error(codes.Unimplemented, "the fake filters on prefixes only")
		}
		prefixes = expr.GetPrefix()
	}
	match := func(e *fakeEvent) bool {
		if prefixes == nil {
			return true
		}
		s := e.stream
		if onType {
			s = e.typ
		}
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	}

	f.mu.Lock()
	cursor, err := f.allIndexLocked(o.GetAll(), false, true)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	considered, caughtUp := 0, false
	for {
		f.mu.Lock()
		batch := f.all[min(cursor, len(f.all)):]
		changed, drop := f.changed, f.drop
		f.mu.Unlock()
		for _, e := range batch {
			select {
			case <-drop:
				return status.Error(codes.Unavailable, "subscription dropped by the test")
			default:
			}
			cursor++
			considered++
			if match(e) {
				if err := srv.Send(eventResp(e)); err != nil {
					return err
				}
			}
			if considered%32 == 0 {
				if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
					CommitPosition: e.pos, PreparePosition: e.pos,
				}}}); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-drop:
			return status.Error(codes.Unavailable, "subscription dropped by the test")
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}

func eventResp(e *fakeEvent) *api.ReadResp {
	most, least := esdb.UUIDAsInt64(e.id)
	ct := "application/octet-stream"
	if e.json {
		ct = "application/json"
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id: &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
				MostSignificantBits: most, LeastSignificantBits: least,
			}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(e.stream)},
			StreamRevision:   e.rev,
			PreparePosition:  e.pos,
			CommitPosition:   e.pos,
			Metadata: map[string]string{
				"type": e.typ, "content-type": ct, "created": strconv.FormatInt(e.created, 10),
			},
			CustomMetadata: e.meta,
			Data:           e.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: e.pos},
	}}}
}

// noise writes a foreign or system event every d until the test ends, as other tools and the
// server's own statistics would on a shared node.
func (f *fakeServer) noise(t *testing.T, d time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				if i%2 == 0 {
					f.writeForeign("$stats-127.0.0.1:2113", "$statsCollected")
				} else {
					f.writeForeign(fmt.Sprintf("orders-%d", i%5), "OrderPlaced")
				}
			}
		}
	}()
}

func openFake(t *testing.T, f *fakeServer) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{ConnectionString: f.connString(), Logger: testLogger(t), RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestContractAgainstFake runs the shared contract suite through the real client against the
// fake node, with foreign and system events written all along as on a shared server.
func TestContractAgainstFake(t *testing.T) {
	if testing.Short() {
		t.Skip("the contract suite writes 100,000 events")
	}
	f := startFake(t)
	f.noise(t, 2*time.Millisecond)
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return openFake(t, f) })
}

// TestResubscribeAndReconnect drops the subscription several times and restarts the node
// while events are appended: the subscription must deliver every event once, in order, and
// appends must work again on a fresh client once the node is back.
func TestResubscribeAndReconnect(t *testing.T) {
	f := startFake(t)
	s := openFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	start, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	stream := "account-" + domain.NewID()
	var want []string
	appendSome := func(n int) {
		t.Helper()
		for range n {
			e := sampleEvent(t)
			var err error
			for try := 0; try < 50; try++ { // the node may be restarting
				if _, err = s.Append(ctx, stream, eventstore.Any, []domain.EventData{e}); err == nil || !errors.Is(err, eventstore.ErrUnavailable) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			want = append(want, e.ID)
		}
	}
	var got []domain.Envelope
	timeout := time.After(40 * time.Second)
	waitFor := func(n int) {
		t.Helper()
		for len(got) < n {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					t.Fatalf("subscription ended after %d events: %v", len(got), sub.Err())
				}
				got = append(got, e)
			case <-timeout:
				t.Fatalf("got %d of %d events", len(got), n)
			}
		}
	}
	appendSome(20)
	waitFor(10) // dropped while it has more to deliver
	f.dropSubscriptions()
	appendSome(20)
	waitFor(40) // dropped while live
	f.dropSubscriptions()
	f.writeForeign("orders-1", "OrderPlaced")
	appendSome(10)
	waitFor(45)
	f.restart(t, 300*time.Millisecond) // the connection breaks; appends fail until it is back
	appendSome(20)
	waitFor(60)
	f.dropSubscriptions()
	appendSome(10)
	waitFor(len(want))

	for i := range got {
		if got[i].ID != want[i] || got[i].Version != uint64(i+1) || (i > 0 && got[i].Position <= got[i-1].Position) {
			t.Fatalf("event %d: %s v%d @%d, want %s v%d", i, got[i].ID, got[i].Version, got[i].Position, want[i], i+1)
		}
	}
	select {
	case e, ok := <-sub.Events():
		if ok {
			t.Fatalf("extra event %s v%d (a duplicate?)", e.ID, e.Version)
		}
	case <-time.After(300 * time.Millisecond):
	}
	s.mu.Lock()
	clients := s.nextID
	s.mu.Unlock()
	if clients < 2 {
		t.Errorf("%d client(s) after a restart; want a fresh one", clients)
	}
}

// TestReadAllFromBetweenEvents: positions are byte offsets, so a position between two events
// is refused by the server; ReadAll and Subscribe find the event before it and go on.
func TestReadAllFromBetweenEvents(t *testing.T) {
	f := startFake(t)
	s := openFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := "session-" + domain.NewID()
	var in []domain.EventData
	for range 3 {
		in = append(in, sampleEvent(t))
	}
	f.writeForeign("orders-9", "OrderPlaced")
	res, err := s.Append(ctx, stream, eventstore.NoStream, in)
	if err != nil {
		t.Fatal(err)
	}
	f.writeForeign("$stats-127.0.0.1:2113", "$statsCollected")
	got, err := s.ReadStream(ctx, stream, 1, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("ReadStream: %d, %v", len(got), err)
	}
	if got[0].Position != res.FirstPosition || got[2].Position != res.LastPosition || res.NextVersion != 3 {
		t.Fatalf("AppendResult %+v, events at %d..%d", res, got[0].Position, got[2].Position)
	}
	for _, after := range []uint64{res.FirstPosition - 1, 1, got[1].Position - 1} {
		all, err := s.ReadAll(ctx, after, 10)
		if err != nil {
			t.Fatalf("ReadAll(%d): %v", after, err)
		}
		var ids []string
		for _, e := range all {
			if e.Position <= after {
				t.Fatalf("ReadAll(%d) returned position %d", after, e.Position)
			}
			ids = append(ids, e.ID)
		}
		wantFrom := 0
		if after > res.FirstPosition {
			wantFrom = 1
		}
		if strings.Join(ids, ",") != strings.Join(ids3(in)[wantFrom:], ",") {
			t.Errorf("ReadAll(%d) = %v, want %v", after, ids, ids3(in)[wantFrom:])
		}
		sub, err := s.Subscribe(ctx, after)
		if err != nil {
			t.Fatalf("Subscribe(%d): %v", after, err)
		}
		for i := wantFrom; i < 3; i++ {
			select {
			case e := <-sub.Events():
				if e.ID != in[i].ID {
					t.Errorf("Subscribe(%d) delivered %s, want %s", after, e.ID, in[i].ID)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Subscribe(%d): nothing delivered (%v)", after, sub.Err())
			}
		}
		_ = sub.Close()
	}
	if h, err := s.Head(ctx); err != nil || h != res.LastPosition {
		t.Errorf("Head = %d, %v; want %d (system events after it do not count)", h, err, res.LastPosition)
	}
}

func ids3(in []domain.EventData) []string {
	out := make([]string, len(in))
	for i, e := range in {
		out[i] = e.ID
	}
	return out
}
