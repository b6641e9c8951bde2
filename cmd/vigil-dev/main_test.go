package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/internal/cli/clitest"
)

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// runCmd runs the program with args and an environment of lookup.
func runCmd(t *testing.T, lookup func(string) (string, bool), args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, cli.Env{Lookup: lookup, Stdout: &out, Stderr: &errOut})
	return code, out.String(), errOut.String()
}

// TestEveryCommandHasItsOwnHelp: vigil-dev and each of its commands print their own usage
// line and every flag of their own in one format (double dash, then the variable), on stdout
// with exit 0.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	clitest.CheckHelp(t, func(args ...string) (int, string, string) { return runCmd(t, noEnv, args...) }, []clitest.HelpCase{
		{Args: []string{"--help"}, Usage: "Usage: vigil-dev <command> [flags]", Has: []string{"  load ", "  seed ", "`vigil-dev <command> --help`"}},
		{Args: []string{"help"}, Usage: "Usage: vigil-dev <command> [flags]"},
		{Args: []string{"seed", "--help"}, Usage: "Usage: vigil-dev seed [flags]", Options: seedOptions},
		{Args: []string{"seed", "-h"}, Usage: "Usage: vigil-dev seed [flags]", Options: seedOptions},
		{Args: []string{"load", "--help"}, Usage: "Usage: vigil-dev load [flags]", Options: loadOptions},
		{Args: []string{"help", "seed"}, Usage: "Usage: vigil-dev seed [flags]", Options: seedOptions},
	})
	_, seedHelp, _ := runCmd(t, noEnv, "seed", "--help")
	_, loadHelp, _ := runCmd(t, noEnv, "load", "--help")
	if strings.Contains(seedHelp, "$VIGIL_LOAD_") || strings.Contains(loadHelp, "--accounts") {
		t.Error("a command's help shows another command's flags")
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		args  []string
		first string // the first line on stderr
		usage string // a later line on stderr
	}{
		{nil, `vigil-dev needs a command: load, seed`, "Usage: vigil-dev <command> [flags]"},
		{[]string{"frob"}, `vigil-dev: unknown command "frob"; the commands are load, seed`, "Usage: vigil-dev <command> [flags]"},
		{[]string{"--data-dir", "x"}, `vigil-dev needs a command: load, seed`, "Usage: vigil-dev <command> [flags]"},
		{[]string{"seed", "--bogus"}, `vigil-dev: seed: unknown flag --bogus`, "Usage: vigil-dev seed [flags]"},
		{[]string{"load", "extra"}, `vigil-dev: load: unexpected argument "extra"`, "Usage: vigil-dev load [flags]"},
		{[]string{"load", "--data-dir"}, `vigil-dev: load: flag --data-dir needs a value`, "Usage: vigil-dev load [flags]"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, noEnv, tt.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != cli.ExitUsage || out != "" || first != tt.first || !strings.Contains(errOut, "\n"+tt.usage+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant first line %q and %q", tt.args, code, out, errOut, tt.first, tt.usage)
		}
	}
	// A bad value is one line without the usage, naming the flag (and the variable).
	lookup := func(k string) (string, bool) { return "0", k == "VIGIL_LOAD_WRITERS" }
	code, _, errOut := runCmd(t, lookup, "load", "--data-dir", t.TempDir())
	if code != cli.ExitUsage || errOut != "vigil-dev: load: --writers (from VIGIL_LOAD_WRITERS): 0 is below the minimum of 1\n" {
		t.Errorf("bad variable: exit %d, stderr %q", code, errOut)
	}
}
