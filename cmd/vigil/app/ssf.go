package app

import (
	"context"

	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	ssfroutes "github.com/vigil-auth/vigil/handlers/ssf"
)

// Files of the Shared Signals transmitter inside the data directory.
const (
	// SSFFile holds each stream's checkpoint and the SETs not yet acknowledged.
	SSFFile = "ssf.db"
	// SSFSigningKeyFile is the default RS256 key file that signs SETs, made on first start.
	SSFSigningKeyFile = "ssf-signing.key"
)

// transmitting is the app's Shared Signals transmitter.
type transmitting struct {
	keys *ssf.Keys
	t    *ssf.Transmitter
	done chan error
}

// openSSF loads the SET signing key (making it on first start when it is the default file)
// and opens the transmitter on <DataDir>/ssf.db.
func (a *App) openSSF() (*transmitting, error) {
	cfg := a.cfg
	var (
		keys *ssf.Keys
		err  error
	)
	if cfg.SSFSigningKeyFile != "" {
		if keys, err = ssf.LoadKeys(cfg.SSFSigningKeyFile); err != nil {
			return nil, fmt.Errorf("--ssf-signing-key-file: %w", err)
		}
	} else {
		path := filepath.Join(cfg.DataDir, SSFSigningKeyFile)
		var created bool
		if keys, created, err = ssf.EnsureKeys(path, time.Now()); err != nil {
			return nil, fmt.Errorf("--data-dir: the SSF signing key %s: %w", path, err)
		}
		if created {
			a.log.Info("created a new SSF signing key", "path", path, "kid", keys.ActiveKeyID())
		}
	}
	svc := a.svc
	var acks ssf.Acks
	if a.shared != nil {
		acks = a.shared.SSFAcks
	}
	t, err := ssf.New(ssf.Config{
		Leases: a.leases(), Holder: a.holderID(), Acks: acks,
		Log: a.store, Path: filepath.Join(cfg.DataDir, SSFFile), Keys: keys, Issuer: cfg.PublicURL.String(),
		Logger: cfg.Logger, Registerer: cfg.Registry, Now: cfg.Now,
		InitialBackoff: cfg.SSF.InitialBackoff, MaxBackoff: cfg.SSF.MaxBackoff, DisableAfter: cfg.SSF.DisableAfter,
		Disable: func(ctx context.Context, id, reason string) error {
			_, _, err := svc.SetSSFStreamStatus(ctx, id, ssf.StatusDisabled, reason,
				command.RequestMeta{Actor: &domain.Actor{Type: domain.ActorSystem}})
			return err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: ssf transmitter: %w", err)
	}
	return &transmitting{keys: keys, t: t}, nil
}

// SSFConfig tunes the transmitter's push retries (tests shorten them); zero values are the
// defaults of package eventstore/forward/ssf.
type SSFConfig struct {
	InitialBackoff, MaxBackoff, DisableAfter time.Duration
}

// routes is the handlers' configuration of the Shared Signals routes.
func (s *transmitting) routes(a *App) *ssfroutes.Config {
	return &ssfroutes.Config{Transmitter: s.t, Commands: a.svc, Keys: s.keys, Issuer: a.cfg.PublicURL.String(), Now: a.cfg.Now}
}

func (s *transmitting) start(ctx context.Context) {
	s.done = make(chan error, 1)
	go func() { s.done <- s.t.Run(ctx) }()
}

func (s *transmitting) close() error {
	return closeFollower(s.done, s.t.Close)
}

// SSF is the Shared Signals transmitter (tests and the portal's administration pages).
func (a *App) SSF() *ssf.Transmitter { return a.ssf.t }
