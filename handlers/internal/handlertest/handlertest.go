// Package handlertest runs the HTTP server for the handler tests the way cmd/vigil/app wires
// it: the real domain service over a SQLite log in t.TempDir(), the read models and their
// runner, the log feed of the in-memory indexes, the service tokens, the webhook forwarders
// and handlers.New, served on 127.0.0.1. The tests of package handlers and its subpackages
// use it instead of the app, which they must not import.
package handlertest

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/export"
	"github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/forward"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sealed/keystore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/handlers"
	ssfroutes "github.com/vigil-auth/vigil/handlers/ssf"
	"github.com/vigil-auth/vigil/handlers/stream"
	"github.com/vigil-auth/vigil/handlers/webhookadmin"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

// DefaultPublicURL is the public URL of a Config without one (the app's default): passkeys'
// relying party id localhost, that one origin.
const DefaultPublicURL = "http://localhost:8080"

// Config says how Start wires the server; the zero value is the app's defaults with a cheap
// password hash.
type Config struct {
	// Now is the clock of the domain and the handlers; default time.Now.
	Now func() time.Time
	// AdminEmails are the bootstrap administrators (command.Config.BootstrapAdmins).
	AdminEmails []string
	// TwoFactorPolicy, when set, replaces the organisations' own 2FA policies.
	TwoFactorPolicy command.TwoFactorPolicy
	// PublicURL is the origin of passkeys and the OpenAPI document; https turns HSTS on.
	// Default DefaultPublicURL.
	PublicURL string
	// InsecureCookies drops Secure from the cookies.
	InsecureCookies bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// GeoIPCityDB and GeoIPASNDB are mmdb files the read models locate addresses with.
	GeoIPCityDB, GeoIPASNDB string
	// StreamHeartbeat and StreamBuffer configure the compliance stream (zero: defaults).
	StreamHeartbeat time.Duration
	StreamBuffer    int
}

// Server is a running server; Start stops it when the test ends.
type Server struct {
	// URL is the base URL, e.g. http://localhost:41234 (localhost, as the app prints it:
	// the host of the default public URL).
	URL string
	// EventsPath is the SQLite log, for a second handle that reads or appends.
	EventsPath string
	// Service is the domain service the routes run.
	Service *command.Service
	// Keyring is the server keyring (the server key's): tests derive the mailed links'
	// tokens with it, as the mail outbox does.
	Keyring *credential.Keyring
	// Handler is what the HTTP server serves (benchmarks call it without a connection).
	Handler http.Handler
}

// Start wires and serves the server, and returns once the log feed and the read models run
// live (as the app ends Starting). Every failure fails the test.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = DefaultPublicURL
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var closers []func() error
	t.Cleanup(func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				t.Errorf("handlertest: closing: %v", err)
			}
		}
	})
	srv := &Server{EventsPath: filepath.Join(dir, "events.db")}
	raw, err := sqlite.Open(sqlite.Config{Path: srv.EventsPath, Logger: log})
	must(err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	// The log is sealed as serve's is (cmd/vigil/app/sealing.go): personal data under each
	// account's key in keys.db, opened on every read.
	keys, err := keystore.OpenSQLite(filepath.Join(dir, "keys.db"), key)
	must(err)
	hasher, err := sealed.NewHasher(key)
	must(err)
	sealedLog, err := sealed.New(raw, sealed.Config{Keys: keys, Personal: sealed.RegistryPersonal,
		Owner: sealed.DefaultOwner(hasher, "attempted_email")})
	must(err)
	closers = append(closers, sealedLog.Close)
	store := eventstore.Instrument(sealedLog, reg)
	var geo *geoip.Resolver
	if cfg.GeoIPCityDB != "" || cfg.GeoIPASNDB != "" {
		geo, err = geoip.Open(geoip.Config{CityDB: cfg.GeoIPCityDB, ASNDB: cfg.GeoIPASNDB, Logger: log, ReloadInterval: -1})
		must(err)
		closers = append(closers, geo.Close)
	}
	ppath, err := projections.CurrentPath(dir)
	must(err)
	pdb, err := projections.Open(projections.Config{Path: ppath, Logger: log})
	must(err)
	closers = append(closers, pdb.Close)
	pr, err := runner.New(runner.Config{
		DB: pdb, Log: store, Logger: log, Registerer: reg,
		Projections: projections.BuiltinWith(projections.BuiltinConfig{GeoIP: geo}),
	})
	must(err)
	closers = append(closers, pr.Close)

	keyring, err := credential.NewKeyring(credential.KeyringConfig{Key: key})
	must(err)
	passkeys, err := passkey.ConfigFromPublicURL(cfg.PublicURL)
	must(err)
	svc, err := command.NewService(command.Config{
		Store: store, Keyring: keyring, Snapshots: pdb.Snapshots(),
		DataKeys:     sealed.AccountKeys{Store: sealedLog, Hasher: hasher},
		Argon2:       credential.Argon2Config{MemoryKiB: 8192, Iterations: 1},
		StepUpWindow: 5 * time.Minute, Issuer: "Vigil",
		SessionLifetime: 12 * time.Hour, SessionIdleTimeout: 30 * time.Minute,
		TwoFactorPolicy: cfg.TwoFactorPolicy, Passkeys: passkeys, BootstrapAdmins: cfg.AdminEmails, Now: cfg.Now,
	})
	must(err)
	_, err = svc.BootstrapAdmins(context.Background())
	must(err)
	srv.Service, srv.Keyring = svc, keyring
	tokens, err := command.NewServiceTokens(command.ServiceTokensConfig{Store: store, Now: cfg.Now})
	must(err)

	fdb, err := forward.OpenDB(filepath.Join(dir, "forward.db"))
	must(err)
	closers = append(closers, fdb.Close)
	fwds, err := forward.New(forward.Config{
		Log: store, DB: fdb, Logger: log, Registerer: reg, Now: cfg.Now,
		Encode:     func(e domain.Envelope) ([]byte, error) { return export.MarshalCloudEvent(e, cfg.PublicURL) },
		OpenSecret: func(r domain.WebhookRegistered) ([]byte, error) { return command.OpenWebhookSecret(keyring, r) },
	})
	must(err)
	closers = append(closers, fwds.Close)

	ssfKeys, err := sharedSSFKeys()
	must(err)
	transmitter, err := ssf.New(ssf.Config{Log: store, Path: filepath.Join(dir, "ssf.db"), Keys: ssfKeys, Issuer: cfg.PublicURL,
		Logger: log, Registerer: reg, Now: cfg.Now})
	must(err)
	closers = append(closers, transmitter.Close)

	server, err := handlers.New(handlers.Config{
		Logger: log, Registry: reg, Store: store, Projections: pr, TrustedProxies: cfg.TrustedProxies,
		Accounts: svc, SecretKey: key, Positions: pr, Now: cfg.Now,
		ReadModels: pdb, Log: store, Subjects: sealedLog, ServiceTokens: tokens,
		PublicURL: cfg.PublicURL, HSTS: strings.HasPrefix(cfg.PublicURL, "https://"),
		Stream: stream.StreamConfig{Subscriber: subscriber{store}, Source: cfg.PublicURL,
			Heartbeat: cfg.StreamHeartbeat, Buffer: cfg.StreamBuffer},
		Webhooks: webhookadmin.New(fwds), InsecureCookies: cfg.InsecureCookies,
		SSF: &ssfroutes.Config{Transmitter: transmitter, Commands: svc, Keys: ssfKeys, Issuer: cfg.PublicURL, Now: cfg.Now},
	})
	must(err)

	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	run := func(f func() error) {
		ch := make(chan error, 1)
		done = append(done, ch)
		go func() { ch <- f() }()
	}
	run(func() error { return pr.Run(ctx) })
	run(func() error { return fwds.Run(ctx) })
	run(func() error { return transmitter.Run(ctx) })
	fed := make(chan struct{})
	run(func() error { return feed(ctx, store, fed, svc, tokens.Index()) })
	closers = append(closers, func() error {
		cancel()
		var errs []error
		for _, ch := range done {
			select {
			case err := <-ch:
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, err)
				}
			case <-time.After(testwait.Deadline(10 * time.Second)):
				errs = append(errs, errors.New("a part of the server did not stop within 10 s of its cancel"))
			}
		}
		return errors.Join(errs...)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv.Handler = server.Handler()
	hs := &http.Server{Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second}
	hs.RegisterOnShutdown(server.CloseStreams)
	go func() { _ = hs.Serve(ln) }()
	closers = append(closers, func() error {
		sctx, scancel := context.WithTimeout(context.Background(), testwait.Deadline(10*time.Second))
		defer scancel()
		return hs.Shutdown(sctx)
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	srv.URL = "http://localhost:" + port

	for _, ch := range []<-chan struct{}{fed, pr.Running()} {
		select {
		case <-ch:
		case <-time.After(testwait.Deadline(10 * time.Second)):
			t.Fatal("handlertest: the server did not read the log within 10 s")
		}
	}
	return srv
}

// applier is an in-memory index the log feeds.
type applier interface {
	Apply(env domain.Envelope) error
}

// feed applies every event of the log, from the first on, to the indexes (the app's log
// feed); ready is closed once they hold the log as it was at the start.
func feed(ctx context.Context, store eventstore.Store, ready chan<- struct{}, to ...applier) error {
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if head == 0 {
		close(ready)
	}
	sub, err := store.Subscribe(ctx, 0)
	if err != nil {
		return err
	}
	for ev := range sub.Events() {
		for _, a := range to {
			if err := a.Apply(ev); err != nil {
				return err
			}
		}
		if head > 0 && ev.Position >= head {
			close(ready)
			head = 0
		}
	}
	if err := sub.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// subscriber is the compliance stream's view of the log.
type subscriber struct{ store eventstore.Store }

// SubscribeEvents follows the log after position after.
func (s subscriber) SubscribeEvents(ctx context.Context, after uint64) (stream.EventStream, error) {
	return s.store.Subscribe(ctx, after)
}

// sharedSSFKeys is one SET signing key for every test server of the process (an RSA key
// takes a while to make).
var sharedSSFKeys = sync.OnceValues(func() (*ssf.Keys, error) { return ssf.GenerateKeys(time.Now()) })
