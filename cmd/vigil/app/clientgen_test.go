package app

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// oapiClientModule is the module of TestGeneratedGoClient: its go.mod pins oapi-codegen
// (a tool dependency) and its runtime, its main.go uses the client generated beside it.
// A module of its own, so that the generator's dependencies stay out of Vigil's build.
const oapiClientModule = "testdata/oapiclient"

// TestGeneratedGoClient is what a relying application does with /openapi.json: it generates
// a Go client with oapi-codegen (default options: types and client), compiles it (go vet,
// go build) and runs a program on it against the real server: sign up, sign in, whoami, the
// sessions, sign out. It needs the Go toolchain and the module proxy (or a module cache
// with oapi-codegen v2.8.2 and runtime v1.9.0).
func TestGeneratedGoClient(t *testing.T) {
	goBin := goToolchain(t)
	start := time.Now()

	ln := listen(t)
	a, stop := runApp(t, Config{
		Logger:           slog.New(slog.DiscardHandler),
		Listener:         ln,
		DataDir:          filepath.Join(t.TempDir(), "data"),
		Argon2MemoryKiB:  8192,
		Argon2Iterations: 1,
	})
	defer stop()
	base := a.URL()
	waitServing(t, base)

	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		data, err := os.ReadFile(filepath.Join(oapiClientModule, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, doc := get(t, base+"/openapi.json")
	if code != http.StatusOK {
		t.Fatalf("/openapi.json: %d", code)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "vigilclient"), 0o755); err != nil {
		t.Fatal(err)
	}

	goCmd(t, goBin, dir, "tool", "oapi-codegen", "-generate", "types,client", "-package", "vigilclient",
		"-o", "vigilclient/client.gen.go", "openapi.json")
	generated := time.Now()
	goCmd(t, goBin, dir, "vet", "./...")
	goCmd(t, goBin, dir, "build", "-o", "roundtrip", ".")
	built := time.Now()

	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	out, err := exec.CommandContext(rctx, filepath.Join(dir, "roundtrip"), base).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "round trip ok") {
		t.Fatalf("the program on the generated client failed (%v):\n%s", err, out)
	}
	t.Logf("generated in %s, vetted and built in %s, round trip in %s",
		generated.Sub(start).Round(time.Millisecond), built.Sub(generated).Round(time.Millisecond), time.Since(built).Round(time.Millisecond))
}

// goToolchain finds the go command of the toolchain running the tests; without one the test
// cannot build a client, and skips (fails under VIGIL_REQUIRE_ALL=1).
func goToolchain(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_ALL") == "1" {
			t.Fatalf("no go command to build the generated client with, and VIGIL_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("skipped: no go command to build the generated client with (%v)", err)
	}
	return p
}

// goCmd runs the go command in dir, a module of its own (no workspace), and fails the test
// with its output.
func goCmd(t *testing.T, goBin, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
