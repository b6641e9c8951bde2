package app

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// BenchmarkWhoamiHandler measures GET /api/v1/whoami through the app's whole HTTP handler
// (middleware, authentication, the in-memory session index, JSON), in process and without
// the network, from GOMAXPROCS goroutines: the hot path of a relying application, with the
// loopback and the load generator taken out so that two builds compare on shared cores.
// bench/whoami.sh measures the same route over TCP with wrk.
func BenchmarkWhoamiHandler(b *testing.B) {
	dir := b.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	a, stop := runApp(b, Config{Logger: discardLogger(), Listener: ln,
		DataDir: filepath.Join(dir, "data"), Argon2MemoryKiB: 8192, Argon2Iterations: 1})
	defer stop()
	waitHealthy(b, a.URL())
	h := a.server.Handler()
	post := func(path, body string) map[string]any {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		if rec.Code >= 300 {
			b.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
		return m
	}
	post("/api/v1/accounts", `{"email":"bench@example.com","password":"umbrella-cactus-violin-47","first_name":"B","last_name":"M"}`)
	token := post("/api/v1/login", `{"email":"bench@example.com","password":"umbrella-cactus-violin-47"}`)["session_token"].(string)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/whoami", nil)
			req.RemoteAddr = "192.0.2.1:1234"
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("whoami: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
