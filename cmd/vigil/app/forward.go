package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/webhookadmin"
)

// File names of the forwarders inside the data directory.
const (
	// ForwardFile holds the forwarders' checkpoints, registered webhook endpoints and parked
	// deliveries (apart from projections.db, which may be deleted and rebuilt).
	ForwardFile = "forward.db"
	// WebhookSecretFile is the default webhook signing secret, made on first start.
	WebhookSecretFile = "webhook.secret"
)

// ForwardConfig configures the forwarders (issue 6): NATS JetStream and webhooks. The zero
// value forwards nowhere but still serves the webhook administration.
type ForwardConfig struct {
	// NATSURL (--forward-nats-url) turns the NATS JetStream forwarder on.
	NATSURL string
	// NATSSubjectPrefix (--forward-nats-subject-prefix): events go to <prefix>.<type>;
	// default forward.DefaultNATSSubjectPrefix.
	NATSSubjectPrefix string
	// NATSStream (--forward-nats-stream) is the JetStream stream, created when missing;
	// default forward.DefaultNATSStream.
	NATSStream string
	// WebhookURL (--webhook-url) is an endpoint that receives the whole log.
	WebhookURL string
	// WebhookSecretFile (--webhook-secret-file) holds the "whsec_" signing secret of the
	// --webhook-url endpoint (endpoints registered through the admin API have their own).
	// Empty means <DataDir>/webhook.secret, created on first start; a file named here must
	// exist.
	WebhookSecretFile string
	// WebhookAttempts, WebhookInitialBackoff, WebhookMaxBackoff and WebhookTimeout tune the
	// webhook retries (defaults in package forward).
	WebhookAttempts                          int
	WebhookInitialBackoff, WebhookMaxBackoff time.Duration
	WebhookTimeout                           time.Duration
}

// forwarding is the app's forwarders and their database.
type forwarding struct {
	db   *forward.DB
	fwds *forward.Forwarders
	done chan error
}

// openForwarding opens <DataDir>/forward.db, the webhook secret and the forwarders (NATS is
// connected now: an unreachable server stops start-up naming --forward-nats-url).
func (a *App) openForwarding() (*forwarding, error) {
	cfg := a.cfg
	fc := cfg.Forward
	var key []byte
	switch {
	case fc.WebhookURL == "":
		// No configured endpoint: nothing signs with this key (API-registered endpoints have
		// their own secrets), so none is made.
	case fc.WebhookSecretFile == "":
		path := filepath.Join(cfg.DataDir, WebhookSecretFile)
		k, created, err := forward.EnsureSecretFile(path)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if created {
			a.log.Info("created a new webhook signing secret", "path", path)
		}
		key = k
	default:
		k, err := forward.ReadSecretFile(fc.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		key = k
	}
	db, err := forward.OpenDB(filepath.Join(cfg.DataDir, ForwardFile))
	if err != nil {
		return nil, fmt.Errorf("--data-dir: forwarders: %w", err)
	}
	fcfg := forward.Config{
		Leases: a.leases(), Holder: a.holderID(),
		Log: a.store, DB: db, Encode: func(e domain.Envelope) ([]byte, error) { return export.MarshalCloudEvent(e, cfg.PublicURL.String()) }, Logger: cfg.Logger, Registerer: cfg.Registry, Now: cfg.Now,
		OpenSecret: func(r domain.WebhookRegistered) ([]byte, error) { return command.OpenWebhookSecret(a.keyring, r) },
		Webhooks: forward.WebhookConfig{URL: fc.WebhookURL, Secret: key, Attempts: fc.WebhookAttempts,
			InitialBackoff: fc.WebhookInitialBackoff, MaxBackoff: fc.WebhookMaxBackoff, Timeout: fc.WebhookTimeout},
	}
	if fc.NATSURL != "" {
		fcfg.NATS = &forward.NATSConfig{URL: fc.NATSURL, SubjectPrefix: fc.NATSSubjectPrefix, Stream: fc.NATSStream}
	}
	fwds, err := forward.New(fcfg)
	if err != nil {
		_ = db.Close()
		switch {
		case errors.Is(err, forward.ErrNATS):
			return nil, fmt.Errorf("--forward-nats-url: %w", err)
		case fc.WebhookURL != "":
			return nil, fmt.Errorf("--webhook-url: %w", err)
		}
		return nil, fmt.Errorf("forwarders: %w", err)
	}
	return &forwarding{db: db, fwds: fwds}, nil
}

// start runs the forwarders until ctx ends.
func (f *forwarding) start(ctx context.Context) {
	f.done = make(chan error, 1)
	go func() { f.done <- f.fwds.Run(ctx) }()
}

// close stops the forwarders (when started, waiting for them) and closes their database.
func (f *forwarding) close() error {
	err := f.fwds.Close()
	if f.done != nil {
		if rerr := <-f.done; rerr != nil && err == nil {
			err = rerr
		}
	}
	return errors.Join(err, f.db.Close())
}

// admin adapts the forwarders to the webhook routes.
func (f *forwarding) admin() api.WebhookAdmin { return webhookadmin.New(f.fwds) }
