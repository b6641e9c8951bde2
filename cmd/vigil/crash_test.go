package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
	"github.com/vigil-auth/vigil/eventstore/testkit"
	"github.com/vigil-auth/vigil/eventstore/testwait"
	"github.com/vigil-auth/vigil/projections"
)

// buildVigil compiles this command once per test binary.
var buildVigil = sync.OnceValues(func() (string, error) { return goBuild("vigil", ".") })

// buildVigilDev compiles the development tools (cmd/vigil-dev: seed, load) once per test
// binary.
var buildVigilDev = sync.OnceValues(func() (string, error) { return goBuild("vigil-dev", "../vigil-dev") })

// goBuild compiles the command in pkg to a temporary file named name.
func goBuild(name, pkg string) (string, error) {
	dir, err := os.MkdirTemp("", "vigil-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

type ack struct {
	pos uint64
	id  string
}

// TestCrashKeepsEveryAcknowledgedAppend runs the real binaries: a server following the log and
// a second process (`vigil-dev load`) appending from 16 goroutines; both are killed with
// SIGKILL mid-stream. Every append that was acknowledged must be in the log at the position it
// was acknowledged with, positions must continue after it, and the restarted server's
// projections must converge on the log. Run it many times with -count (BENCHMARKS.md and the
// issue note say how often).
func TestCrashKeepsEveryAcknowledgedAppend(t *testing.T) {
	bin, err := buildVigil()
	if err != nil {
		t.Fatal(err)
	}
	devBin, err := buildVigilDev()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	serve := startServe(t, bin, dir)

	load := exec.Command(devBin, "load", "--data-dir", dir, "--writers", "16")
	stdout, err := load.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stderr = os.Stderr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	acks := make(chan ack, 1<<16)
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue // a line cut by the kill
			}
			pos, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			acks <- ack{pos, f[2]}
		}
		close(acks)
		readDone <- sc.Err()
	}()

	// Let the load run until a few thousand appends are acknowledged, then kill both
	// processes without warning.
	var got []ack
	limit := testwait.Deadline(20 * time.Second)
	deadline := time.After(limit)
	for len(got) < 3000 {
		select {
		case a, ok := <-acks:
			if !ok {
				t.Fatalf("load process ended early after %d acks", len(got))
			}
			got = append(got, a)
		case <-deadline:
			t.Fatalf("only %d of 3000 acks within %v (%s)", len(got), limit, testwait.Describe())
		}
	}
	_ = load.Process.Signal(syscall.SIGKILL)
	_ = serve.Process.Signal(syscall.SIGKILL)
	_ = load.Wait()
	_ = serve.Wait()
	for a := range acks {
		got = append(got, a)
	}
	<-readDone
	// The chain holds after the kill: the writer of each process chained every row it
	// committed, and the checkpoints the server wrote before it died verify.
	verifyLog(t, bin, dir)

	// Every acknowledged append is there, at its position.
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	byPos := map[uint64]string{}
	var pos, maxAck uint64
	for _, e := range testkit.ReadLog(t, store) {
		byPos[e.Position] = e.ID
		pos = e.Position
	}
	for _, a := range got {
		if byPos[a.pos] != a.id {
			t.Fatalf("acknowledged event %s at position %d is missing after SIGKILL (found %q)", a.id, a.pos, byPos[a.pos])
		}
		maxAck = max(maxAck, a.pos)
	}
	// Positions continue after the crash.
	ev, _ := domain.NewEventData("LoadGenerated", 1, map[string]int{"n": -1}, domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
	res, err := store.Append(ctx, "system-after-crash", eventstore.NoStream, []domain.EventData{ev})
	if err != nil {
		t.Fatalf("append after the crash: %v", err)
	}
	if res.LastPosition <= pos || res.LastPosition <= maxAck {
		t.Fatalf("position after the crash %d does not continue the log (head was %d)", res.LastPosition, pos)
	}
	head := res.LastPosition
	store.Close()
	t.Logf("%d acknowledged appends survived SIGKILL; log head %d", len(got), head)

	// The restarted server's projections converge on the log.
	serve = startServe(t, bin, dir)
	waitCaughtUp(t, serve.url, head)
	checkStreamsMatchLog(t, dir)
	// A kill while serving again, then a clean stop, which signs the head: both verify.
	_ = serve.Process.Signal(syscall.SIGKILL)
	_ = serve.Wait()
	verifyLog(t, bin, dir)
	serve = startServe(t, bin, dir)
	waitCaughtUp(t, serve.url, head)
	_ = serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("vigil serve after SIGTERM: %v", err)
	}
	if out := verifyLog(t, bin, dir); !strings.HasSuffix(out, fmt.Sprintf("up to position %d\n", head)) {
		t.Fatalf("verify after the clean stop: %q, want the head %d", out, head)
	}
	checkHeadSigned(t, dir, head)
}

// verifyLog runs `vigil verify` on the data directory and fails the test unless it passes.
func verifyLog(t *testing.T, bin, dir string) string {
	t.Helper()
	out, err := exec.Command(bin, "verify", "--data-dir", dir).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "verified ") {
		t.Fatalf("vigil verify after a kill: %v\n%s", err, out)
	}
	return string(out)
}

// checkHeadSigned: a clean stop leaves a checkpoint of the head.
func checkHeadSigned(t *testing.T, dir string, head uint64) {
	t.Helper()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cps, err := store.Checkpoints(context.Background(), head-1, 10)
	if err != nil || len(cps) == 0 || cps[len(cps)-1].Position != head {
		t.Fatalf("checkpoints after a clean stop: %+v, %v; want one at the head %d", cps, err, head)
	}
}

type server struct {
	*exec.Cmd
	url string
}

// startServe starts `vigil serve` on a free port and waits for its URL line.
func startServe(t *testing.T, bin, dir string) *server {
	t.Helper()
	// Checkpoints often, so that kills land between and during them.
	return startVigil(t, bin, []string{"VIGIL_CHECKPOINT_INTERVAL=50ms"}, 10*time.Second,
		"serve", "--data-dir", dir, "--addr", "127.0.0.1:0")
}

// startVigil runs bin with args and env added to the environment (a `vigil serve` on a free
// port), kills it when the test ends, and waits up to wait for its "Vigil is serving" line: the
// one way the process tests (crash, mail outbox, cluster) start a server.
func startVigil(t *testing.T, bin string, env []string, wait time.Duration, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Vigil is serving "); ok {
				line <- u
			}
		}
	}()
	u, _ := testwait.Recv(t, wait, "vigil serve to print its URL", line)
	return &server{Cmd: cmd, url: u}
}

// waitCaughtUp polls /readyz until it answers 200 with every projection at head or beyond.
func waitCaughtUp(t *testing.T, url string, head uint64) {
	t.Helper()
	testwait.Until(t, 20*time.Second, fmt.Sprintf("/readyz to answer 200 with every projection at %d", head), func() (bool, string) {
		code, raw, saw := readyz(url)
		var body struct {
			Projections []projections.Status `json:"projections"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &body) != nil || len(body.Projections) == 0 {
			return false, saw
		}
		for _, p := range body.Projections {
			if p.Checkpoint < head {
				return false, saw
			}
		}
		return true, saw
	})
}

// checkStreamsMatchLog compares the stream catalogue read model with the log.
func checkStreamsMatchLog(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, app.EventsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	versions := map[string]uint64{}
	for _, e := range testkit.ReadLog(t, store) {
		versions[e.StreamID] = e.Version
	}
	db, err := projections.Open(projections.Config{Path: filepath.Join(dir, app.ProjectionsFile), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	infos, err := db.StreamInfos(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(versions) {
		t.Fatalf("read model lists %d streams, the log has %d", len(infos), len(versions))
	}
	for _, in := range infos {
		if v := versions[in.StreamID]; in.Version != v || in.Events != v {
			t.Fatalf("stream %s: read model version %d with %d events, log version %d (applied twice or missed after the crash)",
				in.StreamID, in.Version, in.Events, v)
		}
	}
}
