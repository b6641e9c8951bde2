// Package app wires Vigil together: event store, projections, the Watermill bridge between
// them, the account domain service with its log feed (sessions, organisations, delegations,
// service tokens) and sweeper, the forwarders, and the HTTP server, in one function (New)
// that main and the tests share, and runs them with an orderly shutdown (Run).
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/ephemeral"
	"github.com/vigil-auth/vigil/domain/passkey"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/kurrentdb"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sharedstate"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/handlers"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/apidoc"
	"github.com/vigil-auth/vigil/handlers/stream"
	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/runner"
)

// Defaults of the settings of API.md's "Running" table; cmd/vigil uses the same values.
const (
	DefaultAddr               = "127.0.0.1:8080"
	DefaultDataDir            = "./vigil-data"
	DefaultStore              = StoreSQLite
	DefaultPublicURL          = "http://localhost:8080"
	DefaultArgon2MemoryKiB    = 19456
	DefaultArgon2Iterations   = 2
	DefaultStepUpWindow       = 5 * time.Minute
	DefaultTOTPIssuer         = "Vigil"
	DefaultSessionLifetime    = 12 * time.Hour
	DefaultSessionIdleTimeout = 30 * time.Minute
	// DefaultShutdownTimeout bounds the draining of HTTP requests at shutdown.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultStoreOpenTimeout bounds opening the event store (a KurrentDB cluster may take a
	// while to discover; an unreachable one fails start-up after at most this long).
	DefaultStoreOpenTimeout = 30 * time.Second
)

// StoreSQLite selects the embedded SQLite event store at <data-dir>/events.db.
const StoreSQLite = "sqlite"

// File names inside the data directory.
const (
	EventsFile      = "events.db"
	ProjectionsFile = "projections.db"
	SecretKeyFile   = "secret.key"
	// LogSigningKeyFile signs the log's checkpoints (eventstore/chain), made on first start.
	LogSigningKeyFile = "log-signing.key"
)

// Config is the parsed configuration of a Vigil server. Zero values take the defaults above;
// cmd/vigil fills it from flags and environment variables.
type Config struct {
	// Logger receives every log line; default slog.Default().
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on Addr (tests pass one on
	// 127.0.0.1:0). The App owns it from New on: it is closed at shutdown, or by New when New
	// fails.
	Listener net.Listener
	// Addr is the TCP address to listen on when Listener is nil.
	Addr string
	// DataDir holds the embedded event store, the read models and the default secret key; it
	// is created (mode 0700) when absent.
	DataDir string
	// Store is "sqlite" or a KurrentDB connection string (see ValidateStore).
	Store string
	// PublicURL is the origin for WebAuthn and links: its host is the passkeys' relying
	// party id, so it must be a domain name, with https unless it is localhost (New refuses
	// anything else, naming --public-url).
	PublicURL *url.URL
	// GeoIPCityDB and GeoIPASNDB are mmdb files; empty means none.
	GeoIPCityDB, GeoIPASNDB string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// AdminEmails are the bootstrap administrators (--admin-emails): each grants role admin
	// once, ever, to the first account registering with it or holding it at a start
	// (command.Config.BootstrapAdmins).
	AdminEmails []string
	// SecretKeyFile holds the server key. Empty means <DataDir>/secret.key, created on first
	// start; a file named here must exist.
	SecretKeyFile string
	// Argon2MemoryKiB and Argon2Iterations are the password hashing cost.
	Argon2MemoryKiB, Argon2Iterations uint32
	// StepUpWindow is how recent an authentication sensitive changes need.
	StepUpWindow time.Duration
	// TOTPIssuer names Vigil in authenticator apps; default DefaultTOTPIssuer.
	TOTPIssuer string
	// SessionLifetime and SessionIdleTimeout are the absolute and idle session limits.
	SessionLifetime, SessionIdleTimeout time.Duration
	// Registry receives every metric and is served on /metrics; default a new registry with
	// the Go and process collectors.
	Registry *prometheus.Registry
	// MaxLag is how far behind the log projections may be for /readyz; default 5s.
	MaxLag time.Duration
	// ShutdownTimeout bounds the draining of HTTP requests; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// StoreOpenTimeout bounds opening the event store; default DefaultStoreOpenTimeout.
	StoreOpenTimeout time.Duration
	// Now is the clock of the domain and the HTTP layer (sessions, TOTP, step-up, cookies);
	// default time.Now. Tests move it.
	Now func() time.Time
	// SweepInterval is how often expired sessions are looked for; default
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// RebuildPollInterval is how often the server looks for read models rebuilt by
	// `vigil projections rebuild` (runner.Runner.FollowRebuilds); default 1 s.
	RebuildPollInterval time.Duration
	// TwoFactorPolicy says which organisations require an account to use 2FA; default the
	// organisations' own policies (the domain's in-memory directory, fed by the log).
	TwoFactorPolicy command.TwoFactorPolicy
	// StreamHeartbeat and StreamBuffer configure the SSE compliance stream (heartbeat
	// interval, live events buffered per client); zero takes the handlers' defaults.
	StreamHeartbeat time.Duration
	StreamBuffer    int

	// InsecureCookies sets the cookies without Secure, for a trial over plain http:// on a
	// host that is not local; without it New refuses such a PublicURL.
	InsecureCookies bool

	// Forward configures the NATS and webhook forwarders (forward.go).
	Forward ForwardConfig

	// Mail configures the mail outbox (mail.go).
	Mail MailConfig

	// NATSURL (--nats-url) keeps the state instances share (login tickets, passkey
	// ceremonies, throttling counts) in NATS JetStream key-value buckets; empty: in memory.
	NATSURL string
	// LeaseTTL (--lease-ttl) is how long a log follower's lease lasts without renewal when
	// several instances share a log through --nats-url (shared.go); default 10 s.
	LeaseTTL time.Duration

	// LogSigningKeyFile signs the log's checkpoints; empty means <DataDir>/log-signing.key,
	// made on first start. CheckpointInterval is how often one is written while events
	// arrive; default 1 minute.
	LogSigningKeyFile  string
	CheckpointInterval time.Duration

	// SSFSigningKeyFile signs Security Event Tokens; empty means <DataDir>/ssf-signing.key,
	// made on first start. SSF tunes the transmitter's retries (ssf.go).
	SSFSigningKeyFile string
	SSF               SSFConfig
	// DisableRiskDetector turns the sign-in risk detector (risk.go) off; benchmarks compare
	// sign-in latency with and without it.
	DisableRiskDetector bool

	// ReadModels: start from a read-model snapshot (--read-models-from, readmodels.go).
	ReadModels ReadModelsConfig
}

// DefaultSweepInterval is how often the sweeper turns sessions past their lifetime or idle
// timeout into SessionExpired events.
const DefaultSweepInterval = 30 * time.Second

func (c *Config) fill() error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.PublicURL == nil {
		u, err := url.Parse(DefaultPublicURL)
		if err != nil {
			return err
		}
		c.PublicURL = u
	}
	if c.Argon2MemoryKiB == 0 {
		c.Argon2MemoryKiB = DefaultArgon2MemoryKiB
	}
	if c.Argon2Iterations == 0 {
		c.Argon2Iterations = DefaultArgon2Iterations
	}
	if c.StepUpWindow == 0 {
		c.StepUpWindow = DefaultStepUpWindow
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = DefaultSessionLifetime
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.StoreOpenTimeout == 0 {
		c.StoreOpenTimeout = DefaultStoreOpenTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := ValidateStore(c.Store); err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	if c.StepUpWindow < 0 || c.SessionLifetime < 0 || c.SessionIdleTimeout < 0 || c.ShutdownTimeout < 0 || c.MaxLag < 0 || c.SweepInterval < 0 {
		return errors.New("app: durations must not be negative")
	}
	if c.SessionIdleTimeout > c.SessionLifetime {
		return errors.New("app: the session idle timeout exceeds the session lifetime")
	}
	return nil
}

// StoreSQLitePrefix introduces a SQLite log file outside the data directory
// (sqlite://PATH), which several instances on one host share.
const StoreSQLitePrefix = "sqlite://"

// SharedSQLitePath returns PATH of a --store value sqlite://PATH, and whether it is one.
func SharedSQLitePath(store string) (string, bool) {
	if !strings.HasPrefix(strings.ToLower(store), StoreSQLitePrefix) {
		return "", false
	}
	return store[len(StoreSQLitePrefix):], true
}

// isSQLite reports whether store names a SQLite log (the data directory's or a shared file).
func isSQLite(store string) bool {
	_, shared := SharedSQLitePath(store)
	return store == StoreSQLite || shared
}

// sqlitePaths returns the log file and the data-key file of a SQLite store: <data-dir>/events.db
// and <data-dir>/keys.db, or, for sqlite://PATH, PATH and the keys file beside it
// (PATH without its extension, plus ".keys.db"), which the instances sharing the log share too.
func sqlitePaths(cfg Config) (events, keys string) {
	if path, ok := SharedSQLitePath(cfg.Store); ok {
		return path, strings.TrimSuffix(path, filepath.Ext(path)) + ".keys.db"
	}
	return filepath.Join(cfg.DataDir, EventsFile), filepath.Join(cfg.DataDir, KeysFile)
}

// kurrentSchemes are the connection string schemes the KurrentDB backend accepts.
var kurrentSchemes = []string{"kurrentdb", "kurrent", "kdb", "esdb"}

// ValidateStore checks a --store value: "sqlite", or a KurrentDB connection string whose scheme
// is kurrentdb, kurrent, kdb or esdb, each optionally with +discover, and which names a host.
// The error never repeats credentials.
func ValidateStore(s string) error {
	if s == StoreSQLite {
		return nil
	}
	if path, ok := SharedSQLitePath(s); ok {
		if path == "" || strings.HasSuffix(path, "/") {
			return fmt.Errorf("%q names no file (sqlite://PATH, e.g. sqlite:///srv/vigil/events.db)", s)
		}
		return nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if ok {
		base := strings.TrimSuffix(strings.ToLower(scheme), "+discover")
		for _, k := range kurrentSchemes {
			if base == k {
				hosts := rest
				if i := strings.IndexAny(hosts, "/?"); i >= 0 {
					hosts = hosts[:i]
				}
				if i := strings.LastIndexByte(hosts, '@'); i >= 0 {
					hosts = hosts[i+1:]
				}
				if hosts == "" {
					return fmt.Errorf("%q names no host", RedactStore(s))
				}
				return nil
			}
		}
	}
	return fmt.Errorf("%q is neither sqlite, sqlite://PATH nor a KurrentDB connection string (kurrentdb://, esdb:// or esdb+discover://)", RedactStore(s))
}

// RedactStore returns the --store value with any password replaced by "***", for messages.
func RedactStore(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":***" + rest[at:]
}

// App is a wired Vigil server: New opens everything, Run serves until its context ends and
// then shuts everything down. An App runs once.
type App struct {
	cfg       Config
	log       *slog.Logger
	secretKey []byte // the server key (32 bytes) for the TOTP secret encryption

	store        eventstore.Store // instrumented, over sealed
	sealed       *sealed.Store    // seals personal data over the raw log (sealing.go)
	hasher       *sealed.Hasher   // keyed hashes of emails (the uniqueness index, identifier keys)
	geo          *geoip.Resolver  // nil without GeoIP databases
	svc          *command.Service
	tokens       *command.ServiceTokens
	pdb          *projections.DB
	runner       *runner.Runner
	server       *handlers.Server
	fwd          *forwarding
	mail         *outbox
	ssf          *transmitting
	risk         *riskDetection      // nil when off
	shared       *sharedstate.State  // nil without --nats-url
	holder       string              // this App's id in the followers' leases (shared.go)
	feedPos      *feedPosition       // the log feed's position (Whoami's catch-up on a shared log)
	feedFrom     uint64              // where the log feed starts: the restored indexes' position (readmodels.go)
	keyring      *credential.Keyring // the server key's: TOTP and webhook secrets
	logKeys      *chain.KeyRing      // signs the log's checkpoints (logchain.go)
	checkpointer *chain.Checkpointer
	ln           net.Listener
	httpSrv      *http.Server

	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New checks the public URL, then opens the data directory (checking that it is writable),
// the event store (SQLite at <DataDir>/events.db, or KurrentDB), the secret key (created
// only once the store is open), the GeoIP databases (when configured; their reload check
// runs from here on), the read models (the file projections.CurrentPath names in DataDir,
// after removing stale ones), the Watermill subscriber
// and projection runner with projections.BuiltinWith (locating with GeoIP), the HTTP server
// and its listener. Nothing else is started yet (see Run). When any step fails, whatever was
// opened is closed again and the error names the setting at fault (an unreachable store names
// --store).
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				_ = undo[i]()
			}
		}
	}()
	if cfg.Listener != nil {
		undo = append(undo, cfg.Listener.Close)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	// Browsers keep a Secure cookie only over https or on a host they treat as a secure
	// context (localhost, loopback addresses): checked before anything is opened.
	if cfg.PublicURL.Scheme == "http" && !isLocalHost(cfg.PublicURL.Hostname()) && !cfg.InsecureCookies {
		return nil, fmt.Errorf("--public-url: %s is plain http on a host that is not local, where browsers drop Vigil's Secure session cookie and nobody can sign in: use https, or --insecure-cookies for a trial", cfg.PublicURL)
	}
	// WebAuthn binds passkeys to the public URL's host (the relying party id).
	passkeys, err := passkey.ConfigFromPublicURL(cfg.PublicURL.String())
	if err != nil {
		if !cfg.InsecureCookies || cfg.PublicURL.Scheme != "http" {
			return nil, fmt.Errorf("--public-url: %w", err)
		}
		// A trial over plain HTTP: browsers offer no WebAuthn there anyway.
		cfg.Logger.Warn("passkeys are off: the public URL is plain http on a host that is not local", "public_url", cfg.PublicURL.String(), "reason", err.Error())
		passkeys = passkey.Config{}
	}
	a := &App{cfg: cfg, log: cfg.Logger}

	// Start-up creates nothing before it is sure the data directory is usable and the store
	// is reachable: the directory (removed again if New fails while it is empty), then the
	// store, and only then the secret key.
	made, err := makeDataDir(cfg.DataDir)
	undo = append(undo, func() error {
		for _, d := range made {
			_ = os.Remove(d) // only while empty
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}

	raw, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closeLog := raw.Close
	undo = append(undo, func() error { return closeLog() })
	if a.logKeys, a.checkpointer, err = openCheckpointer(cfg, raw); err != nil {
		return nil, err
	}
	if a.secretKey, err = serverKey(cfg, true, a.log); err != nil {
		return nil, err
	}
	if a.sealed, a.hasher, err = sealLog(ctx, cfg, raw, a.secretKey); err != nil {
		return nil, err
	}
	closeLog = a.sealed.Close // the inner log, then the key store
	a.store = eventstore.Instrument(a.sealed, cfg.Registry)

	// The shared sign-in state (--nats-url) before anything of this instance's own: an
	// unreachable NATS stops the start with nothing half-made.
	var throttleCfg throttle.Config
	var tickets ephemeral.TicketStore
	if cfg.NATSURL != "" {
		a.shared, err = openSharedState(ctx, cfg, a.secretKey)
		if err != nil {
			return nil, err
		}
		undo = append(undo, a.shared.Close)
		throttleCfg.Store, tickets = a.shared.Throttle, a.shared.Tickets
		if passkeys.Enabled() {
			passkeys.Ceremonies = a.shared.Ceremonies
		}
	}

	a.geo, err = openGeoIP(cfg)
	if err != nil {
		return nil, err
	}
	undo = append(undo, a.geo.Close)

	builtin := projections.BuiltinWith(projections.BuiltinConfig{GeoIP: a.geo})
	var (
		fromSnapshot bool
		indexStates  []projections.IndexState
	)
	if cfg.ReadModels.From != "" {
		if fromSnapshot, indexStates, err = startFromSnapshot(ctx, cfg, a.store, builtin); err != nil {
			return nil, fmt.Errorf("--read-models-from %s: %w", redactURL(cfg.ReadModels.From), err)
		}
	}
	removeServedSnapshots(cfg.DataDir)
	pfile, err := readModelFile(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a.pdb, err = projections.Open(projections.Config{Path: pfile, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: read models: %w", err)
	}
	undo = append(undo, a.pdb.Close)

	a.runner, err = runner.New(runner.Config{
		DB:          a.pdb,
		Log:         a.store,
		Projections: builtin,
		Logger:      cfg.Logger,
		Registerer:  cfg.Registry,
	})
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	// Before Run, Close only closes the runner's subscriber: a router that never ran has no
	// handler to wait for.
	undo = append(undo, a.runner.Close)

	keyring, err := credential.NewKeyring(credential.KeyringConfig{Key: a.secretKey})
	if err != nil {
		return nil, fmt.Errorf("--secret-key-file: %w", err)
	}
	a.keyring = keyring
	a.feedPos = newFeedPosition(a.store)
	var catchUp func(context.Context) error
	if cfg.Store != StoreSQLite { // a log other instances append to: sqlite://PATH or KurrentDB
		catchUp = a.feedPos.catchUp
	}
	a.svc, err = command.NewService(command.Config{
		CatchUp:            catchUp,
		Throttle:           throttleCfg,
		Tickets:            tickets,
		Store:              a.store,
		Keyring:            keyring,
		DataKeys:           sealed.AccountKeys{Store: a.sealed, Hasher: a.hasher},
		Snapshots:          a.pdb.Snapshots(),
		Argon2:             credential.Argon2Config{MemoryKiB: cfg.Argon2MemoryKiB, Iterations: cfg.Argon2Iterations},
		StepUpWindow:       cfg.StepUpWindow,
		Issuer:             cfg.TOTPIssuer,
		SessionLifetime:    cfg.SessionLifetime,
		SessionIdleTimeout: cfg.SessionIdleTimeout,
		TwoFactorPolicy:    cfg.TwoFactorPolicy,
		Passkeys:           passkeys,
		BootstrapAdmins:    cfg.AdminEmails,
		Now:                cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if _, err := a.svc.BootstrapAdmins(ctx); err != nil {
		return nil, fmt.Errorf("--admin-emails: %w", err)
	}

	a.tokens, err = command.NewServiceTokens(command.ServiceTokensConfig{Store: a.store, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("service tokens: %w", err)
	}
	if !fromSnapshot {
		// What this instance's last clean stop kept (none after a crash or on a first start).
		indexStates = a.keptIndexStates(ctx)
	}
	if fromSnapshot || len(indexStates) > 0 {
		a.feedFrom = restoreIndexes(cfg.Logger, indexStates, a.svc.LogIndexes(a.tokens.Index()))
		a.feedPos.startAt(a.feedFrom)
	}

	a.fwd, err = a.openForwarding()
	if err != nil {
		return nil, err
	}
	undo = append(undo, a.fwd.close)
	if a.ssf, err = a.openSSF(); err != nil {
		return nil, err
	}
	undo = append(undo, a.ssf.close)

	a.mail, err = a.openOutbox(ctx)
	if err != nil {
		return nil, err
	}
	undo = append(undo, a.mail.close)
	if a.risk, err = a.openRisk(ctx); err != nil {
		return nil, err
	}
	undo = append(undo, a.risk.close)

	a.server, err = handlers.New(handlers.Config{
		Logger:             cfg.Logger,
		Registry:           cfg.Registry,
		Store:              a.store,
		Projections:        a.runner,
		TrustedProxies:     cfg.TrustedProxies,
		MaxLag:             cfg.MaxLag,
		Accounts:           a.svc,
		SecretKey:          a.secretKey,
		Positions:          a.runner,
		Now:                cfg.Now,
		ReadModels:         a.pdb,
		Log:                a.store,
		Subjects:           subjectReader(a.sealed),
		LogIntegrity:       logIntegrity{a.logKeys, a.checkpointer.Log()},
		ReadModelSnapshots: &snapshotter{dir: cfg.DataDir, db: a.pdb, store: a.store, ps: builtin, log: cfg.Logger, indexes: a.indexStates},
		ServiceTokens:      a.tokens,
		PublicURL:          cfg.PublicURL.String(),
		HSTS:               cfg.PublicURL.Scheme == "https",
		Stream: stream.StreamConfig{Subscriber: storeSubscriber{a.store}, Source: cfg.PublicURL.String(),
			Heartbeat: cfg.StreamHeartbeat, Buffer: cfg.StreamBuffer},
		Webhooks:        a.fwd.admin(),
		SSF:             a.ssf.routes(a),
		InsecureCookies: cfg.InsecureCookies,
	})
	if err != nil {
		return nil, fmt.Errorf("http handlers: %w", err)
	}
	a.server.Starting(true) // until Run has read the log (see Run)

	a.ln = cfg.Listener
	if a.ln == nil {
		a.ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("--addr: %w", err)
		}
		undo = append(undo, a.ln.Close)
	}
	a.httpSrv = &http.Server{
		Handler: a.server.Handler(),
		// No ReadTimeout or WriteTimeout: they would cut the event stream; the handlers bound
		// body reads themselves.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	// SSE streams never end on their own: end them when shutdown starts, not after the
	// drain timeout.
	a.httpSrv.RegisterOnShutdown(a.server.CloseStreams)
	a.httpSrv.RegisterOnShutdown(a.ssf.t.EndPolls) // long polls (up to 30 s) too
	return a, nil
}

// openGeoIP opens the configured GeoIP databases (nil, and no error, when none is: then
// nothing is located). A file that cannot be used names its flag. The databases are
// reloaded when replaced on disk (geoipupdate).
func openGeoIP(cfg Config) (*geoip.Resolver, error) {
	if cfg.GeoIPCityDB == "" && cfg.GeoIPASNDB == "" {
		return nil, nil
	}
	logger := cfg.Logger.With("component", "geoip")
	r, err := geoip.Open(geoip.Config{CityDB: cfg.GeoIPCityDB, ASNDB: cfg.GeoIPASNDB, Logger: logger})
	if err == nil {
		return r, nil
	}
	// Which file was it? Open stops at the first that fails, the city database first.
	flag := "--geoip-asn-db"
	if cfg.GeoIPCityDB != "" {
		if c, cerr := geoip.Open(geoip.Config{CityDB: cfg.GeoIPCityDB, Logger: logger, ReloadInterval: -1}); cerr != nil {
			flag = "--geoip-city-db"
		} else {
			_ = c.Close()
		}
	}
	return nil, fmt.Errorf("%s: %w", flag, err)
}

// subjectReader returns the backend's subject index when it has one (the SQLite store's
// ReadSubject), so the audit reads an account's events without scanning the log.
func subjectReader(st *sealed.Store) api.SubjectReader {
	if st.HasSubjectIndex() {
		return st
	}
	return nil
}

// openStore opens the configured event store, bounded by cfg.StoreOpenTimeout.
func openStore(ctx context.Context, cfg Config) (eventstore.Store, error) {
	if isSQLite(cfg.Store) {
		path, _ := sqlitePaths(cfg)
		s, err := sqlite.Open(sqlite.Config{Path: path, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("--store %s: %w", cfg.Store, err)
		}
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StoreOpenTimeout)
	defer cancel()
	// The client logs a warning for every failed discovery and Open one for every retry: an
	// unreachable server would print dozens before the one line naming --store. They are held
	// back until Open returns; the error says what happened.
	var quiet atomic.Bool
	quiet.Store(true)
	log := slog.New(quietHandler{cfg.Logger.Handler(), &quiet})
	s, err := kurrentdb.Open(ctx, kurrentdb.Config{ConnectionString: cfg.Store, Logger: log})
	quiet.Store(false)
	if err != nil {
		return nil, fmt.Errorf("--store: cannot open the event store: %w", err)
	}
	cfg.Logger.Info("kurrentdb: connected", "server", RedactStore(cfg.Store))
	return s, nil
}

// quietHandler drops the records below Error while quiet is set.
type quietHandler struct {
	slog.Handler
	quiet *atomic.Bool
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !(h.quiet.Load() && l < slog.LevelError) && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.quiet.Load() && r.Level < slog.LevelError {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.quiet}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.quiet}
}

// makeDataDir creates dir (mode 0700) when absent and checks that files can be created in
// it. It returns the directories it created, deepest first.
func makeDataDir(dir string) (made []string, err error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return made, err
	}
	f, err := os.CreateTemp(dir, ".vigil-write-check-*")
	if err != nil {
		return made, fmt.Errorf("%s is not writable: %w", dir, err)
	}
	f.Close()
	return made, os.Remove(f.Name())
}

// isLocalHost reports whether browsers treat host as a secure context over plain http:
// localhost, a name under .localhost, or a loopback address.
func isLocalHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// Addr returns the address the server listens on, e.g. "127.0.0.1:43125".
func (a *App) Addr() string { return a.ln.Addr().String() }

// URL returns the base URL the server answers on, e.g. "http://localhost:8080": a loopback
// or unspecified listen address (127.0.0.1, ::1, ":8080") is shown as localhost, the host
// browsers treat as a secure context and the default --public-url's passkey relying party,
// so that the printed URL opens a portal where passkeys work.
func (a *App) URL() string {
	host, port, err := net.SplitHostPort(a.Addr())
	if err != nil {
		return "http://" + a.Addr()
	}
	if ip, err := netip.ParseAddr(host); err == nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// SecretKey returns the 32-byte server key. The slice must not be modified.
func (a *App) SecretKey() []byte { return a.secretKey }

// OpenAPIDocument is the OpenAPI document this app serves at /openapi.json.
func (a *App) OpenAPIDocument() ([]byte, error) { return a.server.OpenAPIDocument() }

// APIReference renders the Markdown API reference (docs/API.md) of every route this app
// serves, with the serve flags the command passes in.
func (a *App) APIReference(flags []apidoc.ReferenceFlag) ([]byte, error) {
	return a.server.APIReference(flags)
}

// Run starts the projection runner, the log feed (which fills the in-memory session,
// organisation and token indexes from the log), the session sweeper and, once the feed has
// caught up with the log and the projections are subscribed, the HTTP server, and serves
// until ctx is cancelled or the server or the runner fails. Then
// it shuts down in order: stop accepting connections and drain the requests in flight (at
// most ShutdownTimeout, after which connections are closed), stop the runner, the feed and
// the sweeper, close the GeoIP databases, the read models and the event store. It returns
// nil after a shutdown caused by ctx, else the failure. Run may be called once.
func (a *App) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("app: Run called twice or after Close")
	}
	runnerCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunner()
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- a.runner.Run(runnerCtx) }()
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		a.runner.FollowRebuilds(runnerCtx, a.cfg.DataDir, a.cfg.RebuildPollInterval)
	}()
	sessionLog := a.log.With("component", "sessions")
	// One read of the log feeds the sessions, organisations, delegations and service tokens.
	feedReady, feedDone := startLogFeed(runnerCtx, a.store, a.feedFrom, sessionLog, a.svc, a.tokens.Index(), a.feedPos)
	sweepDone := startSweeper(runnerCtx, a.svc, a.cfg.SweepInterval, a.cfg.Now, sessionLog)

	a.fwd.start(runnerCtx)
	a.mail.start(runnerCtx)
	a.ssf.start(runnerCtx)
	a.risk.start(runnerCtx)
	a.checkpointer.Start(runnerCtx)

	var failure error
	runnerFailed := func(err error) error {
		runnerDone = nil
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("projection runner: %w", err)
	}
	// The listener serves at once (/healthz, /readyz and /metrics answer while the instance
	// reads the log), but every other route answers 503 not_ready until the log feed knows
	// the sessions and tokens the log held at start (whoami is answered from them) and the
	// projections have caught up far enough to run live.
	serveDone := make(chan error, 1)
	go func() { serveDone <- a.httpSrv.Serve(a.ln) }()
	a.log.Info("vigil listening", "url", a.URL(), "store", RedactStore(a.cfg.Store), "data_dir", a.cfg.DataDir)
	go func() {
		for _, ch := range []<-chan struct{}{feedReady, a.runner.Running()} {
			select {
			case <-ch:
			case <-runnerCtx.Done():
				return
			}
		}
		a.server.Starting(false)
		a.log.Info("vigil ready: the log is read and the projections run live")
	}()
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		serveDone = nil
		failure = fmt.Errorf("http server: %w", err)
	case err := <-runnerDone:
		failure = runnerFailed(err)
	}
	if failure != nil {
		a.log.Error("vigil failed, shutting down", "error", failure.Error())
	} else {
		a.log.Info("vigil shutting down")
	}

	// 1. HTTP: stop accepting, drain.
	shCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	if err := a.httpSrv.Shutdown(shCtx); err != nil {
		a.log.Warn("http: requests still running after the shutdown timeout; closing their connections",
			"timeout", a.cfg.ShutdownTimeout, "error", err.Error())
		_ = a.httpSrv.Close()
	}
	cancel()
	_ = a.ln.Close() // when the server never started serving it
	if serveDone != nil {
		if err := <-serveDone; err != nil && !errors.Is(err, http.ErrServerClosed) && failure == nil {
			failure = fmt.Errorf("http server: %w", err)
		}
	}
	// 2. The sign-in risk detector waits for the signins read model to reach each sign-in:
	// it stops while the runner still runs (else its router waits out the close timeout).
	if err := a.risk.close(); err != nil && failure == nil {
		failure = fmt.Errorf("sign-in risk detector: %w", err)
	}
	// The runner commits what it has and stops its subscriptions; the log feed and
	// the sweeper stop.
	stopRunner()
	if runnerDone != nil {
		// A stop that lands while the runner is still subscribing cancels its start: that
		// is the stop asked for, not a failure.
		if err := <-runnerDone; err != nil && failure == nil && !errors.Is(err, context.Canceled) {
			failure = fmt.Errorf("projection runner: %w", err)
		}
	}
	<-sweepDone
	<-followDone
	if err := <-feedDone; err != nil && failure == nil {
		failure = fmt.Errorf("log feed: %w", err)
	}
	a.keepIndexStates()
	if err := a.checkpointer.Stop(context.Background()); err != nil { // the clean stop's checkpoint
		a.log.Error("writing the last log checkpoint", "error", err.Error())
	}
	// 3. Runner, GeoIP, read models, store.
	if err := a.close(); err != nil {
		a.log.Error("closing", "error", err.Error())
		if failure == nil {
			failure = err
		}
	}
	if failure == nil {
		a.log.Info("vigil stopped")
	}
	return failure
}

// Close releases everything New opened, for an App whose Run was never called; Run may not be
// called afterwards. Once Run has been called, Run releases everything itself and Close does
// nothing. It is safe to call more than once.
func (a *App) Close() error {
	if !a.started.CompareAndSwap(false, true) {
		return nil
	}
	_ = a.ln.Close()
	a.closeOnce.Do(func() {
		a.closeErr = errors.Join(a.fwd.close(), a.mail.close(), a.ssf.close(), a.risk.close(), a.runner.Close(), a.pdb.Close(), a.geo.Close(), a.store.Close(), a.closeShared())
	})
	return a.closeErr
}

// close closes the runner (and its subscriber), the GeoIP databases, the read models and
// the store, in that order, once.
func (a *App) close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if err := a.fwd.close(); err != nil {
			errs = append(errs, fmt.Errorf("forwarders: %w", err))
		}
		if err := a.mail.close(); err != nil {
			errs = append(errs, fmt.Errorf("mail outbox: %w", err))
		}
		if err := a.ssf.close(); err != nil {
			errs = append(errs, fmt.Errorf("ssf transmitter: %w", err))
		}
		if err := a.risk.close(); err != nil {
			errs = append(errs, fmt.Errorf("sign-in risk detector: %w", err))
		}
		if err := a.runner.Close(); err != nil {
			errs = append(errs, fmt.Errorf("projection runner: %w", err))
		}
		// After the runner: its projections look addresses up.
		if err := a.geo.Close(); err != nil {
			errs = append(errs, fmt.Errorf("geoip: %w", err))
		}
		if err := a.pdb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("read models: %w", err))
		}
		if err := a.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("event store: %w", err))
		}
		_ = a.closeShared()
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
