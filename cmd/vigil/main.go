// Command vigil runs Vigil, the event-sourced account-security service. `vigil serve` (also
// what `vigil` alone does) serves the HTTP API; `vigil --help` lists every flag and the
// environment variable beside it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{lookup: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}
