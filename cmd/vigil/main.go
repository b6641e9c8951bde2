// Command vigil runs Vigil, the event-sourced account-security service. `vigil serve` (also
// what `vigil` alone does) serves the HTTP API; `vigil --help` lists every flag and the
// environment variable beside it. The development tools (seed, load) are cmd/vigil-dev.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], cli.Env{Lookup: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
