package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// seed writes n events to the SQLite log of dataDir before the app starts.
func seed(t *testing.T, dataDir string, n int) {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dataDir, EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		ev, err := domain.NewEventData("TestSeeded", 1, map[string]int{"i": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(context.Background(), domain.StreamPrefixSystem+"seed", eventstore.Any, []domain.EventData{ev}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppServesAndShutsDown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seed(t, dir, 3)
	logs := &testkit.SyncBuffer{}
	ln := listen(t)
	a, err := New(context.Background(), Config{
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Listener: ln,
		DataDir:  dir,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if a.Addr() != ln.Addr().String() || a.URL() != "http://localhost:"+port {
		t.Errorf("Addr %q, URL %q; listener %s", a.Addr(), a.URL(), ln.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := a.URL()

	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz = %d %s", code, body)
	}
	// The projections catch up with the seeded log; /readyz turns 200.
	var ready struct {
		Status      string `json:"status"`
		Projections []struct {
			Name       string `json:"name"`
			Checkpoint uint64 `json:"checkpoint"`
			Head       uint64 `json:"head"`
		} `json:"projections"`
	}
	testwait.Until(t, 10*time.Second, "/readyz to answer 200 with the projections caught up", func() (bool, string) {
		code, body := get(t, base+"/readyz")
		saw := fmt.Sprintf("status %d: %s", code, strings.TrimSpace(body))
		if code != 200 {
			return false, saw
		}
		if err := json.Unmarshal([]byte(body), &ready); err != nil {
			t.Fatalf("/readyz body %s: %v", body, err)
		}
		return len(ready.Projections) > 0 && ready.Projections[0].Checkpoint == ready.Projections[0].Head && ready.Projections[0].Head > 0, saw
	})
	if ready.Status != "ready" {
		t.Errorf("readyz status %q", ready.Status)
	}

	code, body := get(t, base+"/openapi.json")
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/readyz"] == nil {
		t.Errorf("/openapi.json = %d %v %.200s", code, err, body)
	}
	// Appends through the app's store are measured: one ok, one conflict.
	ev, _ := domain.NewEventData("TestAppended", 1, map[string]int{}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if _, err := a.store.Append(ctx, domain.StreamPrefixSystem+"app", eventstore.NoStream, []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	ev2, _ := domain.NewEventData("TestAppended", 1, map[string]int{}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if _, err := a.store.Append(ctx, domain.StreamPrefixSystem+"app", eventstore.NoStream, []domain.EventData{ev2}); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("conflicting append: %v", err)
	}
	// The store the commands append through reaches the SQLite writer's announcements (a
	// sign-in's append shares a sync with the next one: domain.Expectation).
	arrival := domain.ExpectAppend(a.store, time.Now())
	if arrival == nil {
		t.Error("the app's store does not pass announced appends on to the log")
	}
	arrival.Done()
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`vigil_eventstore_appends_total{result="ok"} 1`,
		`vigil_eventstore_appends_total{result="conflict"} 1`,
		`vigil_eventstore_appends_total{result="error"} 0`,
		"vigil_eventstore_appended_events_total 1",
		"vigil_eventstore_append_duration_seconds_count 2",
		`vigil_http_requests_total{code="200",method="GET",route="/healthz"}`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(testwait.Deadline(10 * time.Second)):
		t.Fatalf("Run did not return within %v of its cancel", testwait.Deadline(10*time.Second))
	}
	if !strings.Contains(logs.String(), `"msg":"vigil listening","url":"`+base+`"`) {
		t.Errorf("no listening line with the real URL in the log:\n%s", logs)
	}
	for _, f := range []string{EventsFile, ProjectionsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, SecretKeyFile))
	if err != nil || fi.Size() != SecretKeySize || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret key: %v %v", fi, err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after Run returned")
	}
	// Everything was closed: the store file opens again.
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := s.Head(context.Background()); err != nil || head == 0 {
		t.Errorf("head after restart: %d %v", head, err)
	}
	s.Close()
}

func TestNewCreatesDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	a, err := New(context.Background(), Config{Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v", fi, err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Error("Run after Close succeeded")
	}
	// Everything was released: the store opens again at once.
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestNewFailsWithoutHalfStarting(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unreachable store", Config{Store: "esdb://127.0.0.1:1?tls=false", StoreOpenTimeout: 2 * time.Second}, "--store"},
		{"bad store", Config{Store: "postgres://x"}, "--store"},
		{"unreachable NATS", Config{NATSURL: "nats://127.0.0.1:1", SecretKeyFile: sharedKeyFile(t)}, "--nats-url: cannot connect to NATS"},
		{"missing key file", Config{SecretKeyFile: "/nonexistent/vigil.key"}, "--secret-key-file"},
		{"idle over lifetime", Config{SessionLifetime: time.Hour, SessionIdleTimeout: 2 * time.Hour}, "idle"},
		// WebAuthn needs a domain name as relying party id, and https except on localhost.
		{"ip public url", Config{PublicURL: &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}}, "--public-url"},
		{"plain http public url", Config{PublicURL: &url.URL{Scheme: "http", Host: "id.example.com"}}, "--insecure-cookies"},
		{"plain http lan address", Config{PublicURL: &url.URL{Scheme: "http", Host: "192.168.1.5:8080"}}, "--insecure-cookies"},
		{"https ip public url even with insecure cookies", Config{PublicURL: &url.URL{Scheme: "https", Host: "192.168.1.5"}, InsecureCookies: true}, "--public-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ln := listen(t)
			tt.cfg.Logger = slog.New(slog.DiscardHandler)
			tt.cfg.Listener = ln
			tt.cfg.DataDir = dir
			a, err := New(context.Background(), tt.cfg)
			if err == nil {
				a.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			// The listener handed over was closed.
			if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Error("the listener is still open")
			}
			// Nothing after the failing step was opened, and no key was made.
			for _, f := range []string{ProjectionsFile, SecretKeyFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was made: %v", f, err)
				}
			}
		})
	}
}

// TestPlainHTTPPublicURL: a plain http public URL is refused on a host that is not local
// (browsers would drop the Secure session cookie), accepted on localhost, and accepted on a
// LAN address with InsecureCookies, passkeys then being off (WebAuthn needs a secure context
// and a domain name).
func TestPlainHTTPPublicURL(t *testing.T) {
	for _, tt := range []struct {
		url      string
		insecure bool
		err      string // "" for success
	}{
		{"http://192.168.1.5:8080", false, "--public-url: http://192.168.1.5:8080 is plain http"},
		{"http://vigil.lan", false, "--insecure-cookies"},
		{"http://192.168.1.5:8080", true, ""},
		{"http://vigil.lan:8080", true, ""},
		{"http://localhost:8080", false, ""},
		{"http://app.localhost:8080", false, ""},
	} {
		u, _ := url.Parse(tt.url)
		dir := filepath.Join(t.TempDir(), "data")
		a, err := New(context.Background(), Config{Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir,
			PublicURL: u, InsecureCookies: tt.insecure})
		if tt.err == "" {
			if err != nil {
				t.Errorf("%s (insecure %v): %v", tt.url, tt.insecure, err)
			} else {
				a.Close()
			}
			continue
		}
		if err == nil {
			a.Close()
			t.Errorf("%s: New succeeded", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "--insecure-cookies") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", tt.url, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the data directory was made: %v", tt.url, err)
		}
	}
}

// TestStartUpOrder: a data directory where nothing can be created is named as --data-dir
// (never --secret-key-file, a flag the user did not set), and an unreachable store is named
// as --store, without a secret key or data directory left behind.
func TestStartUpOrder(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-only directories. As root, chmod stops nothing: a directory below a regular file
	// fails for everyone, and an immutable directory (chattr +i) stops root too, when chattr
	// works here; otherwise a non-root user gets a mode 0500 directory.
	dirs := map[string]string{"below a regular file": filepath.Join(file, "data")}
	ro := filepath.Join(base, "readonly")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", ro).CombinedOutput(); err == nil {
			t.Cleanup(func() { exec.Command("chattr", "-i", ro).Run() })
			dirs["immutable"] = ro
		} else {
			t.Logf("chattr +i: %v %s; the immutable case is left out", err, out)
		}
	} else if err := os.Chmod(ro, 0o500); err == nil {
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
		dirs["mode 0500"] = ro
	}
	for name, dir := range dirs {
		_, err := New(context.Background(), Config{Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir})
		if err == nil || !strings.HasPrefix(err.Error(), "--data-dir: ") || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, SecretKeyFile)); !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s: a secret key was made: %v", name, err)
		}
	}

	// An unreachable KurrentDB: one line naming --store, no key, no directory.
	dir := filepath.Join(base, "new", "data")
	var logs bytes.Buffer
	start := time.Now()
	_, err := New(context.Background(), Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Listener: listen(t), DataDir: dir,
		Store: "kurrentdb://127.0.0.1:1?tls=false", StoreOpenTimeout: 20 * time.Second})
	if err == nil || !strings.HasPrefix(err.Error(), "--store: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable store: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("unreachable store took %s", el)
	}
	if logs.Len() > 0 {
		t.Errorf("the client's retries were logged before the error:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(base, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was left behind: %v", err)
	}
}

func TestValidateAndRedactStore(t *testing.T) {
	for _, ok := range []string{"sqlite", "sqlite:///srv/vigil/events.db", "sqlite://relative/events.db", "esdb://localhost:2113?tls=false", "esdb+discover://admin:changeit@a:2113,b:2113,c:2113", "kurrentdb://localhost:2113", "kurrentdb+discover://h"} {
		if err := ValidateStore(ok); err != nil {
			t.Errorf("ValidateStore(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "SQLite", "sqlite://", "sqlite:///srv/vigil/", "postgres://x", "esdb://", "esdb://user:secretpw@", "/tmp/events.db", "esdb:localhost"} {
		err := ValidateStore(bad)
		if err == nil {
			t.Errorf("ValidateStore(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	for in, want := range map[string]string{
		"sqlite":                            "sqlite",
		"esdb://h:2113":                     "esdb://h:2113",
		"esdb://admin@h:2113":               "esdb://admin@h:2113",
		"esdb://admin:changeit@h:2113?x=1":  "esdb://admin:***@h:2113?x=1",
		"esdb+discover://a:p@x,y/?tls=true": "esdb+discover://a:***@x,y/?tls=true",
	} {
		if got := RedactStore(in); got != want {
			t.Errorf("RedactStore(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecretKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	k1, created, err := EnsureSecretKey(path)
	if err != nil || !created || len(k1) != SecretKeySize {
		t.Fatalf("first EnsureSecretKey: %x %v %v", k1, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k2, created, err := EnsureSecretKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second EnsureSecretKey: created %v, err %v, same %v", created, err, bytes.Equal(k1, k2))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if _, err := ReadSecretKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}
	for name, content := range map[string]string{
		"hex":       hex.EncodeToString(k1) + "\n",
		"base64":    base64.StdEncoding.EncodeToString(k1) + "\n",
		"base64url": base64.RawURLEncoding.EncodeToString(k1),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadSecretKey(p)
		if err != nil || !bytes.Equal(k, k1) {
			t.Errorf("%s key: %x %v", name, k, err)
		}
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("too short"), 0o600)
	if _, err := ReadSecretKey(short); !errors.Is(err, ErrBadSecretKey) {
		t.Errorf("short key: %v", err)
	}
	// A malformed existing default key is an error, never silently replaced.
	if _, _, err := EnsureSecretKey(short); !errors.Is(err, ErrBadSecretKey) {
		t.Errorf("EnsureSecretKey on a bad file: %v", err)
	}
}

// startApp runs an App on dir until the returned stop is called.
func startApp(t *testing.T, dir string, clk *testkit.Clock) (base string, stop func()) {
	t.Helper()
	a, stop := runApp(t, Config{
		Logger: slog.New(slog.DiscardHandler), Listener: listen(t), DataDir: dir,
		Argon2MemoryKiB: 8192, Argon2Iterations: 1, Now: clk.Now, SweepInterval: 20 * time.Millisecond,
	})
	waitServing(t, a.URL())
	return a.URL(), stop
}

// runApp builds an App from cfg and runs it until stop is called (or, at the latest, the
// test ends); stop fails the test unless Run returns nil within 30 seconds.
func runApp(t testing.TB, cfg Config) (a *App, stop func()) {
	t.Helper()
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	t.Cleanup(stop)
	return a, stop
}

func postJSON(t testing.TB, url, body string, header ...string) (int, map[string]any) {
	t.Helper()
	status, m, _ := doJSON(t, http.MethodPost, url, body, header...)
	return status, m
}

// doJSON sends body as JSON with the header pairs (name, value, ...) and returns the status,
// the decoded answer and its headers.
func doJSON(t testing.TB, method, url, body string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

func whoamiStatus(t testing.TB, base, token string) int {
	t.Helper()
	return bearerStatus(t, base+"/api/v1/whoami", token)
}

// bearerStatus is the status of a GET of url with the bearer token.
func bearerStatus(t testing.TB, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSessionsSurviveRestartAndExpire checks the wiring of the session feed and the sweeper:
// a session started before a restart is known to whoami as soon as the new instance serves,
// and the sweeper, on the injected clock, ends an idle session with a SessionExpired event.
func TestSessionsSurviveRestartAndExpire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clk := testkit.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	base, stop := startApp(t, dir, clk)
	const pw = "umbrella-cactus-violin-47"
	if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"ann@example.com","password":"`+pw+`","first_name":"Ann","last_name":"Lee"}`); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	code, m := postJSON(t, base+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
	token, _ := m["session_token"].(string)
	if code != 200 || token == "" {
		t.Fatalf("login: %d %v", code, m)
	}
	stop()

	base, stop = startApp(t, dir, clk)
	defer stop()
	if code := whoamiStatus(t, base, token); code != 200 {
		t.Fatalf("whoami after a restart: %d", code)
	}
	clk.Advance(2*time.Hour + time.Minute)
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testwait.Until(t, 5*time.Second, "the sweeper to record SessionExpired", func() (bool, string) {
		events, err := s.ReadAll(context.Background(), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		types := make([]string, len(events))
		for i, ev := range events {
			if ev.Type == "SessionExpired" {
				return true, ""
			}
			types[i] = ev.Type
		}
		return false, fmt.Sprintf("%d events: %s", len(events), strings.Join(types, ", "))
	})
	if code := whoamiStatus(t, base, token); code != 401 {
		t.Errorf("whoami of an expired session: %d", code)
	}
}

// waitServing waits until the app at base serves its API: it has read the log at start (while
// it does, every route but the operational ones answers 503 not_ready).
func waitServing(t testing.TB, base string) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "the app to serve its API (not 503 on /api/v1/whoami)", func() (bool, string) {
		resp, err := http.Get(base + "/api/v1/whoami")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode != http.StatusServiceUnavailable, fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	})
}

// sharedKeyFile is a server key file outside the data directory.
func sharedKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret.key")
	if _, _, err := EnsureSecretKey(path); err != nil {
		t.Fatal(err)
	}
	return path
}
