package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/internal/cli/clitest"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

// TestEveryCommandHasItsOwnHelp: each command and group prints its own usage line, and every
// flag of its own in one format (double dash, then the variable), on stdout with exit 0.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	clitest.CheckHelp(t, func(args ...string) (int, string, string) { return runCmd(t, args...) }, []clitest.HelpCase{
		{Args: []string{"--help"}, Usage: "Usage: vigil [command] [flags]", Options: serveOptions, Has: []string{"  serve ", "  projections rebuild ", "Flags of serve"}},
		{Args: []string{"help"}, Usage: "Usage: vigil [command] [flags]", Options: serveOptions},
		{Args: []string{"serve", "--help"}, Usage: "Usage: vigil serve [flags]", Options: serveOptions},
		{Args: []string{"serve", "-h"}, Usage: "Usage: vigil serve [flags]", Options: serveOptions},
		{Args: []string{"projections", "--help"}, Usage: "Usage: vigil projections <command> [flags]", Has: []string{"  projections rebuild "}},
		{Args: []string{"projections", "rebuild", "--help"}, Usage: "Usage: vigil projections rebuild [flags]", Options: serveOptions},
		{Args: []string{"verify", "--help"}, Usage: "Usage: vigil verify [flags]", Options: verifyOptions},
		{Args: []string{"log", "--help"}, Usage: "Usage: vigil log <command> [flags]", Has: []string{"  log export ", "  log rotate-key ", "  log migrate "}},
		{Args: []string{"log", "export", "--help"}, Usage: "Usage: vigil log export [flags]", Options: exportOptions},
		{Args: []string{"log", "rotate-key", "--help"}, Usage: "Usage: vigil log rotate-key [flags]", Options: rotateKeyOptions},
		{Args: []string{"log", "migrate", "--help"}, Usage: "Usage: vigil log migrate [flags]", Options: migrateOptions},
		{Args: []string{"ssf", "--help"}, Usage: "Usage: vigil ssf <command> [flags]", Has: []string{"  ssf rotate-key "}},
		{Args: []string{"ssf", "rotate-key", "--help"}, Usage: "Usage: vigil ssf rotate-key [flags]", Options: ssfRotateKeyOptions},
	})
	// The server's help names no development tool (they are cmd/vigil-dev).
	_, rootHelp, _ := runCmd(t, "--help")
	if strings.Contains(rootHelp, "dev") || strings.Contains(rootHelp, "--accounts") {
		t.Errorf("vigil --help mentions the development tools:\n%s", rootHelp)
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		args  []string
		first string // the first line on stderr
		usage string // a later line on stderr
	}{
		{[]string{"frobnicate"}, `vigil: unknown command "frobnicate"; the commands are serve, projections rebuild, projections snapshot, verify, log export, log rotate-key, log migrate, ssf rotate-key`, "Usage: vigil [command] [flags]"},
		{[]string{"projections"}, `vigil: projections needs a command: projections rebuild, projections snapshot`, "Usage: vigil projections <command> [flags]"},
		{[]string{"projections", "frob"}, `vigil: unknown command "projections frob"; the commands are projections rebuild, projections snapshot`, "Usage: vigil projections <command> [flags]"},
		{[]string{"projections", "rebuild", "extra"}, `vigil: projections rebuild: unexpected argument "extra"`, "Usage: vigil projections rebuild [flags]"},
		{[]string{"projections", "rebuild", "--data-dir"}, `vigil: projections rebuild: flag --data-dir needs a value`, "Usage: vigil projections rebuild [flags]"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, tt.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != cli.ExitUsage || out != "" || first != tt.first || !strings.Contains(errOut, "\n"+tt.usage+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant first line %q and %q", tt.args, code, out, errOut, tt.first, tt.usage)
		}
	}
}

// TestDevPointsToVigilDev: the development tools moved to cmd/vigil-dev; `vigil dev ...`
// says so in one line and exits 2.
func TestDevPointsToVigilDev(t *testing.T) {
	for _, tt := range []struct {
		args []string
		sub  string
	}{
		{[]string{"dev"}, "seed"},
		{[]string{"dev", "seed", "--accounts", "10"}, "seed"},
		{[]string{"dev", "load", "--data-dir", "x"}, "load"},
		{[]string{"dev", "--help"}, "seed"},
		{[]string{"help", "dev", "load"}, "load"},
	} {
		code, out, errOut := runCmd(t, tt.args...)
		want := "vigil: the development tools moved: go run ./cmd/vigil-dev " + tt.sub + " ... (or the built vigil-dev binary)\n"
		if code != cli.ExitUsage || out != "" || errOut != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, code, out, errOut, want)
		}
	}
}

// TestStartUpFailuresAreOneLine: the real command's stderr for an unreachable KurrentDB and a
// plain-http LAN public URL is the one line naming the flag, and no secret key is made.
func TestStartUpFailuresAreOneLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--store", "kurrentdb://127.0.0.1:1?tls=false"}, []string{"vigil: --store: "}},
		{[]string{"--public-url", "http://192.168.1.5:8080"}, []string{"vigil: --public-url: ", "--insecure-cookies"}},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		start := time.Now()
		code, _, errOut := runCmd(t, append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, tt.args...)...)
		if code != cli.ExitFailure || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, tt.want[0]) || !strings.Contains(errOut, tt.want[len(tt.want)-1]) {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errOut)
		}
		if el := time.Since(start); el > app.DefaultStoreOpenTimeout {
			t.Errorf("%v: took %s", tt.args, el)
		}
		if _, err := os.Stat(filepath.Join(dir, app.SecretKeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: secret key: %v", tt.args, err)
		}
	}
}
