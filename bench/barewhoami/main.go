// Command barewhoami is the baseline of bench/whoami.sh: a bare net/http server answering
// GET /api/v1/whoami with a fixed body and the headers of Vigil's whoami answer (no routing,
// authentication, logging or metrics), so that Vigil's rate reads as a share of what net/http
// itself serves on the same machine.
//
//	go run ./bench/barewhoami -addr 127.0.0.1:18081 -body body.json
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	bodyFile := flag.String("body", "", "file holding the JSON body to answer (Vigil's whoami answer)")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	length := strconv.Itoa(len(body))
	http.HandleFunc("GET /api/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
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
	log.Fatal(http.ListenAndServe(*addr, nil))
}
