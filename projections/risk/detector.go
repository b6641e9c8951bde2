package risk

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/projections"
)

// ConsumerName is the detector's name on the log: its checkpoint key and metric label.
const ConsumerName = "signin-risk"

// Recorder records a sign-in's risk: command.Service.RecordSignInRisk.
type Recorder interface {
	RecordSignInRisk(ctx context.Context, accountID string, ev domain.SignInRiskDetected, md domain.Metadata) (uint64, error)
}

// History reads the sign-in history: *projections.DB.
type History interface {
	SignInAt(ctx context.Context, position uint64) (projections.SignInRecord, bool, error)
	SignInHistory(ctx context.Context, accountID string, before uint64, since time.Time) (projections.SignInHistory, error)
}

// Config configures New.
type Config struct {
	// Log is the event log (read with personal data opened: the sign-in's address and user
	// agent go into the record's metadata). Required.
	Log eventstore.Store
	// Path is the detector's own SQLite file (its checkpoint). Required.
	Path string
	// History is the sign-in history read model and WaitHistory waits until it has applied
	// a position (runner.Runner.WaitFor with projections.SignInsName). Required.
	History     History
	WaitHistory func(ctx context.Context, position uint64) error
	// Recorder appends SignInRiskDetected. Required.
	Recorder Recorder
	// Rules are the thresholds; zero uses the defaults.
	Rules Rules
	// Logger defaults to slog.Default(); Registerer, when set, receives the follower's
	// metrics (vigil_risk_detector_*).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// HistoryTimeout bounds the wait for the read model (then the batch fails and is
	// retried, and a read model that stays behind shows the detector stuck); default 30 s.
	HistoryTimeout time.Duration
	// Now is the clock of checkpoints and metrics; default time.Now.
	Now func() time.Time
}

// Detector follows the log from its checkpoint and judges every successful sign-in.
type Detector struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB
	f   *follow.Follower
}

var metricNames = follow.Metrics{
	Events:       follow.Metric{Name: "vigil_risk_detector_events_total", Help: "Events the sign-in risk detector has handled."},
	Failures:     follow.Metric{Name: "vigil_risk_detector_failures_total", Help: "Events that still failed after the retries (tried again from the checkpoint)."},
	Checkpoint:   follow.Metric{Name: "vigil_risk_detector_checkpoint", Help: "Global position of the last event the detector handled."},
	LagPositions: follow.Metric{Name: "vigil_risk_detector_lag_positions", Help: "Log head minus the detector's checkpoint."},
	Stuck:        follow.Metric{Name: "vigil_risk_detector_stuck", Help: "1 while an event keeps failing."},
}

// New opens the detector's file and its follower. On the very first start (no checkpoint
// yet) the checkpoint is set to the log's head: sign-ins made before the detector existed
// are not judged (and their owners not mailed about old news). Nothing runs before Run.
func New(ctx context.Context, cfg Config) (*Detector, error) {
	if cfg.Log == nil || cfg.Path == "" || cfg.History == nil || cfg.WaitHistory == nil || cfg.Recorder == nil {
		return nil, errors.New("risk: Config needs Log, Path, History, WaitHistory and Recorder")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HistoryTimeout <= 0 {
		cfg.HistoryTimeout = 30 * time.Second
	}
	db, err := follow.OpenSQLite(follow.SQLiteConfig{Path: cfg.Path, Schema: []string{follow.CheckpointTable}})
	if err != nil {
		return nil, fmt.Errorf("risk: %w", err)
	}
	d := &Detector{cfg: cfg, log: cfg.Logger.With("component", "risk"), db: db}
	if err := d.startAtHead(ctx); err != nil {
		db.Close()
		return nil, err
	}
	d.f, err = follow.New(follow.Config{Log: cfg.Log, Logger: cfg.Logger, Kind: "detector", Metrics: metricNames,
		Registerer: cfg.Registerer, Now: cfg.Now, BatchSize: 100})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("risk: %w", err)
	}
	if err := d.f.Add(follow.Consumer{Name: ConsumerName, Checkpoints: follow.SQLCheckpoints{DB: db}, Handle: d.handle}); err != nil {
		_ = d.f.Close()
		db.Close()
		return nil, fmt.Errorf("risk: %w", err)
	}
	return d, nil
}

// startAtHead writes the first checkpoint: the log's head.
func (d *Detector) startAtHead(ctx context.Context) error {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM checkpoints WHERE name = ?`, ConsumerName).Scan(&n); err != nil {
		return fmt.Errorf("risk: checkpoint: %w", err)
	}
	if n > 0 {
		return nil
	}
	head, err := d.cfg.Log.Head(ctx)
	if err != nil {
		return fmt.Errorf("risk: log head: %w", err)
	}
	if head > 0 {
		d.log.Info("sign-in risk detector starts at the log's head: earlier sign-ins are not judged", "position", head)
	}
	return follow.SaveCheckpoint(ctx, d.db, ConsumerName, head, d.cfg.Now())
}

// Run follows the log until ctx ends.
func (d *Detector) Run(ctx context.Context) error { return d.f.Run(ctx) }

// Running is closed once the detector follows the log live.
func (d *Detector) Running() <-chan struct{} { return d.f.Running() }

// WaitFor blocks until the detector has handled position, or ctx ends.
func (d *Detector) WaitFor(ctx context.Context, position uint64) error {
	return d.f.WaitFor(ctx, position, ConsumerName)
}

// Close stops the follower (waiting for a batch in flight) and closes the file.
func (d *Detector) Close() error {
	return errors.Join(d.f.Close(), d.db.Close())
}

// judgeConcurrency bounds the sign-ins of a batch judged at once: the records of different
// accounts are appended concurrently, so the store commits them together (one sync for
// several) instead of one after the other.
const judgeConcurrency = 8

// handle judges the batch's sign-ins, then records its last position. The sign-ins of one
// account are judged in order, different accounts' concurrently. A sign-in handled again
// after a failure records nothing twice (RecordSignInRisk is idempotent per session).
func (d *Detector) handle(ctx context.Context, batch []domain.Envelope) error {
	byAccount := map[string][]domain.Envelope{}
	var order []string
	for _, ev := range batch {
		if ev.Type != domain.EventLoginSucceeded {
			continue
		}
		var who struct {
			AccountID string `json:"account_id"`
		}
		_ = json.Unmarshal(ev.Data, &who)
		if _, ok := byAccount[who.AccountID]; !ok {
			order = append(order, who.AccountID)
		}
		byAccount[who.AccountID] = append(byAccount[who.AccountID], ev)
	}
	if len(order) > 0 {
		sem := make(chan struct{}, judgeConcurrency)
		errs := make([]error, len(order))
		var wg sync.WaitGroup
		for i, acc := range order {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				for _, ev := range byAccount[acc] {
					if errs[i] = d.judge(ctx, ev); errs[i] != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return follow.SaveCheckpoint(ctx, d.db, ConsumerName, batch[len(batch)-1].Position, d.cfg.Now())
}

// judge compares one LoginSucceeded with the history before it and records what stands out.
func (d *Detector) judge(ctx context.Context, ev domain.Envelope) error {
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return fmt.Errorf("risk: %s at %d: %w", ev.Type, ev.Position, err)
	}
	login, ok := e.(domain.LoginSucceeded)
	if !ok || !projections.OwnSignIn(ev, login) {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.HistoryTimeout)
	err = d.cfg.WaitHistory(wctx, ev.Position)
	cancel()
	if err != nil {
		return fmt.Errorf("risk: waiting for the sign-in history to reach %d: %w", ev.Position, err)
	}
	cur, ok, err := d.cfg.History.SignInAt(ctx, ev.Position)
	if err != nil || !ok {
		return err // not in the history: the account was erased since
	}
	rules := d.cfg.Rules.filled()
	h, err := d.cfg.History.SignInHistory(ctx, cur.AccountID, ev.Position, cur.Time.Add(-rules.Window))
	if err != nil {
		return err
	}
	risk := Assess(cur, h, rules)
	if len(risk.Signals) == 0 {
		return nil
	}
	md := domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, IP: ev.Metadata.IP, UserAgent: ev.Metadata.UserAgent,
		ClientID: ev.Metadata.ClientID, CorrelationID: ev.Metadata.CorrelationID, CausationID: ev.ID}
	if _, err := d.cfg.Recorder.RecordSignInRisk(ctx, login.AccountID, risk, md); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return nil // erased meanwhile
		}
		return err
	}
	return nil
}
