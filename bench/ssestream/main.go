// Command ssestream measures the compliance stream under load: N concurrent SSE clients of
// GET /api/v1/events/stream while events are appended at a fixed rate, against a real vigil
// server running as a separate process.
//
//	go build -o /tmp/vigil ./cmd/vigil && go run ./bench/ssestream --vigil /tmp/vigil
//
// It starts the server on a fresh data directory, registers an admin, creates a service
// token, and appends events through the server itself (POST /api/v1/admin/clients, one
// ClientRegistered each, open loop at --rate per second). Then, over the same --window:
//
//  1. no SSE client: the server's CPU time (utime+stime from /proc/<pid>/stat);
//  2. --clients SSE clients: the server's CPU time again, and for every event each client
//     receives, the delivery lag = receive time - the event's recorded time (the store's
//     clock at append; same machine, same clock).
//
// It prints the lag percentiles over all deliveries, deliveries and disconnects, and the
// extra server CPU per client ((cpu2 - cpu1) / clients).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

const password = "umbrella-cactus-violin-47"

// appendMode is --append.
var appendMode string

func main() {
	vigil := flag.String("vigil", "", "path of the vigil binary (required)")
	clients := flag.Int("clients", 100, "concurrent SSE clients")
	rate := flag.Int("rate", 2000, "events appended per second")
	window := flag.Duration("window", 10*time.Second, "measurement window of each phase")
	warmup := flag.Duration("warmup", 2*time.Second, "appending before each window")
	workers := flag.Int("workers", 16, "concurrent appenders")
	mode := flag.String("append", "http", "how events are appended: http (POST /api/v1/admin/clients on the server: "+
		"the server's own appends, delivered without polling) or log (straight into events.db from this process, as a "+
		"second writer: the server sees them within its 25 ms poll interval)")
	flag.Parse()
	if *mode != "http" && *mode != "log" {
		fmt.Fprintln(os.Stderr, "ssestream: --append must be http or log")
		os.Exit(2)
	}
	appendMode = *mode
	if *vigil == "" {
		fmt.Fprintln(os.Stderr, "ssestream: --vigil is required")
		os.Exit(2)
	}
	if err := run(*vigil, *clients, *rate, *window, *warmup, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "ssestream:", err)
		os.Exit(1)
	}
}

func run(vigil string, nClients, rate int, window, warmup time.Duration, workers int) error {
	dir, err := os.MkdirTemp("", "ssestream")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	cmd := exec.Command(vigil, "serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"),
		"--admin-emails", "bench@example.com", "--argon2-memory-kib", "8192", "--argon2-iterations", "1")
	logf, err := os.Create(filepath.Join(dir, "vigil.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = io.Discard, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}, Timeout: 10 * time.Second}
	for i := 0; ; i++ {
		if r, err := hc.Get(base + "/healthz"); err == nil {
			r.Body.Close()
			break
		}
		if i > 200 {
			return errors.New("the server never answered /healthz")
		}
		time.Sleep(50 * time.Millisecond)
	}
	call := func(method, path, bearer string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		r, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		if r.StatusCode >= 300 {
			msg, _ := io.ReadAll(r.Body)
			return fmt.Errorf("%s %s: %d %s", method, path, r.StatusCode, msg)
		}
		if out != nil {
			return json.NewDecoder(r.Body).Decode(out)
		}
		return nil
	}
	if err := call("POST", "/api/v1/accounts", "", map[string]string{"email": "bench@example.com", "password": password, "first_name": "B", "last_name": "M"}, nil); err != nil {
		return err
	}
	var login struct {
		SessionToken string `json:"session_token"`
	}
	if err := call("POST", "/api/v1/login", "", map[string]string{"email": "bench@example.com", "password": password}, &login); err != nil {
		return err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := call("POST", "/api/v1/admin/service-tokens", login.SessionToken, map[string]any{"name": "bench", "scopes": []string{"events:read"}}, &tok); err != nil {
		return err
	}

	// The appender: open loop at rate, spread over workers.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var appended, late, failed atomic.Int64
	jobs := make(chan struct{}, rate)
	appendOne := func() error {
		return call("POST", "/api/v1/admin/clients", login.SessionToken, map[string]string{"name": "bench client"}, nil)
	}
	if appendMode == "log" {
		store, err := sqlite.Open(sqlite.Config{Path: filepath.Join(dir, "data", "events.db"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer store.Close()
		appendOne = func() error {
			id := domain.NewID()
			d, err := domain.NewEventData(domain.EventClientRegistered, 1, domain.ClientRegistered{ClientID: id, Name: "bench client", At: time.Now().UTC()},
				domain.Metadata{Actor: domain.Actor{Type: domain.ActorSystem}})
			if err != nil {
				return err
			}
			_, err = store.Append(ctx, domain.ClientStream(id), expect.NoStream, []domain.EventData{d})
			return err
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := appendOne(); err != nil {
					if ctx.Err() != nil {
						continue // stopping
					}
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first failed append:", err)
					}
					continue
				}
				appended.Add(1)
			}
		}()
	}
	go func() {
		defer close(jobs)
		interval := time.Second / time.Duration(rate)
		next := time.Now()
		for ctx.Err() == nil {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			select {
			case jobs <- struct{}{}:
			default:
				late.Add(1)
			}
		}
	}()

	pid := cmd.Process.Pid
	// Phase 1: no client.
	time.Sleep(warmup)
	a0, c0 := appended.Load(), cpuSeconds(pid)
	time.Sleep(window)
	a1, c1 := appended.Load(), cpuSeconds(pid)
	base0 := c1 - c0
	fmt.Printf("phase 1 (0 clients): appended %.0f events/s, server CPU %.3f s in %v (%.1f%% of a core)\n",
		float64(a1-a0)/window.Seconds(), base0, window, 100*base0/window.Seconds())

	// Phase 2: nClients clients.
	var (
		mu        sync.Mutex
		lags      []time.Duration
		measuring atomic.Bool
		received  atomic.Int64
		ended     atomic.Int64
		slowEnds  atomic.Int64
	)
	head, err := headPosition(hc, base, tok.Token)
	if err != nil {
		return err
	}
	sctx, scancel := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	for range nClients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			local := make([]time.Duration, 0, rate*int(window.Seconds()+1))
			defer func() {
				mu.Lock()
				lags = append(lags, local...)
				mu.Unlock()
			}()
			req, _ := http.NewRequestWithContext(sctx, "GET", base+"/api/v1/events/stream", nil)
			req.Header.Set("Authorization", "Bearer "+tok.Token)
			req.Header.Set("Last-Event-ID", strconv.FormatUint(head, 10))
			r, err := (&http.Client{}).Do(req)
			if err != nil {
				ended.Add(1)
				return
			}
			defer r.Body.Close()
			br := bufio.NewReaderSize(r.Body, 64<<10)
			timeKey := []byte(`"time":"`)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					if sctx.Err() == nil {
						ended.Add(1)
					}
					return
				}
				if bytes.HasPrefix(line, []byte("event: error")) {
					slowEnds.Add(1)
				}
				if !bytes.HasPrefix(line, []byte("data: ")) {
					continue
				}
				now := time.Now()
				i := bytes.Index(line, timeKey)
				if i < 0 {
					continue
				}
				rest := line[i+len(timeKey):]
				j := bytes.IndexByte(rest, '"')
				if j < 0 {
					continue
				}
				at, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
				if err != nil {
					continue
				}
				if measuring.Load() {
					local = append(local, now.Sub(at))
					received.Add(1)
				}
			}
		}()
	}
	time.Sleep(warmup)
	measuring.Store(true)
	h0 := lagHistogram(hc, base)
	a2, c2 := appended.Load(), cpuSeconds(pid)
	time.Sleep(window)
	a3, c3 := appended.Load(), cpuSeconds(pid)
	h1 := lagHistogram(hc, base)
	measuring.Store(false)
	scancel()
	cwg.Wait()
	cancel()
	wg.Wait()
	with := c3 - c2
	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	fmt.Printf("phase 2 (%d clients): appended %.0f events/s, server CPU %.3f s in %v (%.1f%% of a core)\n",
		nClients, float64(a3-a2)/window.Seconds(), with, window, 100*with/window.Seconds())
	fmt.Printf("deliveries %d (%.0f/s), expected ~%d; disconnects %d (slow_consumer %d); appends failed %d, late %d\n",
		received.Load(), float64(received.Load())/window.Seconds(), (a3-a2)*int64(nClients), ended.Load(), slowEnds.Load(), failed.Load(), late.Load())
	fmt.Printf("delivery lag: p50 %v, p90 %v, p99 %v, max %v\n", pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	fmt.Printf("server side (append -> flushed to the socket, vigil_event_stream_delivery_lag_seconds): p50 <= %s, p99 <= %s (histogram bucket bounds)\n",
		bucketQuantile(h0, h1, 0.50), bucketQuantile(h0, h1, 0.99))
	fmt.Printf("extra server CPU per client: %.3f%% of a core (%.2f ms CPU per second)\n",
		100*(with-base0)/window.Seconds()/float64(nClients), 1000*(with-base0)/window.Seconds()/float64(nClients))
	return nil
}

// lagHistogram reads the cumulative buckets of the server's delivery lag histogram
// (upper bound "le" -> count).
func lagHistogram(hc *http.Client, base string) map[string]float64 {
	out := map[string]float64{}
	r, err := hc.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	const prefix = `vigil_event_stream_delivery_lag_seconds_bucket{le="`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		out[le] = v
	}
	return out
}

// bucketQuantile is the upper bound of the histogram bucket holding quantile q of the
// observations between h0 and h1.
func bucketQuantile(h0, h1 map[string]float64, q float64) string {
	type b struct {
		le    float64
		label string
		n     float64
	}
	var bs []b
	for label, v := range h1 {
		le, err := strconv.ParseFloat(label, 64)
		if label == "+Inf" {
			le, err = 1e18, nil
		}
		if err == nil {
			bs = append(bs, b{le, label, v - h0[label]})
		}
	}
	slices.SortFunc(bs, func(x, y b) int {
		switch {
		case x.le < y.le:
			return -1
		case x.le > y.le:
			return 1
		}
		return 0
	})
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return "n/a"
	}
	total := bs[len(bs)-1].n
	for _, x := range bs {
		if x.n >= q*total {
			if x.label == "+Inf" {
				return "+Inf"
			}
			return (time.Duration(x.le * float64(time.Second))).String()
		}
	}
	return "+Inf"
}

// headPosition is the last position in the log as the paged endpoint sees it, so that a
// client starts live instead of replaying the whole log.
func headPosition(hc *http.Client, base, token string) (uint64, error) {
	var after uint64
	for {
		req, _ := http.NewRequest("GET", base+"/api/v1/events?limit=500&after="+strconv.FormatUint(after, 10), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		var page struct {
			Items     []json.RawMessage `json:"items"`
			NextAfter uint64            `json:"next_after"`
		}
		err = json.NewDecoder(r.Body).Decode(&page)
		r.Body.Close()
		if err != nil {
			return 0, err
		}
		if len(page.Items) < 500 {
			return page.NextAfter, nil
		}
		after = page.NextAfter
	}
}

// cpuSeconds is the user+system CPU time of process pid (/proc/<pid>/stat, fields 14-15,
// in clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+2:] // after "(comm) "
	f := strings.Fields(s)
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
