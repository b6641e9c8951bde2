// Package mail is Vigil's mail outbox (API.md "Mail, recovery and account protection"): a
// consumer of the event log (eventstore/follow) that turns the events warning an account
// holder (a verification or reset request, a risky sign-in, a password, email or second
// factor change, a delegation, a sign-out by an administrator) into messages, rendered from
// embedded text and HTML templates in the account's locale, and sends them through SMTP
// (github.com/wneessen/go-mail) or, without an SMTP server, writes them as .eml files.
//
// Guarantees. The outbox keeps its checkpoint in its own SQLite file (not projections.db,
// which may be rebuilt at any time) and saves it after each message is accepted: every
// triggering event gets its message at least once, also across a crash (the message in flight
// when the process died is sent again, with the same Message-ID), and never again after a
// clean restart. While the SMTP server is unreachable the outbox retries with back-off
// (follow's retries, then its rewinds with a growing wait), never skipping a message; a
// message the server refuses for good (a 5xx answer to the recipient) is counted and logged
// and the outbox moves on. On its first start the checkpoint begins at the log's head, so a
// rebuilt or upgraded server does not mail the log's history.
package mail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/geoip"
)

// ConsumerName is the outbox's checkpoint name and metric label.
const ConsumerName = "mail"

// Config configures New.
type Config struct {
	// Log is the event log, read through the sealed store (personal values opened). Required.
	Log eventstore.Store
	// Sender delivers the messages (an *SMTPSender or a *FileSender). Required; Close closes it.
	Sender Sender
	// Keyring is the server key's, which made the links' tokens. Required.
	Keyring *credential.Keyring
	// PublicURL is the origin of the links. Required.
	PublicURL *url.URL
	// CheckpointPath is the outbox's SQLite file (<data-dir>/mail.db). Required.
	CheckpointPath string
	// Recipients gives an account's current email, name and locale; default
	// NewStoreRecipients(Log).
	Recipients Recipients
	// GeoIP locates the addresses the mail names; nil locates nothing.
	GeoIP *geoip.Resolver
	// Logger defaults to slog.Default(); Registerer receives the metrics (nil: none).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// RetryBackoff and MaxRetryBackoff bound the waits between the attempts at a message
	// while sending fails (defaults 500ms and 10s); after 3 attempts the outbox goes back to
	// its checkpoint and waits from NackBackoff, doubling up to MaxNackBackoff (defaults 1s
	// and 1m), before it tries again.
	RetryBackoff, MaxRetryBackoff time.Duration
	NackBackoff, MaxNackBackoff   time.Duration
	// Leases, when set (several instances on one log: sharedstate's), makes the outbox send
	// on one instance at a time: the holder of the lease "mail", which saves the shared
	// progress after each message; a new holder resumes from it (follow.Consumer.Exclusive).
	// Holder names this instance (default: a random id).
	Leases follow.Leases
	Holder string
}

// ErasureName is the consumer that, with Config.Leases and a Sender that keeps copies
// (FileSender), forgets an erased account's messages on every instance (each may have written
// some while it held the lease).
const ErasureName = "mail-erasure"

// Outbox follows the log and sends the mail. Create with New, run with Run, stop with Close.
type Outbox struct {
	cfg     Config
	log     *slog.Logger
	db      *sql.DB
	f       *follow.Follower
	c       *composer
	metrics *metrics
	sent    atomic.Uint64 // the saved checkpoint: events up to it are handled
}

// Metric names of the outbox's follower.
var followMetrics = follow.Metrics{
	Failures:     follow.Metric{Name: "vigil_mail_outbox_failures_total", Help: "Events whose mail still failed after the retries (tried again from the checkpoint)."},
	Checkpoint:   follow.Metric{Name: "vigil_mail_outbox_checkpoint", Help: "Global position of the last event the mail outbox handled."},
	LagPositions: follow.Metric{Name: "vigil_mail_outbox_lag_positions", Help: "Log head minus the mail outbox's checkpoint."},
	Stuck:        follow.Metric{Name: "vigil_mail_outbox_stuck", Help: "1 while a mail keeps failing (the SMTP server is down or refuses)."},
	Holder:       follow.Metric{Name: "vigil_mail_outbox_lease_held", Help: "With --nats-url: 1 while this instance holds the outbox's lease (sends the mail), 0 while another instance does."},
}

// New opens the checkpoint file (starting it at the log's head when it is new), parses the
// templates and builds the follower. Nothing is sent before Run.
func New(ctx context.Context, cfg Config) (_ *Outbox, err error) {
	if cfg.Log == nil || cfg.Sender == nil || cfg.Keyring == nil || cfg.PublicURL == nil || cfg.CheckpointPath == "" {
		return nil, errors.New("mail: Config needs Log, Sender, Keyring, PublicURL and CheckpointPath")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Recipients == nil {
		cfg.Recipients = NewStoreRecipients(cfg.Log)
	}
	setDefault(&cfg.RetryBackoff, 500*time.Millisecond)
	setDefault(&cfg.MaxRetryBackoff, 10*time.Second)
	setDefault(&cfg.NackBackoff, time.Second)
	setDefault(&cfg.MaxNackBackoff, time.Minute)
	r, err := newRenderer()
	if err != nil {
		return nil, err
	}
	o := &Outbox{cfg: cfg, log: cfg.Logger.With("component", "mail"),
		c: &composer{log: cfg.Log, recipients: cfg.Recipients, keyring: cfg.Keyring, public: cfg.PublicURL, geo: cfg.GeoIP, r: r}}
	o.db, err = follow.OpenSQLite(follow.SQLiteConfig{Path: cfg.CheckpointPath, Schema: []string{follow.CheckpointTable}})
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	defer func() {
		if err != nil {
			_ = o.db.Close()
		}
	}()
	start, err := o.startingPoint(ctx)
	if err != nil {
		return nil, err
	}
	o.sent.Store(start)
	o.metrics = newMetrics()
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(o.metrics); err != nil {
			return nil, fmt.Errorf("mail: register metrics: %w", err)
		}
	}
	o.f, err = follow.New(follow.Config{
		Log: cfg.Log, Logger: o.log, Kind: "outbox", Metrics: followMetrics, Registerer: cfg.Registerer,
		BatchSize: 100, Retries: 2, RetryBackoff: cfg.RetryBackoff, MaxRetryBackoff: cfg.MaxRetryBackoff,
		NackBackoff: cfg.NackBackoff, MaxNackBackoff: cfg.MaxNackBackoff, CloseTimeout: 20 * time.Second,
		// Every event goes the same way (a catch-up failing on an unreachable SMTP server
		// would stop Run).
		CatchUpAfter: -1,
		Leases:       cfg.Leases, Holder: cfg.Holder,
	})
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	if err := o.f.Add(follow.Consumer{Name: ConsumerName, Checkpoints: follow.SQLCheckpoints{DB: o.db}, Handle: o.handle,
		Exclusive: true}); err != nil {
		_ = o.f.Close()
		return nil, fmt.Errorf("mail: %w", err)
	}
	if fg, ok := cfg.Sender.(Forgetter); ok && cfg.Leases != nil {
		if err := o.addErasure(ctx, fg); err != nil {
			_ = o.f.Close()
			return nil, fmt.Errorf("mail: %w", err)
		}
	}
	return o, nil
}

// addErasure adds the consumer that forgets erased accounts' messages on this instance,
// whoever holds the lease; it starts at the log's head on its first start.
func (o *Outbox) addErasure(ctx context.Context, fg Forgetter) error {
	cp, err := follow.ReadCheckpoint(ctx, o.db, ErasureName)
	if err != nil {
		return err
	}
	if cp == 0 {
		head, err := o.cfg.Log.Head(ctx)
		if err != nil {
			return fmt.Errorf("log head: %w", err)
		}
		if err := follow.SaveCheckpoint(ctx, o.db, ErasureName, head, time.Now()); err != nil {
			return err
		}
	}
	return o.f.Add(follow.Consumer{Name: ErasureName, Checkpoints: follow.SQLCheckpoints{DB: o.db},
		Handle: func(ctx context.Context, batch []domain.Envelope) error {
			for _, ev := range batch {
				if ev.Type != domain.EventAccountErased {
					continue
				}
				accountID, _ := strings.CutPrefix(ev.StreamID, domain.StreamPrefixAccount)
				if err := fg.Forget(ctx, accountID); err != nil {
					return err
				}
			}
			return follow.SaveCheckpoint(context.WithoutCancel(ctx), o.db, ErasureName, batch[len(batch)-1].Position, time.Now())
		}})
}

func setDefault(v *time.Duration, def time.Duration) {
	if *v <= 0 {
		*v = def
	}
}

// startingPoint returns the saved checkpoint; on the first start it saves the log's head
// (the outbox mails what happens from now on, not the log's history).
func (o *Outbox) startingPoint(ctx context.Context) (uint64, error) {
	var pos uint64
	err := o.db.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE name = ?`, ConsumerName).Scan(&pos)
	if err == nil {
		return pos, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("mail: checkpoint: %w", err)
	}
	if o.cfg.Leases != nil {
		// A new instance of a deployment: it resumes where the holders are, not at the head
		// (which would skip what the holder has not sent yet, should this one take over).
		shared, err := o.cfg.Leases.Progress(ctx, ConsumerName)
		if err != nil {
			return 0, fmt.Errorf("mail: shared progress: %w", err)
		}
		if shared > 0 {
			if err := follow.SaveCheckpoint(ctx, o.db, ConsumerName, shared, time.Now()); err != nil {
				return 0, fmt.Errorf("mail: %w", err)
			}
			return shared, nil
		}
	}
	head, err := o.cfg.Log.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("mail: log head: %w", err)
	}
	if err := follow.SaveCheckpoint(ctx, o.db, ConsumerName, head, time.Now()); err != nil {
		return 0, fmt.Errorf("mail: %w", err)
	}
	if o.cfg.Leases != nil {
		// The deployment's first outbox: the others start here too.
		if err := o.cfg.Leases.SaveProgress(ctx, ConsumerName, head); err != nil {
			return 0, fmt.Errorf("mail: shared progress: %w", err)
		}
	}
	o.log.Info("mail outbox starts at the log's head: earlier events are not mailed", "position", head)
	return head, nil
}

// Run sends until ctx is cancelled or Close is called.
func (o *Outbox) Run(ctx context.Context) error { return o.f.Run(ctx) }

// Running is closed once the outbox follows the log live.
func (o *Outbox) Running() <-chan struct{} { return o.f.Running() }

// Sending reports whether this instance sends the mail now: it holds the outbox's lease
// (Config.Leases), or runs without leases.
func (o *Outbox) Sending() bool {
	held, ok := o.f.Leased()[ConsumerName]
	return held || !ok
}

// Position is the outbox's saved checkpoint: every event up to it is handled.
func (o *Outbox) Position() uint64 { return o.sent.Load() }

// WaitFor blocks until the outbox has handled the log up to position, or ctx ends.
func (o *Outbox) WaitFor(ctx context.Context, position uint64) error {
	return o.f.WaitFor(ctx, position, ConsumerName)
}

// Close stops the follower (waiting for the message in flight), the sender and the
// checkpoint file.
func (o *Outbox) Close() error {
	err := o.f.Close()
	return errors.Join(err, o.cfg.Sender.Close(), o.db.Close())
}

// handle sends the mail of a batch, saving the checkpoint after each message, so that a
// failure or a crash sends again only the message that was in flight.
func (o *Outbox) handle(ctx context.Context, batch []domain.Envelope) error {
	// A shutdown lets the message in flight finish; its checkpoint is saved whatever.
	save := context.WithoutCancel(ctx)
	for _, ev := range batch {
		if ev.Position <= o.sent.Load() {
			continue // handled before a failure later in its batch
		}
		if fg, ok := o.cfg.Sender.(Forgetter); ok && ev.Type == domain.EventAccountErased {
			accountID, _ := strings.CutPrefix(ev.StreamID, domain.StreamPrefixAccount)
			if err := fg.Forget(ctx, accountID); err != nil {
				return err
			}
		}
		m, why, err := o.c.compose(ctx, ev)
		if err != nil {
			return fmt.Errorf("mail: %s %s: %w", ev.Type, ev.ID, err)
		}
		if why != skipNone {
			o.metrics.skipped.WithLabelValues(string(why)).Inc()
			if why == skipUndecodable || why == skipTokenMismatch {
				o.log.Error("mail: event skipped", "reason", string(why), "type", ev.Type, "event_id", ev.ID, "position", ev.Position)
			}
		}
		if m == nil {
			continue
		}
		err = o.cfg.Sender.Send(ctx, m)
		switch {
		case err == nil:
			o.metrics.sent.WithLabelValues(m.Kind).Inc()
		case errors.Is(err, ErrRejected):
			o.metrics.rejected.WithLabelValues(m.Kind).Inc()
			o.log.Warn("mail: the SMTP server refused the message for good; moving on",
				"kind", m.Kind, "event_id", ev.ID, "position", ev.Position, "err", err.Error())
		default:
			o.metrics.failures.WithLabelValues(m.Kind).Inc()
			return fmt.Errorf("mail: %s for event %s: %w", m.Kind, ev.ID, err)
		}
		if err := o.saveCheckpoint(save, ev.Position); err != nil {
			return err
		}
	}
	return o.saveCheckpoint(save, batch[len(batch)-1].Position)
}

func (o *Outbox) saveCheckpoint(ctx context.Context, pos uint64) error {
	if pos <= o.sent.Load() {
		return nil
	}
	if err := follow.SaveCheckpoint(ctx, o.db, ConsumerName, pos, time.Now()); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	o.sent.Store(pos)
	// With leases: shared at once, so that a takeover repeats at most the message in flight.
	return follow.SaveProgress(ctx, pos)
}

// metrics are the outbox's own counters (the follower exports checkpoint, lag and stuck).
type metrics struct {
	sent, failures, rejected, skipped *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_mail_sent_total",
			Help: "Messages accepted by the SMTP server (or written as .eml files), by kind."}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_mail_send_failures_total",
			Help: "Attempts to send a message that failed and will be retried (SMTP server down, temporary refusal), by kind."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_mail_rejected_total",
			Help: "Messages the SMTP server refused for good (not retried), by kind."}, []string{"kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_mail_skipped_total",
			Help: "Triggering events that got no mail, by reason (erased account, stale verification request, ...)."}, []string{"reason"}),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []*prometheus.CounterVec{m.sent, m.failures, m.rejected, m.skipped} {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []*prometheus.CounterVec{m.sent, m.failures, m.rejected, m.skipped} {
		c.Collect(ch)
	}
}
