package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/handlers/apidoc"
)

// apiReferencePath is the generated API reference, relative to this package.
const apiReferencePath = "../../docs/API.md"

var updateAPIReference = flag.Bool("update", false, "rewrite docs/API.md from the route registry")

// referenceFlags is serveOptions for the reference's "Running" table.
func referenceFlags() []apidoc.ReferenceFlag {
	out := make([]apidoc.ReferenceFlag, 0, len(serveOptions))
	for _, o := range serveOptions {
		def := o.Def
		if def != "" {
			def = "`" + def + "`"
		} else if o.DefHelp != "none" {
			def = o.DefHelp
		}
		out = append(out, apidoc.ReferenceFlag{Flag: o.Flag, Env: o.Env, Default: def, Help: o.Help})
	}
	return out
}

// TestAPIReferenceIsUpToDate renders the API reference from a server built the way `vigil
// serve` builds it (so every route is registered: the read side, service tokens, the
// compliance stream, webhooks) and compares it with docs/API.md; -update rewrites the file.
func TestAPIReferenceIsUpToDate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), app.Config{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Listener: ln,
		DataDir:  filepath.Join(t.TempDir(), "data"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got, err := a.APIReference(referenceFlags())
	if err != nil {
		t.Fatal(err)
	}
	if *updateAPIReference {
		if err := os.WriteFile(apiReferencePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(apiReferencePath)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("docs/API.md is out of date: run `go test ./cmd/vigil -run TestAPIReferenceIsUpToDate -update` (%v)", err)
	}
}
