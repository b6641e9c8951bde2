package main

import (
	"net/url"
	"os"
	"strings"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

// Settings of the start from a read-model snapshot (issue 16; API.md "Running").
const (
	optReadModelsFrom      = "read-models-from"
	optReadModelsTokenFile = "read-models-token-file"
)

var readModelsOptions = []cli.Option{
	{Flag: optReadModelsFrom, Env: "VIGIL_READ_MODELS_FROM", Meta: "FILE|URL", DefHelp: "none", Help: "start from a read-model snapshot (a file of vigil projections snapshot, or another instance's /api/v1/admin/read-models/snapshot URL) and catch up from its checkpoint; ignored when the data directory already has read models"},
	{Flag: optReadModelsTokenFile, Env: "VIGIL_READ_MODELS_TOKEN_FILE", Meta: "FILE", DefHelp: "none", Help: "a file holding an admin's session token, sent as a bearer token when --read-models-from is a URL"},
}

func init() { serveOptions = append(serveOptions, readModelsOptions...) }

// validateReadModels checks the snapshot settings: a readable file, or an http(s) URL
// without credentials in it (the token comes from --read-models-token-file).
func validateReadModels(s cli.Settings) (app.ReadModelsConfig, error) {
	var rm app.ReadModelsConfig
	from := s[optReadModelsFrom]
	rm.From = strings.TrimSpace(from.Value)
	if tf := s[optReadModelsTokenFile]; tf.Value != "" {
		b, err := os.ReadFile(tf.Value)
		if err != nil {
			return rm, tf.Errorf("%v", err)
		}
		rm.Token = strings.TrimSpace(string(b))
		if rm.Token == "" || strings.ContainsAny(rm.Token, " \t\r\n") {
			return rm, tf.Errorf("%s must hold one token", tf.Value)
		}
	}
	switch {
	case rm.From == "":
	case app.IsSnapshotURL(rm.From):
		u, err := url.Parse(rm.From)
		if err != nil || u.Host == "" {
			return rm, from.Errorf("%q is not an http(s) URL", rm.From)
		}
		if u.User != nil {
			return rm, from.Errorf("the URL must not carry credentials: give the token with --%s", optReadModelsTokenFile)
		}
	default:
		if _, err := readableFile(from); err != nil {
			return rm, err
		}
	}
	return rm, nil
}
