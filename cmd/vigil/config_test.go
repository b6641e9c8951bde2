package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// envMap is a fake environment.
func envMap(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestOptionsAreAPIRunningTable pins the flags, variables and defaults to API.md's table.
func TestOptionsAreAPIRunningTable(t *testing.T) {
	want := [][3]string{
		{"addr", "VIGIL_ADDR", "127.0.0.1:8080"},
		{"data-dir", "VIGIL_DATA_DIR", "./vigil-data"},
		{"store", "VIGIL_STORE", "sqlite"},
		{"nats-url", "VIGIL_NATS_URL", ""},
		{"public-url", "VIGIL_PUBLIC_URL", "http://localhost:8080"},
		{"geoip-city-db", "VIGIL_GEOIP_CITY_DB", ""},
		{"geoip-asn-db", "VIGIL_GEOIP_ASN_DB", ""},
		{"trusted-proxies", "VIGIL_TRUSTED_PROXIES", ""},
		{"admin-emails", "VIGIL_ADMIN_EMAILS", ""},
		{"secret-key-file", "VIGIL_SECRET_KEY_FILE", ""},
		{"ssf-signing-key-file", "VIGIL_SSF_SIGNING_KEY_FILE", ""},
		{"log-signing-key-file", "VIGIL_LOG_SIGNING_KEY_FILE", ""},
		{"checkpoint-interval", "VIGIL_CHECKPOINT_INTERVAL", "1m"},
		{"argon2-memory-kib", "VIGIL_ARGON2_MEMORY_KIB", "19456"},
		{"argon2-iterations", "VIGIL_ARGON2_ITERATIONS", "2"},
		{"step-up-window", "VIGIL_STEP_UP_WINDOW", "5m"},
		{"session-lifetime", "VIGIL_SESSION_LIFETIME", "12h"},
		{"session-idle-timeout", "VIGIL_SESSION_IDLE_TIMEOUT", "30m"},
		// Additions beyond API.md's table.
		{"insecure-cookies", "VIGIL_INSECURE_COOKIES", "false"},
		{"totp-issuer", "VIGIL_TOTP_ISSUER", "Vigil"},
		{"lease-ttl", "VIGIL_LEASE_TTL", "10s"},
		{"forward-nats-url", "VIGIL_FORWARD_NATS_URL", ""},
		{"forward-nats-subject-prefix", "VIGIL_FORWARD_NATS_SUBJECT_PREFIX", "vigil.events"},
		{"forward-nats-stream", "VIGIL_FORWARD_NATS_STREAM", "VIGIL_EVENTS"},
		{"webhook-url", "VIGIL_WEBHOOK_URL", ""},
		{"webhook-secret-file", "VIGIL_WEBHOOK_SECRET_FILE", ""},
		{"webhook-attempts", "VIGIL_WEBHOOK_ATTEMPTS", "6"},
		{"webhook-timeout", "VIGIL_WEBHOOK_TIMEOUT", "10s"},
		{"smtp-url", "VIGIL_SMTP_URL", ""},
		{"mail-from", "VIGIL_MAIL_FROM", ""},
		{"read-models-from", "VIGIL_READ_MODELS_FROM", ""},
		{"read-models-token-file", "VIGIL_READ_MODELS_TOKEN_FILE", ""},
	}
	var got [][3]string
	for _, o := range serveOptions {
		got = append(got, [3]string{o.Flag, o.Env, o.Def})
	}
	if !slices.Equal(got, want) {
		t.Errorf("options\n got %v\nwant %v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	c, err := parseServe(nil, envMap())
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./vigil-data" || c.Store != "sqlite" ||
		c.PublicURL.String() != "http://localhost:8080" || c.GeoIPCityDB != "" || c.GeoIPASNDB != "" ||
		c.TrustedProxies != nil || c.AdminEmails != nil || c.SecretKeyFile != "" ||
		c.Argon2MemoryKiB != 19456 || c.Argon2Iterations != 2 || c.StepUpWindow != 5*time.Minute ||
		c.SessionLifetime != 12*time.Hour || c.SessionIdleTimeout != 30*time.Minute || c.InsecureCookies ||
		c.LogSigningKeyFile != "" || c.CheckpointInterval != time.Minute {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if err := os.WriteFile(key, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	mmdb := filepath.Join(dir, "city.mmdb")
	os.WriteFile(mmdb, []byte("not really an mmdb"), 0o600)
	env := envMap(
		"VIGIL_ADDR", "0.0.0.0:9000",
		"VIGIL_DATA_DIR", "/env/data",
		"VIGIL_STORE", "esdb://env:2113",
		"VIGIL_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1/16,fd00::/8,172.16.0.1",
		"VIGIL_ADMIN_EMAILS", "Root@Example.com,ops@example.com,root@example.com",
		"VIGIL_SECRET_KEY_FILE", key,
		"VIGIL_GEOIP_CITY_DB", mmdb,
		"VIGIL_ARGON2_MEMORY_KIB", "65536",
		"VIGIL_STEP_UP_WINDOW", "10m",
		"VIGIL_SESSION_LIFETIME", "", // empty counts as unset
	)
	c, err := parseServe([]string{"--addr=127.0.0.1:7000", "--store", "sqlite", "-argon2-iterations", "3", "--public-url", "https://id.example.com/"}, env)
	if err != nil {
		t.Fatal(err)
	}
	wantProxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("172.16.0.1/32"),
	}
	if c.Addr != "127.0.0.1:7000" || c.DataDir != "/env/data" || c.Store != "sqlite" ||
		!slices.Equal(c.TrustedProxies, wantProxies) ||
		!slices.Equal(c.AdminEmails, []string{"root@example.com", "ops@example.com"}) ||
		c.SecretKeyFile != key || c.GeoIPCityDB != mmdb || c.Argon2MemoryKiB != 65536 || c.Argon2Iterations != 3 ||
		c.StepUpWindow != 10*time.Minute || c.SessionLifetime != 12*time.Hour ||
		c.PublicURL.String() != "https://id.example.com" {
		t.Errorf("config: %+v (public url %s)", c, c.PublicURL)
	}
}

func TestValidationErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, nil, `--trusted-proxies: "10.0.0.0/33" is not a CIDR`},
		{nil, []string{"VIGIL_TRUSTED_PROXIES", "10.0.0.0/8,nope"}, `--trusted-proxies (from VIGIL_TRUSTED_PROXIES): "nope" is not a CIDR`},
		{[]string{"--addr", "localhost"}, nil, `--addr: "localhost" is not a host:port address`},
		{[]string{"--addr", "127.0.0.1:99999"}, nil, `--addr: "127.0.0.1:99999": the port must be a number from 0 to 65535`},
		{[]string{"--addr", "bad_host!:80"}, nil, `--addr: "bad_host!:80": "bad_host!" is neither an IP address nor a host name`},
		{[]string{"--data-dir", ""}, nil, `--data-dir: must not be empty`},
		{[]string{"--store", "postgres://db"}, nil, `--store: "postgres://db" is neither sqlite, sqlite://PATH nor a KurrentDB connection string`},
		{[]string{"--store", "esdb://admin:hunter2@"}, nil, `--store: "esdb://admin:***@" names no host`},
		{[]string{"--store", "sqlite://"}, nil, `--store: "sqlite://" names no file (sqlite://PATH, e.g. sqlite:///srv/vigil/events.db)`},
		{[]string{"--nats-url", "http://nats:4222"}, nil, `--nats-url: scheme "http" is not nats, tls, ws or wss`},
		{nil, []string{"VIGIL_NATS_URL", "nats://"}, `--nats-url (from VIGIL_NATS_URL): not a NATS URL (nats://HOST:PORT, several separated by commas)`},
		{[]string{"--lease-ttl", "500ms"}, nil, `--lease-ttl: must be at least 1s`},
		{nil, []string{"VIGIL_LEASE_TTL", "soon"}, `--lease-ttl (from VIGIL_LEASE_TTL): "soon" is not a duration (for example 90s, 5m, 24h)`},
		{[]string{"--public-url", "localhost:8080"}, nil, `--public-url: "localhost:8080" is not an absolute http(s) URL`},
		{[]string{"--public-url", "ftp://x"}, nil, `--public-url: "ftp://x" is not an absolute http(s) URL`},
		{[]string{"--public-url", "/relative"}, nil, `--public-url: "/relative" is not an absolute http(s) URL`},
		{[]string{"--geoip-city-db", filepath.Join(dir, "missing.mmdb")}, nil, `--geoip-city-db: open ` + filepath.Join(dir, "missing.mmdb") + `: no such file or directory`},
		{[]string{"--geoip-asn-db", dir}, nil, `--geoip-asn-db: ` + dir + ` is a directory, not a file`},
		{[]string{"--geoip-asn-db", empty}, nil, `--geoip-asn-db: ` + empty + ` is empty`},
		{[]string{"--secret-key-file", filepath.Join(dir, "nokey")}, nil, `--secret-key-file: open ` + filepath.Join(dir, "nokey") + `: no such file or directory`},
		{[]string{"--secret-key-file", empty}, nil, `--secret-key-file: the file does not hold a 32-byte key`},
		{[]string{"--admin-emails", "a@example.com,not-an-email"}, nil, `--admin-emails: "not-an-email" is not an email address`},
		{[]string{"--argon2-memory-kib", "4096"}, nil, `--argon2-memory-kib: 4096 is below the minimum of 8192`},
		{[]string{"--argon2-memory-kib", "lots"}, nil, `--argon2-memory-kib: "lots" is not a whole number`},
		{[]string{"--argon2-iterations", "0"}, nil, `--argon2-iterations: 0 is below the minimum of 1`},
		{[]string{"--argon2-iterations", "-1"}, nil, `--argon2-iterations: "-1" is not a whole number`},
		{[]string{"--step-up-window", "0s"}, nil, `--step-up-window: "0s" must be positive`},
		{[]string{"--session-lifetime", "-1h"}, nil, `--session-lifetime: "-1h" must be positive`},
		{[]string{"--session-lifetime", "forever"}, nil, `--session-lifetime: "forever" is not a duration`},
		{[]string{"--session-idle-timeout", "13h"}, nil, `--session-idle-timeout: "13h" exceeds --session-lifetime "12h"`},
		{nil, []string{"VIGIL_SESSION_LIFETIME", "20m"}, `--session-idle-timeout: "30m" exceeds --session-lifetime "20m"`},
		{nil, []string{"VIGIL_INSECURE_COOKIES", "maybe"}, `--insecure-cookies (from VIGIL_INSECURE_COOKIES): "maybe" is neither true nor false`},
		{[]string{"--totp-issuer", "Acme:Corp"}, nil, `--totp-issuer: "Acme:Corp" must be 1 to 100 characters without a colon`},
		{nil, []string{"VIGIL_TOTP_ISSUER", strings.Repeat("x", 101)}, `--totp-issuer (from VIGIL_TOTP_ISSUER): "` + strings.Repeat("x", 101) + `" must be 1 to 100 characters without a colon`},
	}
	for _, tt := range tests {
		_, err := parseServe(tt.args, envMap(tt.env...))
		if err == nil {
			t.Errorf("%v %v: no error, want %s", tt.args, tt.env, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v %v:\n got %s\nwant %s", tt.args, tt.env, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("bad message %q", err)
		}
	}
}

// runCmd runs the program with args and an empty environment.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, cli.Env{Lookup: envMap(), Stdout: &out, Stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestExitCodesAndUsage(t *testing.T) {
	code, _, errOut := runCmd(t, "--bogus")
	if first, _, _ := strings.Cut(errOut, "\n"); code != 2 || first != "vigil: unknown flag --bogus" || !strings.Contains(errOut, "Usage: vigil") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(t, "serve", "--trusted-proxies", "10.0.0.0/33")
	if code != 2 || errOut != "vigil: --trusted-proxies: \"10.0.0.0/33\" is not a CIDR\n" {
		t.Errorf("bad CIDR: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(t, "serve", "extra")
	if code != 2 || !strings.HasPrefix(errOut, `vigil: unexpected argument "extra"`) {
		t.Errorf("stray argument: exit %d, stderr %q", code, errOut)
	}
}

// serveInProcess runs the serve command (args, with VIGIL_DATA_DIR=dir) until the returned stop
// function is called; it returns the printed URL. stop fails the test unless serve exits 0,
// and returns what serve wrote on stderr.
func serveInProcess(t *testing.T, dir string, args ...string) (url string, stop func() string) {
	t.Helper()
	var out, errOut testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), cli.Env{Lookup: envMap("VIGIL_DATA_DIR", dir), Stdout: &out, Stderr: &errOut})
	}()
	testwait.Until(t, 20*time.Second, "serve to print its URL", func() (bool, string) {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited %d: %s", code, errOut.String())
		default:
		}
		var ok bool
		url, ok = strings.CutPrefix(strings.TrimSpace(out.String()), "Vigil is serving ")
		return ok, fmt.Sprintf("stdout %q, stderr %q", out.String(), errOut.String())
	})
	return url, func() string {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			if code != cli.ExitOK {
				t.Errorf("serve exit %d after cancel: %s", code, errOut.String())
			}
		case <-time.After(testwait.Deadline(20 * time.Second)):
			t.Fatalf("serve did not stop within %v of its cancel; stderr %s", testwait.Deadline(20*time.Second), errOut.String())
		}
		return errOut.String()
	}
}

// readyz asks url's /readyz; saw describes the answer (status and body, or the error) for a
// failed wait.
func readyz(url string) (code int, body []byte, saw string) {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0, nil, "GET /readyz: " + err.Error()
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, body, fmt.Sprintf("status %d, body unreadable: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body, fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
}

// waitReady waits until url's /readyz answers 200; on timeout it says what /readyz answered
// last (the status and the body that names the lagging or stuck projection).
func waitReady(t *testing.T, url string) {
	t.Helper()
	testwait.Until(t, 10*time.Second, url+"/readyz to answer 200", func() (bool, string) {
		code, _, saw := readyz(url)
		return code == http.StatusOK, saw
	})
}

// TestServeRunsUntilCancelled runs the real serve command end to end.
func TestServeRunsUntilCancelled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	url, stop := serveInProcess(t, dir)
	// Stop a serving instance, not one still starting (a stop during the start is a known
	// slow path: the followers' routers can wait out their close timeout).
	testwait.Until(t, 20*time.Second, "/readyz 200", func() (bool, string) {
		r, err := http.Get(url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == 200, r.Status
	})
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
	errOut := stop()
	if !strings.Contains(errOut, `"msg":"vigil listening"`) {
		t.Errorf("no JSON listening line on stderr: %s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "events.db")); err != nil {
		t.Error(err)
	}
}
