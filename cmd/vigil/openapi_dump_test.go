package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

// TestDumpOpenAPIDocument writes the OpenAPI document that `vigil serve` serves (every
// route registered, the default --public-url) to the file VIGIL_OPENAPI_OUT names, for
// .ci/openapi to lint; without it the test skips.
func TestDumpOpenAPIDocument(t *testing.T) {
	out := os.Getenv("VIGIL_OPENAPI_OUT")
	if out == "" {
		t.Skip("set VIGIL_OPENAPI_OUT=FILE to write the served /openapi.json there (.ci/openapi does)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), app.Config{
		Logger:   slog.New(slog.DiscardHandler),
		Listener: ln,
		DataDir:  filepath.Join(t.TempDir(), "data"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	}()
	res, err := http.Get(a.URL() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	doc, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %v", res.StatusCode, err)
	}
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		t.Fatal(err)
	}
}
