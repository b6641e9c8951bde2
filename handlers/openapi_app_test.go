package handlers_test

import (
	"io"
	"testing"

	"github.com/vigil-auth/vigil/handlers"
)

// TestOpenAPINamesOfTheApp: the document of the full app (service tokens, the compliance
// stream, webhooks: every route `vigil serve` has) keeps the naming rule of openapi.go.
func TestOpenAPINamesOfTheApp(t *testing.T) {
	e := newEnv(t)
	res, err := e.http.Get(e.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	doc, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := handlers.OpenAPINamingProblems(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
