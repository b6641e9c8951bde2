package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/projections"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// snapshotIndexPosition reads the position of the in-memory indexes' state a snapshot file
// carries (0: none).
func snapshotIndexPosition(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pos uint64
	if err := db.QueryRow(`SELECT coalesce(min(position), 0) FROM log_feed_state`).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	return pos
}

// TestSnapshotCarriesIndexes: a snapshot (the command's file, and the route's download served
// again from a URL) carries the state of the in-memory indexes; a new instance started from it
// restores them and starts its log feed at the snapshot's position (not at 0), and knows the
// sessions and service tokens made before the snapshot (from the state) and after it (from
// the feed). A snapshot without that state (an older format) or with another index format
// still starts, reading the whole log, and says so.
func TestSnapshotCarriesIndexes(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dirA := filepath.Join(t.TempDir(), "data")
	cfgA := Config{Logger: quiet, DataDir: dirA, Argon2MemoryKiB: 8192, Argon2Iterations: 1, AdminEmails: []string{"boss@example.com"}}
	cfgA.Listener = listen(t)
	a, stopA := runApp(t, cfgA)
	base := a.URL()
	waitServing(t, base)
	const pw = "umbrella-cactus-violin-47"
	login := func(email string) string {
		t.Helper()
		code, m := postJSON(t, base+"/api/v1/login", `{"email":"`+email+`","password":"`+pw+`"}`)
		s, _ := m["session_token"].(string)
		if code != http.StatusOK || s == "" {
			t.Fatalf("login %s: %d %v", email, code, m)
		}
		return s
	}
	for _, e := range []string{"boss@example.com", "ann@example.com"} {
		if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"`+e+`","password":"`+pw+`","first_name":"A","last_name":"B"}`); code != http.StatusCreated {
			t.Fatalf("register %s: %d %v", e, code, m)
		}
	}
	boss := login("boss@example.com")
	code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp", `{"name":"phone"}`, "Authorization", "Bearer "+boss)
	id, secret := m["device_id"].(string), m["secret"].(string)
	otpCode, err := totp.GenerateCode(secret, time.Now())
	if code != 201 || err != nil {
		t.Fatalf("add TOTP: %d %v %v", code, m, err)
	}
	if code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp/"+id+"/confirm", `{"code":"`+otpCode+`"}`, "Authorization", "Bearer "+boss); code != 200 {
		t.Fatalf("confirm TOTP: %d %v", code, m)
	}
	newToken := func(name string) string {
		t.Helper()
		code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/admin/service-tokens", `{"name":"`+name+`","scopes":["events:read"]}`, "Authorization", "Bearer "+boss)
		tok, _ := m["token"].(string)
		if code != http.StatusCreated || tok == "" {
			t.Fatalf("create service token: %d %v", code, m)
		}
		return tok
	}
	settle := func() uint64 {
		t.Helper()
		head, _ := a.store.Head(ctx)
		if err := a.runner.WaitFor(ctx, head); err != nil {
			t.Fatal(err)
		}
		return head
	}

	annBefore, tokBefore := login("ann@example.com"), newToken("before")
	before := settle()
	snap := filepath.Join(t.TempDir(), "rm.db")
	if _, err := Snapshot(ctx, Config{Logger: quiet, DataDir: dirA}, snap); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file %v %v, want mode 0600", fi, err)
	}
	if p := snapshotIndexPosition(t, snap); p != before {
		t.Fatalf("the command's snapshot holds the indexes at %d, want the log's end %d", p, before)
	}
	raw, _ := os.ReadFile(snap)
	sum := sha256.Sum256(raw)
	if d, err := os.ReadFile(snap + DigestSuffix); err != nil || string(d) != hex.EncodeToString(sum[:])+"  rm.db\n" {
		t.Fatalf("digest file %q %v, want the snapshot's SHA-256", d, err)
	}
	for _, secret := range []string{annBefore, tokBefore, boss} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatal("the snapshot holds a token")
		}
	}
	// The route's snapshot (a download kept to be served from a URL later).
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/admin/read-models/snapshot", nil)
	req.Header.Set("Authorization", "Bearer "+boss)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	servedSum := sha256.Sum256(served)
	reprDigest := resp.Header.Get("Repr-Digest")
	if resp.StatusCode != 200 || reprDigest != "sha-256=:"+base64.StdEncoding.EncodeToString(servedSum[:])+":" {
		t.Fatalf("snapshot route: %d, Repr-Digest %q", resp.StatusCode, reprDigest)
	}
	servedFile := filepath.Join(t.TempDir(), "served.db")
	if err := os.WriteFile(servedFile, served, 0o600); err != nil {
		t.Fatal(err)
	}
	servedAt := snapshotIndexPosition(t, servedFile)
	if servedAt < before {
		t.Fatalf("the route's snapshot holds the indexes at %d, want at least %d", servedAt, before)
	}

	annAfter, tokAfter := login("ann@example.com"), newToken("after")
	after := settle()
	stopA()

	var logs *syncBuffer // a new one per start, never one a stopped app wrote to
	start := func(name string, rm ReadModelsConfig) *App {
		t.Helper()
		logs = &syncBuffer{}
		b, err := New(ctx, Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), Listener: listen(t), DataDir: copyLog(t, dirA),
			Argon2MemoryKiB: 8192, Argon2Iterations: 1, ReadModels: rm})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(runCtx) }()
		t.Cleanup(func() { cancel(); <-done })
		waitServing(t, b.URL())
		for _, s := range []string{annBefore, annAfter} {
			if code := whoamiStatus(t, b.URL(), s); code != http.StatusOK {
				t.Errorf("%s: whoami with a session made %s the snapshot: %d", name, map[bool]string{true: "before", false: "after"}[s == annBefore], code)
			}
		}
		for _, tok := range []string{tokBefore, tokAfter} {
			if code := bearerStatus(t, b.URL()+"/api/v1/events", tok); code != http.StatusOK {
				t.Errorf("%s: a service token made %s the snapshot: %d", name, map[bool]string{true: "before", false: "after"}[tok == tokBefore], code)
			}
		}
		if code := bearerStatus(t, b.URL()+"/api/v1/events", "vgl_unknown"); code != http.StatusUnauthorized {
			t.Errorf("%s: an unknown service token: %d", name, code)
		}
		return b
	}

	// The command's file: the feed starts at the snapshot's position, after the session and
	// token made before it (they come from the restored state only).
	b := start("file", ReadModelsConfig{From: snap})
	if b.feedFrom != before || before >= after {
		t.Errorf("file: the log feed started after %d, want the snapshot's %d (log end %d)", b.feedFrom, before, after)
	}
	if !strings.Contains(logs.String(), "in-memory indexes restored") || !strings.Contains(logs.String(), "its SHA-256 matches its producer's") {
		t.Errorf("file: no log line of the restore or of the digest's check:\n%s", logs.String())
	}
	if tableExists(t, b, "log_feed_state") || !tableExists(t, b, "read_model_snapshot") {
		t.Error("file: the indexes' state stays in the installed read models")
	}

	// The route's snapshot, from a URL.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.sqlite3")
		w.Header().Set("Repr-Digest", reprDigest)
		_, _ = w.Write(served)
	}))
	defer srv.Close()
	c := start("url", ReadModelsConfig{From: srv.URL, Token: "admin-token"})
	if c.feedFrom != servedAt || !strings.Contains(logs.String(), "its SHA-256 matches its producer's") {
		t.Errorf("url: the log feed started after %d, want the snapshot's %d; log:\n%s", c.feedFrom, servedAt, logs.String())
	}

	// A damaged copy (one byte changed) with the producer's digest is refused, before SQLite
	// reads it.
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	bad := bytes.Clone(raw)
	bad[len(bad)/2] ^= 0x55
	if err := os.WriteFile(damaged, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	copyFile(t, snap+DigestSuffix, damaged+DigestSuffix)
	dir := copyLog(t, dirA)
	if _, err := New(ctx, Config{Logger: quiet, Listener: listen(t), DataDir: dir, Argon2MemoryKiB: 8192, Argon2Iterations: 1,
		ReadModels: ReadModelsConfig{From: damaged}}); err == nil || !strings.Contains(err.Error(), "damaged: its SHA-256 is") {
		t.Errorf("a damaged copy: %v", err)
	}
	if made, _ := filepath.Glob(filepath.Join(dir, "projections*.db*")); len(made) != 0 {
		t.Errorf("a damaged copy left %v", made)
	}

	// Without the state (an older snapshot), or in another format: the feed reads the whole
	// log, and says why.
	edit := func(name, stmt string) string {
		t.Helper()
		f := filepath.Join(t.TempDir(), name+".db")
		copyFile(t, snap, f)
		db, err := sql.Open("sqlite", f)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, c := range []struct{ name, stmt, log string }{
		{"older", `DROP TABLE log_feed_state`, "a snapshot of an older format"},
		{"other format", `UPDATE log_feed_state SET format = 99 WHERE name = 'sessions'`, "index state of another format: sessions is format 99"},
	} {
		d := start(c.name, ReadModelsConfig{From: edit(c.name, c.stmt)})
		if d.feedFrom != 0 || !strings.Contains(logs.String(), c.log) || !strings.Contains(logs.String(), "the log feed reads the whole log") {
			t.Errorf("%s: the feed started after %d; log:\n%s", c.name, d.feedFrom, logs.String())
		}
	}
}

// tableExists reports whether the app's read-model file has the table.
func tableExists(t *testing.T, a *App, name string) bool {
	t.Helper()
	var n int
	if err := a.pdb.Read().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestRestartRestoresKeptIndexes: a clean stop keeps the in-memory indexes' state in the read
// models, and the next start of the instance restores it and starts its log feed at the
// stop's position instead of reading the whole log: a session made before the stop still
// answers whoami, one signed out before it still fails. The state serves one start (it is
// taken from the file); after a crash, or without it, the feed reads the whole log.
func TestRestartRestoresKeptIndexes(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	var logs *syncBuffer // a new one per start, never one a stopped app wrote to
	cfg := func() Config {
		logs = &syncBuffer{}
		return Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), Listener: listen(t), DataDir: dir, Argon2MemoryKiB: 8192, Argon2Iterations: 1}
	}
	a, stopA := runApp(t, cfg())
	waitServing(t, a.URL())
	const pw = "umbrella-cactus-violin-47"
	if code, m := postJSON(t, a.URL()+"/api/v1/accounts", `{"email":"ann@example.com","password":"`+pw+`","first_name":"A","last_name":"B"}`); code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, m)
	}
	login := func() string {
		t.Helper()
		code, m := postJSON(t, a.URL()+"/api/v1/login", `{"email":"ann@example.com","password":"`+pw+`"}`)
		s, _ := m["session_token"].(string)
		if code != http.StatusOK || s == "" {
			t.Fatalf("login: %d %v", code, m)
		}
		return s
	}
	kept, ended := login(), login()
	if code, m, _ := doJSON(t, http.MethodPost, a.URL()+"/api/v1/logout", ``, "Authorization", "Bearer "+ended); code != http.StatusNoContent {
		t.Fatalf("logout: %d %v", code, m)
	}
	head, _ := a.store.Head(ctx)
	stopA()
	if !strings.Contains(logs.String(), "in-memory indexes kept for the next start") {
		t.Fatalf("a clean stop kept no index state:\n%s", logs.String())
	}

	b, stopB := runApp(t, cfg())
	waitServing(t, b.URL())
	if b.feedFrom != head || head == 0 {
		t.Errorf("the restarted instance's log feed started after %d, want the stop's position %d", b.feedFrom, head)
	}
	if !strings.Contains(logs.String(), "in-memory indexes restored") {
		t.Errorf("no log line of the restore:\n%s", logs.String())
	}
	if code := whoamiStatus(t, b.URL(), kept); code != http.StatusOK {
		t.Errorf("whoami with a session made before the restart: %d, want 200", code)
	}
	if code := whoamiStatus(t, b.URL(), ended); code != http.StatusUnauthorized {
		t.Errorf("whoami with a session signed out before the restart: %d, want 401", code)
	}
	if tableExists(t, b, "log_feed_state") {
		t.Error("the kept state stays in the read models while the instance runs")
	}
	// A state that does not fit the log (past its head: a log replaced under the read models)
	// is not used.
	stopB()
	if err := func() error {
		db, err := projections.Open(projections.Config{Path: mustCurrentPath(t, dir), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer db.Close()
		states, err := db.TakeIndexStates(ctx)
		if err != nil || len(states) == 0 {
			return fmt.Errorf("states %d, %v", len(states), err)
		}
		for i := range states {
			states[i].Position = head + 1000
		}
		return db.SaveIndexStates(ctx, states)
	}(); err != nil {
		t.Fatal(err)
	}
	c, _ := runApp(t, cfg())
	waitServing(t, c.URL())
	if c.feedFrom != 0 || !strings.Contains(logs.String(), "does not fit the log") {
		t.Errorf("a kept state past the log's head: feed from %d, logs:\n%s", c.feedFrom, logs.String())
	}
	if code := whoamiStatus(t, c.URL(), kept); code != http.StatusOK {
		t.Errorf("whoami after a start that read the whole log: %d, want 200", code)
	}
}

func mustCurrentPath(t *testing.T, dir string) string {
	t.Helper()
	p, err := projections.CurrentPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
