package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/vigil-auth/vigil/bench/barewhoami/bare"
	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// discardWriter is the cheapest http.ResponseWriter: the headers in a map it keeps, the body
// counted, so a benchmark measures the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkWhoamiHandler measures what Vigil's handler chain costs per whoami, without
// net/http's connection handling (which bench/whoami.sh measures from outside, against
// bench/barewhoami): sub-benchmark "vigil" serves a signed-in session's GET /api/v1/whoami
// through the server's handler (routing, request id, logging, metrics, authentication, the
// answer), "bare" a handler setting the same headers and writing the same body. The
// difference is Vigil's own work per request. The "-parallel" ones serve it from
// GOMAXPROCS goroutines at once, as a busy server does: what requests on different cores
// cost each other (cache lines both write) shows there and not in the serial ones.
func BenchmarkWhoamiHandler(b *testing.B) {
	srv := handlertest.Start(b, handlertest.Config{})
	post := func(path, body string) *http.Response {
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	post("/api/v1/accounts", `{"email":"bench@example.com","password":"`+testPassword+`","first_name":"Bench","last_name":"Mark"}`).Body.Close()
	resp := post("/api/v1/login", `{"email":"bench@example.com","password":"`+testPassword+`"}`)
	var login struct {
		Token string `json:"session_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil || login.Token == "" {
		b.Fatalf("login: %v %q", err, login.Token)
	}
	resp.Body.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/whoami", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Authorization", "Bearer "+login.Token)
	w := &discardWriter{h: http.Header{}}
	srv.Handler.ServeHTTP(w, req)
	if w.status != http.StatusOK || w.n == 0 {
		b.Fatalf("whoami: %d, %d bytes", w.status, w.n)
	}
	body := bytes.Repeat([]byte{'x'}, w.n)
	bareHandler := bare.Handler(body)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"vigil", srv.Handler}, {"bare", bareHandler}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.h = http.Header{} // net/http gives every request a fresh header map
				w.status = 0
				c.h.ServeHTTP(w, req)
				if w.status != http.StatusOK && w.status != 0 {
					b.Fatalf("status %d", w.status)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := req.Clone(req.Context())
				w := &discardWriter{}
				for pb.Next() {
					w.h = http.Header{}
					w.status = 0
					c.h.ServeHTTP(w, r)
					if w.status != http.StatusOK && w.status != 0 {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
		})
	}
}
