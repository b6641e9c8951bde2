package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/eventstore/forward/mail"
)

// File names of the mail outbox inside the data directory.
const (
	// MailFile holds the outbox's checkpoint (apart from projections.db, which may be
	// rebuilt: a rebuild must not mail the log again).
	MailFile = "mail.db"
	// MailDir receives the messages as .eml files when no SMTP server is configured.
	MailDir = "mail"
)

// MailConfig configures the mail outbox (issue 15, API.md "Mail, recovery and account
// protection").
type MailConfig struct {
	// SMTPURL (--smtp-url) is smtp://[user:pass@]host:port[?tls=required] or smtps://...;
	// empty writes each message as an .eml file under <DataDir>/mail/.
	SMTPURL string
	// From (--mail-from) is the sender; empty means "Vigil <no-reply@HOST>" with the host of
	// the public URL.
	From string
	// SMTP, when set, replaces what SMTPURL says (tests pass their TLS roots).
	SMTP *mail.SMTPConfig
}

// outbox is the app's mail outbox.
type outbox struct {
	o    *mail.Outbox
	done chan error
}

// openOutbox opens <DataDir>/mail.db and the sender (nothing is sent before start).
func (a *App) openOutbox(ctx context.Context) (*outbox, error) {
	cfg := a.cfg
	from, err := mail.ParseFrom(cfg.Mail.From, cfg.PublicURL.String())
	if err != nil {
		return nil, fmt.Errorf("--mail-from: %w", err)
	}
	log := cfg.Logger.With("component", "mail")
	var sender mail.Sender
	switch {
	case cfg.Mail.SMTP != nil || cfg.Mail.SMTPURL != "":
		var sc mail.SMTPConfig
		if cfg.Mail.SMTP != nil {
			sc = *cfg.Mail.SMTP
		} else if sc, err = mail.ParseSMTPURL(cfg.Mail.SMTPURL); err != nil {
			return nil, fmt.Errorf("--smtp-url: %w", err)
		}
		s, err := mail.NewSMTPSender(sc, from)
		if err != nil {
			return nil, fmt.Errorf("--smtp-url: %w", err)
		}
		sender = s
		log.Info("mail goes out through SMTP", "smtp_url", mail.RedactURL(cfg.Mail.SMTPURL), "from", from.String())
	default:
		dir := filepath.Join(cfg.DataDir, MailDir)
		sender = &mail.FileSender{Dir: dir, From: from, Written: func(path string) {
			log.Info("mail written", "path", path)
		}}
		log.Info("no --smtp-url: mail is written as .eml files", "dir", dir)
	}
	o, err := mail.New(ctx, mail.Config{
		Log: a.store, Sender: sender, Keyring: a.keyring, PublicURL: cfg.PublicURL,
		CheckpointPath: filepath.Join(cfg.DataDir, MailFile), GeoIP: a.geo,
		Logger: cfg.Logger, Registerer: cfg.Registry, Leases: a.leases(), Holder: a.holderID(),
	})
	if err != nil {
		_ = sender.Close()
		return nil, fmt.Errorf("--data-dir: mail outbox: %w", err)
	}
	return &outbox{o: o}, nil
}

// start runs the outbox until ctx ends.
func (m *outbox) start(ctx context.Context) {
	m.done = make(chan error, 1)
	go func() { m.done <- m.o.Run(ctx) }()
}

// close stops the outbox (when started, waiting for the message in flight) and closes its
// sender and checkpoint file.
func (m *outbox) close() error {
	return closeFollower(m.done, m.o.Close)
}

// closeFollower stops a log follower started with its Run's result on done (nil: never
// started): Close (follow's Close lets a start in progress finish first), then Run's result.
// A Run cancelled during its start is not a failure.
func closeFollower(done chan error, closeFn func() error) error {
	err := closeFn()
	if errors.Is(err, follow.ErrCloseTimeout) {
		// A handler still busy (a send or push in flight) did not stop in time (the
		// follower closed its subscriber, which ends it). Such a follower's progress is its
		// checkpoint, saved with what it did, so the next start resumes from there: the stop
		// lost nothing.
		err = nil
	}
	if done != nil {
		if runErr := <-done; runErr != nil && err == nil && !errors.Is(runErr, context.Canceled) {
			err = runErr
		}
	}
	return err
}

// Outbox is the mail outbox (tests wait on its position).
func (a *App) Outbox() *mail.Outbox { return a.mail.o }
