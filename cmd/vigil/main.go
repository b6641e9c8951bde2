// Command vigil runs Vigil, the event-sourced account-security service. `vigil serve` (also
// what `vigil` alone does) serves the HTTP API; `vigil --help` lists every flag and the
// environment variable beside it. The development tools (seed, load) are cmd/vigil-dev.
package main

import "github.com/vigil-auth/vigil/cmd/internal/cli"

func main() { cli.Main(run) }
