package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
)

// TestProjectionsRebuildWhileServing seeds a log (with the built vigil-dev), serves it, runs `vigil projections rebuild`
// on the same data directory, and checks the progress output, that the server adopted the
// new file (it removes the old one) and is ready on it, and that a restart opens the new file.
//
// The rebuild starts while the server is still applying the seeded log event by event: under
// the race detector on a loaded machine that takes minutes, and the rebuild needs only a
// server with its read models open. The adopted file is caught up with the log by Adopt, so
// the server is ready on it without that wait.
func TestProjectionsRebuildWhileServing(t *testing.T) {
	devBin, err := buildVigilDev()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(devBin, "seed", "--data-dir", dir, "--accounts", "20", "--events", "3000").CombinedOutput(); err != nil {
		t.Fatalf("vigil-dev seed: %v\n%s", err, out)
	}
	url, stop := serveInProcess(t, dir)
	old := filepath.Join(dir, projections.DefaultFile)
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the server serves without its read models file: %v", err)
	}

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"projections", "rebuild", "--data-dir", dir}, cli.Env{Lookup: envMap(), Stdout: &stdout, Stderr: &stderr})
	if code != cli.ExitOK {
		t.Fatalf("projections rebuild: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "rebuilt ") || !strings.Contains(stdout.String(), "swapped in ") {
		t.Errorf("stdout %q", stdout.String())
	}
	if s := stderr.String(); !strings.Contains(s, "100.0%") || !strings.Contains(s, "events/s") || !strings.Contains(s, "ETA") {
		t.Errorf("no progress on stderr: %q", s)
	}
	cur, err := projections.CurrentPath(dir)
	if err != nil || cur == old {
		t.Fatalf("current read models %s, %v", cur, err)
	}
	testwait.Until(t, 10*time.Second, "the server to adopt the rebuilt read models (and remove "+old+")", func() (bool, string) {
		_, err := os.Stat(old)
		_, _, ready := readyz(url)
		return errors.Is(err, os.ErrNotExist), fmt.Sprintf("old file: %v; /readyz %s", err, ready)
	})
	waitReady(t, url)

	// `vigil projections snapshot` of the serving directory: a private file, described.
	snap := filepath.Join(t.TempDir(), "rm.db")
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"projections", "snapshot", "--data-dir", dir, "--out", snap}, cli.Env{Lookup: envMap(), Stdout: &stdout, Stderr: &stderr})
	if code != cli.ExitOK || !strings.Contains(stdout.String(), "wrote "+snap) {
		t.Fatalf("projections snapshot: exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file: %v, %v; want mode 0600", fi, err)
	}
	if _, err := projections.CheckSnapshot(context.Background(), snap, projections.SnapshotWant{
		SchemaVersion: projections.SchemaVersion(projections.Builtin()), LogID: firstEventID(t, dir)}); err != nil {
		t.Errorf("CheckSnapshot: %v", err)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"projections", "snapshot", "--data-dir", dir, "--out", snap}, cli.Env{Lookup: envMap(), Stdout: io.Discard, Stderr: &stderr}); code != cli.ExitFailure || !strings.Contains(stderr.String(), "already exists") {
		t.Errorf("snapshot over an existing file: exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"projections", "snapshot", "--data-dir", dir}, cli.Env{Lookup: envMap(), Stdout: io.Discard, Stderr: &stderr}); code != cli.ExitUsage || !strings.Contains(stderr.String(), "--out") {
		t.Errorf("snapshot without --out: exit %d: %s", code, stderr.String())
	}
	stop()

	// A restart opens the rebuilt file.
	url, stop = serveInProcess(t, dir)
	waitReady(t, url)
	stop()
	if _, err := os.Stat(cur); err != nil {
		t.Fatalf("rebuilt file gone after restart: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	b := newProgressBar(io.Discard, time.Now)
	got := b.line(projections.ReplayProgress{Position: 500, Head: 1000, Events: 250000, Elapsed: 2 * time.Second})
	for _, want := range []string{"[###############...............]", " 50.0%", "250,000 events", "125,000 events/s", "ETA 2s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	if got := groupDigits(-1234567); got != "-1,234,567" {
		t.Errorf("groupDigits = %s", got)
	}
}

// firstEventID reads the id of the first event of dir's SQLite log.
func firstEventID(t *testing.T, dir string) string {
	t.Helper()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := projections.LogID(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
