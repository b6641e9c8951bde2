// Package clitest checks a command's help for the tests of the commands built on
// cmd/internal/cli, so that every command is held to the one format the same way.
package clitest

import (
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
)

// HelpCase is one help request: the arguments, the usage line the help must start with, the
// options it must list (flag and variable) and further text it must hold.
type HelpCase struct {
	Args    []string
	Usage   string
	Options []cli.Option
	Has     []string
}

// CheckHelp runs each case through run (which answers exit code, stdout and stderr) and
// fails unless the help is on stdout with exit 0, starts with the usage line, lists every
// option as "--flag" beside "$VARIABLE", holds the further text, and has no single-dash flag
// line in the format of Go's flag package.
func CheckHelp(t *testing.T, run func(args ...string) (code int, stdout, stderr string), cases []HelpCase) {
	t.Helper()
	for _, tt := range cases {
		code, out, errOut := run(tt.Args...)
		if code != cli.ExitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.Args, code, errOut)
		}
		if first, _, _ := strings.Cut(out, "\n"); first != tt.Usage {
			t.Errorf("%v: first line %q, want %q", tt.Args, first, tt.Usage)
		}
		for _, o := range tt.Options {
			if !strings.Contains(out, "  --"+o.Flag+" ") || !strings.Contains(out, " $"+o.Env+" ") {
				t.Errorf("%v: help lacks --%s or $%s:\n%s", tt.Args, o.Flag, o.Env, out)
			}
		}
		for _, h := range tt.Has {
			if !strings.Contains(out, h) {
				t.Errorf("%v: help lacks %q:\n%s", tt.Args, h, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--") {
				t.Errorf("%v: single-dash line %q", tt.Args, line)
			}
		}
	}
}
