package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
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
	tests := []struct {
		args    []string
		usage   string
		options []cli.Option
		has     []string // further lines the help holds
	}{
		{[]string{"--help"}, "Usage: vigil-dev <command> [flags]", nil, []string{"  load ", "  seed ", "`vigil-dev <command> --help`"}},
		{[]string{"help"}, "Usage: vigil-dev <command> [flags]", nil, nil},
		{[]string{"seed", "--help"}, "Usage: vigil-dev seed [flags]", seedOptions, nil},
		{[]string{"seed", "-h"}, "Usage: vigil-dev seed [flags]", seedOptions, nil},
		{[]string{"load", "--help"}, "Usage: vigil-dev load [flags]", loadOptions, nil},
		{[]string{"help", "seed"}, "Usage: vigil-dev seed [flags]", seedOptions, nil},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, noEnv, tt.args...)
		if code != cli.ExitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errOut)
		}
		if first, _, _ := strings.Cut(out, "\n"); first != tt.usage {
			t.Errorf("%v: first line %q, want %q", tt.args, first, tt.usage)
		}
		for _, o := range tt.options {
			if !strings.Contains(out, "  --"+o.Flag+" ") || !strings.Contains(out, " $"+o.Env+" ") {
				t.Errorf("%v: help lacks --%s or $%s:\n%s", tt.args, o.Flag, o.Env, out)
			}
		}
		for _, h := range tt.has {
			if !strings.Contains(out, h) {
				t.Errorf("%v: help lacks %q:\n%s", tt.args, h, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
				t.Errorf("%v: single-dash line %q", tt.args, line)
			}
		}
	}
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
