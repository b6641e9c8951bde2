// Command vigil-dev holds Vigil's development tools, which the server binary does not carry:
// `vigil-dev seed` writes a realistic synthetic history (and, with --city-db, an mmdb that
// locates it) and `vigil-dev load` appends synthetic events from several goroutines, for the
// crash test and benchmarks. `vigil-dev --help` lists the commands; each command's --help its
// flags and the environment variable beside each.
//
//	go run ./cmd/vigil-dev seed --data-dir ./vigil-data --accounts 1000 --events 100000
package main

import (
	"context"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
)

func main() { cli.Main(run) }

// program is vigil-dev's command tree.
var program = cli.Program{
	Name: "vigil-dev",
	Root: cli.Command{Summary: "Vigil's development tools, which write synthetic events to the embedded store; the server binary (vigil) does not carry them"},
	Commands: []cli.Command{
		{Name: "load", Summary: "append synthetic events to the embedded store, printing each acknowledged position", Options: loadOptions, Run: runLoad},
		{Name: "seed", Summary: "write a realistic synthetic history (accounts, sign-ins, failures, credential changes) to the embedded store", Options: seedOptions, Run: runSeed},
	},
}

// run is the whole program (see cli.Program.Run).
func run(ctx context.Context, args []string, e cli.Env) int { return program.Run(ctx, args, e) }
