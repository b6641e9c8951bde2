package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
)

// Setting names, shared by the table and the parsing.
const (
	optAddr               = "addr"
	optDataDir            = "data-dir"
	optStore              = "store"
	optNATSURL            = "nats-url"
	optLeaseTTL           = "lease-ttl"
	optPublicURL          = "public-url"
	optGeoIPCityDB        = "geoip-city-db"
	optGeoIPASNDB         = "geoip-asn-db"
	optTrustedProxies     = "trusted-proxies"
	optAdminEmails        = "admin-emails"
	optSecretKeyFile      = "secret-key-file"
	optArgon2MemoryKiB    = "argon2-memory-kib"
	optArgon2Iterations   = "argon2-iterations"
	optStepUpWindow       = "step-up-window"
	optSessionLifetime    = "session-lifetime"
	optSessionIdleTimeout = "session-idle-timeout"
	optTOTPIssuer         = "totp-issuer"
	optInsecureCookies    = "insecure-cookies"
)

// serveOptions is API.md's "Running" table.
var serveOptions = []cli.Option{
	{Flag: optAddr, Env: "VIGIL_ADDR", Def: app.DefaultAddr, Meta: "HOST:PORT", Help: "listen address"},
	{Flag: optDataDir, Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "embedded event store and read models"},
	{Flag: optStore, Env: "VIGIL_STORE", Def: app.DefaultStore, Meta: "STORE", Help: "sqlite (the log in <data-dir>/events.db), sqlite://PATH (a log file that several instances on one host share), or a KurrentDB connection string (kurrentdb://... or esdb://...)"},
	{Flag: optNATSURL, Env: "VIGIL_NATS_URL", Meta: "URL", DefHelp: "none", Help: "NATS with JetStream for state that instances share (login tickets, passkey ceremonies, throttling counters); without it that state is in memory (one instance)"},
	{Flag: optPublicURL, Env: "VIGIL_PUBLIC_URL", Def: app.DefaultPublicURL, Meta: "URL", Help: "origin for WebAuthn and links; its host is the relying party id"},
	{Flag: optGeoIPCityDB, Env: "VIGIL_GEOIP_CITY_DB", Meta: "FILE", DefHelp: "none", Help: "a GeoIP2/GeoLite2/DB-IP City mmdb"},
	{Flag: optGeoIPASNDB, Env: "VIGIL_GEOIP_ASN_DB", Meta: "FILE", DefHelp: "none", Help: "a GeoIP2/GeoLite2 ASN mmdb"},
	{Flag: optTrustedProxies, Env: "VIGIL_TRUSTED_PROXIES", Meta: "CIDRS", DefHelp: "none", Help: "comma-separated CIDRs whose X-Forwarded-For is believed"},
	{Flag: optAdminEmails, Env: "VIGIL_ADMIN_EMAILS", Meta: "EMAILS", DefHelp: "none", Help: "comma-separated bootstrap: each email grants role admin once, ever, to the first account that registers with it or holds it at a start; the role then stays with that account"},
	{Flag: optSecretKeyFile, Env: "VIGIL_SECRET_KEY_FILE", Meta: "FILE", DefHelp: "<data-dir>/secret.key, made on first start", Help: "the server key that encrypts TOTP secrets"},
	ssfSigningKeyOption,
	{Flag: optLogSigningKeyFile, Env: "VIGIL_LOG_SIGNING_KEY_FILE", Meta: "FILE", DefHelp: "<data-dir>/" + app.LogSigningKeyFile + ", made on first start", Help: "the Ed25519 key that signs checkpoints of the log's hash chain"},
	checkpointIntervalOp,
	{Flag: optArgon2MemoryKiB, Env: "VIGIL_ARGON2_MEMORY_KIB", Def: strconv.Itoa(app.DefaultArgon2MemoryKiB), Meta: "KIB", Help: "password hashing memory cost (OWASP), at least 8192"},
	{Flag: optArgon2Iterations, Env: "VIGIL_ARGON2_ITERATIONS", Def: strconv.Itoa(app.DefaultArgon2Iterations), Meta: "N", Help: "password hashing iterations (OWASP), at least 1"},
	{Flag: optStepUpWindow, Env: "VIGIL_STEP_UP_WINDOW", Def: "5m", Meta: "DURATION", Help: "how recent an authentication sensitive changes need"},
	{Flag: optSessionLifetime, Env: "VIGIL_SESSION_LIFETIME", Def: "12h", Meta: "DURATION", Help: "absolute session limit (ASVS L2)"},
	{Flag: optSessionIdleTimeout, Env: "VIGIL_SESSION_IDLE_TIMEOUT", Def: "30m", Meta: "DURATION", Help: "idle session limit, at most the lifetime (ASVS L2)"},
	// Beyond API.md's table (which allows additions):
	{Flag: optInsecureCookies, Env: "VIGIL_INSECURE_COOKIES", Def: "false", Boolean: true, Help: "set the session and sign-in cookies without Secure, so that a trial over plain http:// on a non-local address can sign in (never in production)"},
	{Flag: optTOTPIssuer, Env: "VIGIL_TOTP_ISSUER", Def: app.DefaultTOTPIssuer, Meta: "NAME", Help: "the name authenticator apps show for Vigil's codes (1 to 100 characters)"},
	{Flag: optLeaseTTL, Env: "VIGIL_LEASE_TTL", Def: "10s", Meta: "DURATION", Help: "with --nats-url: how long a log follower's lease (mail outbox, forwarders, SSF pushes: one instance at a time) lasts without renewal; another instance takes over about this long after the holder dies (at least 1s)"},
}

// Config is the parsed configuration of serve.
type Config struct {
	// Addr is the listen address (host:port; the host may be empty for every interface).
	Addr string
	// DataDir holds the embedded event store and read models.
	DataDir string
	// Store is "sqlite" or a KurrentDB connection string.
	Store string
	// PublicURL is an absolute http(s) URL without a trailing slash, query or fragment.
	PublicURL *url.URL
	// GeoIPCityDB and GeoIPASNDB are readable files, or "" for none.
	GeoIPCityDB, GeoIPASNDB string
	// TrustedProxies are masked prefixes (a bare IP is a single-address prefix).
	TrustedProxies []netip.Prefix
	// AdminEmails are lower-cased, without duplicates.
	AdminEmails []string
	// SecretKeyFile is the key file given explicitly (checked to hold a key), or "" for the
	// default <data-dir>/secret.key that the server creates when absent.
	SecretKeyFile string
	// Argon2MemoryKiB (>= 8192) and Argon2Iterations (>= 1) are the password hashing cost.
	Argon2MemoryKiB, Argon2Iterations uint32
	// StepUpWindow, SessionLifetime and SessionIdleTimeout are positive; the idle timeout is
	// at most the lifetime.
	StepUpWindow, SessionLifetime, SessionIdleTimeout time.Duration
	// TOTPIssuer names Vigil in authenticator apps (1 to 100 characters, no colon).
	TOTPIssuer string
	// InsecureCookies sets the cookies without Secure (a trial over plain HTTP on a LAN).
	InsecureCookies bool
	// Forward configures the NATS and webhook forwarders (config_forward.go).
	Forward app.ForwardConfig
	// Mail configures the mail outbox (config_mail.go).
	Mail app.MailConfig
	// NATSURL is the NATS server of the shared state, or "" for in-memory state.
	NATSURL string
	// LeaseTTL is the followers' lease TTL (at least 1 s).
	LeaseTTL time.Duration
	// LogSigningKeyFile is the checkpoint key file given explicitly (checked to hold a key), or
	// "" for the default <data-dir>/log-signing.key; CheckpointInterval is positive.
	LogSigningKeyFile  string
	CheckpointInterval time.Duration
	// SSFSigningKeyFile is the SET signing key file given explicitly (checked to hold a
	// key), or "" for the default <data-dir>/ssf-signing.key.
	SSFSigningKeyFile string
	// ReadModels is where serve starts its read models from (config_readmodels.go).
	ReadModels app.ReadModelsConfig
}

// appConfig converts c into the wiring's configuration.
func (c Config) appConfig(logger *slog.Logger) app.Config {
	return app.Config{
		Logger:             logger,
		Addr:               c.Addr,
		DataDir:            c.DataDir,
		Store:              c.Store,
		PublicURL:          c.PublicURL,
		GeoIPCityDB:        c.GeoIPCityDB,
		GeoIPASNDB:         c.GeoIPASNDB,
		TrustedProxies:     c.TrustedProxies,
		AdminEmails:        c.AdminEmails,
		SecretKeyFile:      c.SecretKeyFile,
		Argon2MemoryKiB:    c.Argon2MemoryKiB,
		Argon2Iterations:   c.Argon2Iterations,
		StepUpWindow:       c.StepUpWindow,
		SessionLifetime:    c.SessionLifetime,
		SessionIdleTimeout: c.SessionIdleTimeout,
		TOTPIssuer:         c.TOTPIssuer,
		InsecureCookies:    c.InsecureCookies,
		Forward:            c.Forward,
		Mail:               c.Mail,
		NATSURL:            c.NATSURL,
		LeaseTTL:           c.LeaseTTL,
		LogSigningKeyFile:  c.LogSigningKeyFile,
		CheckpointInterval: c.CheckpointInterval,
		SSFSigningKeyFile:  c.SSFSigningKeyFile,
		ReadModels:         c.ReadModels,
	}
}

// parseServe reads serve's flags from args and the environment through lookup (see
// cli.ParseOptions) and checks them: it returns flag.ErrHelp for -h/--help, a cli.UsageError for a
// malformed command line, and otherwise an error naming the flag of the first invalid value.
func parseServe(args []string, lookup func(string) (string, bool)) (Config, error) {
	s, err := cli.ParseOptions(serveOptions, args, lookup)
	if err != nil {
		return Config{}, err
	}
	return validate(s)
}

// validate checks and converts every setting.
func validate(s cli.Settings) (Config, error) {
	var c Config
	var err error
	if c.Addr, err = parseAddr(s[optAddr]); err != nil {
		return c, err
	}
	if c.DataDir = s[optDataDir].Value; c.DataDir == "" {
		return c, s[optDataDir].Errorf("must not be empty")
	}
	st := s[optStore]
	if err := app.ValidateStore(st.Value); err != nil {
		return c, st.Errorf("%v", err)
	}
	c.Store = st.Value
	if n := s[optNATSURL]; n.Value != "" {
		if err := validNATSURL(n.Value); err != nil {
			return c, n.Errorf("%v", err)
		}
		c.NATSURL = n.Value
	}
	if c.LeaseTTL, err = parseDuration(s[optLeaseTTL]); err != nil {
		return c, err
	}
	if c.LeaseTTL < time.Second {
		return c, s[optLeaseTTL].Errorf("must be at least 1s")
	}
	if c.PublicURL, err = parsePublicURL(s[optPublicURL]); err != nil {
		return c, err
	}
	if c.GeoIPCityDB, err = readableFile(s[optGeoIPCityDB]); err != nil {
		return c, err
	}
	if c.GeoIPASNDB, err = readableFile(s[optGeoIPASNDB]); err != nil {
		return c, err
	}
	if c.TrustedProxies, err = parseCIDRs(s[optTrustedProxies]); err != nil {
		return c, err
	}
	if c.AdminEmails, err = parseEmails(s[optAdminEmails]); err != nil {
		return c, err
	}
	if sk := s[optSecretKeyFile]; sk.Value != "" {
		if _, err := app.ReadSecretKey(sk.Value); err != nil {
			return c, sk.Errorf("%v", err)
		}
		c.SecretKeyFile = sk.Value
	}
	if lk := s[optLogSigningKeyFile]; lk.Value != "" {
		if _, err := chain.LoadKeyRing(lk.Value); err != nil {
			return c, lk.Errorf("%v", err)
		}
		c.LogSigningKeyFile = lk.Value
	}
	if sk := s[optSSFSigningKeyFile]; sk.Value != "" {
		if _, err := ssf.LoadKeys(sk.Value); err != nil {
			return c, sk.Errorf("%v", err)
		}
		c.SSFSigningKeyFile = sk.Value
	}
	if c.CheckpointInterval, err = parseDuration(s[optCheckpointInterval]); err != nil {
		return c, err
	}
	if c.Argon2MemoryKiB, err = parseUint32(s[optArgon2MemoryKiB], 8192); err != nil {
		return c, err
	}
	if c.Argon2Iterations, err = parseUint32(s[optArgon2Iterations], 1); err != nil {
		return c, err
	}
	if c.StepUpWindow, err = parseDuration(s[optStepUpWindow]); err != nil {
		return c, err
	}
	if c.SessionLifetime, err = parseDuration(s[optSessionLifetime]); err != nil {
		return c, err
	}
	if c.SessionIdleTimeout, err = parseDuration(s[optSessionIdleTimeout]); err != nil {
		return c, err
	}
	if c.SessionIdleTimeout > c.SessionLifetime {
		return c, s[optSessionIdleTimeout].Errorf("%q exceeds --%s %q", s[optSessionIdleTimeout].Value, optSessionLifetime, s[optSessionLifetime].Value)
	}
	c.TOTPIssuer = s[optTOTPIssuer].Value
	if n := utf8.RuneCountInString(c.TOTPIssuer); n < 1 || n > 100 || strings.ContainsAny(c.TOTPIssuer, ":\x00") {
		return c, s[optTOTPIssuer].Errorf("%q must be 1 to 100 characters without a colon", c.TOTPIssuer)
	}
	if c.InsecureCookies, err = parseBool(s[optInsecureCookies]); err != nil {
		return c, err
	}
	if c.Forward, err = validateForward(s); err != nil {
		return c, err
	}
	if c.Mail, err = validateMail(s, c); err != nil {
		return c, err
	}
	if c.ReadModels, err = validateReadModels(s); err != nil {
		return c, err
	}
	return c, nil
}

func parseAddr(s cli.Setting) (string, error) {
	host, port, err := net.SplitHostPort(s.Value)
	if err != nil {
		return "", s.Errorf("%q is not a host:port address", s.Value)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || p > 65535 {
		return "", s.Errorf("%q: the port must be a number from 0 to 65535", s.Value)
	}
	if host != "" && !validHost(host) {
		return "", s.Errorf("%q: %q is neither an IP address nor a host name", s.Value, host)
	}
	return s.Value, nil
}

// validHost accepts an IP address or a DNS host name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func parsePublicURL(s cli.Setting) (*url.URL, error) {
	u, err := url.Parse(s.Value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, s.Errorf("%q is not an absolute http(s) URL", s.Value)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, s.Errorf("%q must not have credentials, a query or a fragment", s.Value)
	}
	if h := u.Hostname(); !validHost(h) {
		return nil, s.Errorf("%q: %q is neither an IP address nor a host name", s.Value, h)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// readableFile checks that a given file can be opened and read; "" means none.
func readableFile(s cli.Setting) (string, error) {
	if s.Value == "" {
		return "", nil
	}
	f, err := os.Open(s.Value)
	if err != nil {
		return "", s.Errorf("%v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return "", s.Errorf("%v", err)
	} else if fi.IsDir() {
		return "", s.Errorf("%s is a directory, not a file", s.Value)
	}
	if _, err := f.Read(make([]byte, 1)); err != nil {
		if err == io.EOF {
			return "", s.Errorf("%s is empty", s.Value)
		}
		return "", s.Errorf("%v", err)
	}
	return s.Value, nil
}

// parseCIDRs parses a comma-separated list of CIDRs (a bare IP address is taken as its
// single-address prefix); empty items are ignored.
func parseCIDRs(s cli.Setting) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s.Value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil || strings.Contains(item, "/") {
				return nil, s.Errorf("%q is not a CIDR", item)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseEmails parses a comma-separated list of bare email addresses, lower-cased and
// deduplicated; empty items are ignored.
func parseEmails(s cli.Setting) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s.Value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, err := mail.ParseAddress(item)
		if err != nil || a.Address != item || a.Name != "" {
			return nil, s.Errorf("%q is not an email address", item)
		}
		e := strings.ToLower(item)
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseUint32(s cli.Setting, minimum uint32) (uint32, error) {
	n, err := strconv.ParseUint(s.Value, 10, 32)
	if err != nil {
		return 0, s.Errorf("%q is not a whole number", s.Value)
	}
	if uint32(n) < minimum {
		return 0, s.Errorf("%d is below the minimum of %d", n, minimum)
	}
	return uint32(n), nil
}

func parseBool(s cli.Setting) (bool, error) {
	b, err := strconv.ParseBool(s.Value)
	if err != nil {
		return false, s.Errorf("%q is neither true nor false", s.Value)
	}
	return b, nil
}

func parseDuration(s cli.Setting) (time.Duration, error) {
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		return 0, s.Errorf("%q is not a duration (for example 90s, 5m, 24h)", s.Value)
	}
	if d <= 0 {
		return 0, s.Errorf("%q must be positive", s.Value)
	}
	return d, nil
}

// runServe is the serve command: check the settings, build the application, run it until
// ctx ends.
func runServe(ctx context.Context, s cli.Settings, e cli.Env) int {
	cfg, err := validate(s)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: %v\n", err)
		return cli.ExitUsage
	}
	a, err := app.New(ctx, cfg.appConfig(cli.NewLogger(e.Stderr)))
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: %v\n", err)
		return cli.ExitFailure
	}
	fmt.Fprintf(e.Stdout, "Vigil is serving %s\n", a.URL())
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(e.Stderr, "vigil: %v\n", err)
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// validNATSURL checks a --nats-url value: comma-separated nats://, tls://, ws:// or wss://
// URLs (or host:port) naming a host. The error never repeats credentials.
func validNATSURL(v string) error {
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil || u.Host == "" || u.Hostname() == "" {
			return errors.New("not a NATS URL (nats://HOST:PORT, several separated by commas)")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("scheme %q is not nats, tls, ws or wss", u.Scheme)
		}
	}
	return nil
}
