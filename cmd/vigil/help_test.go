package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

// TestEveryCommandHasItsOwnHelp: each command and group prints its own usage line, and every
// flag of its own in one format (double dash, then the variable), on stdout with exit 0.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	tests := []struct {
		args    []string
		usage   string
		options []option
		has     []string // further lines the help holds
	}{
		{[]string{"--help"}, "Usage: vigil [command] [flags]", serveOptions, []string{"  serve ", "  projections rebuild ", "  dev seed ", "  dev load ", "Flags of serve"}},
		{[]string{"help"}, "Usage: vigil [command] [flags]", serveOptions, nil},
		{[]string{"serve", "--help"}, "Usage: vigil serve [flags]", serveOptions, nil},
		{[]string{"serve", "-h"}, "Usage: vigil serve [flags]", serveOptions, nil},
		{[]string{"projections", "--help"}, "Usage: vigil projections <command> [flags]", nil, []string{"  projections rebuild "}},
		{[]string{"projections", "rebuild", "--help"}, "Usage: vigil projections rebuild [flags]", serveOptions, nil},
		{[]string{"dev", "--help"}, "Usage: vigil dev <command> [flags]", nil, []string{"  dev load ", "  dev seed "}},
		{[]string{"dev", "seed", "--help"}, "Usage: vigil dev seed [flags]", devSeedOptions, nil},
		{[]string{"dev", "load", "--help"}, "Usage: vigil dev load [flags]", devLoadOptions, nil},
		{[]string{"help", "dev", "seed"}, "Usage: vigil dev seed [flags]", devSeedOptions, nil},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, tt.args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errOut)
		}
		if first, _, _ := strings.Cut(out, "\n"); first != tt.usage {
			t.Errorf("%v: first line %q, want %q", tt.args, first, tt.usage)
		}
		for _, o := range tt.options {
			if !strings.Contains(out, "  --"+o.flag+" ") || !strings.Contains(out, " $"+o.env+" ") {
				t.Errorf("%v: help lacks --%s or $%s:\n%s", tt.args, o.flag, o.env, out)
			}
		}
		for _, h := range tt.has {
			if !strings.Contains(out, h) {
				t.Errorf("%v: help lacks %q:\n%s", tt.args, h, out)
			}
		}
		// One format: no single-dash flags as Go's flag package prints them.
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
				t.Errorf("%v: single-dash line %q", tt.args, line)
			}
		}
	}
	// Each command's help is its own.
	_, serveHelp, _ := runCmd(t, "serve", "--help")
	_, seedHelp, _ := runCmd(t, "dev", "seed", "--help")
	if strings.Contains(seedHelp, "--public-url") || strings.Contains(serveHelp, "--accounts") {
		t.Error("a command's help shows another command's flags")
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		args  []string
		first string // the first line on stderr
		usage string // a later line on stderr
	}{
		{[]string{"frobnicate"}, `vigil: unknown command "frobnicate"; the commands are serve, projections rebuild, dev load, dev seed`, "Usage: vigil [command] [flags]"},
		{[]string{"dev"}, `vigil: dev needs a command: dev load, dev seed`, "Usage: vigil dev <command> [flags]"},
		{[]string{"projections"}, `vigil: projections needs a command: projections rebuild`, "Usage: vigil projections <command> [flags]"},
		{[]string{"dev", "frob"}, `vigil: unknown command "dev frob"; the commands are dev load, dev seed`, "Usage: vigil dev <command> [flags]"},
		{[]string{"dev", "seed", "--bogus"}, `vigil: dev seed: unknown flag --bogus`, "Usage: vigil dev seed [flags]"},
		{[]string{"dev", "load", "extra"}, `vigil: dev load: unexpected argument "extra"`, "Usage: vigil dev load [flags]"},
		{[]string{"projections", "rebuild", "--data-dir"}, `vigil: projections rebuild: flag --data-dir needs a value`, "Usage: vigil projections rebuild [flags]"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, tt.args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != exitUsage || out != "" || first != tt.first || !strings.Contains(errOut, "\n"+tt.usage+"\n") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant first line %q and %q", tt.args, code, out, errOut, tt.first, tt.usage)
		}
	}
	// A bad value is one line without the usage, naming the flag (and the variable).
	var out, errOut lockedBuffer
	code := run(t.Context(), []string{"dev", "load", "--data-dir", t.TempDir()}, env{lookup: envMap("VIGIL_LOAD_WRITERS", "0"), stdout: &out, stderr: &errOut})
	if code != exitUsage || errOut.String() != "vigil: dev load: --writers (from VIGIL_LOAD_WRITERS): 0 is below the minimum of 1\n" {
		t.Errorf("bad variable: exit %d, stderr %q", code, errOut.String())
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
		if code != exitFailure || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, tt.want[0]) || !strings.Contains(errOut, tt.want[len(tt.want)-1]) {
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
