// Package forward sends Vigil's event log to other systems: NATS JetStream (one message per
// event, subject <prefix>.<type>, Nats-Msg-Id = event id) and webhook endpoints signed per
// the Standard Webhooks scheme. Every forwarder is a handler of one Watermill router fed by
// the eventstore/wmbridge subscriber, with its own durable checkpoint in the forwarders'
// database (DB), so that a restart resumes after the last event it delivered.
//
// Delivery is at-least-once and in log order per forwarder: an event's checkpoint is saved
// only after the destination acknowledged it, so a crash between the two sends that event
// again, with the same id (JetStream drops it as a duplicate within its duplicate window;
// webhook receivers drop it by webhook-id). No event is ever skipped, except that a webhook
// delivery that fails every attempt is parked (kept for an administrator to replay) and the
// endpoint moves on to the next event.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/wmbridge"
)

// Encoder turns an event into the body forwarded for it (the CloudEvents JSON of the
// compliance stream). It must be deterministic and safe for concurrent use.
type Encoder func(domain.Envelope) (body []byte, err error)

// Forwarder names: the checkpoint and metric label of each forwarder.
const (
	// NATSName is the NATS JetStream forwarder.
	NATSName = "nats"
	// RegistryName follows the log for WebhookRegistered/WebhookRemoved and keeps the
	// table of registered endpoints.
	RegistryName = "webhook-registry"
	// ConfiguredEndpointID is the id of the endpoint given by configuration
	// (--webhook-url); its forwarder is "webhook-configured".
	ConfiguredEndpointID = "configured"
)

// endpointName is the forwarder name of a webhook endpoint.
func endpointName(id string) string { return "webhook-" + id }

// Config configures New. Log, DB and Encode are required.
type Config struct {
	// Log is the event log the forwarders follow.
	Log eventstore.Store
	// DB holds the checkpoints, the registered endpoints and the parked deliveries.
	DB *DB
	// Encode makes the body of every forwarded event.
	Encode Encoder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the forwarder metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// NATS, when set, forwards to NATS JetStream.
	NATS *NATSConfig
	// Webhooks configures the webhook forwarders (always present: endpoints may be
	// registered through the admin API at any time).
	Webhooks WebhookConfig
	// OpenSecret opens the sealed signing secret of an endpoint registered through the admin
	// API (command.OpenWebhookSecret with the server's keyring). Nil signs those endpoints
	// with Webhooks.Secret too (tests and tools).
	OpenSecret func(domain.WebhookRegistered) ([]byte, error)
	// Now is the clock of webhook timestamps and parking times; default time.Now.
	Now func() time.Time
	// NackBackoff and MaxNackBackoff bound the wait before a forwarder that keeps failing
	// (NATS unreachable, its database failing) tries its next event again from its
	// checkpoint; defaults 50ms and 5s.
	NackBackoff, MaxNackBackoff time.Duration
}

// Forwarders runs every forwarder. Create with New, start with Run, stop with Close. Safe
// for concurrent use.
type Forwarders struct {
	cfg     Config
	log     *slog.Logger
	sub     *wmbridge.Subscriber
	router  *message.Router
	nats    *natsSink
	client  *http.Client
	metrics *metrics

	mu        sync.Mutex
	runCtx    context.Context // set by Run
	closing   bool            // set by Close: no handler is added any more
	fwds      map[string]*forwarder
	endpoints map[string]*endpoint

	registry   *forwarder
	regMu      sync.Mutex
	regAdvance chan struct{} // closed and replaced whenever the registry's position moves
}

// forwarder is one handler: a name (its checkpoint and metric label), the last position it
// delivered, and what it does with one event.
type forwarder struct {
	name string
	done atomic.Uint64
	// deliver handles one event. saved=true means it stored (or deliberately deferred) the
	// checkpoint itself; else the handler saves it.
	deliver  func(ctx context.Context, ev domain.Envelope) (saved bool, err error)
	handler  *message.Handler
	lastSave time.Time
}

// New checks the configuration, connects to NATS (creating its stream when missing; an
// unreachable server is an error), loads the registered webhook endpoints and builds the
// router. Nothing is delivered before Run.
func New(cfg Config) (_ *Forwarders, err error) {
	if cfg.Log == nil || cfg.DB == nil || cfg.Encode == nil {
		return nil, errors.New("forward: Config needs Log, DB and Encode")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Webhooks.fill(); err != nil {
		return nil, err
	}
	f := &Forwarders{
		cfg: cfg, log: cfg.Logger.With("component", "forward"),
		fwds: map[string]*forwarder{}, endpoints: map[string]*endpoint{}, regAdvance: make(chan struct{}),
	}
	f.client = cfg.Webhooks.client()
	f.sub, err = wmbridge.NewSubscriber(cfg.Log, wmbridge.SubscriberConfig{
		Checkpoints: cfg.DB, Logger: watermill.NewSlogLogger(f.log.With("component", "forward-bridge")),
		NackBackoff: cfg.NackBackoff, MaxNackBackoff: cfg.MaxNackBackoff,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.sub.Close()
			if f.nats != nil {
				f.nats.close()
			}
		}
	}()
	f.router, err = message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second},
		watermill.NewSlogLogger(f.log.With("component", "forward-router")))
	if err != nil {
		return nil, fmt.Errorf("forward: router: %w", err)
	}
	f.metrics = newMetrics(f)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(f.metrics); err != nil {
			return nil, fmt.Errorf("forward: register metrics: %w", err)
		}
	}
	// The first middleware added is the outermost: the outcome recorder sees what is left
	// after the retries; the retries see panics as errors. After the retries the message
	// is nacked and the bridge resumes from the checkpoint after its back-off: an event is
	// retried until it is delivered (or, for webhooks, parked), never skipped.
	f.router.AddMiddleware(
		f.recordFailures,
		middleware.Retry{
			MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second, Multiplier: 2,
			ShouldRetry: func(p middleware.RetryParams) bool { return !errors.Is(p.Err, context.Canceled) },
		}.Middleware,
		middleware.Recoverer,
	)

	if cfg.NATS != nil {
		f.nats, err = newNATSSink(*cfg.NATS, cfg.Encode, f.log)
		if err != nil {
			return nil, err
		}
		if err := f.add(&forwarder{name: NATSName, deliver: f.nats.deliver}); err != nil {
			return nil, err
		}
	}
	f.registry = &forwarder{name: RegistryName}
	f.registry.deliver = f.applyRegistry
	if err := f.add(f.registry); err != nil {
		return nil, err
	}
	if cfg.Webhooks.URL != "" {
		if err := f.startEndpoint(endpointRow{ID: ConfiguredEndpointID, URL: cfg.Webhooks.URL}, SourceConfig); err != nil {
			return nil, err
		}
	}
	rows, err := cfg.DB.endpoints(context.Background())
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if err := f.startEndpoint(r, SourceAPI); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// add registers fw's handler, and runs it when the router already runs.
func (f *Forwarders) add(fw *forwarder) error {
	cp, err := f.cfg.DB.Checkpoint(context.Background(), fw.name)
	if err != nil {
		return err
	}
	fw.done.Store(cp)
	fw.lastSave = time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.fwds[fw.name]; dup || f.closing {
		return nil // a registration seen while shutting down starts at the next run
	}
	fw.handler = f.router.AddConsumerHandler(fw.name, fw.name, f.sub, f.handle(fw))
	f.fwds[fw.name] = fw
	if f.runCtx != nil {
		if err := f.router.RunHandlers(f.runCtx); err != nil {
			return fmt.Errorf("forward: start %s: %w", fw.name, err)
		}
	}
	return nil
}

// handle is the Watermill handler of one forwarder.
func (f *Forwarders) handle(fw *forwarder) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ev, err := wmbridge.Envelope(msg)
		if err != nil {
			return err
		}
		if ev.Position <= fw.done.Load() {
			return nil // delivered before a rewind or a restart
		}
		saved, err := fw.deliver(msg.Context(), ev)
		if err != nil {
			return err
		}
		if !saved {
			// Not cancelled by a shutdown: what was delivered is recorded.
			if err := f.cfg.DB.SaveCheckpoint(context.WithoutCancel(msg.Context()), fw.name, ev.Position); err != nil {
				return err
			}
		}
		fw.done.Store(ev.Position)
		if fw == f.registry {
			f.regMu.Lock()
			close(f.regAdvance)
			f.regAdvance = make(chan struct{})
			f.regMu.Unlock()
		} else {
			f.metrics.delivered.WithLabelValues(fw.name).Inc()
		}
		return nil
	}
}

// recordFailures counts and logs an event that still failed after the retries (it is
// nacked and tried again from the checkpoint).
func (f *Forwarders) recordFailures(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil && msg.Context().Err() == nil {
			name := message.HandlerNameFromCtx(msg.Context())
			f.metrics.failures.WithLabelValues(name).Inc()
			f.log.Error("forwarder failed; retrying from its checkpoint", "forwarder", name,
				"position", msg.Metadata.Get(wmbridge.MetaPosition), "error", err.Error())
		}
		return out, err
	}
}

// Run delivers until ctx is cancelled or Close is called.
func (f *Forwarders) Run(ctx context.Context) error {
	f.mu.Lock()
	f.runCtx = ctx
	f.mu.Unlock()
	return f.router.Run(ctx)
}

// Running is closed once every forwarder runs.
func (f *Forwarders) Running() <-chan struct{} { return f.router.Running() }

// Close stops the router (waiting up to 15 s for deliveries in flight), the subscriber and
// the NATS connection. The DB is the caller's to close. Before Run, only the subscriber and
// the connection are closed (a router that never ran has nothing to wait for).
func (f *Forwarders) Close() error {
	f.mu.Lock()
	ran := f.runCtx != nil
	f.closing = true
	f.mu.Unlock()
	var err error
	if ran {
		err = f.router.Close()
	}
	err = errors.Join(err, f.sub.Close())
	if f.nats != nil {
		f.nats.close()
	}
	return err
}

// WaitRegistry blocks until the endpoint registry has applied the log up to position (so an
// endpoint registered at position runs, or one removed there has stopped), or ctx ends.
func (f *Forwarders) WaitRegistry(ctx context.Context, position uint64) error {
	for {
		f.regMu.Lock()
		ch := f.regAdvance
		f.regMu.Unlock()
		if f.registry.done.Load() >= position {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Positions returns every forwarder's checkpoint (the last position it delivered), by name.
func (f *Forwarders) Positions() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.fwds))
	for n, fw := range f.fwds {
		out[n] = fw.done.Load()
	}
	return out
}
