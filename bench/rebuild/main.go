// Command rebuild times `vigil projections rebuild` of a data directory in-process, with an
// optional CPU profile: what BENCHMARKS.md's rebuild figures are profiled with.
//
//	go run ./bench/rebuild -data-dir /tmp/seed1m -geoip-city-db /tmp/seed-city.mmdb -cpuprofile /tmp/rebuild.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
)

func main() {
	dir := flag.String("data-dir", "", "data directory holding events.db")
	city := flag.String("geoip-city-db", "", "GeoIP city mmdb")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	pub, _ := url.Parse(app.DefaultPublicURL)
	cfg := app.Config{DataDir: *dir, Store: app.StoreSQLite, GeoIPCityDB: *city, PublicURL: pub,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := app.Rebuild(context.Background(), cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("rebuilt %d events in %s: %.0f events/s\n", res.Events, res.Elapsed, float64(res.Events)/res.Elapsed.Seconds())
}
