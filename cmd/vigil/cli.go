package main

import (
	"context"
	"fmt"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
)

// program is vigil's command tree; `vigil` alone is serve, with a help that also lists the
// commands. A function, as serveOptions is complete only after the package's init.
func program() cli.Program {
	return cli.Program{
		Name:    "vigil",
		Root:    cli.Command{Summary: "Vigil, the event-sourced account-security service", Options: serveOptions, Run: runServe},
		Default: "serve",
		Commands: append([]cli.Command{
			{Name: "serve", Summary: "run the HTTP server (the default when no command is given)", Options: serveOptions, Run: runServe},
			{Name: "projections", Summary: "maintain the read models"},
			{Name: "projections rebuild", Summary: "rebuild every read model from the log into a fresh file, with a progress bar, and swap it in while a server keeps serving (takes serve's flags)", Options: serveOptions, Run: runProjectionsRebuild},
			{Name: "projections snapshot", Summary: "write a consistent copy of the read models with their checkpoint to --out, for vigil serve --read-models-from (takes serve's flags; a server may be running)", Options: snapshotOptions(), Run: runProjectionsSnapshot},
		}, logCommands...),
	}
}

// run is the whole program (see cli.Program.Run). `vigil dev ...`, where the development
// tools used to be, answers with where they went: cmd/vigil-dev, so that the server binary
// carries no test helpers.
func run(ctx context.Context, args []string, e cli.Env) int {
	words := args
	if len(words) > 0 && words[0] == "help" {
		words = words[1:]
	}
	if len(words) > 0 && words[0] == "dev" {
		sub := "seed"
		if len(words) > 1 && words[1] == "load" {
			sub = "load"
		}
		fmt.Fprintf(e.Stderr, "vigil: the development tools moved: go run ./cmd/vigil-dev %s ... (or the built vigil-dev binary)\n", sub)
		return cli.ExitUsage
	}
	return program().Run(ctx, args, e)
}
