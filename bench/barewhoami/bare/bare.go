// Package bare is the baseline of Vigil's whoami benchmarks: a bare net/http handler that
// answers a fixed body with the headers of Vigil's whoami answer (no routing, authentication,
// logging or metrics). bench/barewhoami serves it beside Vigil (bench/whoami.sh);
// BenchmarkWhoamiHandler calls it in process beside Vigil's handler.
package bare

import (
	"net/http"
	"strconv"
)

// Handler answers every request that has an Authorization header with body, 401 otherwise.
func Handler(body []byte) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Request-Id", "01a236ad-aa50-78e7-94d4-af7c1ba1baee")
		h.Set("Content-Length", length)
		_, _ = w.Write(body)
	})
}
