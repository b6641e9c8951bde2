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

	"github.com/vigil-auth/vigil/bench/barewhoami/bare"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	bodyFile := flag.String("body", "", "file holding the JSON body to answer (Vigil's whoami answer)")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("GET /api/v1/whoami", bare.Handler(body))
	log.Fatal(http.ListenAndServe(*addr, nil))
}
