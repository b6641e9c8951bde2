package main

import (
	"context"
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

	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

// Setting names, shared by the table and the parsing.
const (
	optAddr               = "addr"
	optDataDir            = "data-dir"
	optStore              = "store"
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
var serveOptions = []option{
	{flag: optAddr, env: "VIGIL_ADDR", def: app.DefaultAddr, meta: "HOST:PORT", help: "listen address"},
	{flag: optDataDir, env: "VIGIL_DATA_DIR", def: app.DefaultDataDir, meta: "DIR", help: "embedded event store and read models"},
	{flag: optStore, env: "VIGIL_STORE", def: app.DefaultStore, meta: "STORE", help: "sqlite, or a KurrentDB connection string (kurrentdb://... or esdb://...)"},
	{flag: optPublicURL, env: "VIGIL_PUBLIC_URL", def: app.DefaultPublicURL, meta: "URL", help: "origin for WebAuthn and links; its host is the relying party id"},
	{flag: optGeoIPCityDB, env: "VIGIL_GEOIP_CITY_DB", meta: "FILE", defHelp: "none", help: "a GeoIP2/GeoLite2/DB-IP City mmdb"},
	{flag: optGeoIPASNDB, env: "VIGIL_GEOIP_ASN_DB", meta: "FILE", defHelp: "none", help: "a GeoIP2/GeoLite2 ASN mmdb"},
	{flag: optTrustedProxies, env: "VIGIL_TRUSTED_PROXIES", meta: "CIDRS", defHelp: "none", help: "comma-separated CIDRs whose X-Forwarded-For is believed"},
	{flag: optAdminEmails, env: "VIGIL_ADMIN_EMAILS", meta: "EMAILS", defHelp: "none", help: "comma-separated bootstrap: each email grants role admin once, ever, to the first account that registers with it or holds it at a start; the role then stays with that account"},
	{flag: optSecretKeyFile, env: "VIGIL_SECRET_KEY_FILE", meta: "FILE", defHelp: "<data-dir>/secret.key, made on first start", help: "the server key that encrypts TOTP secrets"},
	{flag: optArgon2MemoryKiB, env: "VIGIL_ARGON2_MEMORY_KIB", def: strconv.Itoa(app.DefaultArgon2MemoryKiB), meta: "KIB", help: "password hashing memory cost (OWASP), at least 8192"},
	{flag: optArgon2Iterations, env: "VIGIL_ARGON2_ITERATIONS", def: strconv.Itoa(app.DefaultArgon2Iterations), meta: "N", help: "password hashing iterations (OWASP), at least 1"},
	{flag: optStepUpWindow, env: "VIGIL_STEP_UP_WINDOW", def: "5m", meta: "DURATION", help: "how recent an authentication sensitive changes need"},
	{flag: optSessionLifetime, env: "VIGIL_SESSION_LIFETIME", def: "12h", meta: "DURATION", help: "absolute session limit (ASVS L2)"},
	{flag: optSessionIdleTimeout, env: "VIGIL_SESSION_IDLE_TIMEOUT", def: "30m", meta: "DURATION", help: "idle session limit, at most the lifetime (ASVS L2)"},
	// Beyond API.md's table (which allows additions):
	{flag: optInsecureCookies, env: "VIGIL_INSECURE_COOKIES", def: "false", boolean: true, help: "set the session and sign-in cookies without Secure, so that a trial over plain http:// on a non-local address can sign in (never in production)"},
	{flag: optTOTPIssuer, env: "VIGIL_TOTP_ISSUER", def: app.DefaultTOTPIssuer, meta: "NAME", help: "the name authenticator apps show for Vigil's codes (1 to 100 characters)"},
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
	}
}

// parseServe reads serve's flags from args and the environment through lookup (see
// parseOptions) and checks them: it returns flag.ErrHelp for -h/--help, a usageError for a
// malformed command line, and otherwise an error naming the flag of the first invalid value.
func parseServe(args []string, lookup func(string) (string, bool)) (Config, error) {
	s, err := parseOptions(serveOptions, args, lookup)
	if err != nil {
		return Config{}, err
	}
	return validate(s)
}

// validate checks and converts every setting.
func validate(s settings) (Config, error) {
	var c Config
	var err error
	if c.Addr, err = parseAddr(s[optAddr]); err != nil {
		return c, err
	}
	if c.DataDir = s[optDataDir].value; c.DataDir == "" {
		return c, s[optDataDir].errorf("must not be empty")
	}
	st := s[optStore]
	if err := app.ValidateStore(st.value); err != nil {
		return c, st.errorf("%v", err)
	}
	c.Store = st.value
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
	if sk := s[optSecretKeyFile]; sk.value != "" {
		if _, err := app.ReadSecretKey(sk.value); err != nil {
			return c, sk.errorf("%v", err)
		}
		c.SecretKeyFile = sk.value
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
		return c, s[optSessionIdleTimeout].errorf("%q exceeds --%s %q", s[optSessionIdleTimeout].value, optSessionLifetime, s[optSessionLifetime].value)
	}
	c.TOTPIssuer = s[optTOTPIssuer].value
	if n := utf8.RuneCountInString(c.TOTPIssuer); n < 1 || n > 100 || strings.ContainsAny(c.TOTPIssuer, ":\x00") {
		return c, s[optTOTPIssuer].errorf("%q must be 1 to 100 characters without a colon", c.TOTPIssuer)
	}
	if c.InsecureCookies, err = parseBool(s[optInsecureCookies]); err != nil {
		return c, err
	}
	if c.Forward, err = validateForward(s); err != nil {
		return c, err
	}
	return c, nil
}

func parseAddr(s setting) (string, error) {
	host, port, err := net.SplitHostPort(s.value)
	if err != nil {
		return "", s.errorf("%q is not a host:port address", s.value)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || p > 65535 {
		return "", s.errorf("%q: the port must be a number from 0 to 65535", s.value)
	}
	if host != "" && !validHost(host) {
		return "", s.errorf("%q: %q is neither an IP address nor a host name", s.value, host)
	}
	return s.value, nil
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

func parsePublicURL(s setting) (*url.URL, error) {
	u, err := url.Parse(s.value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, s.errorf("%q is not an absolute http(s) URL", s.value)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, s.errorf("%q must not have credentials, a query or a fragment", s.value)
	}
	if h := u.Hostname(); !validHost(h) {
		return nil, s.errorf("%q: %q is neither an IP address nor a host name", s.value, h)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// readableFile checks that a given file can be opened and read; "" means none.
func readableFile(s setting) (string, error) {
	if s.value == "" {
		return "", nil
	}
	f, err := os.Open(s.value)
	if err != nil {
		return "", s.errorf("%v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return "", s.errorf("%v", err)
	} else if fi.IsDir() {
		return "", s.errorf("%s is a directory, not a file", s.value)
	}
	if _, err := f.Read(make([]byte, 1)); err != nil {
		if err == io.EOF {
			return "", s.errorf("%s is empty", s.value)
		}
		return "", s.errorf("%v", err)
	}
	return s.value, nil
}

// parseCIDRs parses a comma-separated list of CIDRs (a bare IP address is taken as its
// single-address prefix); empty items are ignored.
func parseCIDRs(s setting) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s.value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil || strings.Contains(item, "/") {
				return nil, s.errorf("%q is not a CIDR", item)
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
func parseEmails(s setting) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s.value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, err := mail.ParseAddress(item)
		if err != nil || a.Address != item || a.Name != "" {
			return nil, s.errorf("%q is not an email address", item)
		}
		e := strings.ToLower(item)
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseUint32(s setting, minimum uint32) (uint32, error) {
	n, err := strconv.ParseUint(s.value, 10, 32)
	if err != nil {
		return 0, s.errorf("%q is not a whole number", s.value)
	}
	if uint32(n) < minimum {
		return 0, s.errorf("%d is below the minimum of %d", n, minimum)
	}
	return uint32(n), nil
}

func parseInt(s setting, minimum int64) (int64, error) {
	n, err := strconv.ParseInt(s.value, 10, 64)
	if err != nil {
		return 0, s.errorf("%q is not a whole number", s.value)
	}
	if n < minimum {
		return 0, s.errorf("%d is below the minimum of %d", n, minimum)
	}
	return n, nil
}

func parseBool(s setting) (bool, error) {
	b, err := strconv.ParseBool(s.value)
	if err != nil {
		return false, s.errorf("%q is neither true nor false", s.value)
	}
	return b, nil
}

func parseDuration(s setting) (time.Duration, error) {
	d, err := time.ParseDuration(s.value)
	if err != nil {
		return 0, s.errorf("%q is not a duration (for example 90s, 5m, 24h)", s.value)
	}
	if d <= 0 {
		return 0, s.errorf("%q must be positive", s.value)
	}
	return d, nil
}

// runServe is the serve command: check the settings, build the application, run it until
// ctx ends.
func runServe(ctx context.Context, s settings, e env) int {
	cfg, err := validate(s)
	if err != nil {
		fmt.Fprintf(e.stderr, "vigil: %v\n", err)
		return exitUsage
	}
	a, err := app.New(ctx, cfg.appConfig(newLogger(e.stderr)))
	if err != nil {
		fmt.Fprintf(e.stderr, "vigil: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "Vigil is serving %s\n", a.URL())
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(e.stderr, "vigil: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// newLogger logs JSON to w, or text when w is a terminal.
func newLogger(w io.Writer) *slog.Logger {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, nil))
		}
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}
