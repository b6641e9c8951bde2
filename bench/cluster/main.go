// Command cluster measures Vigil behind a round-robin reverse proxy: N `vigil serve` processes
// sharing one SQLite log file (--store sqlite://PATH) and one NATS server (--nats-url, an
// in-process nats-server with JetStream), the proxy written with httputil.ReverseProxy in this
// process. It prints, for that N: whoami throughput through the proxy, password sign-in
// throughput (16 clients on 16 accounts, production argon2id cost) and the throttling limit
// across instances (a burst of wrong passwords for one email: exactly FreeFailures+1 may be
// checked). Run it with -instances 1 and -instances 3 alternately to compare.
//
//	go run ./bench/cluster -instances 3 -duration 10s
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

const password = "umbrella-cactus-violin-47"

func main() {
	instances := flag.Int("instances", 3, "vigil serve processes behind the proxy")
	duration := flag.Duration("duration", 10*time.Second, "length of each throughput measurement")
	whoamiClients := flag.Int("whoami-clients", 32, "concurrent whoami clients")
	loginClients := flag.Int("login-clients", 16, "concurrent sign-in clients, each on its own account")
	bin := flag.String("bin", "", "a built vigil binary (default: build ./cmd/vigil)")
	burst := flag.Int("burst", 30, "wrong passwords sent at once for one email")
	flag.Parse()
	log.SetFlags(0)

	work, err := os.MkdirTemp("", "vigil-cluster-bench-")
	check(err)
	defer os.RemoveAll(work)
	if *bin == "" {
		*bin = filepath.Join(work, "vigil")
		out, err := exec.Command("go", "build", "-o", *bin, "./cmd/vigil").CombinedOutput()
		if err != nil {
			log.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(work, "nats"), NoSigs: true, NoLog: true})
	check(err)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server did not start")
	}
	defer ns.Shutdown()

	shared := filepath.Join(work, "shared")
	check(os.MkdirAll(shared, 0o700))
	keyFile, sigFile := filepath.Join(shared, "secret.key"), filepath.Join(shared, "log-signing.key")
	check(os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(random(32))+"\n"), 0o600))
	check(os.WriteFile(sigFile, []byte(fmt.Sprintf(`{"format":1,"active":{"ed25519_seed":%q,"created_at":%q}}`,
		base64.StdEncoding.EncodeToString(random(32)), time.Now().UTC().Format(time.RFC3339))), 0o600))

	var backends []*url.URL
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	for i := range *instances {
		cmd := exec.Command(*bin, "serve", "--data-dir", filepath.Join(work, fmt.Sprintf("i%d", i)),
			"--store", "sqlite://"+filepath.Join(shared, "events.db"), "--nats-url", ns.ClientURL(),
			"--secret-key-file", keyFile, "--log-signing-key-file", sigFile,
			"--addr", "127.0.0.1:0", "--trusted-proxies", "127.0.0.0/8")
		stdout, err := cmd.StdoutPipe()
		check(err)
		cmd.Stderr = io.Discard
		check(cmd.Start())
		procs = append(procs, cmd)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Vigil is serving "); ok {
				pu, err := url.Parse(u)
				check(err)
				backends = append(backends, pu)
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
	}
	if len(backends) != *instances {
		log.Fatal("an instance did not start")
	}
	for _, b := range backends {
		waitReady(b.String())
	}
	front := httptest.NewServer(newProxy(backends))
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}

	// Accounts: one for whoami, one per sign-in client.
	register := func(email string) {
		a := do(client, front.URL, "POST", "/api/v1/accounts", map[string]string{"email": email, "password": password,
			"first_name": "Bench", "last_name": "Mark"}, "", "203.0.113.1")
		if a.code != 201 {
			log.Fatalf("register %s: %d %s", email, a.code, a.raw)
		}
	}
	register("whoami@example.com")
	login := do(client, front.URL, "POST", "/api/v1/login", map[string]string{"email": "whoami@example.com", "password": password}, "", "203.0.113.2")
	if login.code != 200 {
		log.Fatalf("login: %d %s", login.code, login.raw)
	}
	token := login.body["session_token"].(string)
	for _, b := range backends { // the session reaches every instance through the log feed
		for do(client, b.String(), "GET", "/api/v1/whoami", nil, token, "").code != 200 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range *loginClients {
		register(fmt.Sprintf("login-%d@example.com", i))
	}

	// whoami.
	n, errs := run(*whoamiClients, *duration, func(int) bool {
		return do(client, front.URL, "GET", "/api/v1/whoami", nil, token, "").code == 200
	})
	fmt.Printf("instances=%d whoami: %.0f requests/s (%d clients, %s), %d errors\n", *instances, float64(n)/duration.Seconds(), *whoamiClients, *duration, errs)

	// Sign-ins, each client on its own account and address.
	n, errs = run(*loginClients, *duration, func(w int) bool {
		a := do(client, front.URL, "POST", "/api/v1/login", map[string]string{"email": fmt.Sprintf("login-%d@example.com", w), "password": password},
			"", fmt.Sprintf("198.51.100.%d", w+1))
		return a.code == 200 && a.body["status"] == "authenticated"
	})
	fmt.Printf("instances=%d sign-in: %.1f logins/s (%d clients, %s), %d errors\n", *instances, float64(n)/duration.Seconds(), *loginClients, *duration, errs)

	// Throttling: a burst of wrong passwords for one email over every instance.
	register("target@example.com")
	var wg sync.WaitGroup
	var checked, refused, other atomic.Int64
	for range *burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := do(client, front.URL, "POST", "/api/v1/login", map[string]string{"email": "target@example.com", "password": "wrong-wrong-wrong-1"}, "", "192.0.2.99")
			switch a.code {
			case 401:
				checked.Add(1)
			case 429:
				refused.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("instances=%d throttling: %d wrong passwords at once: %d checked (401), %d refused (429), %d other; the limit allows 6\n",
		*instances, *burst, checked.Load(), refused.Load(), other.Load())
}

// run calls f from clients goroutines for d and counts successes and failures.
func run(clients int, d time.Duration, f func(worker int) bool) (ok, failed int64) {
	var okN, failN atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if f(w) {
					okN.Add(1)
				} else {
					failN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return okN.Load(), failN.Load()
}

// newProxy is a round-robin reverse proxy over backends.
func newProxy(backends []*url.URL) http.Handler {
	var rps []*httputil.ReverseProxy
	for _, b := range backends {
		rps = append(rps, &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(b)
				pr.SetXForwarded()
			},
			Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256},
		})
	}
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rps[int(next.Add(1)-1)%len(rps)].ServeHTTP(w, r)
	})
}

type answer struct {
	code int
	body map[string]any
	raw  string
}

func do(c *http.Client, base, method, path string, body any, token, ip string) answer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	check(err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	res, err := c.Do(req)
	if err != nil {
		return answer{code: 0, raw: err.Error()}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{code: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func waitReady(base string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(base + "/readyz"); err == nil {
			_ = r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("%s/readyz did not answer 200", base)
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
