// Package forward sends Vigil's event log to other systems: NATS JetStream (one message per
// event, subject <prefix>.<type>, Nats-Msg-Id = event id) and webhook endpoints signed per
// the Standard Webhooks scheme. Every forwarder is a consumer of one eventstore/follow
// Follower, one event per batch, with its own durable checkpoint in the forwarders' database
// (DB), so that a restart resumes after the last event it delivered.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
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
	// Leases, when set (several instances on one log: sharedstate's), makes the NATS
	// forwarder and each webhook endpoint's forwarder deliver on one instance at a time: the
	// holder of the lease named after the forwarder, which saves the shared progress after
	// each event; a new holder resumes from it (follow.Consumer.Exclusive). The endpoint
	// registry runs on every instance. Holder names this instance (default: a random id).
	Leases follow.Leases
	Holder string
}

// Forwarders runs every forwarder. Create with New, start with Run, stop with Close. Safe
// for concurrent use.
type Forwarders struct {
	cfg     Config
	log     *slog.Logger
	f       *follow.Follower
	nats    *natsSink
	client  *http.Client
	metrics *metrics

	mu        sync.Mutex
	endpoints map[string]*endpoint

	regSaved time.Time // when the registry last saved its checkpoint (its handler only)
}

// deliverFunc handles one event for a forwarder. saved=true means it stored (or
// deliberately deferred) the checkpoint itself; else the forwarder saves it.
type deliverFunc func(ctx context.Context, ev domain.Envelope) (saved bool, err error)

// Forwarder metrics kept by the follower (the others are in metrics.go).
var metricNames = follow.Metrics{
	Failures:     follow.Metric{Name: "vigil_forwarder_failures_total", Help: "Events that still failed after the router's retries (tried again from the checkpoint)."},
	Checkpoint:   follow.Metric{Name: "vigil_forwarder_checkpoint", Help: "Global position of the last event the forwarder delivered or parked."},
	LagPositions: follow.Metric{Name: "vigil_forwarder_lag_positions", Help: "Log head minus the forwarder's checkpoint."},
	Holder:       follow.Metric{Name: "vigil_forwarder_lease_held", Help: "With --nats-url: 1 while this instance holds the forwarder's lease (delivers), 0 while another instance does."},
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
	f := &Forwarders{cfg: cfg, log: cfg.Logger.With("component", "forward"), endpoints: map[string]*endpoint{}}
	f.client = cfg.Webhooks.client()
	f.metrics = newMetrics(f)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(f.metrics); err != nil {
			return nil, fmt.Errorf("forward: register metrics: %w", err)
		}
	}
	// One event at a time, each retried (3 times, from 100ms) before the forwarder goes back
	// to its checkpoint after the bridge's back-off: an event is retried until it is
	// delivered (or, for webhooks, parked), never skipped. No fast catch-up: a forwarder
	// delivers every event the same way.
	f.f, err = follow.New(follow.Config{
		Log: cfg.Log, Logger: f.log, Kind: "forwarder", Metrics: metricNames, Registerer: cfg.Registerer,
		BatchSize: 1, Retries: 3, RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: 2 * time.Second,
		NackBackoff: cfg.NackBackoff, MaxNackBackoff: cfg.MaxNackBackoff, CloseTimeout: 15 * time.Second,
		CatchUpAfter: -1, Leases: cfg.Leases, Holder: cfg.Holder,
	})
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.f.Close()
			if f.nats != nil {
				f.nats.close()
			}
		}
	}()
	if cfg.NATS != nil {
		f.nats, err = newNATSSink(*cfg.NATS, cfg.Encode, f.log)
		if err != nil {
			return nil, err
		}
		if err := f.add(NATSName, f.nats.deliver); err != nil {
			return nil, err
		}
	}
	if err := f.add(RegistryName, f.applyRegistry); err != nil {
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

// add registers forwarder name, which runs at once when the follower already runs.
func (f *Forwarders) add(name string, deliver deliverFunc) error {
	return f.f.Add(follow.Consumer{Name: name, Checkpoints: f.cfg.DB, BatchSize: 1, Exclusive: name != RegistryName,
		Handle: func(ctx context.Context, batch []domain.Envelope) error {
			for _, ev := range batch {
				saved, err := deliver(ctx, ev)
				if err != nil {
					return err
				}
				if !saved {
					// Not cancelled by a shutdown: what was delivered is recorded.
					if err := f.cfg.DB.SaveCheckpoint(context.WithoutCancel(ctx), name, ev.Position); err != nil {
						return err
					}
				}
				if name != RegistryName {
					f.metrics.delivered.WithLabelValues(name).Inc()
				}
			}
			return nil
		}})
}

// Run delivers until ctx is cancelled or Close is called.
func (f *Forwarders) Run(ctx context.Context) error { return f.f.Run(ctx) }

// Running is closed once every forwarder runs.
func (f *Forwarders) Running() <-chan struct{} { return f.f.Running() }

// Close stops the router (waiting up to 15 s for deliveries in flight), the subscriber and
// the NATS connection. The DB is the caller's to close. Before Run, only the subscriber and
// the connection are closed (a router that never ran has nothing to wait for).
func (f *Forwarders) Close() error {
	err := f.f.Close()
	if f.nats != nil {
		f.nats.close()
	}
	return err
}

// WaitRegistry blocks until the endpoint registry has applied the log up to position (so an
// endpoint registered at position runs, or one removed there has stopped), or ctx ends.
func (f *Forwarders) WaitRegistry(ctx context.Context, position uint64) error {
	return f.f.WaitFor(ctx, position, RegistryName)
}

// Positions returns every forwarder's checkpoint (the last position it delivered), by name.
func (f *Forwarders) Positions() map[string]uint64 { return f.f.Positions() }
