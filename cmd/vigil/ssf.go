package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
)

// The Shared Signals commands (API.md "Shared Signals"): ssf rotate-key.

const optSSFSigningKeyFile = "ssf-signing-key-file"

var (
	ssfSigningKeyOption = cli.Option{Flag: optSSFSigningKeyFile, Env: "VIGIL_SSF_SIGNING_KEY_FILE", Meta: "FILE",
		DefHelp: "<data-dir>/" + app.SSFSigningKeyFile + ", made on first start", Help: "the RS256 key that signs Security Event Tokens"}
	ssfRotateKeyOptions = []cli.Option{
		{Flag: optDataDir, Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "the data directory that holds the default key file"},
		ssfSigningKeyOption,
	}
)

// ssfCommands are the Shared Signals commands, for program().
var ssfCommands = []cli.Command{
	{Name: "ssf", Summary: "the Shared Signals transmitter's signing key"},
	{Name: "ssf rotate-key", Summary: "make a new SET signing key; the old public key stays in the JWK set for 24 hours (a running server signs with the new key after a restart)", Options: ssfRotateKeyOptions, Run: runSSFRotateKey},
}

func runSSFRotateKey(_ context.Context, s cli.Settings, e cli.Env) int {
	path := s[optSSFSigningKeyFile].Value
	if path == "" {
		path = filepath.Join(s[optDataDir].Value, app.SSFSigningKeyFile)
	}
	k, err := ssf.RotateKey(path, time.Now())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no key file at %s (a server makes one on its first start)", path)
		}
		fmt.Fprintf(e.Stderr, "vigil: ssf rotate-key: --%s: %v\n", optSSFSigningKeyFile, err)
		return cli.ExitFailure
	}
	fmt.Fprintf(e.Stdout, "new SSF signing key %s in %s; the replaced public key stays in the JWK set for 24 hours; restart the server to sign with it\n",
		k.ActiveKeyID(), path)
	return cli.ExitOK
}
