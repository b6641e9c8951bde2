package stream

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/handlers/web"
)

// streamState is the server's compliance stream: its settings and its hub.
type streamState struct {
	hub          *eventHub
	source       string
	heartbeat    time.Duration
	writeTimeout time.Duration
	buffer       int
}

// newStreamState fills the defaults of cfg and builds the (not yet started) hub.
func newStreamState(cfg StreamConfig, head web.HeadReader, log *slog.Logger, reg prometheus.Registerer) *streamState {
	if cfg.Source == "" {
		cfg.Source = export.DefaultSource
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultStreamBuffer
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultStreamWriteTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &eventHub{
		sub: cfg.Subscriber, head: head, log: log.With("component", "event-stream"),
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}),
		clients: map[*streamClient]struct{}{},
		metrics: newStreamMetrics(reg),
	}
	return &streamState{hub: h, source: cfg.Source, heartbeat: cfg.Heartbeat, writeTimeout: cfg.WriteTimeout, buffer: cfg.Buffer}
}

// streamAPI is the compliance stream (/api/v1/events and its SSE stream).
type Stream struct {
	*web.Core
	events eventReader
	stream *streamState
}

// eventReader reads the log in global order (eventstore.Store satisfies it).
type eventReader interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]domain.Envelope, error)
}

// newStreamAPI builds the stream on k, reading log and following cfg.Subscriber.
func New(k *web.Core, log eventReader, cfg StreamConfig, reg prometheus.Registerer) *Stream {
	return &Stream{Core: k, events: log, stream: newStreamState(cfg, k.Store, k.Log, reg)}
}

// close ends every stream and refuses new ones (Server.CloseStreams).
func (s *Stream) Close() { s.stream.hub.close() }

// routes are the stream's routes.
func (s *Stream) Routes() []web.Route { return s.eventRoutes() }

type streamMetrics struct {
	clients prometheus.Gauge
	ended   *prometheus.CounterVec
	lag     prometheus.Histogram
}

func newStreamMetrics(reg prometheus.Registerer) *streamMetrics {
	return &streamMetrics{
		clients: web.RegisterCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_event_stream_clients", Help: "SSE clients connected to GET /api/v1/events/stream.",
		})),
		ended: web.RegisterCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_event_stream_disconnects_total",
			Help: "SSE streams ended, by reason (client_gone, slow_consumer, shutdown, write_failed, error).",
		}, []string{"reason"})),
		lag: web.RegisterCollector(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_event_stream_delivery_lag_seconds",
			Help:    "Live SSE deliveries: from the append of the oldest event of a write to the client until that write was flushed, in seconds.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		})),
	}
}

// hubEvent is one live event as the hub hands it to every client, with its CloudEvent
// encoded at most once for all of them.
type hubEvent struct {
	env  domain.Envelope
	once sync.Once
	ce   []byte
	err  error
}

func (he *hubEvent) cloudEvent(source string) ([]byte, error) {
	he.once.Do(func() { he.ce, he.err = export.MarshalCloudEvent(he.env, source) })
	return he.ce, he.err
}

// streamClient is one SSE client as the hub sees it: a bounded buffer of the live events
// that match its filter, handed over in batches (one wake-up of the client per batch the
// log delivered, not per event). pending counts the buffered events; when a batch would
// take it past limit the hub marks the client overflowed and closes stop instead of
// waiting: a slow client never holds up the hub or other clients.
type streamClient struct {
	ch         chan []*hubEvent
	limit      int64
	pending    atomic.Int64
	match      func(domain.Envelope) bool
	matchAll   bool
	overflowed atomic.Bool
	stop       chan struct{}
	stopOnce   sync.Once
}

// newStreamClient returns a client buffering at most buffer events; matchAll says match
// accepts every event (no filter), so batches are shared as they are.
func newStreamClient(buffer int, match func(domain.Envelope) bool, matchAll bool) *streamClient {
	// Every batch holds at least one event, so the channel never fills before the count.
	return &streamClient{ch: make(chan []*hubEvent, buffer), limit: int64(buffer), match: match, matchAll: matchAll, stop: make(chan struct{})}
}

// take notes that the client took a batch of n events off its buffer.
func (c *streamClient) take(n int) { c.pending.Add(-int64(n)) }

func (c *streamClient) end() { c.stopOnce.Do(func() { close(c.stop) }) }

// eventHub follows the log with one subscription and fans each event out to the joined
// clients. Started on the first stream request; stopped by close.
type eventHub struct {
	sub     EventSubscriber
	head    web.HeadReader
	log     *slog.Logger
	metrics *streamMetrics

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	ready  chan struct{} // closed when last is valid (or the hub stopped)
	done   chan struct{} // closed when run returns

	mu      sync.Mutex
	last    uint64 // position of the last event fanned out
	stopped bool
	clients map[*streamClient]struct{}
}

// start runs the hub unless it runs already.
func (h *eventHub) start() error {
	if h.ctx.Err() != nil {
		return web.ErrStreamClosed
	}
	h.once.Do(func() { go h.run() })
	return nil
}

// close stops the hub and ends every client.
func (h *eventHub) close() {
	h.cancel()
	h.mu.Lock()
	h.stopped = true
	for c := range h.clients {
		c.end()
	}
	h.mu.Unlock()
}

// join adds c and returns the position after which the hub will hand it events: everything
// up to and including it must come from the log.
func (h *eventHub) join(ctx context.Context, c *streamClient) (uint64, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-h.ctx.Done():
		return 0, web.ErrStreamClosed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return 0, web.ErrStreamClosed
	}
	h.clients[c] = struct{}{}
	return h.last, nil
}

// leave removes c.
func (h *eventHub) leave(c *streamClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// run reads the log head, then follows the log from there, resubscribing after a failure
// from the last position it fanned out, until close.
func (h *eventHub) run() {
	defer close(h.done)
	defer h.close()
	backoff := 100 * time.Millisecond
	wait := func() bool {
		select {
		case <-h.ctx.Done():
			return false
		case <-time.After(backoff):
			backoff = min(backoff*2, 5*time.Second)
			return true
		}
	}
	var pos uint64
	for {
		p, err := h.head.Head(h.ctx)
		if err == nil {
			pos = p
			break
		}
		h.log.Warn("event stream: cannot read the log head; retrying", "err", err)
		if !wait() {
			close(h.ready)
			return
		}
	}
	h.mu.Lock()
	h.last = pos
	h.mu.Unlock()
	close(h.ready)
	for h.ctx.Err() == nil {
		sub, err := h.sub.SubscribeEvents(h.ctx, pos)
		if err != nil {
			h.log.Warn("event stream: cannot subscribe; retrying", "after", pos, "err", err)
			if !wait() {
				return
			}
			continue
		}
		events := sub.Events()
		for e := range events {
			// Take what the subscription has ready along with e, and hand it over as one batch.
			batch := []*hubEvent{{env: e}}
		drain:
			for len(batch) < maxHubBatch {
				select {
				case more, ok := <-events:
					if !ok {
						break drain
					}
					batch = append(batch, &hubEvent{env: more})
				default:
					break drain
				}
			}
			h.fanOut(batch)
			pos = batch[len(batch)-1].env.Position
			backoff = 100 * time.Millisecond
		}
		err = sub.Err()
		_ = sub.Close()
		if h.ctx.Err() != nil {
			return
		}
		h.log.Warn("event stream: subscription ended; resuming", "after", pos, "err", err)
		if !wait() {
			return
		}
	}
}

// maxHubBatch bounds the events the hub hands over at once.
const maxHubBatch = 512

// fanOut hands the events of batch that match each client's filter to that client, never
// waiting: a client whose buffer cannot take them is marked overflowed and ended.
func (h *eventHub) fanOut(batch []*hubEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = batch[len(batch)-1].env.Position
	for c := range h.clients {
		if c.overflowed.Load() {
			continue
		}
		sel := batch
		if !c.matchAll {
			sel = nil
			for _, he := range batch {
				if c.match(he.env) {
					sel = append(sel, he)
				}
			}
			if len(sel) == 0 {
				continue
			}
		}
		if c.pending.Add(int64(len(sel))) > c.limit {
			c.overflowed.Store(true)
			c.end()
			continue
		}
		select {
		case c.ch <- sel:
		default:
			c.overflowed.Store(true)
			c.end()
		}
	}
}
