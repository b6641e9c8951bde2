package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/projections"
)

// TestProjectionsRebuildWhileServing seeds a log (with the built vigil-dev), serves it, runs `vigil projections rebuild`
// on the same data directory, and checks the progress output, that the server adopted the
// new file (it removes the old one) and stays ready, and that a restart opens the new file.
func TestProjectionsRebuildWhileServing(t *testing.T) {
	devBin, err := buildVigilDev()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(devBin, "seed", "--data-dir", dir, "--accounts", "20", "--events", "3000").CombinedOutput(); err != nil {
		t.Fatalf("vigil-dev seed: %v\n%s", err, out)
	}
	waitReady := func(url string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(url + "/readyz")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never 200: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	url, stop := serveInProcess(t, dir)
	waitReady(url)
	old := filepath.Join(dir, projections.DefaultFile)
	if _, err := os.Stat(old); err != nil {
		t.Fatal(err)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not adopt the rebuilt read models")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitReady(url)
	stop()

	// A restart opens the rebuilt file.
	url, stop = serveInProcess(t, dir)
	waitReady(url)
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
