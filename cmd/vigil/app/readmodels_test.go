package app

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
)

// copyFile copies src to dst (0600).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyLog copies the log of a stopped instance (events, account keys, server key) into a new
// data directory without read models.
func copyLog(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "events.db") || strings.HasPrefix(n, "keys.db") || n == SecretKeyFile || n == LogSigningKeyFile {
			copyFile(t, filepath.Join(from, n), filepath.Join(to, n))
		}
	}
	return to
}

// streamIDs lists the stream catalogue of an app's read models.
func streamIDs(t *testing.T, a *App) map[string]bool {
	t.Helper()
	infos, err := a.pdb.StreamInfos(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, in := range infos {
		out[in.StreamID] = true
	}
	return out
}

// fromSnapshot reports whether the app's current read-model file was installed from a
// snapshot (it still carries the snapshot's description table).
func fromSnapshot(t *testing.T, a *App) bool {
	t.Helper()
	var n int
	if err := a.pdb.Read().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'read_model_snapshot'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestReadModelSnapshots: `vigil projections snapshot` (Snapshot) and GET
// /api/v1/admin/read-models/snapshot write a snapshot of a running instance; a new instance on
// the same log started from it (a file, or the URL with an admin's token) serves the rows of
// the snapshot and catches up with what the log gained after it; a snapshot of another schema
// version or another log, a corrupt file, and the URL without a token or with a non-admin's
// are refused with one clear line, leaving the data directory as it was.
func TestReadModelSnapshots(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dirA := filepath.Join(t.TempDir(), "data")
	cfgA := Config{Logger: quiet, DataDir: dirA, Argon2MemoryKiB: 8192, Argon2Iterations: 1, AdminEmails: []string{"boss@example.com"}}
	cfgA.Listener = listen(t)
	a, stopA := runApp(t, cfgA)
	base := a.URL()
	waitServing(t, base)
	register := func(base, email string) string {
		const pw = "umbrella-cactus-violin-47"
		if code, m := postJSON(t, base+"/api/v1/accounts", `{"email":"`+email+`","password":"`+pw+`","first_name":"A","last_name":"B"}`); code != http.StatusCreated {
			t.Fatalf("register %s: %d %v", email, code, m)
		}
		_, m := postJSON(t, base+"/api/v1/login", `{"email":"`+email+`","password":"`+pw+`"}`)
		s, _ := m["session_token"].(string)
		return s
	}
	boss, ann := register(base, "boss@example.com"), register(base, "ann@example.com")
	code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp", `{"name":"phone"}`, "Authorization", "Bearer "+boss)
	id, secret := m["device_id"].(string), m["secret"].(string)
	otpCode, err := totp.GenerateCode(secret, time.Now())
	if code != 201 || err != nil {
		t.Fatalf("add TOTP: %d %v %v", code, m, err)
	}
	if code, m, _ := doJSON(t, http.MethodPost, base+"/api/v1/me/totp/"+id+"/confirm", `{"code":"`+otpCode+`"}`, "Authorization", "Bearer "+boss); code != 200 {
		t.Fatalf("confirm TOTP: %d %v", code, m)
	}
	head, _ := a.store.Head(ctx)
	if err := a.runner.WaitFor(ctx, head); err != nil {
		t.Fatal(err)
	}

	// The route: admins only.
	url := base + "/api/v1/admin/read-models/snapshot"
	if code := bearerStatus(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("snapshot without a token: %d, want 401", code)
	}
	if code := bearerStatus(t, url, ann); code != http.StatusForbidden {
		t.Errorf("snapshot by a non-admin: %d, want 403", code)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+boss)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.sqlite3" ||
		!strings.HasPrefix(string(body), "SQLite format 3\x00") || resp.Header.Get("X-Vigil-Read-Models-Schema") != projections.SchemaVersion(projections.Builtin()) {
		t.Fatalf("snapshot by an admin: %d %v %q", resp.StatusCode, resp.Header, body[:min(len(body), 16)])
	}
	// The handler removes its file once the answer is written (the client may see the end of
	// the body a moment before).
	testwait.Until(t, 5*time.Second, "the served snapshot file to be removed", func() (bool, string) {
		left, _ := filepath.Glob(filepath.Join(dirA, snapshotServingPrefix+"*"))
		return len(left) == 0, fmt.Sprint(left)
	})

	// The command's snapshot, while A serves; then A's log grows.
	snap := filepath.Join(t.TempDir(), "rm.db")
	info, err := Snapshot(ctx, Config{Logger: quiet, DataDir: dirA}, snap)
	if err != nil || info.Position != head || info.Size == 0 {
		t.Fatalf("Snapshot = %+v, %v; want position %d", info, err, head)
	}
	if _, err := Snapshot(ctx, Config{Logger: quiet, DataDir: dirA}, snap); err == nil {
		t.Error("Snapshot over an existing file succeeded")
	}
	register(base, "carol@example.com")
	after, _ := a.store.Head(ctx)
	if err := a.runner.WaitFor(ctx, after); err != nil {
		t.Fatal(err)
	}
	wantStreams := streamIDs(t, a)
	stopA()

	start := func(dir string, rm ReadModelsConfig) (*App, error) {
		return New(ctx, Config{Logger: quiet, Listener: listen(t), DataDir: dir, Argon2MemoryKiB: 8192, Argon2Iterations: 1, ReadModels: rm})
	}
	serve := func(a *App) *App {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		waitServing(t, a.URL())
		return a
	}
	check := func(name string, b *App) {
		t.Helper()
		if !fromSnapshot(t, b) {
			t.Errorf("%s: the read models were not installed from the snapshot", name)
		}
		if err := b.runner.WaitFor(ctx, after); err != nil {
			t.Fatal(err)
		}
		got := streamIDs(t, b)
		if len(got) != len(wantStreams) {
			t.Errorf("%s: %d streams, want %d (caught up after the snapshot)", name, len(got), len(wantStreams))
		}
		for s := range wantStreams {
			if !got[s] {
				t.Errorf("%s: stream %s missing", name, s)
			}
		}
	}

	// A file: round trip and catch-up.
	dirB := copyLog(t, dirA)
	b, err := start(dirB, ReadModelsConfig{From: snap})
	if err != nil {
		t.Fatalf("start from the snapshot file: %v", err)
	}
	check("file", serve(b))

	// Refusals: each is one line naming the problem, and leaves no read-model file behind.
	refused := func(name, dir string, rm ReadModelsConfig, want string) {
		t.Helper()
		before, _ := os.ReadDir(dir)
		a, err := start(dir, rm)
		if err == nil {
			a.Close()
			t.Errorf("%s: started", name)
			return
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "--read-models-from") {
			t.Errorf("%s: %q, want one line with %q", name, err, want)
		}
		made, _ := filepath.Glob(filepath.Join(dir, "projections*.db*"))
		ptr, _ := filepath.Glob(filepath.Join(dir, projections.CurrentFile))
		if len(ptr) != 0 || len(made) != 0 {
			after, _ := os.ReadDir(dir)
			t.Errorf("%s: read-model files left: %v %v (before %v, after %v)", name, made, ptr, before, after)
		}
	}
	wrongSchema := filepath.Join(t.TempDir(), "schema.db")
	copyFile(t, snap, wrongSchema)
	db, err := sql.Open("sqlite", wrongSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE read_model_snapshot SET schema_version = '0-0000000000000000'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	refused("wrong schema", copyLog(t, dirA), ReadModelsConfig{From: wrongSchema}, "schema version is 0-0000000000000000")

	otherLog := filepath.Join(t.TempDir(), "data")
	seed(t, otherLog, 3)
	refused("wrong log", otherLog, ReadModelsConfig{From: snap}, "made from another log")

	raw, _ := os.ReadFile(snap)
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	if err := os.WriteFile(truncated, raw[:len(raw)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	refused("truncated", copyLog(t, dirA), ReadModelsConfig{From: truncated}, "truncated")
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("not SQLite", copyLog(t, dirA), ReadModelsConfig{From: garbage}, "not an SQLite file")

	// The URL of a running instance (A again, on the same log), with an admin's token.
	cfgA.Listener = listen(t)
	a2, _ := runApp(t, cfgA)
	waitServing(t, a2.URL())
	url = a2.URL() + "/api/v1/admin/read-models/snapshot"
	refused("no token", copyLog(t, dirA), ReadModelsConfig{From: url}, "401")
	refused("non-admin token", copyLog(t, dirA), ReadModelsConfig{From: url, Token: ann}, "403")
	c, err := start(copyLog(t, dirA), ReadModelsConfig{From: url, Token: boss})
	if err != nil {
		t.Fatalf("start from the URL: %v", err)
	}
	check("url", serve(c))

	// A restart of an instance that has read models does not use the snapshot again.
	has, err := projections.HasReadModels(ctx, dirB)
	if err != nil || !has {
		t.Fatalf("HasReadModels(%s) = %v, %v", dirB, has, err)
	}
}
