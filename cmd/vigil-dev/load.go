package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// LoadEventType is the type of the synthetic events `vigil-dev load` writes. They go to
// system-load-<n> streams, so no account, session or organisation read model takes them for
// real activity.
const LoadEventType = "LoadGenerated"

// loadOptions are the flags of `vigil-dev load`.
var loadOptions = []cli.Option{
	{Flag: "data-dir", Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "data directory holding events.db"},
	{Flag: "writers", Env: "VIGIL_LOAD_WRITERS", Def: "16", Meta: "N", Help: "concurrent writers, at least 1"},
	{Flag: "events", Env: "VIGIL_LOAD_EVENTS", Def: "0", Meta: "N", Help: "events to append in all; 0 appends until interrupted"},
}

// runLoad appends synthetic events to the embedded store from several goroutines and
// prints "ack <position> <event id>" for every append once it is acknowledged (durable). It
// exists for the crash test and for trying subscriptions against a second writer process.
func runLoad(ctx context.Context, s cli.Settings, e cli.Env) int {
	w, err := cli.ParseInt(s["writers"], 1)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: load: %v\n", err)
		return cli.ExitUsage
	}
	n, err := cli.ParseInt(s["events"], 0)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: load: %v\n", err)
		return cli.ExitUsage
	}
	writers, total, dataDir := int(w), int(n), s["data-dir"].Value
	store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dataDir, app.EventsFile), Logger: cli.NewLogger(e.Stderr)})
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: --data-dir: %v\n", err)
		return cli.ExitFailure
	}
	defer store.Close()

	var (
		mu   sync.Mutex
		out  = bufio.NewWriter(e.Stdout)
		wg   sync.WaitGroup
		fail error
	)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; total == 0 || i < total; i++ {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%sload-%d-%d", domain.StreamPrefixSystem, time.Now().UnixNano(), w)
			for i := range next {
				ev, err := domain.NewEventData(LoadEventType, 1, map[string]int{"n": i, "writer": w},
					domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}, CorrelationID: domain.NewID()})
				if err == nil {
					var res eventstore.AppendResult
					res, err = store.Append(context.WithoutCancel(ctx), stream, eventstore.Any, []domain.EventData{ev})
					if err == nil {
						// Flushed per line: a line on stdout is a promise that the event is durable.
						mu.Lock()
						fmt.Fprintf(out, "ack %d %s\n", res.LastPosition, ev.ID)
						err = out.Flush()
						mu.Unlock()
					}
				}
				if err != nil {
					mu.Lock()
					fail = errors.Join(fail, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		fmt.Fprintf(e.Stderr, "vigil-dev: load: %v\n", fail)
		return cli.ExitFailure
	}
	return cli.ExitOK
}
