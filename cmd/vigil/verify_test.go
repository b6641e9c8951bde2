package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// seedChainedLog writes 20 events to a data directory: odd positions to stream A, even ones to
// stream B (so position 5 is A's version 3 and position 9 its version 5), with checkpoints at
// positions 10 and 20 signed by the directory's key.
func seedChainedLog(t *testing.T) (dir string, keys *chain.KeyRing) {
	t.Helper()
	dir = t.TempDir()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, _, err = chain.EnsureKeyRing(filepath.Join(dir, app.LogSigningKeyFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		stream := "account-a"
		if i%2 == 0 {
			stream = "account-b"
		}
		ev, err := domain.NewEventData("Tested", 1, map[string]int{"n": i}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, IP: "203.0.113.9"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, stream, eventstore.Any, []domain.EventData{ev}); err != nil {
			t.Fatal(err)
		}
		if i == 10 || i == 20 {
			pos, sum, err := st.ChainHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.AppendCheckpoint(ctx, keys.Sign(pos, sum, time.Now())); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, keys
}

// tamper runs SQL statements on the data directory's log, as someone with the file would.
func tamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, app.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func verifyDir(t *testing.T, dir string) (int, string, string) {
	t.Helper()
	return runCmd(t, "verify", "--data-dir", dir)
}

func TestVerifyIntactLog(t *testing.T) {
	dir, _ := seedChainedLog(t)
	code, out, errOut := verifyDir(t, dir)
	if code != cli.ExitOK || out != "verified 20 events up to position 20\n" {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// An empty log verifies too.
	empty := t.TempDir()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(empty, app.EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, _ := verifyDir(t, empty); code != cli.ExitOK || out != "verified 0 events up to position 0\n" {
		t.Fatalf("empty log: exit %d, %q", code, out)
	}
	// No log at all is an error, not a verdict.
	if code, out, errOut := verifyDir(t, filepath.Join(empty, "nope")); code != cli.ExitFailure || out != "" || !strings.Contains(errOut, "--data-dir") {
		t.Fatalf("missing log: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestVerifyFindsTampering edits a real SQLite log the ways someone holding the file could, and
// checks that verify exits 1 naming the right position and what is wrong.
func TestVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(t *testing.T, dir string, keys *chain.KeyRing)
		want  string // the start of stdout
		wantN uint64
	}{
		{"edit a row's data", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `UPDATE events SET data = '{"n":700}' WHERE position = 7`)
		}, "verification failed at position 7: altered: ", 0},
		{"edit a row's metadata", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `UPDATE events SET ip = '198.51.100.1' WHERE position = 12`)
		}, "verification failed at position 12: altered: ", 0},
		{"delete a row", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `DELETE FROM events WHERE position = 7`)
		}, "verification failed at position 7: missing: ", 0},
		{"delete the last rows", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `DELETE FROM events WHERE position >= 19`)
		}, "verification failed at position 20: missing: ", 0},
		{"swap two rows' contents", func(t *testing.T, dir string, _ *chain.KeyRing) {
			cols := "id, stream_id, version, type, schema_version, recorded_at, data, actor_type, actor_id, subject, ip, user_agent, client_id, correlation_id, causation_id, hash"
			tamper(t, dir,
				`CREATE TEMP TABLE r5 AS SELECT `+cols+` FROM events WHERE position = 5`,
				`CREATE TEMP TABLE r9 AS SELECT `+cols+` FROM events WHERE position = 9`,
				`DELETE FROM events WHERE position IN (5, 9)`,
				`INSERT INTO events (position, `+cols+`) SELECT 5, `+cols+` FROM r9`,
				`INSERT INTO events (position, `+cols+`) SELECT 9, `+cols+` FROM r5`)
		}, "verification failed at position 5: reordered: ", 0},
		{"insert a row", func(t *testing.T, dir string, _ *chain.KeyRing) {
			insertForged(t, dir, 7)
		}, "verification failed at position 7: inserted: ", 0},
		{"forge a checkpoint", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `UPDATE checkpoints SET hash = (SELECT lower(hex(hash)) FROM events WHERE position = 9), position = 9 WHERE position = 10`)
		}, "verification failed at position 9: bad signature: ", 0},
		{"sign with a key the server never had", func(t *testing.T, dir string, _ *chain.KeyRing) {
			other, _, err := chain.EnsureKeyRing(filepath.Join(t.TempDir(), "k"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			evs, err := st.ReadAll(context.Background(), 14, 1)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			sum, _ := chain.ParseSum(evs[0].Hash)
			cp := other.Sign(15, sum, time.Now())
			tamper(t, dir, fmt.Sprintf(`INSERT INTO checkpoints VALUES (15, '%s', '%s', '%s', '%s')`, cp.Hash, cp.Time, cp.KeyID, cp.Signature))
		}, "verification failed at position 15: bad signature: ", 0},
		{"rewrite a row and recompute the whole chain", func(t *testing.T, dir string, _ *chain.KeyRing) {
			tamper(t, dir, `UPDATE events SET data = '{"n":300}' WHERE position = 3`)
			rechain(t, dir)
		}, "verification failed at position 10: altered: the chain hash here differs from the checkpoint", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, keys := seedChainedLog(t)
			tc.edit(t, dir, keys)
			code, out, errOut := verifyDir(t, dir)
			if code != cli.ExitFailure || !strings.HasPrefix(out, tc.want) || strings.Count(out, "\n") != 1 {
				t.Fatalf("verify after %s: exit %d, stdout %q (stderr %q); want exit 1 and a line starting %q", tc.name, code, out, errOut, tc.want)
			}
		})
	}
}

// insertForged shifts the rows from position at on by one and inserts an event there whose
// hash is correctly chained to the row before it, as a careful forger would.
func insertForged(t *testing.T, dir string, at uint64) {
	t.Helper()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	prev, err := st.ReadAll(context.Background(), at-2, 1)
	st.Close()
	if err != nil || len(prev) != 1 {
		t.Fatal(prev, err)
	}
	prevSum, _ := chain.ParseSum(prev[0].Hash)
	forged := domain.Envelope{ID: domain.NewID(), StreamID: "account-forged", Version: 1, Position: at, Type: "RoleGranted", SchemaVersion: 1,
		RecordedAt: prev[0].RecordedAt, Data: []byte(`{"role":"admin"}`), Metadata: domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}}}
	sum := chain.Next(prevSum, &forged)
	var stmts []string
	for p := uint64(20); p >= at; p-- {
		stmts = append(stmts, fmt.Sprintf(`UPDATE events SET position = %d WHERE position = %d`, p+1, p))
	}
	stmts = append(stmts, fmt.Sprintf(`INSERT INTO events (position, id, stream_id, version, type, schema_version, recorded_at, data, actor_type, hash)
		VALUES (%d, '%s', '%s', 1, '%s', 1, %d, '%s', 'system', x'%s')`, at, forged.ID, forged.StreamID, forged.Type, forged.RecordedAt.UnixNano(), forged.Data, sum))
	tamper(t, dir, stmts...)
}

// rechain recomputes every stored hash from the rows as they are now.
func rechain(t *testing.T, dir string) {
	t.Helper()
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ReadAll(context.Background(), 0, 1000)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	prev := chain.Zero
	for i := range evs {
		prev = chain.Next(prev, &evs[i])
		stmts = append(stmts, fmt.Sprintf(`UPDATE events SET hash = x'%s' WHERE position = %d`, prev, evs[i].Position))
	}
	tamper(t, dir, stmts...)
}

func publicKey(keys *chain.KeyRing) string { return keys.Keys()[len(keys.Keys())-1].PublicKey }

// TestExportVerifiesAlone: an export verifies with the public key alone, and fails once cut
// short, edited, or checked against another key.
func TestExportVerifiesAlone(t *testing.T) {
	dir, keys := seedChainedLog(t)
	out := filepath.Join(t.TempDir(), "log.jsonl")
	code, stdout, errOut := runCmd(t, "log", "export", "--data-dir", dir, "--out", out)
	if code != cli.ExitOK || stdout != fmt.Sprintf("exported 20 events up to position 20 and 2 checkpoints to %s\n", out) {
		t.Fatalf("log export: exit %d, %q, %q", code, stdout, errOut)
	}
	pub := publicKey(keys)
	if code, stdout, errOut := runCmd(t, "verify", "--export", out, "--public-key", pub); code != cli.ExitOK || stdout != "verified 20 events up to position 20\n" {
		t.Fatalf("verify --export: exit %d, %q, %q", code, stdout, errOut)
	}
	// The key may be given as a file, as GET /api/v1/log/keys answers it.
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(keyFile, []byte(`{"keys":[{"key_id":"x","algorithm":"Ed25519","public_key":"`+pub+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := runCmd(t, "verify", "--export", out, "--public-key", keyFile); code != cli.ExitOK {
		t.Fatalf("verify --export with a key file: exit %d, %q", code, stdout)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, content []byte, key, want string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "x.jsonl")
		if err := os.WriteFile(f, content, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, errOut := runCmd(t, "verify", "--export", f, "--public-key", key)
		if code != cli.ExitFailure || !strings.HasPrefix(stdout, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", name, code, stdout, errOut, want)
		}
	}
	check("cut in the middle of a line", raw[:len(raw)-200], pub, "verification failed at position ")
	lines := bytes.SplitAfter(raw, []byte("\n"))
	check("cut after the 15th event", bytes.Join(lines[:1+2+15], nil), pub, "verification failed at position 16: missing: the export is cut off")
	check("an edited event", bytes.Replace(raw, []byte(`{"n":4}`), []byte(`{"n":5}`), 1), pub, "verification failed at position 4: altered: ")
	check("a dropped event", bytes.Join(append(append([][]byte{}, lines[:1+2+5]...), lines[1+2+6:]...), nil), pub, "verification failed at position 6: missing: ")
	other, _, _ := chain.EnsureKeyRing(filepath.Join(t.TempDir(), "k"), time.Now())
	check("another key", raw, publicKey(other), "verification failed at position 10: bad signature: ")

	// Usage errors exit 2.
	if code, _, errOut := runCmd(t, "verify", "--export", out); code != cli.ExitUsage || !strings.Contains(errOut, "--public-key") {
		t.Errorf("verify --export without a key: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "verify", "--export", out, "--public-key", base64.StdEncoding.EncodeToString([]byte("short"))); code != cli.ExitUsage {
		t.Errorf("verify with a bad key: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd(t, "log", "export", "--data-dir", dir); code != cli.ExitUsage {
		t.Errorf("log export without --out: exit %d", code)
	}
}

// TestRotateKeyKeepsOldCheckpointsVerifiable: after a rotation the old checkpoints still
// verify (the old public key stays in the file) and new ones are signed by the new key.
func TestRotateKeyKeepsOldCheckpointsVerifiable(t *testing.T) {
	dir, old := seedChainedLog(t)
	code, out, errOut := runCmd(t, "log", "rotate-key", "--data-dir", dir)
	if code != cli.ExitOK || !strings.HasPrefix(out, "new log signing key ") || !strings.Contains(out, "1 older public keys stay listed") {
		t.Fatalf("rotate-key: exit %d, %q, %q", code, out, errOut)
	}
	kr, err := chain.LoadKeyRing(filepath.Join(dir, app.LogSigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if kr.ActiveKeyID() == old.ActiveKeyID() || len(kr.Keys()) != 2 || kr.Keys()[0].KeyID != old.ActiveKeyID() || kr.Keys()[0].Algorithm != "Ed25519" {
		t.Fatalf("after rotation: active %s, keys %+v", kr.ActiveKeyID(), kr.Keys())
	}
	st, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := domain.NewEventData("Tested", 1, map[string]int{"n": 21}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if _, err := st.Append(context.Background(), "account-c", eventstore.NoStream, []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	cp, wrote, err := chain.NewCheckpointer(chain.CheckpointerConfig{Log: st, Keys: kr}).Checkpoint(context.Background())
	st.Close()
	if err != nil || !wrote || cp.KeyID != kr.ActiveKeyID() {
		t.Fatalf("checkpoint after rotation: %+v %v %v", cp, wrote, err)
	}
	if code, out, _ := verifyDir(t, dir); code != cli.ExitOK || out != "verified 21 events up to position 21\n" {
		t.Fatalf("verify after rotation: exit %d, %q", code, out)
	}
	if code, _, errOut := runCmd(t, "log", "rotate-key", "--data-dir", t.TempDir()); code != cli.ExitFailure || !strings.Contains(errOut, "no key file") {
		t.Errorf("rotate-key without a key: exit %d, %q", code, errOut)
	}
}

// oldEvent is an event as a Vigil before the hash chain and sealing stored it.
type oldEvent struct {
	stream        string
	version       int
	typ, data     string
	subject       string
	ip, userAgent string
}

// writeOldLog writes events to <dir>/events.db in the layout of a Vigil before the hash chain,
// at positions 1, 2, ... and times a second apart after when; it returns their ids.
func writeOldLog(t *testing.T, dir string, when time.Time, events []oldEvent) []string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, app.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL,
		version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, recorded_at INTEGER NOT NULL, data BLOB NOT NULL,
		actor_type TEXT NOT NULL DEFAULT '', actor_id TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '', ip TEXT NOT NULL DEFAULT '',
		user_agent TEXT NOT NULL DEFAULT '', client_id TEXT NOT NULL DEFAULT '', correlation_id TEXT NOT NULL DEFAULT '',
		causation_id TEXT NOT NULL DEFAULT '', UNIQUE (stream_id, version))`); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, e := range events {
		id := domain.NewID()
		ids = append(ids, id)
		if _, err := db.Exec(`INSERT INTO events (id, stream_id, version, type, schema_version, recorded_at, data, actor_type, subject, ip, user_agent)
			VALUES (?, ?, ?, ?, 1, ?, ?, 'system', ?, ?, ?)`,
			id, e.stream, e.version, e.typ, when.Add(time.Duration(i+1)*time.Second).UnixNano(), e.data, e.subject, e.ip, e.userAgent); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// openSealed opens a data directory's log as serve reads it: through its key store, under
// secretKeyFile (default the directory's).
func openSealed(t *testing.T, dir, secretKeyFile string) *sealed.Store {
	t.Helper()
	raw, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := app.OpenSealing(context.Background(), app.Config{DataDir: dir, Store: app.StoreSQLite, SecretKeyFile: secretKeyFile, Logger: slog.New(slog.DiscardHandler)}, raw)
	if err != nil {
		raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestMigrateOldLog: a log written before the chain is refused by the store with a line naming
// vigil log migrate, and migrate copies it into a chained log that verifies.
func TestMigrateOldLog(t *testing.T) {
	oldDir := t.TempDir()
	oldPath := filepath.Join(oldDir, app.EventsFile)
	when := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	var old []oldEvent
	for i := 1; i <= 30; i++ {
		old = append(old, oldEvent{stream: fmt.Sprintf("account-%d", i%3), version: (i + 2) / 3, typ: "Old", data: fmt.Sprintf(`{"i":%d}`, i), ip: "192.0.2.1"})
	}
	ids := writeOldLog(t, oldDir, when, old)

	_, err := sqlite.Open(sqlite.Config{Path: oldPath})
	if !errors.Is(err, sqlite.ErrUnchained) || !strings.Contains(err.Error(), "vigil log migrate --from "+oldPath+" --to NEW") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("opening an old log: %v; want one line naming vigil log migrate", err)
	}
	newDir := t.TempDir()
	// The old directory's server key is not replaced by a new one, which would not open the
	// secrets sealed under it.
	oldKey := filepath.Join(oldDir, app.SecretKeyFile)
	if _, _, err := app.EnsureSecretKey(oldKey); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "log", "migrate", "--from", oldDir, "--to", newDir, "--data-dir", newDir)
	if code != cli.ExitUsage || !strings.Contains(errOut, "pass --secret-key-file "+oldKey) {
		t.Fatalf("migrate that would make a new server key: exit %d, %q", code, errOut)
	}
	if entries, _ := os.ReadDir(newDir); len(entries) != 0 {
		t.Fatalf("the refused migrate left %v in --data-dir", entries)
	}
	code, out, errOut := runCmd(t, "log", "migrate", "--from", oldDir, "--to", newDir, "--data-dir", newDir, "--secret-key-file", oldKey)
	want := fmt.Sprintf("migrated 30 events of 3 streams (positions 1 to 30) from %s into the chained log %s: "+
		"0 reservation streams renamed by the keyed index (0 kept their name: no email of the log matches them), personal data of 30 events sealed under the keys of %s\n",
		oldPath, filepath.Join(newDir, app.EventsFile), newDir)
	if code != cli.ExitOK || out != want {
		t.Fatalf("migrate: exit %d, %q, %q; want %q", code, out, errOut, want)
	}
	if code, out, _ := verifyDir(t, newDir); code != cli.ExitOK || out != "verified 30 events up to position 30\n" {
		t.Fatalf("verify after migrate: exit %d, %q", code, out)
	}
	st := openSealed(t, newDir, oldKey)
	evs, err := st.ReadAll(context.Background(), 0, 100)
	if err != nil || len(evs) != 30 {
		t.Fatal(len(evs), err)
	}
	for i, e := range evs {
		if e.ID != ids[i] || e.Position != uint64(i+1) || e.StreamID != fmt.Sprintf("account-%d", (i+1)%3) || e.Version != uint64(i+3)/3 ||
			!e.RecordedAt.Equal(when.Add(time.Duration(i+1)*time.Second)) || e.Metadata.IP != "192.0.2.1" || e.Hash == "" {
			t.Fatalf("migrated event %d: %+v", i, e)
		}
	}
	// Appends continue the chain after the migrated events.
	ev, _ := domain.NewEventData("New", 1, map[string]int{}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	if res, err := st.Append(context.Background(), "account-new", eventstore.NoStream, []domain.EventData{ev}); err != nil || res.LastPosition != 31 {
		t.Fatalf("append after migrate: %+v %v", res, err)
	}
	// Migrating into a log that holds events, or from a chained log, is refused.
	if code, _, errOut := runCmd(t, "log", "migrate", "--from", oldDir, "--to", newDir, "--data-dir", newDir, "--secret-key-file", oldKey); code != cli.ExitFailure || !strings.Contains(errOut, "already holds events") {
		t.Errorf("migrate into a used log: exit %d, %q", code, errOut)
	}
	other := t.TempDir()
	if code, _, errOut := runCmd(t, "log", "migrate", "--from", newDir, "--to", other, "--data-dir", other); code != cli.ExitFailure || !strings.Contains(errOut, "nothing to migrate") {
		t.Errorf("migrate a chained log: exit %d, %q", code, errOut)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestMigrateSealsAndRenames: the copy of an old log holds no personal value in clear, nor the
// unkeyed hash of an email; served over the new directory it opens them, and the email's
// reservation, renamed by the keyed index, still holds the email (registering it again is 409).
func TestMigrateSealsAndRenames(t *testing.T) {
	const (
		email, first, last = "ada.migrated@example.com", "Augustina", "Byronesque"
		ip, userAgent      = "198.51.100.77", "OldBrowser/1.0 (Analytical Engine)"
		unknown            = "listed.admin@example.net" // a bootstrap email no account of the log holds
	)
	account := domain.NewID()
	at := `"at":"2024-03-01T12:00:00Z"`
	oldDir, newDir := t.TempDir(), t.TempDir()
	writeOldLog(t, oldDir, time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), []oldEvent{
		{stream: "system-email-" + sha256Hex(email), version: 1, typ: domain.EventEmailReserved, data: `{"account_id":"` + account + `",` + at + `}`, subject: account, ip: ip, userAgent: userAgent},
		{stream: domain.AccountStream(account), version: 1, typ: domain.EventAccountRegistered, subject: account, ip: ip, userAgent: userAgent,
			data: `{"account_id":"` + account + `","email":"` + email + `","first_name":"` + first + `","last_name":"` + last + `","password_hash":"x",` + at + `}`},
		{stream: "system-admin-bootstrap-" + sha256Hex(email), version: 1, typ: domain.EventAdminBootstrapClaimed, data: `{"account_id":"` + account + `",` + at + `}`},
		{stream: "system-admin-bootstrap-" + sha256Hex(unknown), version: 1, typ: domain.EventAdminBootstrapClaimed, data: `{"account_id":"` + domain.NewID() + `",` + at + `}`},
	})
	code, out, errOut := runCmd(t, "log", "migrate", "--from", oldDir, "--to", newDir, "--data-dir", newDir)
	if code != cli.ExitOK || !strings.Contains(out, "migrated 4 events of 4 streams (positions 1 to 4)") ||
		!strings.Contains(out, ": 2 reservation streams renamed by the keyed index (1 kept their name") || !strings.Contains(out, "personal data of 2 events sealed") {
		t.Fatalf("migrate: exit %d, %q, %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(newDir, app.SecretKeyFile)); err != nil {
		t.Fatalf("migrate made no server key in --data-dir: %v", err)
	}
	if code, out, _ := verifyDir(t, newDir); code != cli.ExitOK || out != "verified 4 events up to position 4\n" {
		t.Fatalf("verify after migrate: exit %d, %q", code, out)
	}
	// Nothing personal in clear in the new log's files, nor the unkeyed hash of the email.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(newDir, app.EventsFile+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if suffix == "" && !bytes.Contains(b, []byte(account)) {
			t.Fatalf("events.db (%d bytes) does not even hold the account id", len(b))
		}
		for _, v := range []string{email, first, last, ip, userAgent, sha256Hex(email)} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s%s holds %q in clear", app.EventsFile, suffix, v)
			}
		}
	}

	// Read as serve reads it, the log gives them back; the reservation and the bootstrap are
	// under the keyed index, the bootstrap of an email the log does not know as it was.
	st := openSealed(t, newDir, "")
	ctx := context.Background()
	reg, err := st.ReadStream(ctx, domain.AccountStream(account), 1, 0)
	if err != nil || len(reg) != 1 {
		t.Fatalf("read the account: %d events, %v", len(reg), err)
	}
	var d map[string]any
	if err := json.Unmarshal(reg[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if d["email"] != email || d["first_name"] != first || d["last_name"] != last || reg[0].Metadata.IP != ip || reg[0].Metadata.UserAgent != userAgent {
		t.Errorf("the registration reads %s %+v", reg[0].Data, reg[0].Metadata)
	}
	key, err := app.ReadSecretKey(filepath.Join(newDir, app.SecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := credential.NewKeyring(credential.KeyringConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for stream, typ := range map[string]string{
		domain.EmailStream(kr.Index("email", email)):                    domain.EventEmailReserved,
		domain.AdminBootstrapStream(kr.Index("admin-bootstrap", email)): domain.EventAdminBootstrapClaimed,
		"system-admin-bootstrap-" + sha256Hex(unknown):                  domain.EventAdminBootstrapClaimed,
	} {
		if evs, err := st.ReadStream(ctx, stream, 1, 0); err != nil || len(evs) != 1 || evs[0].Type != typ {
			t.Errorf("stream %s: %d events, %v; want one %s", stream, len(evs), err, typ)
		}
	}
	st.Close()

	// A log sealed already (the copy, its chain taken off) is refused, not sealed twice.
	twiceDir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(newDir, app.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(twiceDir, app.EventsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	tamper(t, twiceDir, `ALTER TABLE events DROP COLUMN hash`, `DROP TABLE checkpoints`)
	if code, _, errOut := runCmd(t, "log", "migrate", "--from", twiceDir, "--to", t.TempDir(), "--data-dir", newDir); code != cli.ExitFailure || !strings.Contains(errOut, "already holds sealed values") {
		t.Errorf("migrate a sealed log again: exit %d, %q", code, errOut)
	}

	// A server over the new directory finds the reservation: the email is taken.
	url, stop := serveInProcess(t, newDir, "--argon2-memory-kib", "8192", "--argon2-iterations", "1")
	defer stop()
	waitReady(t, url)
	for addr, want := range map[string]int{email: http.StatusConflict, "someone.new@example.com": http.StatusCreated} {
		body := fmt.Sprintf(`{"email":%q,"password":"a long and unusual passphrase 7","first_name":"N","last_name":"M"}`, addr)
		resp, err := http.Post(url+"/api/v1/accounts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("register %s on a server over the migrated log: %d, want %d", addr, resp.StatusCode, want)
		}
	}
}
